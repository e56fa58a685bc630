#!/usr/bin/python3
"""
A follower away longer than retention catches up and rejoins the in-sync set (issue 15;
docs/CLUSTER.md "Catch-up below the leader's trim horizon"), end to end on 127.0.0.1:
a real etcd and three sluiced processes in cluster mode, boto3 as the client.

  usage: test_cluster_catchup.py SLUICED

The nodes run with 5 MiB segments, retention checked every second and one hour of
retention lasting 100 ms (a 24 h stream keeps its records 2.4 s: log.retention_hour_ms).
One follower is killed; the leader takes records across several segments and its
retention drops the sealed ones, so the first record it retains is past the follower's
end. The follower started again gets START from its leader, its shard starts there, it
catches up and is back in `isr`; a put is then answered and held by all three. The STARTs
show on /metrics too (sluice_replica_link_starts_total{peer}, and the follower's
sluice_replica_follower_starts_total), as on /cluster, and `promtool check metrics` passes.
Waits are for conditions with generous deadlines; no time is asserted.
"""
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster_node as tcn  # noqa: E402  (its Etcd, Node, form, led, wait_for, fail)

CLUSTER = "ccatchup"
RETENTION = ["--set", "log.segment_size_mb=5", "--set", "log.retention_check_s=1",
             "--set", "log.retention_hour_ms=100"]
BIG = 200 * 1024          # Bytes of data per record while the follower is away ...
BIG_PER_CALL = 10         # ... 2 MB per PutRecords ...
BIG_CALLS = 7             # ... 14 MB: at least two 5 MiB segments sealed behind it.


def put(node, first, count, size):
    """PutRecords of records first..first+count-1: data 'r<i>' padded to `size` bytes."""
    recs = [{"Data": (b"r%06d." % i).ljust(size, b"x"), "PartitionKey": "k"}
            for i in range(first, first + count)]
    res = node.client.put_records(StreamName=tcn.STREAM, Records=recs)["Records"]
    if any("ErrorCode" in r for r in res):
        tcn.fail("PutRecords %d..%d: %s" % (first, first + count - 1,
                                              [r for r in res if "ErrorCode" in r][:1]))


def first_retained(node):
    """The index of the first record TRIM_HORIZON reads on `node` (None: nothing)."""
    it = node.client.get_shard_iterator(StreamName=tcn.STREAM, ShardId="shardId-000000000000",
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    recs = node.client.get_records(ShardIterator=it, Limit=1)["Records"]
    return int(recs[0]["Data"][1:7]) if recs else None


def link(node, peer_id):
    return next(k for k in node.cluster()["links"] if k["node_id"] == peer_id)


def scrape(node):
    """{series: value} of the node's /metrics, which `promtool check metrics` accepts."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % node.admin, timeout=10) as r:
        text = r.read().decode()
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)   # scripts/setup installs it (prometheus).
    if r.returncode != 0:
        tcn.fail("node %d: promtool check metrics: %s%s" % (node.id, r.stdout, r.stderr))
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines()
                                    if line and not line.startswith("#"))}


def main():
    root = tempfile.mkdtemp(prefix="sluice-ccatchup-")
    etcd = tcn.Etcd(root)
    nodes = [tcn.Node(root, i, etcd, cluster=CLUSTER, extra=RETENTION) for i in (1, 2, 3)]
    done = False
    try:
        leader, followers = tcn.form(nodes)
        tcn.wait_for("all three in sync", lambda: sorted(tcn.led(leader)["isr"]) == [1, 2, 3])
        put(leader, 0, 10, 100)
        away = followers[0]
        tcn.wait_for("node %d holds 10" % away.id,
                     lambda: away.cluster()["follower"]["records_appended"] >= 10)
        away.signal(signal.SIGKILL)
        away.proc.wait()
        away.proc = None

        n = 10
        for _ in range(BIG_CALLS):
            put(leader, n, BIG_PER_CALL, BIG)
            n += BIG_PER_CALL
        # The leader's retention drops its sealed segments: its first record is past the
        # end of the follower that is away (10, or the few records in flight to it).
        start = tcn.wait_for("the leader's retention past the follower's end", lambda: (
            lambda f: f if f is not None and f > 20 else None)(first_retained(leader)))
        print("leader's first retained record: %d of %d" % (start, n), flush=True)

        away.start()   # Same ports; its log recovers to its old end.
        tcn.wait_for("node %d back in sync" % away.id,
                     lambda: sorted(tcn.led(leader)["isr"]) == [1, 2, 3], deadline_s=120)
        starts = link(leader, away.id)["starts"]
        fstarts = away.cluster()["follower"]["starts"]
        if starts < 1 or fstarts < 1:
            tcn.fail("no START: leader's link %d, follower %d" % (starts, fstarts))
        # The same counters on /metrics, beside the other per-link series (promtool-clean).
        lm, fm = scrape(leader), scrape(away)
        if lm.get('sluice_replica_link_starts_total{peer="%d"}' % away.id) != starts or \
                fm.get("sluice_replica_follower_starts_total") != fstarts:
            tcn.fail("/metrics starts: link %s, follower %s; /cluster says %d and %d" % (
                lm.get('sluice_replica_link_starts_total{peer="%d"}' % away.id),
                fm.get("sluice_replica_follower_starts_total"), starts, fstarts))
        put(leader, n, 5, 100)
        n += 5
        end = tcn.led(leader)["durable_end"]
        for f in followers:
            tcn.wait_for("node %d holds the leader's end %d" % (f.id, end), lambda: any(
                r["stream"] == tcn.STREAM and r["durable_end"] >= end
                for r in f.cluster()["followed"]))
        print("catchup: start %d, records %d, STARTs %d, rejoined isr" % (start, n, starts),
              flush=True)
        done = True
    finally:
        tcn.finish(nodes, etcd, root, done)


if __name__ == "__main__":
    main()
