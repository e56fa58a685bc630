#!/usr/bin/python3
"""The cluster harness itself (tests/cluster/harness.py): namespaces come up, etcd answers from
every namespace, a partition blocks and healing restores (TCP connects), node processes start,
are SIGKILLed, paused and restarted, and cleanup leaves nothing behind, also when the harness
fails or is sent SIGTERM.

    test_harness.py BUILD_DIR
"""
import os
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def listen_in(c, ns, addr, port):
    """A TCP listener inside `ns` on addr:port (a thread in that namespace accepts forever)."""
    ready = threading.Event()

    def serve():
        c.enter(ns)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(16)
        ready.set()
        while True:
            conn, _ = s.accept()
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    ready.wait(10)


def network(c):
    n1, n2, n3 = c.nodes
    for ns in [c.client_ns] + [n.ns for n in c.nodes]:
        check(c.tcp_ok(ns, harness.ETCD_ADDR, harness.ETCD_PORT), "etcd reachable from " + ns)
        check(c.etcd_healthy(ns), "etcdctl endpoint health from " + ns)
    listen_in(c, n2.ns, n2.addr, 9000)
    listen_in(c, n3.ns, n3.addr, 9000)
    check(c.tcp_ok(n1.ns, n2.addr, 9000), "n1 -> n2 before the partition")
    c.partition(n1, n2)
    check(not c.tcp_ok(n1.ns, n2.addr, 9000), "n1 -> n2 blocked")
    check(c.tcp_ok(n1.ns, n3.addr, 9000), "n1 -> n3 unaffected")
    check(c.tcp_ok(n1.ns, harness.ETCD_ADDR, harness.ETCD_PORT), "n1 -> etcd unaffected")
    c.partition_etcd(n1)
    check(not c.tcp_ok(n1.ns, harness.ETCD_ADDR, harness.ETCD_PORT), "n1 -> etcd blocked")
    check(not c.tcp_ok(n1.ns, n2.addr, 9000), "n1 -> n2 still blocked")
    check(c.tcp_ok(n2.ns, harness.ETCD_ADDR, harness.ETCD_PORT), "n2 -> etcd unaffected")
    c.heal(n1, n2)
    check(c.tcp_ok(n1.ns, n2.addr, 9000), "n1 -> n2 healed")
    check(not c.tcp_ok(n1.ns, harness.ETCD_ADDR, harness.ETCD_PORT), "n1 -> etcd still blocked")
    c.heal_etcd(n1)
    check(c.tcp_ok(n1.ns, harness.ETCD_ADDR, harness.ETCD_PORT), "n1 -> etcd healed")
    check("chx" not in c.run(["nft", "list", "tables"], ns=n1.ns),
          "n1's nft table gone when healed")


def processes(c):
    c.start_nodes()
    st = harness.wait_for(lambda: (lambda s: s if len(s["nodes"]) == 3 else None)(c.status()),
                          "3 nodes registered")
    check(sorted(n["id"] for n in st["nodes"]) == [1, 2, 3], "node ids %r" % st["nodes"])
    n1 = c.nodes[0]
    pid = n1.proc.pid
    check(open("/proc/%d/comm" % pid).read().strip() in ("cluster_agent", "sluiced"),
          "the PID the harness holds is the node's own (ip netns exec execs it)")
    n1.pause()
    harness.wait_for(lambda: open("/proc/%d/stat" % pid).read().split(")")[-1].split()[0] == "T",
                     "the paused node stopped")
    n1.resume()
    n1.kill()
    check(not os.path.exists("/proc/%d" % pid), "killed node is gone")
    # Its registration goes with its lease (TTL), and comes back with the restart.
    harness.wait_for(lambda: 1 not in [n["id"] for n in c.status()["nodes"]], "node 1's key gone")
    n1.start()
    harness.wait_for(lambda: 1 in [n["id"] for n in c.status()["nodes"]], "node 1 back")


def etcd_members(build):
    """etcd_members=3: three members with one leader; with a follower stopped the other two
    agree on a leader, and it answers again when resumed; the leader SIGKILLed, the other
    two elect one; restarted, it rejoins; nothing is left after cleanup."""
    c = harness.Cluster(nodes=1, build_dir=build, etcd_members=3)
    try:
        c.up()
        check(len(c.etcd_url.split(",")) == 3, "the nodes' endpoints: %s" % c.etcd_url)
        lead = harness.wait_for(lambda: [c.etcd_leader()] if c.etcd_leader() is not None
                                else None, "an etcd leader")[0]
        follower = (lead + 1) % 3
        c.etcd_member_pause(follower)
        check(not c.etcd_member_healthy(follower), "a stopped member does not answer")
        harness.wait_for(lambda: c.etcd_leader() not in (None, follower),
                         "a leader the two others agree on while a follower is stopped")
        c.etcd_member_resume(follower)
        harness.wait_for(lambda: c.etcd_member_healthy(follower), "the resumed member")
        c.etcd_member_kill(lead)
        new = harness.wait_for(lambda: [c.etcd_leader()] if c.etcd_leader() is not None
                               else None, "a leader after the old one was killed")[0]
        check(new != lead, "a new etcd leader")
        c.etcd_member_start(lead)
        harness.wait_for(lambda: len(c.etcd_members_status()) == 3 and
                         c.etcd_leader() is not None, "the three agreeing after the rejoin")
        check(c.etcdctl("put", "k", "v") != "", "a write through the three endpoints")
    finally:
        c.cleanup()
    check(c.leftovers() == [], "left after the 3-member cleanup: %r" % c.leftovers())


def child(mode):
    """Runs in a subprocess: brings a cluster up, then fails or waits for a signal."""
    c = harness.Cluster(nodes=2, build_dir=sys.argv[1])
    c.up()
    c.start_nodes()
    pids = [n.proc.pid for n in c.nodes] + [c.etcd_proc.pid]
    print(c.pid, c.workdir, ",".join(map(str, pids)), flush=True)
    if mode == "raise":
        raise RuntimeError("a failing test")
    signal.pause()


def cleanup_paths(build):
    for mode in ("raise", "sigterm", "sigkill"):
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), build, "--child", mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline().split()
        if len(line) != 3:   # (stderr is read only then: it ends when the child does)
            check(False, "child %s started: %r %s" % (mode, line, p.stderr.read()[-2000:]))
        if mode != "raise":
            p.send_signal(signal.SIGTERM if mode == "sigterm" else signal.SIGKILL)
        p.wait(timeout=120)
        pid, workdir = int(line[0]), line[1]
        if mode == "sigkill":
            # Nothing runs in a SIGKILLed harness: the next harness sweeps what it left.
            check(os.path.exists(workdir), "a SIGKILLed harness left its workdir")
            harness.sweep_stale()
        left = [ns for ns in harness.namespaces() if ns.startswith("chx-%d-" % pid)]
        check(not left and not os.path.exists(workdir),
              "after %s: namespaces %r, workdir exists %s" % (mode, left, os.path.exists(workdir)))
        alive = [q for q in line[2].split(",") if not harness._gone(q)]
        check(not alive, "after %s: processes left %r" % (mode, alive))
        print("cleanup after %s: nothing left" % mode)


def main():
    if len(sys.argv) > 2 and sys.argv[2] == "--child":
        child(sys.argv[3])
        return
    build = sys.argv[1]
    c = harness.Cluster(nodes=3, build_dir=build)
    try:
        c.up()
        network(c)
        print("network: namespaces up, etcd reachable from each, partitions block and heal")
        processes(c)
        print("processes (%s): start, pause, SIGKILL, lease expiry, restart" % c.kind)
    finally:
        c.cleanup()
    check(c.leftovers() == [], "left after cleanup: %r" % c.leftovers())
    etcd_members(build)
    print("etcd_members=3: a stopped follower, the leader killed and elected anew, rejoined")
    cleanup_paths(build)
    print("test_harness: ok")


if __name__ == "__main__":
    main()
