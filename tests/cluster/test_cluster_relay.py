#!/usr/bin/python3
"""
SubscribeToShard on any node (docs/CLUSTER.md "Forwarding reads"), end to end on
127.0.0.1: a real etcd and FOUR sluiced processes with replication_factor 3 and [auth]
mode = sigv4, so a shard has a node that holds no replica of it (node 4 for at least
one). boto3 subscribes through node 4 only; node 4 relays the holder's event stream.

  usage: test_cluster_relay.py SLUICED

Checks, for a shard node 4 holds no replica of:
  - TRIM_HORIZON through node 4, records put (through node 4) before and while it is
    open: every acknowledged record arrives exactly once, in order, at its acknowledged
    SequenceNumber with its data, and the last event's ContinuationSequenceNumber is the
    last record's (without the relay: InvalidArgumentException, not served); a second
    subscription of the consumer meanwhile: the holder's ResourceInUseException passed on;
  - AT_SEQUENCE_NUMBER of the second record through node 4 starts at that record;
  - the caller closing its stream: counted caller_left (the holder's transfer cancelled),
    and the same consumer subscribes the shard again through node 4 (the holder's
    subscription went with it, or ResourceInUseException would say otherwise);
  - the loop guard: a SubscribeToShard carrying X-Sluice-Forwarded to node 4 is not
    relayed again: 503 ServiceUnavailable;
  - node 4's /metrics: sluice_forward_subscriptions_total{result="started"} and
    sluice_forward_reads_total{action="SubscribeToShard",result="ok"} count the relays;
  - CBOR over h2c (curl, signed: the Java SDK's encoding, the JS SDK's transport) through
    node 4: the events' payloads are CBOR with every record (a second one meanwhile: the
    holder's refusal passed on in CBOR); the consumer deregistered
    ends the holder's subscription and so the caller's stream (counted holder_ended);
  - the holder SIGSTOPped mid-subscription: the caller's stream through node 4 ends once
    nothing came for FORWARD_STREAM_SILENCE_S (boto3 ends or raises), counted
    {result="silent"};
  - the holder SIGKILLed mid-subscription: the caller's stream through node 4 ends (boto3
    ends or raises, no hang), counted {result="failed"}, and node 4 goes on serving;
  - then, that holder (the leader) still placed (its 60 s lease): a new subscription
    through node 4 is refused there and opened on an in-sync follower instead, every
    record arrives (counted {action="SubscribeToShard",result="refused"} once, started).
Waits are for conditions with generous deadlines; no time is asserted.
"""
import os
import signal
import subprocess
import sys
import tempfile
import types

import boto3
import botocore.config
import botocore.exceptions
import cbor2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, "..", "integration", "api"))
import test_cluster_node as tcn  # noqa: E402  (its Etcd, Node, wait_for, fail)
import test_kinesis_cbor as tkc  # noqa: E402  (eventstream_messages, cbor_answer)
import test_cluster_consumers as tcc  # noqa: E402  (Reader)
import test_cluster_forward as tcf  # noqa: E402  (metrics, forwarded_client, the key)
import test_cluster_reads as tcr  # noqa: E402  (placement over RF 3, expect_error)

STREAM = "relay"
SHARDS = tcr.SHARDS
REFUSALS = [0]   # the holder's ResourceInUseException passed on (reads_total ok)
BEFORE = 5   # records put before the subscription
WHILE = 5    # and while it is open


def shard_id(s):
    return "shardId-%012d" % s


def client(node):
    return boto3.client("kinesis", endpoint_url="http://127.0.0.1:%d" % node.api,
                        region_name="us-east-1", aws_access_key_id=tcf.KEY[0],
                        aws_secret_access_key=tcf.KEY[1],
                        config=botocore.config.Config(retries={"max_attempts": 0},
                                                      read_timeout=tcn.DEADLINE_S * 2))


def subs(node, result):
    return tcf.metrics(node).get('sluice_forward_subscriptions_total{result="%s"}' % result, 0)


def put(c, s, i):
    """Record i of shard s through `c`, acknowledged: (seq, data)."""
    rec = {"Data": b"relay-%d-%d" % (s, i), "PartitionKey": "k%d" % i,
           "ExplicitHashKey": tcr.hash_key(s, i)}
    r = tcn.wait_for("record %d of shard %d acknowledged" % (i, s), lambda: (
        lambda a: a if "ErrorCode" not in a else None)(c.put_records(
            StreamName=STREAM, Records=[rec])["Records"][0]))
    if r["ShardId"] != shard_id(s):
        tcn.fail("record %d answered for %s" % (i, r["ShardId"]))
    return r["SequenceNumber"], rec["Data"]


def start(kc, arn, s, position, want):
    rd = tcc.Reader(kc, arn, s, want, position)
    rd.start()
    if not rd.started.wait(tcn.DEADLINE_S) or rd.error is not None:
        tcn.fail("shard %d through node 4: the subscription did not start: %r" % (s, rd.error))
    return rd


def opened(kc, arn, s, position, want):
    """A started Reader, or None while the holder still has the consumer's subscription."""
    rd = tcc.Reader(kc, arn, s, want, position)
    rd.start()
    rd.started.wait(tcn.DEADLINE_S)
    if isinstance(rd.error, botocore.exceptions.ClientError) and \
            rd.error.response["Error"]["Code"] == "ResourceInUseException":
        REFUSALS[0] += 1
        return None
    if not rd.started.is_set() or rd.error is not None:
        tcn.fail("shard %d through node 4: the subscription did not start: %r" % (s, rd.error))
    return rd


def finished(rd, what, want):
    rd.join(tcn.DEADLINE_S * 2)
    if rd.is_alive() or rd.error is not None:
        tcn.fail("%s: %d records, error %r" % (what, len(rd.records), rd.error))
    if rd.records != want:
        tcn.fail("%s: received %s, acknowledged %s" % (what, rd.records, want))


def subscribe_cbor_h2c(node, arn, s, tmp):
    """A signed CBOR SubscribeToShard through curl over h2c (the Java SDK's encoding, the
    JS SDK's transport): its Popen."""
    body = cbor2.dumps({"ConsumerARN": arn, "ShardId": shard_id(s),
                        "StartingPosition": {"Type": "TRIM_HORIZON"}})
    url = "http://127.0.0.1:%d/" % node.api
    req = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": tkc.CBOR, "X-Amz-Target": "Kinesis_20131202.SubscribeToShard"})
    SigV4Auth(Credentials(*tcf.KEY), "kinesis", "us-east-1").add_auth(req)
    args = ["curl", "-sS", "-N", "--max-time", "240", "-D", "/dev/stderr",
            "--http2-prior-knowledge"]
    for name, value in req.headers.items():
        if name.lower() != "host":
            args += ["-H", "%s: %s" % (name, value)]
    path = os.path.join(tmp, "subscribe.cbor")
    with open(path, "wb") as f:
        f.write(body)
    return subprocess.Popen(args + ["--data-binary", "@" + path, url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def cbor_relay(entry, c, arn, s, acked, tmp):
    """CBOR over h2c through node 4, ended by the consumer's deregistration (through node
    4: the holder ends its subscription, node 4 its caller's): every record, in CBOR."""
    carn = c.register_stream_consumer(StreamARN=arn, ConsumerName="cbor")["Consumer"][
        "ConsumerARN"]
    tcn.wait_for("consumer cbor active on node 4", lambda: c.describe_stream_consumer(
        ConsumerARN=carn)["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE")
    ended = subs(entry, "holder_ended")
    started = subs(entry, "started")
    proc = subscribe_cbor_h2c(entry, carn, s, tmp)
    try:
        tcn.wait_for("the CBOR relay started", lambda: subs(entry, "started") == started + 1)
        # A second one in CBOR: the holder's CBOR refusal, passed on in CBOR.
        api = tkc.Api(types.SimpleNamespace(url="http://127.0.0.1:%d" % entry.api,
                                            port=entry.api), *tcf.KEY)
        status, etype, answer = api.cbor("SubscribeToShard", {
            "ConsumerARN": carn, "ShardId": shard_id(s), "StartingPosition": {"Type": "LATEST"}})
        if (status, etype, answer.get("__type")) != (400, "ResourceInUseException",
                                                     "ResourceInUseException"):
            tcn.fail("a second CBOR subscription through node 4: %s %s %r" %
                     (status, etype, answer))
        c.deregister_stream_consumer(ConsumerARN=carn)
        out, err = proc.communicate(timeout=tcn.DEADLINE_S * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or b"HTTP/2 200" not in err or \
            b"application/vnd.amazon.eventstream" not in err:
        tcn.fail("CBOR over h2c through node 4: curl %d, %r" % (proc.returncode, err[-500:]))
    records = []
    messages = tkc.eventstream_messages(out)
    if not messages or messages[0][0].get(":event-type") != "initial-response":
        tcn.fail("CBOR over h2c: no initial-response first: %r" % messages[:1])
    for headers, payload in messages[1:]:
        if headers.get(":content-type") != tkc.CBOR or \
                headers.get(":event-type") != "SubscribeToShardEvent":
            tcn.fail("CBOR over h2c: event headers %r" % headers)
        event = tkc.cbor_answer(payload)
        records += [(r["SequenceNumber"], r["Data"]) for r in event["Records"]]
    if records != acked:
        tcn.fail("CBOR over h2c through node 4: received %s, acknowledged %s" % (records, acked))
    tcn.wait_for("the relay the holder ended counted holder_ended", lambda: subs(
        entry, "holder_ended") == ended + 1)
    print("cluster-relay: CBOR over h2c: %d records in %d events, ended by the "
          "deregistration" % (len(records), len(messages) - 1), flush=True)


def main():
    root = tempfile.mkdtemp(prefix="sluice-crelay-")
    etcd = tcn.Etcd(root)
    nodes = []
    done = False
    try:
        place = tcr.four_nodes(root, etcd, "crelaytest", nodes, STREAM)
        entry = nodes[3]
        c = client(entry)
        away = [s for s in range(SHARDS) if entry.id not in place[s][1]]
        if not away:
            tcn.fail("node 4 holds a replica of every shard: %s" % place)
        s = away[0]
        arn = c.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
        arns = {name: c.register_stream_consumer(StreamARN=arn, ConsumerName=name)[
            "Consumer"]["ConsumerARN"] for name in ("th", "at", "silent", "kill", "next")}
        for name, carn in arns.items():
            tcn.wait_for("consumer %s active on node 4" % name, lambda: c.describe_stream_consumer(
                ConsumerARN=carn)["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE")
        acked = [put(c, s, i) for i in range(BEFORE)]
        started = subs(entry, "started")
        ok = tcf.metrics(entry).get(
            'sluice_forward_reads_total{action="SubscribeToShard",result="ok"}', 0)
        left = subs(entry, "caller_left")

        # TRIM_HORIZON through node 4: the records before it and those put while it is open.
        rd = start(client(entry), arns["th"], s, {"Type": "TRIM_HORIZON"}, BEFORE + WHILE)
        tcn.wait_for("the records before it arrived", lambda: len(rd.records) >= BEFORE)
        # The holder's refusal passed on as it gave it: the consumer has its subscription.
        tcr.expect_error("a second subscription of consumer th through node 4",
                         "ResourceInUseException", lambda: client(entry).subscribe_to_shard(
                             ConsumerARN=arns["th"], ShardId=shard_id(s),
                             StartingPosition={"Type": "LATEST"}))
        acked += [put(c, s, BEFORE + i) for i in range(WHILE)]
        finished(rd, "shard %d TRIM_HORIZON through node 4" % s, acked)
        if rd.continuation != acked[-1][0]:
            tcn.fail("the last ContinuationSequenceNumber %s, the last record %s" %
                     (rd.continuation, acked[-1][0]))
        print("cluster-relay: shard %d (no replica on node 4) TRIM_HORIZON: %d records in %d "
              "events" % (s, len(rd.records), rd.events), flush=True)
        # The caller closed its stream: the holder's transfer is cancelled, and the holder's
        # subscription with it (the same consumer subscribes the shard again).
        tcn.wait_for("the closed relay counted caller_left", lambda: subs(entry, "caller_left")
                     == left + 1)
        again = tcn.wait_for("consumer th subscribes shard %d again" % s, lambda: opened(
            client(entry), arns["th"], s, {"Type": "AT_SEQUENCE_NUMBER",
                                           "SequenceNumber": acked[-1][0]}, 1))
        finished(again, "shard %d again through node 4" % s, acked[-1:])

        # AT_SEQUENCE_NUMBER of the second record.
        rd = start(client(entry), arns["at"], s, {"Type": "AT_SEQUENCE_NUMBER",
                                                  "SequenceNumber": acked[1][0]}, len(acked) - 1)
        finished(rd, "shard %d AT_SEQUENCE_NUMBER through node 4" % s, acked[1:])
        relayed = 3
        if subs(entry, "started") != started + relayed:
            tcn.fail("started moved by %d, want %d" % (subs(entry, "started") - started, relayed))
        # Every holder's answer counts ok: the relays and the refusals passed on.
        answered = relayed + 1 + REFUSALS[0]
        got = tcf.metrics(entry).get(
            'sluice_forward_reads_total{action="SubscribeToShard",result="ok"}', 0)
        if got != ok + answered:
            tcn.fail("reads_total{SubscribeToShard,ok} moved by %d, want %d" %
                     (got - ok, answered))

        # The loop guard: a relayed SubscribeToShard reaching node 4 goes no further.
        loop = tcf.forwarded_client(entry)
        tcr.expect_error("forwarded SubscribeToShard on node 4", "ServiceUnavailable",
                         lambda: loop.subscribe_to_shard(
                             ConsumerARN=arns["at"], ShardId=shard_id(s),
                             StartingPosition={"Type": "TRIM_HORIZON"}))

        cbor_relay(entry, c, arn, s, acked, root)

        # The holder (the shard's leader: asked first) stopped mid-subscription (SIGSTOP, its
        # 60 s lease keeps it placed): nothing comes, the relay's silence bound ends it.
        victim = nodes[place[s][0] - 1]
        silent = subs(entry, "silent")
        rd = start(client(entry), arns["silent"], s, {"Type": "TRIM_HORIZON"}, None)
        tcn.wait_for("the records arrived before the stop", lambda: len(rd.records) >= len(acked))
        victim.signal(signal.SIGSTOP)
        try:
            rd.join(tcn.DEADLINE_S * 2)
            if rd.is_alive():
                tcn.fail("the subscription through node 4 outlived its silent holder")
            tcn.wait_for("the silent relay counted silent", lambda: subs(entry, "silent") ==
                         silent + 1)
        finally:
            victim.signal(signal.SIGCONT)
        print("cluster-relay: holder %d stopped: the caller's stream %s" % (
            victim.id, "raised %r" % rd.error if rd.error is not None else "ended"), flush=True)

        # The holder (the shard's leader: asked first) SIGKILLed mid-subscription.
        failed = subs(entry, "failed")
        rd = start(client(entry), arns["kill"], s, {"Type": "TRIM_HORIZON"}, None)
        tcn.wait_for("the records arrived before the kill", lambda: len(rd.records) >= len(acked))
        victim = nodes[place[s][0] - 1]
        victim.signal(signal.SIGKILL)
        victim.proc.wait()
        rd.join(tcn.DEADLINE_S * 2)
        if rd.is_alive():
            tcn.fail("the subscription through node 4 outlived its holder")
        print("cluster-relay: holder %d killed: the caller's stream %s" % (
            victim.id, "raised %r" % rd.error if rd.error is not None else "ended"), flush=True)
        tcn.wait_for("the broken relay counted failed", lambda: subs(entry, "failed") ==
                     failed + 1)
        if rd.records != acked:
            tcn.fail("before the kill: received %s, acknowledged %s" % (rd.records, acked))
        c.describe_stream_summary(StreamName=STREAM)  # Node 4 goes on.

        # The dead leader is still placed and asked first: refused, the next holder serves.
        refused = tcf.metrics(entry).get(
            'sluice_forward_reads_total{action="SubscribeToShard",result="refused"}', 0)
        started = subs(entry, "started")
        rd = start(client(entry), arns["next"], s, {"Type": "TRIM_HORIZON"}, len(acked))
        finished(rd, "shard %d through node 4, its leader dead" % s, acked)
        got = tcf.metrics(entry).get(
            'sluice_forward_reads_total{action="SubscribeToShard",result="refused"}', 0)
        if got != refused + 1 or subs(entry, "started") != started + 1:
            tcn.fail("refused moved by %d, started by %d: want 1 and 1" % (
                got - refused, subs(entry, "started") - started))
        done = True
    finally:
        tcn.finish(nodes, etcd, root, done)


if __name__ == "__main__":
    main()
