#!/usr/bin/python3
"""
Reads on any node (docs/CLUSTER.md "Forwarding reads"), end to end on 127.0.0.1: a real
etcd and FOUR sluiced processes with replication_factor 3 and [auth] mode = sigv4, so every
shard has one node that holds no replica of it. boto3 talks to node 4 only.

  usage: test_cluster_reads.py SLUICED

Checks, for every shard node 4 holds no replica of (at least one):
  - records put through node 4 (forwarded to the leaders) are read back through node 4:
    GetShardIterator TRIM_HORIZON and GetRecords return every acknowledged record exactly
    once, at its acknowledged SequenceNumber, with its data and partition key (without
    forwarding, node 4 answers from its own log: nothing);
  - AT_SEQUENCE_NUMBER of the second record through node 4 starts at that record;
  - a NextShardIterator node 4 passed on is good on every other node (one secret);
  - the loop guard: a read carrying X-Sluice-Forwarded to node 4 is not passed on again:
    503 ServiceUnavailable (retryable), nothing counted;
  - node 4's /metrics: sluice_forward_reads_total{action=...,result="ok"} count exactly the
    reads passed through;
  - the shard's leader stopped (SIGSTOP: it takes the request and never answers; a 60 s
    lease keeps it placed): GetRecords and GetShardIterator through node 4 time out on
    it (FORWARD_READ_TRY_MS) and are served by an in-sync follower within the same call
    (each counted {result="timeout"} once, then ok); before, InternalFailure;
  - the shard's leader killed (a 60 s lease keeps it placed): GetRecords and
    GetShardIterator through node 4 are refused there and served by an in-sync
    follower instead (each counted {result="refused"} once, then ok);
  - every holder of the shard killed: GetRecords through node 4 fails
    ServiceUnavailable (retryable: nothing reached a holder), each holder tried once
    (counted {action="GetRecords",result="refused"} RF times).
Reads of shards node 4 holds are served from its own log (not counted).
Waits are for conditions with generous deadlines; no time is asserted.
"""
import os
import signal
import sys
import tempfile

import botocore.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster_node as tcn  # noqa: E402  (its Etcd, Node, wait_for, fail)
import test_cluster_forward as tcf  # noqa: E402  (metrics, forwarded_client, the key)

STREAM = "reads"
SHARDS = 4
RF = 3
EXTRA = tcf.SIGV4 + ["--set", "cluster.replication_factor=%d" % RF]


def shard_id(s):
    return "shardId-%012d" % s


def hash_key(shard, i):
    width = (1 << 128) // SHARDS
    return str(shard * width + 1000 + i)


def placement(nodes, stream=STREAM):
    """{shard: (leader, replicas)} once every shard is led with RF in-sync replicas."""
    out = {}
    for n in nodes:
        for r in n.cluster()["led"]:
            if r["stream"] == stream and not r["fenced"] and len(r["isr"]) == RF:
                out[r["shard"]] = (n.id, set(r["replicas"]))
    return out if len(out) == SHARDS else None


def reads(node, action, result="ok"):
    return tcf.metrics(node).get(
        'sluice_forward_reads_total{action="%s",result="%s"}' % (action, result), 0)


def read_all(client, it):
    """[(seq, data, key)] from `it` to the end of what is there, and the GetRecords calls."""
    out, calls = [], 0
    while True:
        r = client.get_records(ShardIterator=it, Limit=3)
        calls += 1
        out += [(x["SequenceNumber"], x["Data"], x["PartitionKey"]) for x in r["Records"]]
        if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
            return out, calls
        it = r["NextShardIterator"]


def served_past(entry, it, s, acked, how, result):
    """With shard s's leader `how` (stopped, killed), GetRecords from `it` and a
    GetShardIterator through `entry` are served by a follower: every acknowledged record,
    each call counted `result` once on the leader, then ok."""
    c = entry.client
    counts = {(a, r): reads(entry, a, r) for a in ("GetShardIterator", "GetRecords")
              for r in ("ok", result)}
    got, _ = read_all(c, it)
    if got != acked:
        tcn.fail("shard %d with its leader %s: read %s, acknowledged %s" % (s, how, got, acked))
    c.get_shard_iterator(StreamName=STREAM, ShardId=shard_id(s),
                         ShardIteratorType="TRIM_HORIZON")
    for a in ("GetShardIterator", "GetRecords"):
        failed = reads(entry, a, result) - counts[(a, result)]
        ok = reads(entry, a, "ok") - counts[(a, "ok")]
        if failed < 1 or failed != ok:
            tcn.fail("%s with the leader %s: %s moved by %d, ok by %d (each call %s once, "
                     "then served)" % (a, how, result, failed, ok, result))


def expect_error(what, code, call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != code:
            tcn.fail("%s: %s, want %s" % (what, e.response["Error"], code))
        return
    tcn.fail("%s: no error, want %s" % (what, code))


def four_nodes(root, etcd, cluster, nodes, stream=STREAM):
    """Four sluiced (RF 3, sigv4) into `nodes` (so that tcn.finish stops them whatever
    happens) and started, `stream` of SHARDS created through node 4 and ACTIVE on all,
    every shard led with RF in-sync replicas: its placement."""
    nodes += [tcn.Node(root, i, etcd, cluster=cluster, ttl=60, extra=EXTRA, key=tcf.KEY)
              for i in (1, 2, 3, 4)]
    for n in nodes:
        n.start()
    nodes[3].client.create_stream(StreamName=stream, ShardCount=SHARDS)
    for n in nodes:
        tcn.wait_for("stream active on node %d" % n.id, lambda: tcn.stream_active(n, stream))
    place = tcn.wait_for("every shard led with %d in-sync replicas" % RF,
                         lambda: placement(nodes, stream))
    print("placement: %s" % place, flush=True)
    return place


def main():
    root = tempfile.mkdtemp(prefix="sluice-creads-")
    etcd = tcn.Etcd(root)
    nodes = []
    done = False
    try:
        place = four_nodes(root, etcd, "creadstest", nodes)
        entry = nodes[3]
        c = entry.client
        away = [s for s in range(SHARDS) if entry.id not in place[s][1]]
        if not away:
            tcn.fail("node 4 holds a replica of every shard: %s" % place)

        # Puts through node 4 (forwarded to each leader), until its placement knows them all.
        acked = {s: [] for s in range(SHARDS)}   # shard -> [(seq, data, key)] in order
        for i in range(5 * SHARDS):
            s = i % SHARDS
            rec = {"Data": b"r%d" % i, "PartitionKey": 'k"\u00e9%d' % i,
                   "ExplicitHashKey": hash_key(s, i)}
            r = tcn.wait_for("record %d acknowledged through node 4" % i, lambda: (
                lambda a: a if "ErrorCode" not in a else None)(c.put_records(
                    StreamName=STREAM, Records=[rec])["Records"][0]))
            if r["ShardId"] != shard_id(s):
                tcn.fail("record %d answered for %s" % (i, r["ShardId"]))
            acked[s].append((r["SequenceNumber"], rec["Data"], rec["PartitionKey"]))

        before = {a: reads(entry, a) for a in ("GetShardIterator", "GetRecords")}
        passed = {"GetShardIterator": 0, "GetRecords": 0}
        for s in away:
            it = c.get_shard_iterator(StreamName=STREAM, ShardId=shard_id(s),
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            got, calls = read_all(c, it)
            passed["GetShardIterator"] += 1
            passed["GetRecords"] += calls
            if got != acked[s]:
                tcn.fail("shard %d through node 4: read %s, acknowledged %s" %
                         (s, got, acked[s]))
            # AT_SEQUENCE_NUMBER of the second record.
            it = c.get_shard_iterator(StreamName=STREAM, ShardId=shard_id(s),
                                      ShardIteratorType="AT_SEQUENCE_NUMBER",
                                      StartingSequenceNumber=acked[s][1][0])["ShardIterator"]
            r = c.get_records(ShardIterator=it, Limit=1)
            passed["GetShardIterator"] += 1
            passed["GetRecords"] += 1
            if [x["SequenceNumber"] for x in r["Records"]] != [acked[s][1][0]]:
                tcn.fail("shard %d AT_SEQUENCE_NUMBER through node 4: %s" % (s, r["Records"]))
            # Node 4's NextShardIterator reads the rest on every other node (a follower
            # once the replicated watermark reached it: acks = quorum).
            for n in nodes[:3]:
                tcn.wait_for("node %d reads shard %d's rest with node 4's iterator" %
                             (n.id, s), lambda: read_all(n.client, r["NextShardIterator"])[0] ==
                             acked[s][2:])
        # Shards node 4 holds are served from its own log: the same records, nothing passed.
        for s in set(range(SHARDS)) - set(away):
            it = c.get_shard_iterator(StreamName=STREAM, ShardId=shard_id(s),
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            got, _ = tcn.wait_for("node 4 holds shard %d's records" % s, lambda: (
                lambda g: g if g[0] == acked[s] else None)(read_all(c, it)))
        for a, n in passed.items():
            moved = reads(entry, a) - before[a]
            if moved != n:
                tcn.fail("sluice_forward_reads_total{action=%s,ok} moved by %d, want %d" %
                         (a, moved, n))
        print("cluster-reads: away=%s passed=%s" % (away, passed), flush=True)

        # The loop guard: a forwarded read is not passed on again; nothing counted.
        s = away[0]
        it = c.get_shard_iterator(StreamName=STREAM, ShardId=shard_id(s),
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        metrics = tcf.metrics(entry)
        loop = tcf.forwarded_client(entry)
        expect_error("forwarded GetRecords on node 4", "ServiceUnavailable",
                     lambda: loop.get_records(ShardIterator=it))
        expect_error("forwarded GetShardIterator on node 4", "ServiceUnavailable",
                     lambda: loop.get_shard_iterator(StreamName=STREAM, ShardId=shard_id(s),
                                                     ShardIteratorType="LATEST"))
        if tcf.metrics(entry) != metrics:
            tcn.fail("a forwarded read moved the forward metrics")

        # The shard's leader stopped (placed for its 60 s lease): it takes the request and
        # never answers; the try times out and a follower serves, within the call.
        victim = nodes[place[s][0] - 1]
        victim.signal(signal.SIGSTOP)
        try:
            served_past(entry, it, s, acked[s], "stopped", "timeout")
        finally:
            victim.signal(signal.SIGCONT)
        # The shard's leader killed (placed for its 60 s lease): it refuses, a follower serves.
        victim.signal(signal.SIGKILL)
        victim.proc.wait()
        served_past(entry, it, s, acked[s], "killed", "refused")

        # Every holder killed: each tried once, then ServiceUnavailable.
        for n in nodes[:3]:
            if n.id in place[s][1] and n is not victim:
                n.signal(signal.SIGKILL)
                n.proc.wait()
        refused = reads(entry, "GetRecords", "refused")
        expect_error("GetRecords with shard %d's holders killed" % s,
                     "ServiceUnavailable", lambda: c.get_records(ShardIterator=it))
        if reads(entry, "GetRecords", "refused") != refused + RF:
            tcn.fail("the refused read was not tried on each of the %d holders once: %d" %
                     (RF, reads(entry, "GetRecords", "refused") - refused))
        done = True
    finally:
        tcn.finish(nodes, etcd, root, done)


if __name__ == "__main__":
    main()
