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
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import campaign       # noqa: E402

STREAM = "chx-scale"
SHARDS = 12
JOINER = 4
DRAINED = 2
# Acknowledging calls awaited after each step: ingest goes on through it.
CALLS_PER_STEP = 40
# Partition keys per producer: enough that the records reach (almost surely) every shard.
KEYS_PER_PRODUCER = 32


def settled_on(ids):
    return campaign.balanced_on(ids, SHARDS, STREAM)


def show(st, what):
    print("cluster-scale: %s: leaders %r replicas %r" %
          (what, campaign.spread(st, sorted(st["nodes"]), "leader"),
           campaign.spread(st, sorted(st["nodes"]), "replicas")), flush=True)


def run(camp, data):
    c, w = camp.c, camp.w
    assert camp.out == {JOINER}   # The spare slot is the joiner.
    first = camp.start_members()
    data.create_stream(STREAM, SHARDS)
    w.wait(settled_on(first), "the stream placed on three nodes")
    show(w.state(), "3 nodes")
    data.start()
    data.more_acks(CALLS_PER_STEP)

    # 1. A fourth node joins under load.
    c.nodes[JOINER - 1].start()
    camp.out.discard(JOINER)   # Offered to the producers once ready.
    four = first + [JOINER]
    w.wait(settled_on(four), "the placement settled on four nodes", deadline_s=campaign.SETTLE_S)
    st = w.state()
    show(st, "4 nodes")
    led = campaign.spread(st, four, "leader")[JOINER]
    followed = campaign.spread(st, four, "replicas")[JOINER] - led
    campaign.check(led > 0 and followed > 0, "node %d leads %d shards and follows %d" %
                   (JOINER, led, followed))
    data.more_acks(CALLS_PER_STEP)

    # 2. A node is drained, then leaves.
    camp.drain(DRAINED)
    rest = [i for i in four if i != DRAINED]
    w.wait(lambda st: st["nodes"].get(DRAINED) is True and settled_on(rest)(st),
           "node %d drained: no leadership, no replica" % DRAINED, deadline_s=campaign.SETTLE_S)
    show(w.state(), "node %d drained" % DRAINED)
    camp.out.add(DRAINED)   # The producers leave it before it stops.
    c.nodes[DRAINED - 1].stop()
    w.wait(lambda st: DRAINED not in st["nodes"] and settled_on(rest)(st),
           "node %d gone, the placement unchanged" % DRAINED)
    data.more_acks(CALLS_PER_STEP)

    # 3. Every acknowledged record, from every node that holds its shard in sync.
    data.stop()
    lost, dup, mis, split, _ = data.check([c.nodes[i - 1] for i in rest])
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
    campaign.run_scenario("cluster-scale", args, run, keys_per_producer=KEYS_PER_PRODUCER)


if __name__ == "__main__":
    main()
