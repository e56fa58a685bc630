#!/usr/bin/python3
"""
Resharding in cluster mode (docs/CLUSTER.md "Resharding in cluster mode"), end to end on
127.0.0.1: a real etcd and three sluiced processes, boto3 as the client.

  usage: test_cluster_reshard.py SLUICED

1. Under load: two producers (one through node 1, one through node 2) keep a ledger of
   every acknowledged record while a SplitShard goes through node 3 and a MergeShards of
   the two children through node 2. Then, read through every node: every acknowledged
   record exactly once at its acknowledged ShardId and SequenceNumber, with its data;
   per key, the records in acknowledgement order (a key's records in a parent before
   its records in a child); every closed parent shows EndingSequenceNumber and its
   children their ParentShardId on every node; GetRecords on a closed parent reaches
   its end (no NextShardIterator) and answers ChildShards; puts begun after a parent's
   end was visible went to its children.
2. Two reshards racing on one stream through two nodes: one wins, the other is refused
   (ResourceInUseException or LimitExceededException, as AWS answers a stream being
   updated; InvalidArgumentException if it came after the winner finished).
3. A follower short of the parent's end: SIGSTOPped while records go in and the parent
   is split, resumed: reads of the parent through it never end before they returned
   every acknowledged record, and then end with ChildShards.
   Then UpdateShardCount through node 2 to 3 open shards (a uniform plan: cuts and merges,
   its intermediate shards closed empty in the same transaction): every node settles on
   the three equal ranges, and records put over the whole key space are read back.
4. The parent's leader killed between the two transactions (a cluster of its own with
   acks = all): one follower SIGSTOPped holds a put's acknowledgement back, the split
   through the other follower closes the parent in the leader's log but its cut cannot
   be recorded (not acknowledged); the leader is SIGKILLed and the follower resumed: a
   successor leads the parent and closes it at its own end, and records it once every
   replica acknowledged it (acks = all counts the killed one until the controller takes
   it out of the replicas; it is started again, its closed copy following the successor);
   every acknowledged record is read back on every node to the same end; puts after it
   go to the children.
Waits are for conditions with generous deadlines; no time is asserted.
"""
import os
import signal
import sys
import tempfile
import threading
import time

import botocore.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster_node as tcn  # noqa: E402  (its Etcd, Node, wait_for, fail, finish)

CLUSTER = "creshardtest"
STREAM = "rs"
HALF = 1 << 127
KEYS = 6   # Partition keys per producer.


def sid(i):
    return "shardId-%012d" % i


def sidx(shard_id):
    return int(shard_id.rsplit("-", 1)[1])


def shards(node):
    return node.client.list_shards(StreamName=STREAM)["Shards"]


def active(node):
    return tcn.stream_active(node, STREAM)


def form(nodes, root, etcd, cluster, shard_count, acks="quorum"):
    """Three nodes (into `nodes` first: the caller stops them whatever happens) started,
    the stream created through node 1, ACTIVE everywhere, every shard led."""
    nodes += [tcn.Node(root, i, etcd, cluster=cluster, acks=acks, ttl=2) for i in (1, 2, 3)]
    for n in nodes:
        n.start()
    nodes[0].client.create_stream(StreamName=STREAM, ShardCount=shard_count)
    tcn.active_everywhere(nodes, STREAM)
    for i in range(shard_count):
        tcn.wait_for("shard %d led" % i, lambda: leader_of(nodes, i))


def ended(node, shard_id):
    """The shard's EndingSequenceNumber as this node lists it, or None."""
    for s in shards(node):
        if s["ShardId"] == shard_id:
            return s["SequenceNumberRange"].get("EndingSequenceNumber")
    return None


def settled(nodes, closed):
    """Every node ACTIVE and listing an EndingSequenceNumber for every shard in `closed`."""
    return all(active(n) and all(ended(n, c) for c in closed) for n in nodes)


def leader_of(nodes, index):
    for n in nodes:
        if n.proc is None:
            continue
        for r in n.cluster()["led"]:
            if r["stream"] == STREAM and r["shard"] == index and not r["fenced"]:
                return n
    return None


class Producer:
    """Puts records of KEYS keys through one node, one PutRecords of one record per key at
    a time, each record retried until acknowledged; the ledger holds what was."""

    def __init__(self, node, name):
        self.node = node
        self.name = name
        self.ledger = []           # (key, n, shard_id, seq, data, t_start)
        self.stop = threading.Event()
        self.errors = 0
        self.thread = threading.Thread(target=self.run)

    def run(self):
        n = 0
        while not self.stop.is_set():
            recs = [{"Data": b"%s-%d-%d" % (self.name.encode(), k, n),
                     "PartitionKey": "%s-k%d" % (self.name, k)} for k in range(KEYS)]
            left = list(range(KEYS))
            t_start = time.monotonic()
            while left:
                try:
                    res = self.node.client.put_records(
                        StreamName=STREAM, Records=[recs[k] for k in left])["Records"]
                except (botocore.exceptions.ClientError,
                        botocore.exceptions.ConnectionError) as e:
                    self.errors += 1
                    if self.stop.is_set() and isinstance(e, botocore.exceptions.ConnectionError):
                        return
                    time.sleep(0.02)
                    continue
                again = []
                for k, r in zip(left, res):
                    if "ErrorCode" in r:
                        again.append(k)
                        continue
                    self.ledger.append((recs[k]["PartitionKey"], n, r["ShardId"],
                                        r["SequenceNumber"], recs[k]["Data"], t_start))
                if again:
                    self.errors += 1
                    time.sleep(0.02)
                left = again
            n += 1


def read_shard(node, shard_id, closed):
    """[(seq, data, key)] of a shard from TRIM_HORIZON; for a closed shard, read until its
    end (no NextShardIterator): (records, child shard ids); open: until caught up."""
    c = node.client
    it = c.get_shard_iterator(StreamName=STREAM, ShardId=shard_id,
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out = []
    end = time.monotonic() + tcn.DEADLINE_S
    while time.monotonic() < end:
        r = c.get_records(ShardIterator=it, Limit=1000)
        out += [(x["SequenceNumber"], x["Data"], x["PartitionKey"]) for x in r["Records"]]
        if "NextShardIterator" not in r or r["NextShardIterator"] is None:
            return out, sorted(ch["ShardId"] for ch in r.get("ChildShards", []))
        if not closed and not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
            return out, None
        it = r["NextShardIterator"]
        if not r["Records"]:
            time.sleep(0.02)
    tcn.fail("node %d: reading %s did not reach its end" % (node.id, shard_id))
    return out, None


def lineage(listed):
    """{shard id: set of its ancestors' ids}."""
    parents = {s["ShardId"]: [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))
                              if p] for s in listed}
    out = {}

    def anc(i):
        if i not in out:
            out[i] = set()
            for p in parents.get(i, []):
                out[i] |= {p} | anc(p)
        return out[i]
    for i in parents:
        anc(i)
    return out


def read_node(node, what):
    """Every shard through `node`: (listed shards, {data: [(shard, seq)]}); checks each
    closed shard's end (ChildShards, nothing past EndingSequenceNumber)."""
    listed = shards(node)
    at = {}
    for s in listed:
        closed = "EndingSequenceNumber" in s["SequenceNumberRange"]
        got, children = read_shard(node, s["ShardId"], closed)
        if closed:
            want = sorted(x["ShardId"] for x in listed
                          if s["ShardId"] in (x.get("ParentShardId"),
                                              x.get("AdjacentParentShardId")))
            if children != want:
                tcn.fail("%s: node %d: %s ends with ChildShards %s, want %s" %
                         (what, node.id, s["ShardId"], children, want))
            if got and int(got[-1][0]) > int(s["SequenceNumberRange"]["EndingSequenceNumber"]):
                tcn.fail("%s: node %d: %s read past its EndingSequenceNumber" %
                         (what, node.id, s["ShardId"]))
        for seq, data, _ in got:
            at.setdefault(data, []).append((s["ShardId"], seq))
    return listed, at


def check_reads(nodes, ledger, what):
    """Every acknowledged record exactly once at its place, per-key order, ends, lineage.
    A follower's readable end is the watermark its leader ships after the fact: a node
    missing records is read again until the deadline before they count as lost."""
    for node in nodes:
        end = time.monotonic() + tcn.DEADLINE_S
        while True:
            listed, at = read_node(node, what)
            missing = [r for r in ledger if (r[2], r[3]) not in at.get(r[4], [])]
            if not missing or time.monotonic() > end:
                break
            time.sleep(0.5)
        anc = lineage(listed)
        for key, n, shard, seq, data, _ in missing[:3]:
            tcn.fail("%s: node %d: %s (%s %s) not read back (read at %s)" %
                     (what, node.id, data, shard, seq, at.get(data, [])))
        dup = sum(1 for r in ledger if at.get(r[4], []).count((r[2], r[3])) > 1)
        moved = sum(1 for r in ledger if len(at.get(r[4], [])) > 1)
        if dup:
            tcn.fail("%s: node %d: %d records read twice at one place" % (what, node.id, dup))
        # Per key: acknowledged order is log order across the parent/child boundary.
        by_key = {}
        for key, n, shard, seq, data, _ in ledger:
            by_key.setdefault(key, []).append((n, shard, int(seq)))
        misordered = 0
        for key, recs in by_key.items():
            recs.sort()
            for (n1, s1, q1), (n2, s2, q2) in zip(recs, recs[1:]):
                if (s1 == s2 and q1 >= q2) or (s1 != s2 and s1 not in anc.get(s2, ())):
                    misordered += 1
                    if misordered <= 3:
                        tcn.fail("%s: node %d: key %s: record %d (%s %d) before %d (%s %d)" %
                                 (what, node.id, key, n1, s1, q1, n2, s2, q2))
        print("%s: node %d: %d acknowledged, lost %d, dup %d, misordered %d, "
              "failed attempts appended %d" % (what, node.id, len(ledger), len(missing), dup,
                                                misordered, moved), flush=True)


def expect_refused(e, what):
    code = e.response["Error"]["Code"]
    if code not in ("ResourceInUseException", "LimitExceededException",
                    "InvalidArgumentException"):
        tcn.fail("%s: %s" % (what, e.response["Error"]))
    return code


def under_load(nodes):
    """Phase 1: split through node 3, merge through node 2, producers through 1 and 2."""
    prods = [Producer(nodes[0], "a"), Producer(nodes[1], "b")]
    for p in prods:
        p.thread.start()
    tcn.wait_for("records before the split", lambda: all(len(p.ledger) > 50 for p in prods))
    t0 = time.monotonic()
    nodes[2].client.split_shard(StreamName=STREAM, ShardToSplit=sid(0),
                                NewStartingHashKey=str(HALF // 2))
    t1 = time.monotonic()
    tcn.wait_for("the split settled on every node", lambda: settled(nodes, [sid(0)]))
    t_split = time.monotonic()
    # Printed, not asserted (docs/TESTING.md): the call, then until every node shows the end.
    print("split: answered in %.0f ms, settled on every node %.0f ms later" %
          ((t1 - t0) * 1000, (t_split - t1) * 1000), flush=True)
    tcn.wait_for("records after the split", lambda: all(
        sum(1 for r in p.ledger if r[5] > t_split) > 50 for p in prods))
    t0 = time.monotonic()
    nodes[1].client.merge_shards(StreamName=STREAM, ShardToMerge=sid(2),
                                 AdjacentShardToMerge=sid(3))
    t1 = time.monotonic()
    tcn.wait_for("the merge settled on every node",
                 lambda: settled(nodes, [sid(0), sid(2), sid(3)]))
    t_merge = time.monotonic()
    print("merge: answered in %.0f ms, settled on every node %.0f ms later" %
          ((t1 - t0) * 1000, (t_merge - t1) * 1000), flush=True)
    tcn.wait_for("records after the merge", lambda: all(
        sum(1 for r in p.ledger if r[5] > t_merge) > 50 for p in prods))
    for p in prods:
        p.stop.set()
    for p in prods:
        p.thread.join()
    ledger = prods[0].ledger + prods[1].ledger
    late = [r for r in ledger if (r[5] > t_split and r[2] == sid(0)) or
            (r[5] > t_merge and r[2] in (sid(2), sid(3)))]
    if late:
        tcn.fail("%d puts begun after their parent ended went to it: %s" % (len(late), late[:3]))
    for s in shards(nodes[0]):
        if s["ShardId"] == sid(4) and (s.get("ParentShardId"), s.get(
                "AdjacentParentShardId")) != (sid(2), sid(3)):
            tcn.fail("the merged child's parents: %s" % s)
    check_reads(nodes, ledger, "under load")
    print("under load: %d records acknowledged, %d retried calls" %
          (len(ledger), sum(p.errors for p in prods)), flush=True)
    return ledger


def racing(nodes):
    """Phase 2: two SplitShards of shard 1 through two nodes at once: one wins."""
    results = {}
    go = threading.Barrier(2)

    def split(node, key):
        go.wait()
        try:
            node.client.split_shard(StreamName=STREAM, ShardToSplit=sid(1),
                                    NewStartingHashKey=str(key))
            results[node.id] = "ok"
        except botocore.exceptions.ClientError as e:
            results[node.id] = expect_refused(e, "the racing split through node %d" % node.id)
    ts = [threading.Thread(target=split, args=(nodes[0], HALF + HALF // 4)),
          threading.Thread(target=split, args=(nodes[2], HALF + HALF // 2))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("racing splits: %s" % results, flush=True)
    if sorted(results.values()).count("ok") != 1:
        tcn.fail("racing splits: %s, want exactly one ok" % results)
    tcn.wait_for("the race's split settled", lambda: settled(nodes, [sid(1)]))
    counts = {len(shards(n)) for n in nodes}
    if counts != {7}:
        tcn.fail("after the race the nodes list %s shards, want 7 everywhere" % counts)


def put_to(node, index_key, count, tag):
    """Records with ExplicitHashKey index_key, each acknowledged: [(shard, seq, data)]."""
    out = []
    for i in range(count):
        rec = {"Data": b"%s-%d" % (tag, i), "PartitionKey": "p", "ExplicitHashKey": str(index_key)}
        r = tcn.wait_for("%s record %d acknowledged" % (tag.decode(), i), lambda: (
            lambda a: a if "ErrorCode" not in a else None)(node.client.put_records(
                StreamName=STREAM, Records=[rec])["Records"][0]))
        out.append((r["ShardId"], r["SequenceNumber"], rec["Data"]))
    return out


def open_shard_at(node, key):
    for s in shards(node):
        r = s["HashKeyRange"]
        if "EndingSequenceNumber" not in s["SequenceNumberRange"] and \
                int(r["StartingHashKey"]) <= key <= int(r["EndingHashKey"]):
            return s
    return None


def split_of(node, shard):
    lo, hi = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]
                                                                 ["EndingHashKey"])
    return str(lo + (hi - lo) // 2)


def follower_short(nodes):
    """Phase 3: a follower SIGSTOPped while the parent fills and is split, resumed."""
    key = 10
    parent = open_shard_at(nodes[0], key)
    index = sidx(parent["ShardId"])
    leader = tcn.wait_for("the parent's leader", lambda: leader_of(nodes, index))
    short = next(n for n in nodes if n is not leader)
    other = next(n for n in nodes if n is not leader and n is not short)
    short.signal(signal.SIGSTOP)
    try:
        acked = put_to(other, key, 20, b"short")
        other.client.split_shard(StreamName=STREAM, ShardToSplit=parent["ShardId"],
                                 NewStartingHashKey=split_of(other, parent))
        tcn.wait_for("the cut recorded without the stopped follower",
                     lambda: ended(leader, parent["ShardId"]) and ended(other, parent["ShardId"]))
    finally:
        short.signal(signal.SIGCONT)
    want = [(s, q, d) for s, q, d in acked if s == parent["ShardId"]]
    if len(want) != len(acked):
        tcn.fail("records before the split answered for another shard: %s" % acked)
    # Through the follower that was short: never an end before every record.
    got, children = read_shard(short, parent["ShardId"], True)
    have = [(parent["ShardId"], q, d) for q, d, _ in got]
    missing = [w for w in want if w not in have]
    if missing or not children:
        tcn.fail("node %d (short): the parent ended after %d records without %s (children %s)"
                 % (short.id, len(got), missing[:3], children))
    print("follower short: node %d read %d records of %s to its end, children %s" %
          (short.id, len(got), parent["ShardId"], children), flush=True)


def update_count(nodes):
    """Phase 3b: UpdateShardCount through node 2 to 3 open shards: a uniform plan of cuts and
    merges, its intermediate shards made and closed empty in the same one transaction; then
    records put through node 3 over the whole key space are read back on every node."""
    open_before = [s for s in shards(nodes[0])
                   if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    r = nodes[1].client.update_shard_count(StreamName=STREAM, TargetShardCount=3,
                                           ScalingType="UNIFORM_SCALING")
    if (r["CurrentShardCount"], r["TargetShardCount"]) != (len(open_before), 3):
        tcn.fail("UpdateShardCount answered %s" % r)

    def opened(n):
        return sorted((int(s["HashKeyRange"]["StartingHashKey"]),
                       int(s["HashKeyRange"]["EndingHashKey"])) for s in shards(n)
                      if "EndingSequenceNumber" not in s["SequenceNumberRange"])
    thirds = [(i * (1 << 128) // 3, (i + 1) * (1 << 128) // 3 - 1) for i in range(3)]
    thirds[-1] = (thirds[-1][0], (1 << 128) - 1)
    tcn.wait_for("UpdateShardCount settled on every node", lambda: settled(
        nodes, [s["ShardId"] for s in open_before]) and all(len(opened(n)) == 3
                                                            for n in nodes))
    got = opened(nodes[0])
    if any(abs(a[0] - b[0]) > 1 for a, b in zip(got, thirds)):
        tcn.fail("after UpdateShardCount the open ranges are %s" % got)
    ledger = []
    for i in range(9):
        key = (2 * i + 1) * (1 << 128) // 18
        for shard, seq, data in put_to(nodes[2], key, 1, b"u%d" % i):
            ledger.append(("u%d" % i, 0, shard, seq, data, 0.0))
    check_reads(nodes, ledger, "after UpdateShardCount")
    print("update shard count: %d open -> 3, %d shard indexes listed" %
          (len(open_before), len(shards(nodes[0]))), flush=True)


def leader_killed(root, etcd):
    """Phase 4, its own cluster with acks = all: the parent's leader dies between the two
    transactions. One follower stopped holds a put's acknowledgement back (acks = all), so
    the leader's cut cannot be recorded; the leader is SIGKILLed and the follower resumed:
    a successor (either follower) leads the parent, closes it and records its end."""
    nodes = []
    try:
        form(nodes, root, etcd, CLUSTER + "kill", 1, acks="all")
        leader = leader_of(nodes, 0)
        stopped, other = [n for n in nodes if n is not leader]
        for n in (stopped, other):
            tcn.wait_for("node %d follows" % n.id, lambda: any(
                r["stream"] == STREAM and r["leader"] == leader.id
                for r in n.cluster()["followed"]))
        acked = put_to(other, 10, 10, b"kill")
        stopped.signal(signal.SIGSTOP)
        held = {}

        def held_put():
            try:
                held["res"] = leader.client.put_records(StreamName=STREAM, Records=[
                    {"Data": b"held", "PartitionKey": "p"}])
            except Exception as e:   # The leader is killed under it: no answer expected.
                held["err"] = repr(e)

        def durable_end():
            return next(r for r in leader.cluster()["led"] if r["shard"] == 0 and
                        r["stream"] == STREAM)["durable_end"]
        before = durable_end()
        t = threading.Thread(target=held_put)
        t.start()
        tcn.wait_for("the held record durable on the leader", lambda: durable_end() > before)
        log_at = os.path.getsize(leader.dir + ".log")
        other.client.split_shard(StreamName=STREAM, ShardToSplit=sid(0),
                                 NewStartingHashKey=str(HALF))

        def cut_logged():
            with open(leader.dir + ".log") as f:
                f.seek(log_at)
                return "shard 0 cut in the log here" in f.read()
        tcn.wait_for("the leader's cut in its log", cut_logged)
        if ended(leader, sid(0)) or ended(other, sid(0)):
            tcn.fail("the cut was recorded without its acknowledgements")
        leader.signal(signal.SIGKILL)
        leader.proc.wait()
        leader.proc = None
        stopped.signal(signal.SIGCONT)
        t.join()
        if "res" in held and "ErrorCode" not in held["res"]["Records"][0]:
            tcn.fail("the held record was answered: %s" % held["res"])
        # acks = all counts the dead replica until the controller takes it out of the
        # replicas (its lease ended): the successor records then, or once it is back.
        succ = tcn.wait_for("a successor leads the parent", lambda: leader_of(
            [stopped, other], 0), deadline_s=120)
        print("leader killed: the end recorded before the killed node returned: %s" %
              bool(ended(succ, sid(0))), flush=True)
        leader.start()
        tcn.wait_for("the successor recorded the parent's end", lambda: all(
            ended(n, sid(0)) for n in nodes), deadline_s=120)
        print("leader killed: node %d cut %s; node %d took over and closed it at %s" %
              (leader.id, sid(0), succ.id, ended(other, sid(0))), flush=True)
        acked_after = put_to(other, 10, 5, b"after")
        if any(s == sid(0) for s, _, _ in acked_after):
            tcn.fail("a put after the parent's end went to it: %s" % acked_after)
        tcn.wait_for("the killed node ACTIVE", lambda: active(leader))
        for n in nodes:
            tcn.wait_for("node %d lists the parent's end" % n.id, lambda: ended(n, sid(0)))
            got, children = read_shard(n, sid(0), True)
            have = [(sid(0), q, d) for q, d, _ in got]
            missing = [a for a in acked if a not in have]
            if missing or children != [sid(1), sid(2)]:
                tcn.fail("node %d: the parent read %d records, missing %s, children %s" %
                         (n.id, len(got), missing, children))
            if any(d == b"held" for _, d, _ in got) and \
                    int(ended(n, sid(0))) < max(int(q) for q, _, _ in got):
                tcn.fail("node %d: read past the parent's end" % n.id)
        ends = {ended(n, sid(0)) for n in nodes}
        if len(ends) != 1:
            tcn.fail("the nodes disagree on the parent's end: %s" % ends)
    finally:
        for n in nodes:
            n.stop()


def main():
    root = tempfile.mkdtemp(prefix="sluice-creshard-")
    etcd = tcn.Etcd(root)
    nodes = []
    done = False
    try:
        form(nodes, root, etcd, CLUSTER, 2)
        under_load(nodes)
        racing(nodes)
        follower_short(nodes)
        update_count(nodes)
        for n in nodes:
            n.stop()
        leader_killed(root, etcd)
        done = True
    finally:
        tcn.finish(nodes, etcd, root, done)


if __name__ == "__main__":
    main()
