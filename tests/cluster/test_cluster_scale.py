#!/usr/bin/python3
"""Scale-out and drain under load (issue 15's test list; docs/CLUSTER.md "Tests").

    test_cluster_scale.py BUILD_DIR [--seed S]

The harness's namespaces (tests/cluster/harness.py) with four node slots; three sluiced
nodes start, a 12-shard stream is created, and boto3 producers (campaign_data.py: a ledger
of every acknowledged record, no botocore retry, each call to a random live node, which
forwards what it does not lead) put throughout:

  1. node 4 starts and joins: wait until the placement has settled on four nodes: every
     shard's in-sync set is its whole replica set, leaders balanced (max - min <= 1) and
     replicas balanced (max - min <= 1) over the four, node 4 leading shards and holding
     in-sync replicas of others; then more puts are acknowledged;
  2. `sluice cluster drain 2`: wait until node 2 leads nothing and holds no replica, every
     shard in sync on three replicas; the producers leave node 2; it is stopped (SIGTERM)
     and its registration goes; then more puts are acknowledged;
  3. the producers stop; every live node is read for every shard its final in-sync set
     holds: every acknowledged record exactly once, at its acknowledged ShardId and
     SequenceNumber, with its bytes, in per-key order, no number acknowledged twice.

Prints `cluster-scale: ... longest_ack_gap_ms=... longest_shard_gap_ms=...`: the longest
time between two acknowledging calls over all producers, and between two records
acknowledged for one shard (random keys: a shard also goes unwritten by chance); printed,
not asserted (tests assert behaviour, not time), as are the errors by kind (records refused
throttled while a leadership moves: the producers do not retry). Waits are for conditions
with generous deadlines.
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import campaign       # noqa: E402
import campaign_data  # noqa: E402
import harness        # noqa: E402

STREAM = "chx-scale"
SHARDS = 12
JOINER = 4
DRAINED = 2
# Acknowledging calls awaited after each step: ingest goes on through it.
CALLS_PER_STEP = 40
# Partition keys per producer: enough that the records reach (almost surely) every shard.
KEYS_PER_PRODUCER = 32
# A placement settling on a new node: catch-ups and one balancing swap at a time.
SETTLE_S = 120.0


class Scale(campaign.Campaign):
    """A campaign object for campaign_data.Data (its seed, live nodes, watcher), without
    the fault scheduler; `retired` nodes (one starting, not ready yet; one leaving) are not
    offered to the producers."""

    def __init__(self, args):
        super().__init__(args)
        self.retired = set()

    def live_ids(self):
        return [i for i in super().live_ids() if i not in self.retired]


def spread(st, ids, what):
    """{node: count} of `what` ("leader" or "replicas") over the stream's shards."""
    out = {i: 0 for i in ids}
    for (stream, _), v in st["shards"].items():
        if stream != STREAM:
            continue
        for r in ([v["leader"]] if what == "leader" else v["replicas"]):
            out[r] = out.get(r, 0) + 1
    return out


def settled_on(ids):
    """A state predicate: exactly `ids` hold the stream, every shard led from `ids`, fully
    in sync on min(3, len(ids)) replicas, leaders and replicas balanced (max - min <= 1)."""
    want = min(3, len(ids))

    def pred(st):
        shards = {k: v for k, v in st["shards"].items() if k[0] == STREAM}
        if len(shards) != SHARDS or not set(ids) <= set(st["nodes"]):
            return False
        for v in shards.values():
            if v["leader"] not in ids or len(v["replicas"]) != want or \
               sorted(v["isr"]) != sorted(v["replicas"]) or not set(v["replicas"]) <= set(ids):
                return False
        for what in ("leader", "replicas"):
            counts = spread(st, ids, what)
            if set(counts) != set(ids) or max(counts.values()) - min(counts.values()) > 1:
                return False
        return True
    return pred


def more_acks(data, n):
    """Waits until n more calls acknowledged records (ingest goes on)."""
    start = len(data.ack_times)
    harness.wait_for(lambda: len(data.ack_times) >= start + n,
                     "%d more acknowledging calls (%d so far, %d errors)" %
                     (n, start, data.errors), deadline_s=harness.DEADLINE_S)


def show(st, what):
    print("cluster-scale: %s: leaders %r replicas %r" %
          (what, spread(st, sorted(st["nodes"]), "leader"),
           spread(st, sorted(st["nodes"]), "replicas")), flush=True)


def run(camp, data):
    c, w = camp.c, camp.w
    first = [1, 2, 3]
    for n in c.nodes[:3]:
        n.start()
    w.wait(lambda st: set(first) <= set(st["nodes"]) and st["controller"] in first,
           "three nodes registered and a controller")
    data.create_stream(STREAM, SHARDS)
    w.wait(settled_on(first), "the stream placed on three nodes")
    show(w.state(), "3 nodes")
    data.start()
    more_acks(data, CALLS_PER_STEP)

    # 1. A fourth node joins under load.
    camp.retired.add(JOINER)
    c.nodes[JOINER - 1].start()
    camp.retired.discard(JOINER)
    four = first + [JOINER]
    w.wait(settled_on(four), "the placement settled on four nodes", deadline_s=SETTLE_S)
    st = w.state()
    show(st, "4 nodes")
    led = spread(st, four, "leader")[JOINER]
    followed = spread(st, four, "replicas")[JOINER] - led
    campaign.check(led > 0 and followed > 0, "node %d leads %d shards and follows %d" %
                   (JOINER, led, followed))
    more_acks(data, CALLS_PER_STEP)

    # 2. A node is drained, then leaves.
    camp.drain(DRAINED)
    rest = [i for i in four if i != DRAINED]
    w.wait(lambda st: st["nodes"].get(DRAINED) is True and settled_on(rest)(st),
           "node %d drained: no leadership, no replica" % DRAINED, deadline_s=SETTLE_S)
    show(w.state(), "node %d drained" % DRAINED)
    camp.retired.add(DRAINED)
    c.nodes[DRAINED - 1].stop()
    w.wait(lambda st: DRAINED not in st["nodes"] and settled_on(rest)(st),
           "node %d gone, the placement unchanged" % DRAINED)
    more_acks(data, CALLS_PER_STEP)

    # 3. Every acknowledged record, from every node that holds its shard in sync.
    data.stop()
    lost, dup, mis, split = data.check([c.nodes[i - 1] for i in rest])
    split += campaign.history_violations(sorted(w.writes, key=lambda x: x[0]))[0]
    print("cluster-scale: seed=%d calls=%d errors=%d acked=%d lost=%d dup=%d misordered=%d "
          "split_brain=%d shards_written=%d longest_ack_gap_ms=%.0f longest_shard_gap_ms=%.0f errors_by_kind=%s" %
          (camp.args.seed, data.calls, data.errors, len(data.acked), lost, dup, mis, split,
           len({a[1] for a in data.acked}),
           data.longest_ack_gap_s() * 1000.0, data.longest_shard_gap_s() * 1000.0, json.dumps(data.error_kinds, sort_keys=True)),
          flush=True)
    campaign.check(len(data.acked) > 0, "records acknowledged")
    campaign.check(lost == dup == mis == split == 0, "the ledger read back")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    if args.seed is None:
        args.seed = (int(os.environ.get("TEST_SEED", "0")) or
                     random.SystemRandom().randrange(1, 1 << 31))
    # What Campaign reads from its arguments: four node slots, TTL 2 s, data on.
    args.nodes, args.ttl, args.data, args.seconds, args.bound_check = 4, 2, True, 0, False
    camp = Scale(args)
    if not harness.cluster_mode_supported(camp.c.sluiced):
        raise SystemExit("cluster-scale: sluiced has no [cluster] section")
    data = camp.data = campaign_data.Data(camp)
    data.keys_per_producer = KEYS_PER_PRODUCER
    ok = False
    try:
        camp.c.up()
        camp.w = campaign.Watcher(camp.c)
        run(camp, data)
        ok = True
    except (campaign.Failure, RuntimeError, TimeoutError, OSError) as e:
        print("cluster-scale: FAIL (seed=%d): %s: %s" % (args.seed, type(e).__name__, e),
              flush=True)
        for n in camp.c.nodes:
            if os.path.exists(n.log_path):
                print("--- node %d log tail:\n%s" % (n.id, n.log_tail()))
    finally:
        data.stop()
        if hasattr(camp, "w"):
            camp.w.stop()
        camp.c.cleanup()
    print("ok" if ok else "FAIL", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
