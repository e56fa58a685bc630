#!/usr/bin/python3
"""
Consumers and resource policies in cluster mode (docs/CLUSTER.md "Consumers and resource
policies"), end to end on 127.0.0.1: a real etcd and THREE sluiced processes with
replication_factor 2 and [auth] mode = sigv4 (the owner's root, alice of the owner's
account, bob of another), driven by boto3 (and botocore-signed raw requests for
Put/Get/DeleteResourcePolicy: Debian's botocore 1.29 predates them).

  usage: test_cluster_consumers.py SLUICED

Checks:
  - a consumer registered through node 1 is described and listed through node 2 with the
    same ARN and creation timestamp; the name again through node 2: ResourceInUseException;
    an unknown ConsumerARN (and a known name with another timestamp): ResourceNotFound;
  - racing registrations of one name through nodes 1 and 2 at once: exactly one succeeds,
    the other is ResourceInUseException, and both nodes list the winner's ARN;
  - SubscribeToShard through each shard's leader, through its follower and through the
    node that holds no replica (relayed from a holder) gets every record acknowledged (put
    through node 3) exactly once, in order;
  - a deregistration through node 3 ends a subscription open on node 1 and is seen on
    every node (ResourceNotFoundException);
  - a stream policy put through node 1 lets bob in and locks alice out on nodes 2 and 3
    (and on node 1 at once); deleted through node 2, both are as before everywhere; a
    consumer's policy put through node 2 lets bob describe it through node 3;
  - StartStreamEncryption through node 1 (every node has the key in its keyring): every
    node describes KMS, and each shard's leader and follower store a record put after it
    encrypted (its bytes absent from their log segments, where a record put before is
    found) and read it back; StopStreamEncryption through node 2: plaintext again.
Waits are for conditions with generous deadlines; no time is asserted.
"""
import glob
import json
import os
import sys
import tempfile
import threading
import urllib.request

import boto3
import botocore.auth
import botocore.config
import botocore.exceptions
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster_node as tcn  # noqa: E402  (its Etcd, Node, wait_for, fail)

STREAM = "cons"
SHARDS = 2
RF = 2
ROOT = ("AKIDCSTATEROOT", "root-secret")
ALICE = ("AKIDCSTATEALICE", "alice-secret")
BOB = ("AKIDCSTATEBOB", "bob-secret")
ALICE_ARN = "arn:aws:iam::000000000000:user/alice"
BOB_ARN = "arn:aws:iam::444455556666:user/bob"
EXTRA = ["--set", "auth.mode=sigv4",
         "--set", "auth.access_keys=" + ",".join("%s:%s" % k for k in (ROOT, ALICE, BOB)),
         "--set", "auth.principals=%s=%s,%s=%s" % (ALICE[0], ALICE_ARN, BOB[0], BOB_ARN),
         "--set", "cluster.replication_factor=%d" % RF]
RECORDS = 12   # per shard


def shard_id(s):
    return "shardId-%012d" % s


def hash_key(shard, i):
    return str(shard * ((1 << 128) // SHARDS) + 1000 + i)


def client(node, key):
    return boto3.client("kinesis", endpoint_url="http://127.0.0.1:%d" % node.api,
                        region_name="us-east-1", aws_access_key_id=key[0],
                        aws_secret_access_key=key[1],
                        config=botocore.config.Config(retries={"max_attempts": 0},
                                                      read_timeout=tcn.DEADLINE_S * 2))


def raw(node, key, op, params):
    """A botocore-signed call: (status, answer)."""
    body = json.dumps(params).encode()
    req = AWSRequest(method="POST", url="http://127.0.0.1:%d/" % node.api, data=body,
                     headers={"X-Amz-Target": "Kinesis_20131202." + op,
                              "Content-Type": "application/x-amz-json-1.1"})
    botocore.auth.SigV4Auth(Credentials(*key), "kinesis", "us-east-1").add_auth(req)
    r = urllib.request.Request(req.url, data=body, headers=dict(req.headers.items()),
                               method="POST")
    try:
        with urllib.request.urlopen(r, timeout=tcn.DEADLINE_S) as f:
            return f.status, json.loads(f.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def code_of(call, **kw):
    """None when the call succeeds, else its error code."""
    try:
        call(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    return None


def expect(what, want, call, **kw):
    got = code_of(call, **kw)
    if got != want:
        tcn.fail("%s: %s, want %s" % (what, got, want))


def placement(nodes):
    """{shard: (leader, follower)} once every shard is led with RF in-sync replicas."""
    out = {}
    for n in nodes:
        for r in n.cluster()["led"]:
            if r["stream"] == STREAM and not r["fenced"] and len(r["isr"]) == RF:
                out[r["shard"]] = (n.id, (set(r["replicas"]) - {n.id}).pop())
    return out if len(out) == SHARDS else None


class Reader(threading.Thread):
    """One SubscribeToShard (from TRIM_HORIZON unless `position` says): its records until
    `want` (None: its end), its events and last ContinuationSequenceNumber."""

    def __init__(self, kc, arn, shard, want, position=None):
        super().__init__(daemon=True)
        self.kc, self.arn, self.shard, self.want = kc, arn, shard, want
        self.position = position or {"Type": "TRIM_HORIZON"}
        self.records, self.error, self.ended = [], None, False
        self.events, self.continuation = 0, None
        self.started = threading.Event()

    def run(self):
        try:
            r = self.kc.subscribe_to_shard(ConsumerARN=self.arn, ShardId=shard_id(self.shard),
                                           StartingPosition=self.position)
            self.started.set()
            for event in r["EventStream"]:
                e = event["SubscribeToShardEvent"]
                self.events += 1
                self.continuation = e["ContinuationSequenceNumber"]
                self.records += [(x["SequenceNumber"], x["Data"]) for x in e["Records"]]
                if self.want is not None and len(self.records) >= self.want:
                    r["EventStream"].close()
                    return
            self.ended = True
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e
        finally:
            self.started.set()


def register(kc, stream_arn, name):
    return kc.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name)["Consumer"]


def described(kc, arn):
    return kc.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]


def consumers(nodes, stream_arn):
    """Register, describe, list, duplicates, unknown ARNs, races."""
    c1, c2, c3 = (client(n, ROOT) for n in nodes)
    first = register(c1, stream_arn, "fan")
    d = tcn.wait_for("node 2 describes node 1's consumer", lambda: (
        code_of(c2.describe_stream_consumer, ConsumerARN=first["ConsumerARN"]) is None and
        described(c2, first["ConsumerARN"])))
    if (d["ConsumerARN"], d["ConsumerCreationTimestamp"]) != (
            first["ConsumerARN"], first["ConsumerCreationTimestamp"]):
        tcn.fail("node 2 describes %s, node 1 registered %s" % (d, first))
    listed = c2.list_stream_consumers(StreamARN=stream_arn)["Consumers"]
    if [x["ConsumerARN"] for x in listed] != [first["ConsumerARN"]]:
        tcn.fail("node 2 lists %s" % listed)
    expect("the name again through node 2", "ResourceInUseException",
           c2.register_stream_consumer, StreamARN=stream_arn, ConsumerName="fan")
    expect("an unknown consumer ARN through node 3", "ResourceNotFoundException",
           c3.describe_stream_consumer, ConsumerARN=stream_arn + "/consumer/nope:1")
    expect("another timestamp through node 3", "ResourceNotFoundException",
           c3.describe_stream_consumer,
           ConsumerARN=first["ConsumerARN"].rsplit(":", 1)[0] + ":1")

    # Racing registrations of one name through two nodes: one wins, everywhere.
    for i in range(4):
        name = "race%d" % i
        gate = threading.Barrier(2)
        out = {}

        def go(kc, who):
            gate.wait()
            try:
                out[who] = register(kc, stream_arn, name)["ConsumerARN"]
            except botocore.exceptions.ClientError as e:
                out[who] = e.response["Error"]["Code"]
        threads = [threading.Thread(target=go, args=(c1, 1)), threading.Thread(target=go,
                                                                              args=(c2, 2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(tcn.DEADLINE_S)
        won = [v for v in out.values() if v.startswith("arn:")]
        lost = [v for v in out.values() if not v.startswith("arn:")]
        if len(won) != 1 or lost != ["ResourceInUseException"]:
            tcn.fail("race %d: %s" % (i, out))
            continue
        for kc, n in ((c1, 1), (c2, 2), (c3, 3)):
            tcn.wait_for("node %d lists %s's winner" % (n, name), lambda: [
                x["ConsumerARN"] for x in kc.list_stream_consumers(
                    StreamARN=stream_arn)["Consumers"] if x["ConsumerName"] == name] == won)
    print("cluster-consumers: register, describe, list, duplicates, races ok", flush=True)


def subscriptions(nodes, place, stream_arn):
    """SubscribeToShard through each shard's leader and follower, relayed elsewhere."""
    by_id = {n.id: n for n in nodes}
    c1, c3 = client(nodes[0], ROOT), client(nodes[2], ROOT)
    lead = register(c1, stream_arn, "lead")["ConsumerARN"]
    follow = register(c1, stream_arn, "follow")["ConsumerARN"]
    relay = register(c1, stream_arn, "relay")["ConsumerARN"]
    readers = []
    for s in range(SHARDS):
        leader, follower = place[s]
        other = ({1, 2, 3} - {leader, follower}).pop()
        # The node holding no replica relays a holder's stream (test_cluster_relay.py).
        for arn, nid in ((lead, leader), (follow, follower), (relay, other)):
            kc = client(by_id[nid], ROOT)
            tcn.wait_for("node %d knows the consumers" % nid, lambda: code_of(
                kc.describe_stream_consumer, ConsumerARN=arn) is None)
            rd = Reader(kc, arn, s, RECORDS)
            rd.start()
            if not rd.started.wait(tcn.DEADLINE_S) or rd.error is not None:
                tcn.fail("shard %d on node %d: the subscription did not start: %r" %
                         (s, nid, rd.error))
            readers.append((s, nid, rd))

    acked = {s: [] for s in range(SHARDS)}
    for i in range(RECORDS * SHARDS):
        s = i % SHARDS
        rec = {"Data": b"c%d" % i, "PartitionKey": "k%d" % i, "ExplicitHashKey": hash_key(s, i)}
        r = tcn.wait_for("record %d acknowledged through node 3" % i, lambda: (
            lambda a: a if "ErrorCode" not in a else None)(c3.put_records(
                StreamName=STREAM, Records=[rec])["Records"][0]))
        acked[s].append((r["SequenceNumber"], rec["Data"]))
    for s, nid, rd in readers:
        rd.join(tcn.DEADLINE_S)
        if rd.is_alive() or rd.error is not None:
            tcn.fail("shard %d on node %d: %d of %d records, error %r" %
                     (s, nid, len(rd.records), RECORDS, rd.error))
        elif rd.records != acked[s]:
            tcn.fail("shard %d on node %d: received %s, acknowledged %s" %
                     (s, nid, rd.records, acked[s]))
    print("cluster-consumers: subscriptions on leaders %s, followers and the third node "
          "(relayed) got every record once"
          % {s: place[s] for s in range(SHARDS)}, flush=True)

    # Deregistered through node 3: node 1's open subscription ends; gone everywhere.
    s = next(s for s in range(SHARDS) if 1 in place[s])
    gone = register(client(nodes[1], ROOT), stream_arn, "gone")["ConsumerARN"]
    kc = client(nodes[0], ROOT)
    tcn.wait_for("node 1 knows node 2's consumer", lambda: code_of(
        kc.describe_stream_consumer, ConsumerARN=gone) is None)
    rd = Reader(kc, gone, s, None)
    rd.start()
    if not rd.started.wait(tcn.DEADLINE_S) or rd.error is not None:
        tcn.fail("the subscription on node 1 did not start: %r" % rd.error)
    tcn.wait_for("node 1's subscription delivered", lambda: len(rd.records) >= RECORDS)
    c3.deregister_stream_consumer(ConsumerARN=rd.arn)
    rd.join(tcn.DEADLINE_S)
    if rd.is_alive() or rd.error is not None or not rd.ended:
        tcn.fail("node 1's subscription after the deregistration through node 3: alive %s, "
                 "error %r" % (rd.is_alive(), rd.error))
    for n in nodes:
        kc = client(n, ROOT)
        tcn.wait_for("node %d: the consumer deregistered through node 3 is gone" % n.id,
                     lambda: code_of(kc.describe_stream_consumer, ConsumerARN=rd.arn) ==
                     "ResourceNotFoundException")
    print("cluster-consumers: deregistration seen everywhere", flush=True)
    return follow


def policies(nodes, stream_arn, consumer_arn):
    """A policy put through one node is enforced on the others."""
    def summary(node, key):
        return code_of(client(node, key).describe_stream_summary, StreamName=STREAM)

    n1, n2, n3 = nodes
    expect("bob before any policy", "AccessDeniedException",
           client(n2, BOB).describe_stream_summary, StreamName=STREAM)
    expect("alice before any policy", None, client(n3, ALICE).describe_stream_summary,
           StreamName=STREAM)
    text = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kinesis:DescribeStreamSummary", "Resource": stream_arn},
        {"Effect": "Deny", "Principal": {"AWS": ALICE_ARN},
         "Action": "kinesis:DescribeStreamSummary", "Resource": stream_arn}]})
    status, out = raw(n1, ROOT, "PutResourcePolicy", {"ResourceARN": stream_arn, "Policy": text})
    if status != 200:
        tcn.fail("PutResourcePolicy through node 1: %d %s" % (status, out))
    if summary(n1, ALICE) != "AccessDeniedException":
        tcn.fail("node 1 does not enforce the policy it stored")
    for n in (n2, n3):
        tcn.wait_for("node %d lets bob in" % n.id, lambda: summary(n, BOB) is None)
        tcn.wait_for("node %d locks alice out" % n.id,
                     lambda: summary(n, ALICE) == "AccessDeniedException")
    status, out = raw(n3, ALICE, "GetResourcePolicy", {"ResourceARN": stream_arn})
    if status != 200 or out.get("Policy") != text:
        tcn.fail("GetResourcePolicy through node 3: %d %s" % (status, out))
    status, out = raw(n2, ROOT, "DeleteResourcePolicy", {"ResourceARN": stream_arn})
    if status != 200:
        tcn.fail("DeleteResourcePolicy through node 2: %d %s" % (status, out))
    status, out = raw(n2, ROOT, "DeleteResourcePolicy", {"ResourceARN": stream_arn})
    if status != 400 or out.get("__type", "").split("#")[-1] != "ResourceNotFoundException":
        tcn.fail("DeleteResourcePolicy again through node 2: %d %s" % (status, out))
    for n in nodes:
        tcn.wait_for("node %d: alice in again" % n.id, lambda: summary(n, ALICE) is None)
        tcn.wait_for("node %d: bob out again" % n.id,
                     lambda: summary(n, BOB) == "AccessDeniedException")

    # A consumer's own policy, put through node 2, enforced on node 3.
    bob3 = client(n3, BOB)
    expect("bob describes the consumer before its policy", "AccessDeniedException",
           bob3.describe_stream_consumer, ConsumerARN=consumer_arn)
    text = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kinesis:DescribeStreamConsumer", "Resource": consumer_arn}]})
    status, out = raw(n2, ROOT, "PutResourcePolicy", {"ResourceARN": consumer_arn,
                                                      "Policy": text})
    if status != 200:
        tcn.fail("PutResourcePolicy of the consumer through node 2: %d %s" % (status, out))
    tcn.wait_for("node 3 lets bob describe the consumer", lambda: code_of(
        bob3.describe_stream_consumer, ConsumerARN=consumer_arn) is None)
    print("cluster-consumers: policies enforced on every node", flush=True)


KEYRING_LINE = "key-1 1 %s alias/aws/kinesis" % ("11" * 32)


def on_disk(node, needle):
    """Whether `needle` is in the node's log segments as bytes (plaintext)."""
    for path in glob.glob(os.path.join(node.dir, "log", "seg-*.log")):
        with open(path, "rb") as f:
            if needle in f.read():
                return True
    return False


def encryption_state(node):
    d = client(node, ROOT).describe_stream_summary(
        StreamName=STREAM)["StreamDescriptionSummary"]
    return d["EncryptionType"], d.get("KeyId"), d["StreamStatus"]


def put_marked(kc, shard, data):
    rec = {"Data": data, "PartitionKey": "e", "ExplicitHashKey": hash_key(shard, 0)}
    return tcn.wait_for("%r acknowledged" % data, lambda: (
        lambda a: a if "ErrorCode" not in a else None)(kc.put_records(
            StreamName=STREAM, Records=[rec])["Records"][0]))


def encryption(nodes, place):
    """Started through node 1, every replica encrypts; stopped through node 2, none does."""
    by_id = {n.id: n for n in nodes}
    c3 = client(nodes[2], ROOT)
    holders = {s: [by_id[i] for i in place[s]] for s in range(SHARDS)}
    # Plaintext is visible on disk before: the check below can fail.
    for s in range(SHARDS):
        put_marked(c3, s, b"plain-marker-%d" % s)
        for n in holders[s]:
            tcn.wait_for("node %d holds shard %d's plaintext" % (n.id, s),
                         lambda: on_disk(n, b"plain-marker-%d" % s))
    client(nodes[0], ROOT).start_stream_encryption(StreamName=STREAM, EncryptionType="KMS",
                                                   KeyId="alias/aws/kinesis")
    for n in nodes:
        tcn.wait_for("node %d encrypts" % n.id, lambda: encryption_state(n) == (
            "KMS", "alias/aws/kinesis", "ACTIVE"))
    acked = {}
    for s in range(SHARDS):
        acked[s] = put_marked(c3, s, b"secret-marker-%d" % s)["SequenceNumber"]
    for s in range(SHARDS):
        for n in holders[s]:
            kc = client(n, ROOT)
            tcn.wait_for("node %d reads shard %d's encrypted record" % (n.id, s), lambda: [
                r["Data"] for r in kc.get_records(ShardIterator=kc.get_shard_iterator(
                    StreamName=STREAM, ShardId=shard_id(s),
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    StartingSequenceNumber=acked[s])["ShardIterator"])["Records"]][:1] ==
                [b"secret-marker-%d" % s])
            if on_disk(n, b"secret-marker-%d" % s):
                tcn.fail("node %d stored shard %d's record in plaintext" % (n.id, s))
    client(nodes[1], ROOT).stop_stream_encryption(StreamName=STREAM, EncryptionType="KMS",
                                                  KeyId="alias/aws/kinesis")
    for n in nodes:
        tcn.wait_for("node %d stopped encrypting" % n.id,
                     lambda: encryption_state(n)[0] == "NONE")
    for s in range(SHARDS):
        put_marked(c3, s, b"after-marker-%d" % s)
        for n in holders[s]:
            tcn.wait_for("node %d holds shard %d's plaintext again" % (n.id, s),
                         lambda: on_disk(n, b"after-marker-%d" % s))
    print("cluster-consumers: encryption started and stopped on every replica", flush=True)


def main():
    root = tempfile.mkdtemp(prefix="sluice-cstate-")
    keyring = os.path.join(root, "keyring")
    with open(keyring, "w") as f:
        f.write(KEYRING_LINE + "\n")
    os.chmod(keyring, 0o600)
    etcd = tcn.Etcd(root)
    extra = EXTRA + ["--set", "encryption.keyring=" + keyring]
    nodes = [tcn.Node(root, i, etcd, cluster="cstatetest", ttl=60, extra=extra, key=ROOT)
             for i in (1, 2, 3)]
    done = False
    try:
        for n in nodes:
            n.start()
        c = nodes[0].client
        c.create_stream(StreamName=STREAM, ShardCount=SHARDS)
        tcn.active_everywhere(nodes, STREAM)
        stream_arn = c.describe_stream_summary(
            StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
        place = tcn.wait_for("every shard led with %d in-sync replicas" % RF,
                             lambda: placement(nodes))
        print("placement: %s" % place, flush=True)
        consumers(nodes, stream_arn)
        follow = subscriptions(nodes, place, stream_arn)
        policies(nodes, stream_arn, follow)
        encryption(nodes, place)
        done = True
    finally:
        tcn.finish(nodes, etcd, root, done)


if __name__ == "__main__":
    main()
