#!/usr/bin/python3
"""etcd itself going down under load (issue 15; docs/CLUSTER.md failure table, "etcd ...").

    test_cluster_etcd.py BUILD_DIR [--seed S] [--only kill|stall]

The harness's namespaces (tests/cluster/harness.py): three sluiced nodes (rf 3, acks quorum,
lease TTL 2 s), a 6-shard stream, and the campaign's boto3 producers (campaign_data.py: a
ledger of every acknowledged record, no client retry, every call to a random live node,
which forwards what it does not lead) putting throughout. Two outages, each OUTAGE_TTLS lease
TTLs long, with every node up:

  kill   etcd SIGKILLed, then started again on its data directory;
  stall  etcd SIGSTOPped, then SIGCONTed (its process and connections stay; nothing answers).

For each: records are acknowledged while etcd is away (a shard's leader, its followers and
the forwarding need no etcd call: only placement changes and the in-sync set's CAS do);
each node's placement watcher opens at most one watch per retry pause (no busy loop); after
etcd returns the cluster settles (every node registered, a controller, every shard led by a
live node) with no leadership moved, no replica dropped and no in-sync set shrunk (every
node was up and kept up), every node's own view (GET /cluster: the shards it leads and
their epochs) is etcd's placement (its watches broke and it read again), and it takes
more puts. At the end every acknowledged record is read from every
node whose final in-sync set holds its shard: exactly once, at its number, with its bytes,
in per-key order, and etcd's placement history has no epoch with two leaders and no deposed
controller writing.

What it prints per outage (observations, not assertions: tests assert behaviour, not time):
the records acknowledged while etcd was away; how many nodes registered again (a new
create_revision: their lease expired); the controller before and after; the placement writes
(--verbose lists them); each node's CPU seconds, RSS growth (KiB) and watches opened during
the outage; the time from etcd's return to settled.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import campaign       # noqa: E402
import harness        # noqa: E402

STREAM = "chx-etcd"
SHARDS = 6
# An outage this many lease TTLs long: every lease would have expired without etcd's help.
OUTAGE_TTLS = 3
# Acknowledging calls awaited before and after each outage.
CALLS_PER_STEP = 20
TICKS = os.sysconf("SC_CLK_TCK")
WATCH_OPENS = "sluice_cluster_watch_opens_total"
# control/cluster_node.c CLUSTER_NODE_RETRY_MS, and attempts allowed beyond the pace.
RETRY_MS = 100
RETRY_SLACK = 10


def proc_sample(node):
    """(CPU seconds, RSS KiB) of a node's process so far."""
    with open("/proc/%d/stat" % node.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS   # utime, stime
    rss = 0
    with open("/proc/%d/status" % node.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss


def admin_get(c, node, path):
    """A node's admin endpoint (from the client namespace, with the token): the body."""
    return c.run(["curl", "-sf", "-m", "10", "-H", "Authorization: Bearer " + harness.ADMIN_TOKEN,
                  "http://%s%s" % (node.admin_addr, path)])


def views_match(camp, ids):
    """Every node's own view (GET /cluster: the shards it leads, in which epoch) is etcd's
    placement: a node whose watch broke with etcd read everything again."""
    want = {i: set() for i in ids}
    for (stream, shard), v in camp.w.state()["shards"].items():
        if v["leader"] in want:
            want[v["leader"]].add((stream, int(shard.split("-")[1]), v["epoch"]))
    for i in ids:
        led = json.loads(admin_get(camp.c, camp.node(i), "/cluster"))["led"]
        if {(r["stream"], r["shard"], r["epoch"]) for r in led} != want[i]:
            return False
    return True


def metric(c, node, name):
    """One counter from a node's /metrics."""
    text = admin_get(c, node, "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise campaign.Failure("node %d: no %s in /metrics" % (node.id, name))


def replicas_dropped(writes, rev0):
    """Placement writes after revision rev0 that took a node out of a shard's replicas."""
    prev, out = {}, 0
    for rev, stream, shard, v in writes:
        k = (stream, shard)
        if rev > rev0 and k in prev and not set(v["replicas"]) >= set(prev[k]["replicas"]):
            out += 1
        prev[k] = v
    return out


def outage(camp, data, kind):
    """One etcd outage of `kind` ("kill" or "stall") under load; returns what it saw."""
    c, w = camp.c, camp.w
    ids = camp.member_ids()
    before = w.state()
    regs = {i: w.node_revision(i) for i in ids}
    epochs = {k: v["epoch"] for k, v in before["shards"].items()}
    writes = len(w.writes)
    rev0 = w.rev
    samples = {i: proc_sample(camp.node(i)) for i in ids}
    opens = {i: metric(c, camp.node(i), WATCH_OPENS) for i in ids}
    t_down = time.monotonic()
    acked0 = data.acked_count()
    if kind == "kill":
        c.etcd_kill()
    else:
        c.etcd_pause()
    time.sleep(camp.args.outage_ttls * c.ttl_s)   # The outage's length, not a wait.
    during = data.acked_count() - acked0
    grown = {i: tuple(b - a for a, b in zip(samples[i], proc_sample(camp.node(i))))
             for i in ids}
    opens = {i: metric(c, camp.node(i), WATCH_OPENS) - opens[i] for i in ids}
    down_s = time.monotonic() - t_down
    t0 = time.monotonic()
    if kind == "kill":
        c.etcd_start()
    else:
        c.etcd_resume()
    t1 = camp.etcd_back("etcd " + kind)
    harness.wait_for(lambda: views_match(camp, ids),
                     "every node's led shards and epochs as in etcd after etcd %s" % kind)
    after = w.state()
    seen = {
        "kind": kind, "acked_during": during,
        "registered_again": sorted(i for i in ids if w.node_revision(i) != regs[i]),
        "leaders_moved": sum(1 for k, v in after["shards"].items() if v["epoch"] != epochs.get(k)),
        "placement_writes": len(w.writes) - writes,
        "controller": "%s->%s" % (before["controller"], after["controller"]),
        "settle_ms": round((t1 - t0) * 1000),
        "cpu_s": {i: round(g[0], 2) for i, g in grown.items()},
        "rss_kib": {i: g[1] for i, g in grown.items()},
        "watch_opens": opens,
        "isr_shrinks": sum(1 for wr in campaign.isr_shrinks(w.writes) if wr[0] > rev0),
        "replicas_dropped": replicas_dropped(w.writes, rev0),
    }
    print("cluster-etcd: %s" % json.dumps(seen, sort_keys=True), flush=True)
    if camp.args.verbose:
        for wr in w.writes[writes:]:
            print("cluster-etcd:   placement write %r" % (wr,), flush=True)
    # Puts to shards with a live leader go on while etcd is away.
    campaign.check(during > 0, "records acknowledged while etcd was away (%s)" % kind)
    # The watcher retries at its pace (a failed watch pauses CLUSTER_NODE_RETRY_MS): a
    # bound on attempts, not a time; the busy loop it replaced opened thousands a second.
    most = down_s * 1000.0 / RETRY_MS + RETRY_SLACK
    campaign.check(all(v <= most for v in opens.values()),
                   "watches opened while etcd was away (%s): %r, at most %.0f" %
                   (kind, opens, most))
    # Every follower kept up: no leader takes one out of the in-sync set for the time
    # etcd did not answer (the leader's own watcher waited on it).
    campaign.check(seen["isr_shrinks"] == 0, "no in-sync set shrunk by etcd's outage (%s)" % kind)
    # Every node was up throughout: whether their leases survived (a restart: etcd extends
    # them) or all expired at once (a stall), the placement stays where it was.
    campaign.check(seen["leaders_moved"] == 0 and seen["replicas_dropped"] == 0,
                   "no leadership moved and no replica dropped by etcd's outage (%s)" % kind)
    data.more_acks(CALLS_PER_STEP, "after etcd came back (%s)" % kind)
    return seen


def start_loaded(camp, data, stream, what):
    """The members started, `stream` (SHARDS shards) placed, the producers putting and
    acknowledged; the members' ids."""
    ids = camp.start_members()
    data.create_stream(stream, SHARDS)
    camp.w.wait(campaign.settled_without(None, ids), "the stream placed")
    data.start()
    data.more_acks(CALLS_PER_STEP, what)
    return ids


def run(camp, data, kinds):
    ids = start_loaded(camp, data, STREAM, "before the outages")
    for kind in kinds:
        outage(camp, data, kind)
    ledger_read_back(camp, data, ids, "cluster-etcd")


def ledger_read_back(camp, data, ids, tag):
    """Stops the producers; every acknowledged record read back from the nodes `ids` once,
    at its number, in per-key order, and no split brain in etcd's placement history
    (printed as `TAG: seed=... lost=... dup=...`, then checked)."""
    data.stop()
    lost, dup, mis, split, _ = data.check([camp.node(i) for i in ids])
    detail = []
    hsplit, invalid = campaign.history_violations(sorted(camp.w.writes, key=lambda x: x[0]),
                                                  detail)
    for what, write in detail[:10]:
        print("%s: split brain in placement: %s: %r" % (tag, what, write), flush=True)
    print("%s: seed=%d calls=%d errors=%d acked=%d lost=%d dup=%d misordered=%d "
          "split_brain=%d invalid_writes=%d errors_by_kind=%s" %
          (tag, camp.args.seed, data.calls, data.errors, len(data.acked), lost, dup, mis,
           split + hsplit, invalid, json.dumps(data.error_kinds, sort_keys=True)), flush=True)
    campaign.check(lost == dup == mis == split + hsplit == invalid == 0, "the ledger read back")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--only", choices=["kill", "stall"], default=None)
    ap.add_argument("--outage-ttls", type=int, default=OUTAGE_TTLS,
                    help="each outage's length in lease TTLs (longer: to watch memory and CPU)")
    ap.add_argument("--verbose", action="store_true",
                    help="print every placement write of each outage and its settling")
    args = ap.parse_args()
    kinds = [args.only] if args.only else ["kill", "stall"]
    campaign.run_scenario("cluster-etcd", args, lambda camp, data: run(camp, data, kinds))


if __name__ == "__main__":
    main()
