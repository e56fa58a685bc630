#!/usr/bin/python3
"""
An operator's unclean election (docs/CLUSTER.md "Unclean election"), end to end on
127.0.0.1: a real etcd, two sluiced in cluster mode (replication factor 2, acks =
leader, so the leader acknowledges records its follower never got), boto3, and
`sluice cluster elect --unclean`.

  usage: test_cluster_unclean.py SLUICED

  - the follower stopped (SIGSTOP) leaves the in-sync set; the leader acknowledges
    r5..r9 alone; an election while it leads is refused (it has a leader);
  - the follower killed while stopped (what the leader sent it dies with its socket),
    the leader killed, the follower started again: the shard is unled (leader 0, the
    dead node kept in "isr"), puts fail, and an election of the dead node is refused;
  - `sluice cluster elect STREAM 0 --unclean` (the node picked by its durable end from
    --admin): the follower leads in epoch + 1 with isr [it], puts are answered, reads
    return what it held (r0..r4) and the new records, not r5..r9 (lost: only the dead
    node held them); counted (sluice_cluster_unclean_elections_total) and shown by
    `sluice cluster status`; a second election is refused;
  - the old leader started again follows the new one: its tail r5..r9 cut by the
    leader-epoch rule, it joins the in-sync set and holds exactly the new leader's records.
Waits are for conditions with generous deadlines; no time is asserted.
"""
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster_node as tcn  # noqa: E402  (its Etcd, Node, form, put, read_all, led)

CLUSTER = "cunclean"
# The follower's lease outlasts its stop (until it leaves the in-sync set: CLUSTER_ISR_LAG_MS,
# 3 s), so the controller never drops it from the replicas (a dead node while the leader
# lives); its restart waits for it to run out, the leader's (killed after) a little later.
# Both nodes down meanwhile: no controller changes anything before the follower is back.
TTL_S = 20


def elect(etcd, *args):
    """`sluice cluster elect STREAM 0 ARGS`: (exit code, stdout + stderr)."""
    r = subprocess.run([tcn.SLUICE, "cluster", "elect", tcn.STREAM, "0", "--etcd", etcd.client,
                        "--cluster", CLUSTER] + list(args), capture_output=True, text=True)
    print("elect %s: %d %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr), flush=True)
    return r.returncode, r.stdout + r.stderr


def placement(etcd):
    return list(tcn.placement(etcd, CLUSTER, tcn.STREAM).values())[0]


def metric(node, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % node.admin, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    return None


def put_fails(node, first):
    try:
        res = tcn.put(node, first, 1)
    except Exception as e:   # The SDK's error for the whole call: refused too.
        return str(e)
    return res[0].get("ErrorCode")


def main():
    root = tempfile.mkdtemp(prefix="sluice-cunclean-")
    etcd = tcn.Etcd(root)
    nodes = [tcn.Node(root, i, etcd, cluster=CLUSTER, acks="leader", ttl=TTL_S) for i in (1, 2)]
    done = False
    try:
        leader, (follower,) = tcn.form(nodes)
        tcn.wait_for("both in sync", lambda: sorted(tcn.led(leader)["isr"]) == [1, 2])
        if any("ErrorCode" in r for r in tcn.put(leader, 0, 5)):
            tcn.fail("the first put")
        tcn.wait_for("the follower holds r0..r4", lambda: next(
            r["durable_end"] for r in follower.cluster()["followed"]
            if r["stream"] == tcn.STREAM) >= 5)
        epoch = tcn.led(leader)["epoch"]

        follower.signal(signal.SIGSTOP)
        if any("ErrorCode" in r for r in tcn.put(leader, 5, 5)):
            tcn.fail("acks = leader with the follower stopped")
        tcn.wait_for("the stopped follower out of the in-sync set",
                     lambda: tcn.led(leader)["isr"] == [leader.id])
        code, out = elect(etcd)
        if code != 2 or "only --unclean" not in out:
            tcn.fail("an election without --unclean: %d %s" % (code, out))
        code, out = elect(etcd, "--unclean")
        if code != 1 or "has a leader" not in out:
            tcn.fail("an election while the shard is led: %d %s" % (code, out))

        follower.signal(signal.SIGKILL)
        follower.proc.wait()
        follower.proc = None
        leader.signal(signal.SIGKILL)
        leader.proc.wait()
        leader.proc = None
        follower.start()   # Registered again once its old lease ran out.
        tcn.wait_for("the shard unled (the dead leader's lease ran out)",
                     lambda: placement(etcd)["leader"] == 0)
        p = placement(etcd)
        print("unled: %s" % p, flush=True)
        if p["isr"] != [leader.id] or follower.id not in p["replicas"]:
            tcn.fail("unled placement: %s" % p)
        if put_fails(follower, 50) is None:
            tcn.fail("a put answered while the shard is unled")
        code, out = elect(etcd, "--unclean", "--node", str(leader.id))
        if code != 1 or "not live" not in out:
            tcn.fail("an election of the dead node: %d %s" % (code, out))
        if placement(etcd) != p:
            tcn.fail("a refused election wrote: %s" % placement(etcd))

        code, out = elect(etcd, "--unclean", "--admin", "%d=127.0.0.1:%d" % (
            follower.id, follower.admin))
        if code != 0 or "node %d elected" % follower.id not in out:
            tcn.fail("the unclean election: %d %s" % (code, out))
        p = placement(etcd)
        if (p["leader"], p["epoch"], p["isr"], p.get("unclean_epoch")) != (
                follower.id, epoch + 1, [follower.id], epoch + 1):
            tcn.fail("elected placement: %s" % p)
        tcn.wait_for("the follower leads in epoch %d" % (epoch + 1), lambda: tcn.led(follower)
                     and tcn.led(follower)["epoch"] == epoch + 1)
        if any("ErrorCode" in r for r in tcn.put(follower, 20, 3)):
            tcn.fail("a put to the new leader")
        got = tcn.read_all(follower)
        want = [b"r%d" % i for i in (0, 1, 2, 3, 4, 20, 21, 22)]
        if got != want:
            tcn.fail("read back from the new leader: %s, want %s" % (got, want))
        if metric(follower, "sluice_cluster_unclean_elections_total") != 1:
            tcn.fail("sluice_cluster_unclean_elections_total: %s" %
                     metric(follower, "sluice_cluster_unclean_elections_total"))
        st = subprocess.run([tcn.SLUICE, "cluster", "status", "--etcd", etcd.client,
                             "--cluster", CLUSTER], capture_output=True, text=True)
        if "UNCLEAN election" not in st.stdout:
            tcn.fail("sluice cluster status does not show it: %s" % st.stdout)
        code, out = elect(etcd, "--unclean")
        if code != 1 or "has a leader" not in out:
            tcn.fail("a second election: %d %s" % (code, out))

        leader.start()   # Its log holds r5..r9 in the old epoch: cut, then caught up.
        tcn.wait_for("the old leader back in the in-sync set",
                     lambda: sorted(tcn.led(follower)["isr"]) == [1, 2])
        cut = leader.cluster()["follower"]["truncations"]
        if cut < 1:
            tcn.fail("the old leader's tail went without a cut")
        print("cluster-unclean: lost r5..r9 (acks = leader, on the dead node only), read back "
              "%d, the old leader cut %d time(s) and rejoined" % (len(got), cut), flush=True)
        done = True
    finally:
        tcn.finish(nodes, etcd, root, done)


if __name__ == "__main__":
    main()
