#!/usr/bin/python3
"""A 3-member etcd under the cluster, one member lost under load (issue 15; docs/CLUSTER.md
failure table, "an etcd member lost", "etcd's leader lost").

    test_cluster_etcd3.py BUILD_DIR [--seed S]

The harness's namespaces with etcd_members=3 (tests/cluster/harness.py: members on
198.18.0.2, .4 and .5, each node given all three endpoints in that order), three sluiced
nodes (rf 3, acks quorum, lease TTL 2 s), a 6-shard stream and the campaign's boto3
producers (campaign_data.py: a ledger of every acknowledged record, no client retry)
putting throughout. Every node's etcd calls go to the first member that answers, so the
members the test takes down are the ones the nodes use (the one most of them use, should a
timeout have moved one):

  follower  the nodes' member (member 0), etcd's leadership moved off it first (etcdctl
            move-leader), SIGKILLed: every node moves to another member (its
            sluice_cluster_etcd_endpoint; sluice_cluster_etcd_failovers_total grows on
            each node that used it), puts go on; nothing registers again (each
            registration's create_revision as before) and no placement is written; each
            node opens at most WATCH_OPENS_PER_LOSS placement watches meanwhile; the member
            is started again and rejoins.
  leader    the member the nodes moved to, made etcd's leader first, SIGKILLed: the other
            two elect a leader, every node moves to a member that is up, leases survive
            (etcd extends them on a leader change: nothing registers again), no placement is
            written, puts go on; the member is started again and rejoins (the three agree
            on one leader).

  stopped   the member the nodes use then, a follower, SIGSTOPped (connections accepted,
            nothing answered): every node moves on after a call's timeout (the member
            thread's calls are bounded by a third of the TTL), puts go on; once it is
            resumed: nothing registered again, no placement written meanwhile (read then:
            the test's own etcdctl may have been stuck on it). With the membership's 2 s
            timeout and TTL 2 s, a campaigning node waited 2 s on it after its campaign's
            timeout, its lease lapsed and it registered again (2 of 3 nodes, 52 placement
            writes).

In the first two, with the member still down, a stream is created and records to every one of its
shards acknowledged: its metadata written, the controller's watch seeing it and placing it,
each node's placement watcher seeing its shards (watches opened on the next endpoint).

At the end every acknowledged record is read from every node: exactly once, at its
number, with its bytes, in per-key order. No timing assertion: conditions are awaited
with the harness's deadlines.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import campaign       # noqa: E402
import harness        # noqa: E402
import test_cluster_etcd   # noqa: E402  (its start, /metrics reader and ledger check)

STREAM = "chx-etcd3"
# Shards of the stream created while a member is down.
NEW_SHARDS = 2
# Acknowledging calls awaited at each step (as test_cluster_etcd's).
CALLS_PER_STEP = test_cluster_etcd.CALLS_PER_STEP
ENDPOINT = "sluice_cluster_etcd_endpoint"
FAILOVERS = "sluice_cluster_etcd_failovers_total"
# Placement watches a node may open while a member is down: the one its loss ended, and
# one more should the stream end again while etcd elects a leader. A watcher that could
# not open on another member re-read every CLUSTER_NODE_RETRY_MS instead (7 in a short
# loss without the fix).
WATCH_OPENS_PER_LOSS = 3


class Cluster3(harness.Cluster):
    """The harness's cluster with a 3-member etcd (run_scenario builds harness.Cluster)."""

    def __init__(self, **kw):
        kw.setdefault("etcd_members", 3)
        super().__init__(**kw)


def metrics(c, node):
    """(the etcd URL the node's member uses, the process's etcd failovers) from /metrics."""
    text = test_cluster_etcd.admin_get(c, node, "/metrics")
    url = next((line.split('url="', 1)[1].split('"', 1)[0] for line in text.splitlines()
                if line.startswith(ENDPOINT + "{")), None)
    if url is None:
        raise campaign.Failure("node %d: no %s in /metrics" % (node.id, ENDPOINT))
    return url, int(test_cluster_etcd.metric(c, node, FAILOVERS))


def watch_opens(c, node):
    """The node's placement watches opened so far."""
    return int(test_cluster_etcd.metric(c, node, test_cluster_etcd.WATCH_OPENS))


def wait_leader(c, what):
    """The index of etcd's leader once the answering members agree on one."""
    def leader():
        lead = c.etcd_leader()
        return lead is not None and [lead]
    return harness.wait_for(leader, "an etcd leader " + what)[0]


def move_leader(c, to):
    """Makes member `to` etcd's leader (etcdctl move-leader, asked of the current leader)."""
    lead = wait_leader(c, "before moving it to member %d" % to)
    if lead == to:
        return
    target = c.etcd_members_status()[to][0]
    c.run(["etcdctl", "--endpoints", c.etcd_member_urls[lead], "--dial-timeout=2s",
           "--command-timeout=10s", "move-leader", "%x" % target])
    harness.wait_for(lambda: c.etcd_leader() == to, "etcd member %d leading" % to)


def new_stream_taken(camp, data, name, what):
    """A change the cluster can act on only through its watches, with the member down: a
    stream created (metadata written through another member), placed by the controller (its
    watch) and led by the nodes (their placement watchers), records to each of its shards
    acknowledged."""
    data.create_stream(name, NEW_SHARDS)
    want = {(name, "shardId-%012d" % i) for i in range(NEW_SHARDS)}

    def taken():
        with data.lock:
            return want <= set(data.shard_ack_times)
    harness.wait_for(taken, "records acknowledged on every shard of %s (%s)" % (name, what))


def three_agree(c, member, what):
    harness.wait_for(lambda: c.etcd_leader() is not None and
                     len(c.etcd_members_status()) == len(c.etcd_member_urls),
                     "the three members agreeing on a leader after member %d came back (%s)" %
                     (member, what))


def lose_member(camp, data, ids, leader, what, stop=False):
    """SIGKILLs (`stop`: SIGSTOPs) the etcd member most nodes use under load, made etcd's
    leader first (`leader`) or not leading; checks what the cluster did; starts (resumes)
    it again."""
    c, w = camp.c, camp.w
    before = {i: metrics(c, camp.node(i)) for i in ids}
    used = [u for u, _ in before.values()]
    dead_url = max(set(used), key=used.count)
    member = c.etcd_member_urls.index(dead_url)
    if leader:
        move_leader(c, member)
    elif wait_leader(c, "before %s" % what) == member:
        move_leader(c, (member + 1) % len(c.etcd_member_urls))
    on = [i for i in ids if before[i][0] == dead_url]   # The nodes whose calls go there.
    regs = {i: w.node_revision(i) for i in ids}
    opens = {i: watch_opens(c, camp.node(i)) for i in ids}
    writes = len(w.writes)
    acked0 = data.acked_count()
    (c.etcd_member_pause if stop else c.etcd_member_kill)(member)
    # A quorum of two answers (a new leader when the lost one led).
    lead = wait_leader(c, "without member %d (%s)" % (member, what))
    campaign.check(lead != member, "%s: the lost member does not lead" % what)
    # Every node's lease and election calls go to a member that is up.
    harness.wait_for(lambda: all(metrics(c, camp.node(i))[0] != dead_url for i in ids),
                     "every node off member %d (%s)" % (member, what))
    data.more_acks(CALLS_PER_STEP, "with etcd member %d down (%s)" % (member, what))
    after = {i: metrics(c, camp.node(i)) for i in ids}
    if stop:
        # The test's own etcdctl (the watcher) may be stuck on the stopped member: what
        # happened meanwhile is read once it runs again (a re-registration or a placement
        # write in the stall stays in the history).
        c.etcd_member_resume(member)
        three_agree(c, member, what)
    # Registrations and placement written through the remaining members are in the watch.
    w.caught_up()
    seen = {
        "what": what, "member": member, "nodes_on_it": on, "etcd_leader_after": lead,
        "acked_while_down": data.acked_count() - acked0,
        "endpoints": {i: after[i][0] for i in ids},
        "failovers": {i: after[i][1] - before[i][1] for i in ids},
        "registered_again": sorted(i for i in ids if w.node_revision(i) != regs[i]),
        "placement_writes": len(w.writes) - writes,
    }
    print("cluster-etcd3: %s" % json.dumps(seen, sort_keys=True), flush=True)
    campaign.check(all(seen["failovers"][i] > 0 for i in on),
                   "%s: every node that used member %d counted its move" % (what, member))
    campaign.check(seen["registered_again"] == [],
                   "%s: no node registered again (its lease survived)" % what)
    campaign.check(seen["placement_writes"] == 0, "%s: no placement written" % what)
    if stop:
        data.more_acks(CALLS_PER_STEP, "after etcd member %d resumed (%s)" % (member, what))
        return
    new_stream_taken(camp, data, "%s-m%d" % (STREAM, member), what)
    opens = {i: watch_opens(c, camp.node(i)) - opens[i] for i in ids}
    print("cluster-etcd3: %s: placement watches opened while member %d was down: %s" %
          (what, member, json.dumps(opens, sort_keys=True)), flush=True)
    # Bounded where no election follows the loss: while etcd elects a leader a member
    # without one refuses watches (hasleader), and the watcher retries at its pace.
    campaign.check(leader or all(v <= WATCH_OPENS_PER_LOSS for v in opens.values()),
                   "%s: at most %d placement watches opened per node while member %d was "
                   "down: %r" % (what, WATCH_OPENS_PER_LOSS, member, opens))
    c.etcd_member_start(member)
    three_agree(c, member, what)
    data.more_acks(CALLS_PER_STEP, "after etcd member %d rejoined (%s)" % (member, what))
    campaign.check(all(w.node_revision(i) == regs[i] for i in ids),
                   "%s: no node registered again after the member rejoined" % what)


def run(camp, data):
    ids = test_cluster_etcd.start_loaded(camp, data, STREAM, "before the faults")
    # (1) The nodes' member (the first endpoint, unless a timeout moved them) as a follower;
    # (2) the member they moved to, made etcd's leader.
    lose_member(camp, data, ids, False, "a follower lost")
    lose_member(camp, data, ids, True, "the leader lost")
    # (3) the member they moved to then, a follower, SIGSTOPped (its connections stay open).
    lose_member(camp, data, ids, False, "a follower stopped", stop=True)
    test_cluster_etcd.ledger_read_back(camp, data, ids, "cluster-etcd3")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    harness.Cluster = Cluster3
    campaign.run_scenario("cluster-etcd3", args, run)


if __name__ == "__main__":
    main()
