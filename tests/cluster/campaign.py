#!/usr/bin/python3
"""The cluster fault campaign (issue 15; docs/CLUSTER.md "The fault campaign").

    campaign.py BUILD_DIR --seconds N [--seed S] [--nodes 3] [--ttl 2] [--data]
                [--faults A,B]

A cluster from tests/cluster/harness.py (nodes in network namespaces, one etcd). A seeded
scheduler injects faults one after another until N seconds have passed: SIGKILL of the
controller's node, of a leader, of any node (then a restart), SIGSTOP (then SIGCONT), a node
cut from etcd and one cut from another node (nftables, then healed), a drain and its undo
(`sluice cluster drain`), etcd itself SIGKILLed (then restarted on its data) or SIGSTOPped
past every lease (then SIGCONTed), and with sluiced nodes a scale step (f_scale: a spare node joins
and takes leaders and in-sync replicas, another is drained, stopped and becomes the spare).
After each fault it waits for the cluster to settle.

What is checked, always (membership, controller, placement; from etcd's own event stream,
`etcdctl watch` on /sluice/<cluster>/ in the client namespace, every event in revision order):
  - every placement write: leader in the in-sync set, in-sync set within the replicas;
  - split_brain: per shard, leader epochs never go back and one epoch has one leader; across
    all placement writes the controller epoch never goes back (a deposed controller never
    wrote after its successor: the fence);
  - failover: after a fault that takes a node away (SIGKILL, SIGSTOP, cut from etcd), etcd
    comes to hold a live controller and no shard led by the lost node (unless no live
    in-sync replica is left: no unclean election). The time from the fault to the event that
    made it so is measured against 2 x the lease TTL (the issue's bound) and printed
    (`cluster-campaign-failover:`, `over_bound`); with --bound-check an excess fails the run
    (scripts/cluster-campaign; the meson suite asserts behaviour, not time: docs/TESTING.md);
  - drain: a drained node leads no shard that has another live in-sync replica; undo clears it;
  - a node back from a fault registers again.

With --data (the nodes must be sluiced in cluster mode: cnode's and cmeta's work), also:
producers (boto3 PutRecords to any live node) keep a ledger of every acknowledged record
(stream, shard, sequence number, key, bytes); at the end, with every node back, each node
is read (GetRecords from TRIM_HORIZON through that node's API) for every shard whose final
in-sync set holds it, and:
  lost        an acknowledged record missing from a node's read, or with other bytes;
  dup         a record (by its unique bytes) read twice from one node;
  misordered  two records of one key acknowledged one after the other (one producer, in
              order) read in the other order;
  split_brain also: one (shard, sequence number) acknowledged for two different records
              (two nodes assigning numbers as leaders of one shard at once).

With sluiced nodes a reshard step too (f_reshard: a SplitShard and a MergeShards of its
children through random nodes under the producers, each settled once every node lists the
parents ended); the data checks read parents and children alike.

With --data the nodes also run the kernel dataplane and a libsluice producer (`sluice produce
--shard-map`, UDP and TCP) puts beside the boto3 ones; its records join the ledger and are
checked alike, except that one it stored twice is `dp_dup`, printed and not a failure (its
dedup window is per node: a batch resent to a new leader may be stored again; never lost).

Two faults combine or stop cleanly: f_etcd_and_node (etcd SIGKILLed or SIGSTOPped and a node
SIGKILLed meanwhile: the node's shards move only once etcd answers, within its lease, plus
the controller's grace after a stall) and, with sluiced, f_term (a node SIGTERMed under load:
the calls it closed unanswered, by its own log, must be 0).

Prints exactly one summary line:
  cluster-campaign: seed=… seconds=… ops=… faults=… acked=… lost=… dup=… misordered=…
  split_brain=… dp_acked=… dp_dup=… unanswered=…   (one line)
--faults A,B runs only those kinds. Exit 0 only when every check passed.
"""
import argparse
import base64
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STREAMS = 2
SHARDS_PER_STREAM = 3
DRAIN_TRIES = 3       # A drain refused as "not registered" (a lapsed lease) is asked again.
# A placement settling after a join or a drain: catch-ups, one balancing swap at a time.
SETTLE_S = 120.0
# etcd's own outages (f_etcd_kill, f_etcd_stall) last this many lease TTLs: past every lease.
ETCD_OUTAGE_TTLS = 2
# etcd's --election-timeout (its default, 1000 ms; the harness keeps it): a new etcd leader,
# an etcd restarted too, extends every lease by it beyond the TTL (the lessor's Promote).
ETCD_ELECTION_TIMEOUT_S = 1.0


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


# ---- the placement history and its invariants (pure: also run on planted histories)

def history_violations(writes, detail=None):
    """writes: [(revision, stream, shard, value dict)] in revision order. Returns
    (split_brain, invalid): epochs going back or shared by two leaders, controller epochs going
    back; and writes whose leader is outside the in-sync set or in-sync outside the replicas.
    `detail` (a list) gets (what, write) for each split_brain."""
    split = 0
    note = (lambda what, w: detail.append((what, w))) if detail is not None else \
        (lambda what, w: None)
    invalid = 0
    last_epoch = {}
    leader_of = {}
    last_controller = 0
    prev = {}
    for rev, stream, shard, v in writes:
        k = (stream, shard)
        isr_only = isr_update(prev.get(k), v) or resign_update(prev.get(k), v)
        prev[k] = v
        epoch, leader = v["epoch"], v["leader"]
        if epoch < last_epoch.get(k, 0):
            split += 1
            note("leader epoch back from %d" % last_epoch[k], (rev, stream, shard, v))
        last_epoch[k] = max(epoch, last_epoch.get(k, 0))
        if leader != 0:
            if leader_of.setdefault((k, epoch), leader) != leader:
                split += 1
                note("epoch %d led by %d before" % (epoch, leader_of[(k, epoch)]),
                     (rev, stream, shard, v))
            if leader not in v["isr"]:
                invalid += 1
        if not set(v["isr"]) <= set(v["replicas"]):
            invalid += 1
        if isr_only:
            continue   # The shard's (placed) leader wrote it, not a controller.
        if v["controller_epoch"] < last_controller:
            split += 1
            note("controller epoch back from %d" % last_controller, (rev, stream, shard, v))
        last_controller = max(last_controller, v["controller_epoch"])
    return split, invalid


def isr_update(before, after):
    """Whether a placement write changed only the in-sync set: the shard leader's CAS
    (cluster_placement_isr_write), which keeps the controller_epoch of the controller that
    last wrote the key, however old. A controller's write that changes the in-sync set
    changes the replicas with it (a node gone leaves both) or only stamps its epoch."""
    if before is None:
        return False
    rest = lambda v: {f: x for f, x in v.items() if f != "isr"}
    return rest(before) == rest(after) and before.get("isr") != after.get("isr")


def resign_update(before, after):
    """Whether a placement write is a placed leader stepping down (cluster_placement_resign:
    its log lacks records below a cut): "leader" to 0 and that node out of "isr", the rest
    kept, the controller_epoch too (docs/CLUSTER.md "The in-sync set")."""
    if before is None or before["leader"] == 0 or after["leader"] != 0:
        return False
    rest = lambda v: {f: x for f, x in v.items() if f not in ("isr", "leader")}
    return rest(before) == rest(after) and \
        sorted(after["isr"]) == sorted(i for i in before["isr"] if i != before["leader"])


def isr_shrinks(writes):
    """The in-sync updates (isr_update) that took a member out: a leader judged it lagging."""
    prev, out = {}, []
    for rev, stream, shard, v in writes:
        k = (stream, shard)
        if isr_update(prev.get(k), v) and not set(v["isr"]) >= set(prev[k]["isr"]):
            out.append((rev, stream, shard, v))
        prev[k] = v
    return out


def self_check_history():
    """The checker finds what it must (a checker that cannot fail checks nothing)."""
    w = lambda rev, e, l, ce, isr=(1, 2, 3): (rev, "s", 0, {"epoch": e, "leader": l,
                                                          "isr": list(isr),
                                                          "replicas": [1, 2, 3],
                                                          "controller_epoch": ce})
    check(history_violations([w(1, 1, 1, 5), w(2, 2, 2, 5), w(3, 3, 3, 9)]) == (0, 0),
          "self-check: a clean history")
    check(history_violations([w(1, 2, 1, 5), w(2, 2, 2, 5)])[0] == 1,
          "self-check: two leaders in one epoch")
    check(history_violations([w(1, 3, 1, 5), w(2, 2, 1, 5)])[0] == 1,
          "self-check: an epoch going back")
    check(history_violations([w(1, 1, 1, 9), w(2, 2, 2, 5)])[0] == 1,
          "self-check: a deposed controller writing")
    check(history_violations([w(1, 1, 3, 5, isr=(1, 2))])[1] == 1,
          "self-check: a leader outside the in-sync set")
    # Two shards: the new controller (epoch 9) rewrites shard 0; shard 1's leader then
    # changes its in-sync set, a key last written by controller 5.
    w1 = lambda rev, ce, isr: (rev, "s", 1, {"epoch": 1, "leader": 1, "isr": list(isr),
                                             "replicas": [1, 2, 3], "controller_epoch": ce})
    check(history_violations([w1(1, 5, (1, 2, 3)), w(2, 1, 1, 9), w1(3, 5, (1, 2))]) == (0, 0),
          "self-check: a leader's in-sync update of a key an older controller wrote")
    check(history_violations([w1(1, 5, (1, 2, 3)), w(2, 1, 1, 9),
                              (3, "s", 1, dict(w1(3, 5, (1, 2))[3], leader=2, epoch=2))])[0] == 1,
          "self-check: a deposed controller moving a leader after its successor wrote")
    check(len(isr_shrinks([w1(1, 5, (1, 2, 3)), w1(2, 5, (1, 2)), w1(3, 5, (1, 2, 3))])) == 1,
          "self-check: an in-sync set shrunk by its leader")
    check(history_violations([w1(1, 5, (1, 2, 3)), w(2, 1, 1, 9),
                              (3, "s", 1, dict(w1(3, 5, (2, 3))[3], leader=0))]) == (0, 0),
          "self-check: a placed leader stepping down in a key an older controller wrote")
    check(history_violations([w1(1, 5, (1, 2, 3)), w(2, 1, 1, 9),
                              (3, "s", 1, dict(w1(3, 5, (1, 3))[3], leader=0))])[0] == 1,
          "self-check: a deposed controller taking another node out, not a step-down")


def ledger_violations(acked, reads, missing=None, dataplane=lambda data: False):
    """acked: [(stream, shard, seq, key, data, order)] (seq: the log's per-shard number;
    order: per key, the producer's acknowledgement order); reads: {node: {(stream, shard):
    [(seq, key, data)]}}, only the shards each node must hold (a shard absent from a node's
    reads is not checked there). Returns (lost, dup, misordered, split_brain, dp_dup);
    `missing` (a list) gets (node, record, where it was read instead) for each lost one.
    A record read twice from one node is `dup`, or `dp_dup` when dataplane(data): libsluice
    resends a batch to a shard's new leader with its batch_seq, and the dedup window is per
    node, so a batch the old leader stored and replicated without its ACK reaching the
    producer is stored again (docs/CLUSTER.md, "What remains"). A record stored twice is
    lost only when neither copy is at its acknowledged number."""
    lost = dup = mis = split = dp_dup = 0
    by_seq = {}
    for s, sh, seq, key, data, _ in acked:
        if by_seq.setdefault((s, sh, seq), data) != data:
            split += 1
            if missing is not None:
                missing.append((0, (s, sh, seq, key, data), by_seq[(s, sh, seq)]))
    for node, shards in reads.items():
        where = {}   # data -> every (stream, shard, seq, index) it was read at
        for (s, sh), recs in shards.items():
            for i, (seq, key, data) in enumerate(recs):
                if data in where:
                    if dataplane(data):
                        dp_dup += 1
                    else:
                        dup += 1
                where.setdefault(data, []).append((s, sh, seq, i))
        last = {}
        for s, sh, seq, key, data, order in sorted(acked, key=lambda a: (a[3], a[5])):
            if (s, sh) not in shards:
                continue
            at = where.get(data, [])
            got = next((w for w in at if w[:3] == (s, sh, seq)), None)
            if got is None:
                lost += 1
                if missing is not None:
                    missing.append((node, (s, sh, seq, key, data), at[-1] if at else None))
                continue
            prev = last.get(key)
            if prev is not None and prev[:2] == got[:2] and prev[3] > got[3]:
                mis += 1
            last[key] = got
    return lost, dup, mis, split, dp_dup


def self_check_ledger():
    acked = [("s", "sh0", 1, "a", b"a1", 0), ("s", "sh0", 2, "a", b"a2", 1),
             ("s", "sh0", 3, "b", b"b1", 0)]
    good = {"n1": {("s", "sh0"): [(1, "a", b"a1"), (2, "a", b"a2"), (3, "b", b"b1")]}}
    check(ledger_violations(acked, good) == (0, 0, 0, 0, 0), "self-check: a clean ledger")
    check(ledger_violations(acked, {"n1": {("s", "sh0"): [(1, "a", b"a1"), (3, "b", b"b1")]}})
          [0] == 1, "self-check: a lost record")
    check(ledger_violations(acked, {"n1": {("s", "sh0"): good["n1"][("s", "sh0")] +
                                           [(4, "b", b"b1")]}})[1:] == (1, 0, 0, 0),
          "self-check: a dup")
    check(ledger_violations(acked, {"n1": {("s", "sh0"): [(2, "a", b"a1"), (1, "a", b"a2"),
                                                          (3, "b", b"b1")]}})[0] == 2,
          "self-check: numbers swapped are lost records (not at their acknowledged number)")
    check(ledger_violations([("s", "sh0", 1, "a", b"a1", 0), ("s", "sh0", 1, "b", b"b1", 0)],
                            {})[3] == 1, "self-check: one number acknowledged twice")
    check(ledger_violations(acked, {"n1": good["n1"], "n2": {}}) == (0, 0, 0, 0, 0),
          "self-check: a node that holds no replica of the shard is not asked for it")
    check(ledger_violations(acked, {"n1": good["n1"], "n2": {("s", "sh0"): []}})[0] == 3,
          "self-check: a replica that holds the shard and read nothing lost every record")
    # A dataplane batch stored by a deposed leader and again, at the number acknowledged,
    # by its successor: a dp_dup, not a dup, not lost, not misordered.
    dp = lambda data: data.startswith(b"dp")
    dacked = [("s", "sh0", 2, "dpa", b"dpa1", 0), ("s", "sh0", 3, "dpa", b"dpa2", 1)]
    twice = {"n1": {("s", "sh0"): [(1, "dpa", b"dpa1"), (2, "dpa", b"dpa1"),
                                   (3, "dpa", b"dpa2")]}}
    check(ledger_violations(dacked, twice, dataplane=dp) == (0, 0, 0, 0, 1),
          "self-check: a dataplane record stored twice, the second copy acknowledged")
    check(ledger_violations(dacked, twice) == (0, 1, 0, 0, 0),
          "self-check: a record stored twice by another producer is a dup")
    check(ledger_violations([("s", "sh0", 5, "dpa", b"dpa1", 0)], twice, dataplane=dp)[0] == 1,
          "self-check: a record stored twice, neither copy at its acknowledged number")
    check(ledger_violations([("s", "sh0", 1, "dpa", b"dpa1", 0),
                             ("s", "sh0", 3, "dpa", b"dpa2", 1)], twice, dataplane=dp) ==
          (0, 0, 0, 0, 1), "self-check: the first copy acknowledged, the second a dp_dup")
    check(ledger_violations([("s", "sh0", 3, "dpa", b"dpa2", 0),
                             ("s", "sh0", 2, "dpa", b"dpa1", 1)], twice, dataplane=dp)[2] == 1,
          "self-check: a dataplane record read before one acknowledged before it")


# ---- etcd's event stream

class Watcher:
    """`etcdctl watch --prefix /sluice/<cluster>/ -w json` in the client namespace; keeps the
    current keys and every placement write in revision order, each event's arrival time. The
    keys are read first at one revision R and the watch starts at R + 1: no event is missed
    between the two."""

    def __init__(self, cluster):
        self.c = cluster
        self.prefix = "/sluice/%s/" % cluster.name
        self.keys = {}            # key -> (value bytes, create_revision)
        self.writes = []          # (revision, stream, shard, value)
        self.cond = threading.Condition()
        self.events = 0
        self.rev = 0              # The newest revision applied (the watch's headers).
        self.error = None
        rev = self._load()
        self.proc = subprocess.Popen(["ip", "netns", "exec", cluster.client_ns, "etcdctl",
                                      "--endpoints", cluster.etcd_url, "watch", "--prefix",
                                      self.prefix, "--rev", str(rev + 1), "-w", "json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        for line in self.proc.stdout:
            try:
                self._apply(json.loads(line))
            except (ValueError, KeyError) as e:
                self.error = "watch line %r: %s" % (line[:200], e)

    def _apply(self, msg):
        with self.cond:
            self.rev = max(self.rev, int((msg.get("Header") or {}).get("revision", 0)))
            for ev in msg.get("Events") or []:
                kv = ev["kv"]
                key = base64.b64decode(kv["key"]).decode()
                if ev.get("type") == 1:
                    self.keys.pop(key, None)
                else:
                    value = base64.b64decode(kv.get("value", ""))
                    self.keys[key] = (value, kv["create_revision"])
                    if key.startswith(self.prefix + "placement/"):
                        stream, shard = key[len(self.prefix + "placement/"):].rsplit("/", 1)
                        self.writes.append((kv["mod_revision"], stream, shard, json.loads(value)))
                self.events += 1
            self.cond.notify_all()

    def _load(self):
        """The keys as of one revision (returned); the watch continues from there."""
        out = json.loads(self.c.etcdctl("get", "--prefix", self.prefix, "-w", "json"))
        for kv in out.get("kvs") or []:
            key = base64.b64decode(kv["key"]).decode()
            self.keys[key] = (base64.b64decode(kv.get("value", "")), kv["create_revision"])
        self.rev = out["header"]["revision"]
        return self.rev

    def wait(self, cond, what, deadline_s=harness.DEADLINE_S):
        """Waits for cond(state) on the event stream; the monotonic time of the event that made it
        true (the wait re-checks on every event, so that time is an event's arrival)."""
        end = time.monotonic() + deadline_s
        with self.cond:
            while True:
                if cond(self.state()):
                    return time.monotonic()
                left = end - time.monotonic()
                if left <= 0:
                    raise Failure("waited %.0f s for %s; state %r" % (deadline_s, what,
                                                                       self.state()))
                self.cond.wait(min(left, 0.5))

    def state(self):
        """{nodes: {id: draining}, controller: node id or None, shards: {(stream, shard): value}}
        (a node is draining while its drain intent, drains/<id>, exists)"""
        nodes, shards, cands, drains = {}, {}, [], set()
        for key, (value, crev) in self.keys.items():
            rest = key[len(self.prefix):]
            if rest.startswith("nodes/") and rest[6:].isdigit():
                nodes[int(rest[6:])] = False
            elif rest.startswith("drains/") and rest[7:].isdigit():
                drains.add(int(rest[7:]))
            elif rest.startswith("controller/"):
                cands.append((crev, value.decode()))
            elif rest.startswith("placement/"):
                stream, shard = rest[len("placement/"):].rsplit("/", 1)
                shards[(stream, shard)] = json.loads(value)
        for nid in nodes:
            nodes[nid] = nid in drains
        controller = int(min(cands)[1]) if cands else None
        return {"nodes": nodes, "controller": controller, "shards": shards}

    def caught_up(self):
        """Waits until the event stream has reached etcd's revision of now (etcd answering)."""
        # A key that never exists: the answer is the header alone.
        rev = json.loads(self.c.etcdctl("get", self.prefix + "nodes/", "-w", "json"))[
            "header"]["revision"]
        self.wait(lambda st: self.rev >= rev, "the watch at revision %d" % rev)

    def leases_live(self):
        """Every nodes/<id> key's lease is live in etcd now (not expired and awaiting its
        revocation: after a stall of etcd longer than the TTL every lease is, and the keys go
        only as etcd revokes them)."""
        out = json.loads(self.c.etcdctl("get", "--prefix", self.prefix + "nodes/", "-w", "json"))
        for kv in out.get("kvs") or []:
            ttl = json.loads(self.c.etcdctl("lease", "timetolive", "%x" % kv.get("lease", 0),
                                            "-w", "json"))
            if ttl.get("ttl", -1) <= 0:
                return False
        return True

    def node_revision(self, nid):
        """create_revision of the node's key (its registration), 0 when absent."""
        with self.cond:
            kv = self.keys.get("%snodes/%d" % (self.prefix, nid))
            return kv[1] if kv else 0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def settled_without(lost_id, expect_nodes):
    """A state predicate: expect_nodes registered, a live controller, every shard placed with
    a live leader that is not lost_id, unless no live in-sync replica is left (no unclean
    election)."""
    def pred(st):
        live = set(st["nodes"])
        if not set(expect_nodes) <= live or st["controller"] not in live or lost_id in live:
            return False
        if len(st["shards"]) < STREAMS * SHARDS_PER_STREAM:
            return False
        for v in st["shards"].values():
            if v["leader"] == 0 and any(r in live for r in v["isr"]):
                return False
            if v["leader"] != 0 and (v["leader"] not in live or v["leader"] == lost_id):
                return False
        return True
    return pred


def spread(st, ids, what, stream=None):
    """{node: count} of leaderships (`what` "leader") or replicas ("replicas") over the shards
    (of `stream`, or all), every node of `ids` counted even at 0."""
    out = {i: 0 for i in ids}
    for (name, _), v in st["shards"].items():
        if stream is not None and name != stream:
            continue
        for r in ([v["leader"]] if what == "leader" else v["replicas"]):
            out[r] = out.get(r, 0) + 1
    return out


def balanced_on(ids, shards, stream=None):
    """A state predicate: `ids` registered and alone holding the `shards` shards (of `stream`,
    or all), each led from `ids` and fully in sync on min(3, len(ids)) replicas, leaders and
    replicas balanced over `ids` (max - min <= 1): a placement settled after a join or a
    drain."""
    want = min(3, len(ids))

    def pred(st):
        held = {k: v for k, v in st["shards"].items() if stream is None or k[0] == stream}
        if len(held) != shards or not set(ids) <= set(st["nodes"]):
            return False
        for v in held.values():
            if v["leader"] not in ids or len(v["replicas"]) != want or \
               sorted(v["isr"]) != sorted(v["replicas"]) or not set(v["replicas"]) <= set(ids):
                return False
        for what in ("leader", "replicas"):
            counts = spread(st, ids, what, stream)
            if set(counts) != set(ids) or max(counts.values()) - min(counts.values()) > 1:
                return False
        return True
    return pred


# ---- the campaign

class Campaign:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        # One node slot more than the cluster's nodes: the spare f_scale joins (a node it
        # drains and stops is the next spare).
        # With --data the nodes run the kernel dataplane for the libsluice producer
        # (campaign_data.py); scripted scenarios (run_scenario) keep boto3 alone.
        self.c = harness.Cluster(nodes=args.nodes + 1, ttl_s=args.ttl, build_dir=args.build,
                                 name="chx", dataplane=getattr(args, "dataplane", False))
        self.out = {args.nodes + 1}   # Nodes outside the cluster (stopped, no replica).
        self.shard_count = STREAMS * SHARDS_PER_STREAM   # Indexes placed (f_reshard adds).
        self.ops = 0
        self.faults = 0
        self.failover_ms = []
        self.over_bound = 0
        self.counts = {}
        self.data = None
        self.etcd_down_acks = []   # Records acknowledged during each etcd outage.
        # f_etcd_and_node: "kill|stall:ms", etcd answering to the dead node's shards moved.
        self.etcd_node_ms = []
        self.unanswered = 0        # f_term: calls a stopping node closed unanswered (its log).
        self.term_refused = 0      # ... requests it refused before any work (503).
        self.term_dp_cut = 0       # ... dataplane frames it left unanswered (resent).
        self.term_closed = 0       # ... the producers' calls that saw a close (a bound).

    def node(self, nid):
        return self.c.nodes[nid - 1]

    def live_ids(self):
        return [n.id for n in self.c.nodes if n.alive and not n.paused and n.id not in self.out]

    def member_ids(self):
        """The cluster's nodes, whether up or taken down by a fault (not the spare)."""
        return [n.id for n in self.c.nodes if n.id not in self.out]

    def sluice(self, *args):
        self.ops += 1
        return self.c.sluice(*args)

    def start_members(self):
        """Starts the cluster's nodes; waits until they are registered with a controller."""
        ids = self.member_ids()
        for i in ids:
            self.node(i).start()
        self.w.wait(lambda st: set(ids) <= set(st["nodes"]) and st["controller"] in ids,
                    "every node registered and a controller")
        return ids

    def setup(self):
        self.c.up()
        self.w = Watcher(self.c)
        ids = self.start_members()
        for i in range(STREAMS):
            name = "chx-campaign-%d" % i
            if self.args.data:
                self.data.create_stream(name, SHARDS_PER_STREAM)
            elif self.c.kind == "sluiced":
                import campaign_data   # noqa: E402  (boto3)
                campaign_data.create_stream(self.c, name, SHARDS_PER_STREAM)
            else:
                # Agents only: the streams/ key membership reads (its shard_count), written by
                # hand as the membership test does; sluiced writes the whole stream record.
                self.c.etcdctl("put", "/sluice/%s/streams/%s" % (self.c.name, name),
                               json.dumps({"shard_count": SHARDS_PER_STREAM}))
            self.ops += 1
        self.w.wait(settled_without(None, ids), "every shard placed")

    def guarded(self, tag, body):
        """body()'s truth; a failure (the harness's own errors too: a node that does not
        start, a wait past its deadline) is printed with the nodes' log tails, and the
        producers, the watcher and the cluster are stopped on every path."""
        try:
            return bool(body())
        except (Failure, RuntimeError, TimeoutError, OSError) as e:
            print("%s: FAIL (seed=%d): %s: %s" % (tag, self.args.seed, type(e).__name__, e),
                  flush=True)
            for n in self.c.nodes:
                if os.path.exists(n.log_path):
                    print("--- node %d log tail:\n%s" % (n.id, n.log_tail()))
            return False
        finally:
            if self.data:
                self.data.stop()
            if hasattr(self, "w"):
                self.w.stop()
            self.c.cleanup()

    def bound_s(self):
        return 2.0 * self.args.ttl

    def measure(self, t0, lost_id, what):
        """Failover: the fault at t0 to the event that settled the cluster without lost_id."""
        t1 = self.w.wait(settled_without(lost_id, [i for i in self.live_ids() if i != lost_id]),
                         "failover after " + what)
        ms = (t1 - t0) * 1000.0
        self.failover_ms.append(ms)
        if ms > self.bound_s() * 1000.0:
            self.over_bound += 1
            print("cluster-campaign: %s: failover %.0f ms over the bound %.0f ms (load %s)" %
                  (what, ms, self.bound_s() * 1000, os.getloadavg()[0]), flush=True)

    def rejoin(self, nid, what):
        ids = self.live_ids()
        self.w.wait(lambda st: nid in st["nodes"] and settled_without(None, ids)(st),
                    "node %d back after %s" % (nid, what))

    # Each fault: inject, check what must follow, heal, wait until settled.

    def f_kill(self, nid, what):
        t0 = time.monotonic()
        self.node(nid).kill()
        self.measure(t0, nid, what)
        self.node(nid).start()
        self.rejoin(nid, what)

    def f_kill_controller(self):
        self.f_kill(self.w.state()["controller"], "SIGKILL controller")

    def f_kill_leader(self):
        leaders = sorted({v["leader"] for v in self.w.state()["shards"].values() if v["leader"]})
        self.f_kill(self.rng.choice(leaders), "SIGKILL leader")

    def f_kill_any(self):
        self.f_kill(self.rng.choice(self.live_ids()), "SIGKILL node")

    def f_pause(self):
        nid = self.rng.choice(self.live_ids())
        t0 = time.monotonic()
        self.node(nid).pause()
        self.measure(t0, nid, "SIGSTOP")   # Its lease expires while it sleeps.
        self.node(nid).resume()            # Wakes up believing it holds what it held: fenced.
        self.rejoin(nid, "SIGCONT")

    def f_cut_etcd(self):
        n = self.node(self.rng.choice(self.live_ids()))
        t0 = time.monotonic()
        self.c.partition_etcd(n)
        self.measure(t0, n.id, "cut from etcd")
        self.c.heal_etcd(n)
        self.rejoin(n.id, "etcd healed")

    def f_cut_peer(self):
        a, b = self.rng.sample(self.live_ids(), 2)
        self.c.partition(self.node(a), self.node(b))
        # Membership goes through etcd, not between nodes: nothing may move (the data checks
        # cover replication across the cut); a few lease periods of it, then heal.
        time.sleep(self.args.ttl)   # The fault's duration, not a wait for a condition.
        self.c.heal(self.node(a), self.node(b))
        self.w.wait(settled_without(None, self.live_ids()), "settled after a healed cut")

    def etcd_outage(self, down, up, what):
        """etcd away for ETCD_OUTAGE_TTLS lease TTLs with the producers putting; then back,
        and the cluster settled again. Puts to shards with a live leader go on meanwhile (no
        etcd call on a put's path): the records acknowledged are counted per outage."""
        acked = self.data.acked_count() if self.data else 0
        down()
        time.sleep(ETCD_OUTAGE_TTLS * self.args.ttl)   # The outage's length, not a wait.
        if self.data:
            self.etcd_down_acks.append(self.data.acked_count() - acked)
        up()
        self.etcd_back(what)

    def etcd_back(self, what):
        """Waits until etcd answers, every registration's lease is live, the watch has caught
        up with etcd and the cluster is settled; the time it was (the event's arrival). After
        a stall every lease has expired: this waits for etcd to have revoked them and the nodes
        to have registered again, not for a stale view that still shows them."""
        harness.wait_for(self.c.etcd_healthy, "etcd answering after " + what)
        harness.wait_for(self.w.leases_live, "every registration live after " + what)
        self.w.caught_up()
        return self.w.wait(settled_without(None, self.live_ids()), "settled after " + what)

    def f_etcd_kill(self):
        """etcd SIGKILLed, restarted on its data directory (etcd extends every lease)."""
        self.etcd_outage(self.c.etcd_kill, self.c.etcd_start, "etcd restarted")

    def f_etcd_stall(self):
        """etcd SIGSTOPped past every lease's TTL, then SIGCONTed: every lease expires at once,
        every node registers again; the controller waits for them before placing."""
        self.etcd_outage(self.c.etcd_pause, self.c.etcd_resume, "etcd resumed")

    def f_etcd_and_node(self):
        """etcd away (SIGKILLed or SIGSTOPped, the seed's choice) and a node SIGKILLed during
        the outage; etcd back after ETCD_OUTAGE_TTLS TTLs. Nothing can be placed while etcd
        is away (placement is written there); once it answers, the dead node's shards move
        when its lease lapses: after a restart one TTL plus ETCD_ELECTION_TIMEOUT_S later
        (etcd extended every lease); after a stall every lease lapsed meanwhile and the new
        controller's grace (one TTL) waits for the others to register again. Measured from
        etcd answering against that bound plus one TTL of slack (the failover bound's).
        Then the node is restarted."""
        stall = self.rng.random() < 0.5
        down, up = ((self.c.etcd_pause, self.c.etcd_resume) if stall else
                    (self.c.etcd_kill, self.c.etcd_start))
        what = "etcd %s and node %%d SIGKILLed" % ("stalled" if stall else "SIGKILLed")
        # A node leading shards: one leading none leaves nothing to move (nothing measured).
        nid = self.rng.choice(sorted({v["leader"] for v in self.w.state()["shards"].values()
                                      if v["leader"] in self.live_ids()}))
        what %= nid
        acked = self.data.acked_count() if self.data else 0
        down()
        self.node(nid).kill()
        time.sleep(ETCD_OUTAGE_TTLS * self.args.ttl)   # The outage's length, not a wait.
        if self.data:
            self.etcd_down_acks.append(self.data.acked_count() - acked)
        up()   # A restart returns once etcd answers; SIGCONT at once.
        t0 = time.monotonic()
        harness.wait_for(self.c.etcd_healthy, "etcd answering after " + what)
        t1 = self.w.wait(settled_without(nid, self.live_ids()), "failover after " + what)
        ms = (t1 - t0) * 1000.0
        self.etcd_node_ms.append("%s:%d" % ("stall" if stall else "kill", ms))
        bound_ms = (2 * self.args.ttl + (0 if stall else ETCD_ELECTION_TIMEOUT_S)) * 1000.0
        if ms > bound_ms:
            self.over_bound += 1
            print("cluster-campaign: %s: placed without it %.0f ms after etcd answered, over "
                  "%.0f ms (load %s)" % (what, ms, bound_ms, os.getloadavg()[0]), flush=True)
        self.node(nid).start()
        self.etcd_back(what)
        self.rejoin(nid, what)

    # The API's drain as sluiced logs it (control/server.c: server_drain_over, _cut).
    DRAIN_DONE = re.compile(rb"stopped taking work: every call answered \((\d+) requests "
                            rb"refused")
    DRAIN_CUT = re.compile(rb"(?:shutdown_grace_ms ended|stopped at once): (\d+) calls \(or "
                           rb"request heads\) closed unanswered \((\d+) requests refused")
    DP_CUT = re.compile(rb"stopped with (\d+) frames unanswered")

    def f_term(self):
        """A node SIGTERMed under load, not drained first (the producers keep calling it
        until it has exited): its API answers what it took within [server]
        shutdown_grace_ms (10 s by default) and refuses the rest before any work. Counted
        from its own log: the calls it closed unanswered (`unanswered`, must stay 0), the
        requests it refused while stopping, the dataplane frames left unanswered (libsluice
        resends them). The producers' closed connections to it are counted too: that count
        includes a request sent at the very moment an idle connection closed, which the node
        never read (docs/OPERATIONS.md "Stopping"), so it is a bound, not the count."""
        nid = self.rng.choice(self.live_ids())
        n = self.node(nid)
        offset = os.path.getsize(n.log_path)
        closed = self.closed_calls(nid)
        n.terminate()
        harness.wait_for(lambda: n.proc.poll() is not None, "node %d exits after SIGTERM" % nid,
                         deadline_s=harness.DEADLINE_S * 2)
        rc = n.proc.returncode
        n.reaped()
        self.term_closed += self.closed_calls(nid) - closed
        with open(n.log_path, "rb") as f:
            f.seek(offset)
            log = f.read()
        check(rc == 0, "node %d exited %d after SIGTERM" % (nid, rc))
        done, cut = self.DRAIN_DONE.search(log), self.DRAIN_CUT.search(log)
        check(done or cut, "node %d stopped without its API's drain line" % nid)
        self.unanswered += int(cut.group(1)) if cut else 0
        self.term_refused += int((cut or done).group(2 if cut else 1))
        self.term_dp_cut += sum(int(m.group(1)) for m in self.DP_CUT.finditer(log))
        self.w.wait(settled_without(nid, self.live_ids()), "placed without node %d" % nid)
        n.start()
        self.rejoin(nid, "SIGTERM")

    def closed_calls(self, nid):
        """The producers' calls to node nid that ended with the connection closed or timed
        out without an answer (botocore's exception, the node named)."""
        if not self.data:
            return 0
        with self.data.lock:
            return sum(self.data.error_kinds.get("%s@n%d" % (k, nid), 0)
                       for k in ("ConnectionClosedError", "ReadTimeoutError"))

    def drain(self, nid, *extra):
        """`sluice cluster drain`; a node whose lease lapsed on its own (a keepalive starved on
        a loaded machine: TTL 2 s) is not registered until it rejoins, which it does by itself:
        wait for that and ask again (seed 9003 once met it; its replay did not)."""
        for attempt in range(DRAIN_TRIES):
            crev = self.w.node_revision(nid)
            try:
                self.sluice("drain", str(nid), *extra)
                return
            except RuntimeError as e:
                if "not registered" not in str(e) or attempt + 1 == DRAIN_TRIES:
                    raise
            # A registration newer than the one seen (the watch may not have shown the lapse).
            self.w.wait(lambda st: self.w.node_revision(nid) > crev,
                        "node %d registered again" % nid)

    def f_drain(self):
        nid = self.rng.choice(self.live_ids())
        self.drain(nid)

        def drained(st):
            live = set(st["nodes"])
            return st["nodes"].get(nid) is True and all(
                v["leader"] != nid or not any(r in live and r != nid for r in v["isr"])
                for v in st["shards"].values())
        self.w.wait(drained, "node %d drained" % nid)
        self.ops += 1
        status = self.c.status()
        shown = {n["id"]: n["draining"] for n in status["nodes"]}
        check(shown.get(nid) is True, "status shows node %d draining: %r" % (nid, shown))
        self.drain(nid, "--undo")
        self.w.wait(lambda st: st["nodes"].get(nid) is False, "node %d undrained" % nid)

    def f_scale(self):
        """Scale-out and drain: the spare joins; once every shard is in sync and leaders and
        replicas are balanced with it (it leads shards), another node is drained; once it
        holds nothing it is stopped, its registration goes, its drain intent is undone (so
        it joins with work next time): it is the spare."""
        spare = min(self.out)
        self.node(spare).start()
        self.out.discard(spare)
        ids = self.live_ids()
        shards = self.shard_count
        self.w.wait(lambda st: balanced_on(ids, shards)(st) and
                    spread(st, ids, "leader")[spare] > 0,
                    "node %d joined: leading, every replica in sync, balanced" % spare,
                    deadline_s=SETTLE_S)
        victim = self.rng.choice([i for i in ids if i != spare])
        self.drain(victim)
        rest = [i for i in ids if i != victim]
        self.w.wait(lambda st: st["nodes"].get(victim) is True and balanced_on(rest, shards)(st),
                    "node %d drained: no leadership, no replica" % victim, deadline_s=SETTLE_S)
        self.out.add(victim)   # The producers leave it before it stops.
        self.node(victim).stop()
        self.w.wait(lambda st: victim not in st["nodes"] and balanced_on(rest, shards)(st),
                    "node %d gone, the placement unchanged" % victim)
        self.drain(victim, "--undo")

    def reshard(self, k, stream, call, parents, what):
        """One reshard through client k, retried while refused (the stream UPDATING after an
        earlier one, a node just back); then every live node lists each parent ended."""
        import botocore.exceptions
        import campaign_data   # noqa: E402  (boto3)
        errors = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)

        def listed(kk):
            try:
                return kk.list_shards(StreamName=stream)["Shards"]
            except errors:
                return None   # A node just back, or refusing while it stops: asked again.

        def done():
            # A call whose answer was lost (a timeout) may have been applied: its children
            # show (once the stream is ACTIVE again).
            got = listed(k) or []
            return any(x.get("ParentShardId") == parents[0] for x in got)
        end = time.monotonic() + SETTLE_S
        while True:
            try:
                call()
                break
            except errors as e:
                if done():
                    break
                if time.monotonic() > end:
                    raise Failure("%s on %s: %s" % (what, stream, e))
                time.sleep(0.2)
        self.ops += 1

        def ended(nid):
            got = listed(campaign_data.client(self.node(nid).api_url))
            return got is not None and all("EndingSequenceNumber" in x["SequenceNumberRange"]
                                           for x in got if x["ShardId"] in parents)
        harness.wait_for(lambda: all(ended(i) for i in self.live_ids()),
                         "%s of %s: every node lists %s ended" % (what, stream, parents),
                         deadline_s=SETTLE_S)

    def f_reshard(self):
        """A SplitShard of a random open shard, then a MergeShards of its two children, each
        through a live node picked at random, under the producers; each waits until every
        live node lists its parents ended (their leaders' cuts recorded). The ledger check
        at the end covers the records on both sides of each cut."""
        import campaign_data   # noqa: E402  (boto3)
        stream = "chx-campaign-%d" % self.rng.randrange(STREAMS)
        box = {}

        def body():
            self.c.enter()
            try:
                k = campaign_data.client(self.node(self.rng.choice(self.live_ids())).api_url)
                open_ = [x for x in k.list_shards(StreamName=stream)["Shards"]
                         if "EndingSequenceNumber" not in x["SequenceNumberRange"]]
                parent = self.rng.choice(open_)
                lo = int(parent["HashKeyRange"]["StartingHashKey"])
                hi = int(parent["HashKeyRange"]["EndingHashKey"])
                self.reshard(k, stream, lambda: k.split_shard(
                    StreamName=stream, ShardToSplit=parent["ShardId"],
                    NewStartingHashKey=str(lo + (hi - lo) // 2)), [parent["ShardId"]], "split")
                kids = sorted(x["ShardId"] for x in k.list_shards(StreamName=stream)["Shards"]
                              if x.get("ParentShardId") == parent["ShardId"])
                k = campaign_data.client(self.node(self.rng.choice(self.live_ids())).api_url)
                self.reshard(k, stream, lambda: k.merge_shards(
                    StreamName=stream, ShardToMerge=kids[0], AdjacentShardToMerge=kids[1]),
                    kids, "merge")
                self.shard_count += 3
            except BaseException as e:   # Re-raised on the campaign's thread.
                box["e"] = e
        t = threading.Thread(target=body)
        t.start()
        t.join()
        if "e" in box:
            raise box["e"]

    FAULTS = ["f_kill_controller", "f_kill_leader", "f_kill_any", "f_pause", "f_cut_etcd",
              "f_cut_peer", "f_drain", "f_etcd_kill", "f_etcd_stall", "f_etcd_and_node"]
    # A join needs the data path: only a shard's leader (sluiced) puts a caught-up replica in
    # its in-sync set, so cluster_agent nodes never settle with a new node. Reshards are
    # sluiced's (its Kinesis API).
    FAULTS_SLUICED = ["f_scale", "f_reshard", "f_term"]

    def run(self):
        end = time.monotonic() + self.args.seconds
        # Every kind once first (a short run still covers them), then the seed's choices.
        faults = self.FAULTS + (self.FAULTS_SLUICED if self.c.kind == "sluiced" else [])
        if self.args.faults:
            unknown = set(self.args.faults) - set(faults)
            check(not unknown, "--faults: %s not among %s" % (sorted(unknown), faults))
            faults = list(self.args.faults)
        order = list(faults)
        self.rng.shuffle(order)
        while time.monotonic() < end or order:
            name = order.pop(0) if order else self.rng.choice(faults)
            self.counts[name] = self.counts.get(name, 0) + 1
            self.faults += 1
            getattr(self, name)()
            if self.w.error:
                raise Failure(self.w.error)
            if not order and time.monotonic() >= end:
                break

    def verdict(self):
        split, invalid = history_violations(sorted(self.w.writes, key=lambda x: x[0]))
        acked = lost = dup = mis = dp_dup = 0
        if self.args.data:
            acked, (lost, dup, mis, dsplit, dp_dup) = self.data.finish()
            split += dsplit
        # dp_acked: of acked, the libsluice producer's; dp_dup: its records stored twice (a
        # batch resent to a new leader: the dedup window is per node), reported, not a failure.
        # unanswered: the calls nodes stopped by f_term closed unanswered, by their own count.
        print("cluster-campaign: seed=%d seconds=%d ops=%d faults=%d acked=%d lost=%d dup=%d "
              "misordered=%d split_brain=%d dp_acked=%d dp_dup=%d unanswered=%d" %
              (self.args.seed, self.args.seconds, self.ops, self.faults, acked, lost, dup, mis,
               split, self.data.dp_acked if self.data else 0, dp_dup, self.unanswered),
              flush=True)
        f = sorted(self.failover_ms)
        print("cluster-campaign-failover: ttl_s=%d bound_ms=%d n=%d median_ms=%.0f max_ms=%.0f "
              "over_bound=%d" % (self.args.ttl, self.bound_s() * 1000, len(f),
                                 statistics.median(f) if f else 0, f[-1] if f else 0,
                                 self.over_bound))
        print("cluster-campaign-detail: nodes=%s placement_writes=%d invalid_writes=%d "
              "etcd_events=%d acked_while_etcd_down=%s faults_by_kind=%s data=%s%s" %
              (self.c.kind, len(self.w.writes), invalid, self.w.events,
               json.dumps(self.etcd_down_acks), json.dumps(self.counts, sort_keys=True),
               "on" if self.args.data else "off (membership and placement checks only)",
               " dp_rounds=%d errors=%s" % (self.data.dp_rounds, json.dumps(
                   self.data.error_kinds, sort_keys=True)) if self.data else ""))
        print("cluster-campaign-steps: etcd_and_node_ms=%s term_refused=%d term_dp_unanswered=%d "
              "term_closed_seen=%d" % (json.dumps(self.etcd_node_ms), self.term_refused,
                                       self.term_dp_cut, self.term_closed), flush=True)
        over = self.over_bound if self.args.bound_check else 0
        return lost == dup == mis == split == invalid == over == self.unanswered == 0


def seed_of(args):
    """--seed, else TEST_SEED, else a new one (printed by each test's line)."""
    if args.seed is not None:
        return args.seed
    return int(os.environ.get("TEST_SEED", "0")) or random.SystemRandom().randrange(1, 1 << 31)


def run_scenario(tag, args, scenario, keys_per_producer=None):
    """A scripted test on the campaign's cluster instead of its scheduler (cluster_scale,
    cluster_etcd): three sluiced nodes and a spare slot, TTL 2 s, the producers' ledger;
    scenario(camp, data) once the namespaces, etcd and the watcher are up. Exits 0 when it
    passed; the cluster is torn down on every path."""
    import campaign_data   # noqa: E402  (boto3)
    args.nodes, args.ttl, args.data, args.seconds, args.bound_check = 3, 2, True, 0, False
    args.seed = seed_of(args)
    camp = Campaign(args)
    if not harness.cluster_mode_supported(camp.c.sluiced):
        raise SystemExit("%s: sluiced has no [cluster] section" % tag)
    data = camp.data = campaign_data.Data(camp)
    if keys_per_producer:
        data.keys_per_producer = keys_per_producer

    def body():
        camp.c.up()
        camp.w = Watcher(camp.c)
        scenario(camp, data)
        return True
    ok = camp.guarded(tag, body)
    print("ok" if ok else "FAIL", flush=True)
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--ttl", type=int, default=2)
    ap.add_argument("--data", action="store_true")
    ap.add_argument("--faults", type=lambda v: v.split(","), default=None,
                    help="only these fault kinds (comma-separated), each once first")
    ap.add_argument("--bound-check", action="store_true",
                    help="fail when a failover exceeds 2 x the lease TTL")
    args = ap.parse_args()
    args.seed = seed_of(args)
    args.dataplane = args.data   # The libsluice producer beside the boto3 ones.
    self_check_history()
    self_check_ledger()
    camp = Campaign(args)
    if args.data:
        import campaign_data   # noqa: E402  (boto3 producers; only with --data)
        if not harness.cluster_mode_supported(camp.c.sluiced):
            raise SystemExit("cluster-campaign: --data needs sluiced with a [cluster] "
                             "section (cnode's work); this build has none")
        camp.data = campaign_data.Data(camp)

    def body():
        camp.setup()
        if camp.data:
            camp.data.start()
        camp.run()
        return camp.verdict()
    sys.exit(0 if camp.guarded("cluster-campaign", body) else 1)


if __name__ == "__main__":
    main()
