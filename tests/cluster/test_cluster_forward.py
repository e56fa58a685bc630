#!/usr/bin/python3
"""
Forwarding in cluster mode (docs/CLUSTER.md "Forwarding puts to the shard's leader"),
end to end on 127.0.0.1: a real etcd and three sluiced processes with [auth] mode =
sigv4, boto3 as the client, every call sent to ONE node.

  usage: test_cluster_forward.py SLUICED

Checks:
  - a 6-shard stream whose shards are led by all three nodes: one PutRecords of 60
    records (10 per shard, partition keys with quotes, backslashes and non-ASCII) and
    PutRecord calls to node 1 are all acknowledged; every acknowledged record is read
    back from its shard's leader exactly once, at its acknowledged ShardId and
    SequenceNumber, with its data and partition key (the forwarded request was
    re-signed as the caller's key: the leaders verify SigV4);
  - a request carrying X-Sluice-Forwarded (a forwarded request) to node 1 is never
    forwarded again: its records for shards node 1 does not lead fail
    ProvisionedThroughputExceededException and are not stored on their leaders, its
    records for node 1's own shards are acknowledged;
  - a ShardIterator node 1 gave is good on every node (the cluster's one iterator
    secret in etcd): GetRecords with it on each node returns the shard's records;
  - node 1's /metrics: sluice_forward_requests_total{result="ok"} and
    sluice_forward_records_total{result="ok"} count exactly what was forwarded;
  - a leader stopped (SIGSTOP, a 60 s lease keeps it placed): records forwarded to it
    fail InternalFailure once FORWARD_TIMEOUT_MS passed (the outcome is unknown), counted
    as {result="timeout"}; records for the other shards of the same call are acknowledged;
  - that leader killed (still placed): its records fail throttled at once (nothing
    reached it), counted as {result="refused"}; the others are acknowledged.
Waits are for conditions with generous deadlines; no time is asserted.
"""
import os
import signal
import sys
import tempfile
import urllib.request

import boto3
import botocore.config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster_node as tcn  # noqa: E402  (its Etcd, Node, wait_for, fail)

STREAM = "fwd"
SHARDS = 6
KEY = ("AKIDFORWARD", "forward-secret")
SIGV4 = ["--set", "auth.mode=sigv4",
         "--set", "auth.access_keys=%s:%s,AKIDOTHER:other-secret" % KEY]


def shard_of(shard_id):
    return int(shard_id.split("-")[1])


def hash_key(shard, i):
    """An ExplicitHashKey inside shard `shard` of SHARDS even ranges (the i-th of it)."""
    width = (1 << 128) // SHARDS
    return str(shard * width + 1000 + i)


def placement(nodes, stream=STREAM, shards=SHARDS):
    """{shard: leader id} once every shard is led by a live node and every live node's
    view (each holds a replica of every shard: replication factor 3) agrees; else None."""
    live = [n for n in nodes if n.proc is not None and n.proc.poll() is None]
    leaders = {}
    for n in live:
        for r in n.cluster()["led"]:
            if r["stream"] == stream and not r["fenced"]:
                leaders[r["shard"]] = n.id
    if len(leaders) != shards:
        return None
    for n in live:
        view = {r["shard"]: r["leader"] for r in n.cluster()["followed"] if r["stream"] == stream}
        view.update({s: n.id for s, l in leaders.items() if l == n.id})
        if any(view.get(s) != l for s, l in leaders.items()):
            return None
    return leaders


def metrics(node):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % node.admin, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("sluice_forward_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def read_shard(node, shard, stream=STREAM):
    """Every readable record of the shard on `node`: [(seq, data, partition key)]."""
    c = node.client
    it = c.get_shard_iterator(StreamName=stream, ShardId="shardId-%012d" % shard,
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out = []
    while True:
        r = c.get_records(ShardIterator=it, Limit=1000)
        out += [(x["SequenceNumber"], x["Data"], x["PartitionKey"]) for x in r["Records"]]
        if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
            return out
        it = r["NextShardIterator"]


def forwarded_client(node):
    """A client of `node` whose calls carry X-Sluice-Forwarded, as a forwarded request does."""
    client = boto3.client("kinesis", endpoint_url="http://127.0.0.1:%d" % node.api,
                          region_name="us-east-1", aws_access_key_id=KEY[0],
                          aws_secret_access_key=KEY[1],
                          config=botocore.config.Config(retries={"max_attempts": 0}))

    def add(request, **kwargs):
        request.headers["X-Sluice-Forwarded"] = "1"
    client.meta.events.register("before-sign.kinesis.*", add)
    return client


def leader_down(entry, leaders, victim, how, error, result, tag):
    """A PutRecords to every shard through `entry` while `victim` (a leader) is down: its
    shards' records fail with `error`, the others are acknowledged, and one forwarded
    request is counted as {result=`result`}."""
    name = 'sluice_forward_requests_total{result="%s"}' % result
    before = metrics(entry)[name]
    recs = [{"Data": b"%s%d" % (how.encode(), s), "PartitionKey": "k",
             "ExplicitHashKey": hash_key(s, tag)} for s in range(SHARDS)]
    res = entry.client.put_records(StreamName=STREAM, Records=recs)["Records"]
    for s, r in enumerate(res):
        want = error if leaders[s] == victim.id else None
        if r.get("ErrorCode") != want:
            tcn.fail("leader %d %s, shard %d (leader %d): %s" %
                     (victim.id, how, s, leaders[s], r))
    counted = metrics(entry)[name] - before
    if counted != 1:
        tcn.fail("leader %d %s: %s moved by %d, want 1" % (victim.id, how, name, counted))


def main():
    root = tempfile.mkdtemp(prefix="sluice-cfwd-")
    etcd = tcn.Etcd(root)
    nodes = [tcn.Node(root, i, etcd, cluster="cfwdtest", ttl=60, extra=SIGV4, key=KEY)
             for i in (1, 2, 3)]
    done = False
    try:
        for n in nodes:
            n.start()
        entry = nodes[0]
        entry.client.create_stream(StreamName=STREAM, ShardCount=SHARDS)
        for n in nodes:
            tcn.wait_for("stream active on node %d" % n.id, lambda: n.client.describe_stream_summary(
                StreamName=STREAM)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
                if STREAM in n.client.list_streams()["StreamNames"] else False)
        leaders = tcn.wait_for("every shard led and seen by node 1", lambda: placement(nodes))
        print("leaders by shard: %s" % leaders, flush=True)
        if set(leaders.values()) != {1, 2, 3}:
            tcn.fail("the shards are not led by all three nodes: %s" % leaders)
        before = metrics(entry)

        # 60 records, 10 per shard, through node 1 only.
        recs = [{"Data": b"d%d" % i, "PartitionKey": 'k"\\\u00e9%d' % i,
                 "ExplicitHashKey": hash_key(i % SHARDS, i)} for i in range(60)]
        res = entry.client.put_records(StreamName=STREAM, Records=recs)
        if res["FailedRecordCount"] != 0 or any("ErrorCode" in r for r in res["Records"]):
            tcn.fail("PutRecords through node 1: %s" % res)
        acked = {}   # (shard, seq) -> (data, partition key)
        for rec, r in zip(recs, res["Records"]):
            if "ErrorCode" in r:
                continue
            if shard_of(r["ShardId"]) != int(rec["ExplicitHashKey"]) * SHARDS >> 128:
                tcn.fail("record %s answered for %s" % (rec["Data"], r["ShardId"]))
            acked[(shard_of(r["ShardId"]), r["SequenceNumber"])] = (rec["Data"],
                                                                    rec["PartitionKey"])
        # PutRecord (one record) for every shard, routed by partition key or hash key.
        for s in range(SHARDS):
            data = b"single%d" % s
            r = entry.client.put_record(StreamName=STREAM, Data=data, PartitionKey="p%d" % s,
                                        ExplicitHashKey=hash_key(s, 99))
            if shard_of(r["ShardId"]) != s:
                tcn.fail("PutRecord for shard %d answered for %s" % (s, r["ShardId"]))
            acked[(s, r["SequenceNumber"])] = (data, "p%d" % s)
        forwarded = sum(1 for (s, _) in acked if leaders[s] != 1)

        # Read back from each shard's leader: every acknowledged record exactly once.
        stored = {}
        for s in range(SHARDS):
            got = read_shard(nodes[leaders[s] - 1], s)
            for seq, data, key in got:
                if (s, seq) in stored:
                    tcn.fail("shard %d seq %s read twice" % (s, seq))
                stored[(s, seq)] = (data, key)
        if stored != acked:
            missing = set(acked) - set(stored)
            extra = set(stored) - set(acked)
            changed = [k for k in set(acked) & set(stored) if acked[k] != stored[k]]
            tcn.fail("read back != acknowledged: missing %s extra %s changed %s" %
                     (sorted(missing), sorted(extra), changed))

        # One iterator secret per cluster: an iterator node 1 gave reads on every node.
        s0 = next(s for s in range(SHARDS) if leaders[s] != 1)
        want = sorted(seq for (s, seq) in acked if s == s0)
        it = entry.client.get_shard_iterator(StreamName=STREAM, ShardId="shardId-%012d" % s0,
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for n in nodes:
            tcn.wait_for("node %d reads shard %d with node 1's iterator" % (n.id, s0),
                         lambda: sorted(x["SequenceNumber"] for x in n.client.get_records(
                             ShardIterator=it, Limit=1000)["Records"]) == want)

        after = metrics(entry)
        ok_req = (after['sluice_forward_requests_total{result="ok"}'] -
                  before['sluice_forward_requests_total{result="ok"}'])
        ok_rec = (after['sluice_forward_records_total{result="ok"}'] -
                  before['sluice_forward_records_total{result="ok"}'])
        # One per other leader for the PutRecords, one per forwarded PutRecord.
        others = len({leaders[s] for s in range(SHARDS) if leaders[s] != 1})
        want_req = others + sum(1 for s in range(SHARDS) if leaders[s] != 1)
        if ok_rec != forwarded or ok_req != want_req:
            tcn.fail("forward metrics: requests ok +%d (want %d), records ok +%d (want %d)" %
                     (ok_req, want_req, ok_rec, forwarded))
        print("cluster-forward: acked=%d forwarded=%d requests=%d" %
              (len(acked), forwarded, ok_req), flush=True)

        # The loop guard: a forwarded request is not forwarded again.
        loop = forwarded_client(entry)
        recs = [{"Data": b"loop%d" % s, "PartitionKey": "k", "ExplicitHashKey": hash_key(s, 7)}
                for s in range(SHARDS)]
        res = loop.put_records(StreamName=STREAM, Records=recs)["Records"]
        for s, r in enumerate(res):
            want = None if leaders[s] == 1 else "ProvisionedThroughputExceededException"
            if r.get("ErrorCode") != want:
                tcn.fail("forwarded request, shard %d (leader %d): %s" % (s, leaders[s], r))
        for s in range(SHARDS):
            datas = [d for _, d, _ in read_shard(nodes[leaders[s] - 1], s)]
            if (b"loop%d" % s in datas) != (leaders[s] == 1):
                tcn.fail("loop-guard record of shard %d stored: %s" % (s, b"loop%d" % s in datas))
        again = metrics(entry)
        if again != after:
            tcn.fail("a forwarded request moved the forward metrics: %s -> %s" % (after, again))

        # A stopped leader: its records time out (unknown outcome), the others' are acked.
        victim = next(n for n in nodes[1:] if n.id in leaders.values())
        victim.signal(signal.SIGSTOP)
        try:
            leader_down(entry, leaders, victim, "stopped", "InternalFailure", "timeout", 11)
        finally:
            victim.signal(signal.SIGCONT)
        # The leader gone (SIGKILL; its 60 s lease keeps it placed): nothing reaches it, so
        # its records fail throttled (safe to retry), counted as {result="refused"}.
        victim.signal(signal.SIGKILL)
        victim.proc.wait()
        leader_down(entry, leaders, victim, "killed", "ProvisionedThroughputExceededException",
                    "refused", 13)
        done = True
    finally:
        tcn.finish(nodes, etcd, root, done)


if __name__ == "__main__":
    main()
