"""A cluster of Sluice nodes on one machine: network namespaces joined by a bridge, one etcd,
one node process per namespace; kills, pauses, restarts and nftables partitions
(docs/CLUSTER.md "The cluster harness").

Layout (every name starts with `chx`, namespaces carry the harness's PID so a harness that
was SIGKILLed is recognised and swept by the next one):

    namespace chx-<pid>-br   the bridge `chxbr`, one veth end per other namespace
    namespace chx-<pid>-e    etcd on 198.18.0.2:2379 (peer port 2380); with etcd_members=3
                             three members, on 198.18.0.2, .4 and .5 (each :2379, peer :2380),
                             the nodes given all three endpoints
    namespace chx-<pid>-c    clients (producers, checkers, `sluice cluster`): 198.18.0.3
    namespace chx-<pid>-n<i> node i: 198.18.0.<10+i>; API :4567, admin :4568,
                             replication :4570, dataplane :4571 (each namespace its own ports)

Everything is reachable only inside these namespaces (198.18.0.0/24 on a bridge in its own
namespace): nothing is added to the host's namespace. A partition is an nftables table
`inet chx` inside a namespace dropping packets from and to the blocked addresses; healing
rewrites the table (deleting it when nothing is blocked).

A node is `sluiced` in cluster mode when the binary has a [cluster] section (cnode's keys:
enabled, name, node_id, etcd_endpoints, replica_listen, advertise_api, advertise_dataplane,
lease_ttl_s, replication_factor, acks), else `cluster_agent` (tests/cluster/cluster_agent.c:
cluster/'s real membership in its own process, no data path) so membership, controller
failover, placement and drain run against real processes either way. Cluster(dataplane=True)
gives sluiced nodes the kernel-socket dataplane on their address (the campaign's libsluice
producer).

Python threads may enter a namespace (Cluster.enter): setns(2) moves only the calling
thread, and the sockets it opens stay in that namespace.
"""
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

PREFIX = "chx"
SUBNET = "198.18.0"
ETCD_ADDR = SUBNET + ".2"
CLIENT_ADDR = SUBNET + ".3"
NODE_ADDR_BASE = 10
API_PORT = 4567
ADMIN_PORT = 4568
REPLICA_PORT = 4570
DATAPLANE_PORT = 4571
ETCD_PORT = 2379
# A 3-member etcd (Cluster(etcd_members=3)): the first member's address is ETCD_ADDR.
ETCD_MEMBER_ADDRS = [ETCD_ADDR, SUBNET + ".4", SUBNET + ".5"]
# Non-loopback listeners need them (sluiced refuses an open API or admin on the network).
ACCESS_KEY = "AKIDCHX"
SECRET_KEY = "chx-secret"
ADMIN_TOKEN = "chx-admin-token"
# Conditions are awaited with generous deadlines (a shared, loaded machine), never slept on.
DEADLINE_S = 60.0
CLONE_NEWNET = 0x40000000


def stop_process(proc):
    """SIGTERM, after a SIGCONT should it be stopped, and wait for it; SIGKILL after
    DEADLINE_S."""
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def sh(*argv, check=True, input=None):
    """Runs argv; its output (text). A failure raises with argv and stderr."""
    r = subprocess.run(argv, input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r.stdout


def wait_for(cond, what, deadline_s=DEADLINE_S, pause_s=0.05):
    """Polls cond() until it returns a true value (returned), or raises after deadline_s."""
    end = time.monotonic() + deadline_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError("waited %.0f s for %s" % (deadline_s, what))
        time.sleep(pause_s)


def namespaces():
    return [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]


def _gone(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def sweep_stale():
    """Removes what harnesses that died without cleaning up (SIGKILL: their PID gone) left:
    the processes in their namespaces (by PID), the namespaces, their work directories."""
    for ns in namespaces():
        m = re.match(r"^%s-(\d+)-" % PREFIX, ns)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            pids = sh("ip", "netns", "pids", ns, check=False).split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            # Gone (or a zombie for init to reap) before their namespace and files go.
            wait_for(lambda: all(_gone(p) for p in pids), "stale processes of " + ns)
            sh("ip", "netns", "del", ns, check=False)
    tmp = tempfile.gettempdir()
    for d in os.listdir(tmp):
        m = re.match(r"^%s-(\d+)-\w+$" % PREFIX, d)
        path = os.path.join(tmp, d)
        if m and not os.path.exists("/proc/%s" % m.group(1)) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


def cluster_mode_supported(sluiced):
    """True when this sluiced has a [cluster] configuration section (cnode's work)."""
    r = subprocess.run([sluiced, "--print-config-ini"], capture_output=True, text=True)
    return r.returncode == 0 and re.search(r"^\[cluster\]", r.stdout, re.M) is not None


class Node:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.id = index
        self.ns = "%s-%d-n%d" % (PREFIX, cluster.pid, index)
        self.addr = "%s.%d" % (SUBNET, NODE_ADDR_BASE + index)
        self.data_dir = os.path.join(cluster.workdir, "n%d" % index)
        self.log_path = os.path.join(cluster.workdir, "n%d.log" % index)
        self.proc = None
        self.paused = False
        self.starts = 0

    @property
    def api_url(self):
        return "http://%s:%d" % (self.addr, API_PORT)

    @property
    def admin_addr(self):
        return "%s:%d" % (self.addr, ADMIN_PORT)

    def argv(self):
        c = self.cluster
        common = dict(node_id=self.id, name=c.name, etcd=c.etcd_url,
                      replica="%s:%d" % (self.addr, REPLICA_PORT),
                      api="%s:%d" % (self.addr, API_PORT),
                      dp="%s:%d" % (self.addr, DATAPLANE_PORT))
        if c.kind == "agent":
            return [c.agent, "--etcd", common["etcd"], "--cluster", c.name,
                    "--node-id", str(self.id), "--addr", common["replica"],
                    "--api-addr", common["api"], "--dp-addr", common["dp"],
                    "--ttl", str(c.ttl_s), "--rf", str(c.rf)]
        sets = {"cluster.enabled": "true", "cluster.name": c.name,
                "cluster.node_id": str(self.id), "cluster.etcd_endpoints": common["etcd"],
                "cluster.replica_listen": common["replica"],
                "cluster.advertise_api": common["api"],
                "cluster.advertise_dataplane": common["dp"],
                "cluster.lease_ttl_s": str(c.ttl_s),
                "cluster.replication_factor": str(c.rf), "cluster.acks": c.acks,
                "server.stream_status_delay_ms": "0",
                "auth.mode": "sigv4", "auth.access_keys": ACCESS_KEY + ":" + SECRET_KEY,
                "admin.token": ADMIN_TOKEN}
        sets.update(self.dataplane_sets())
        argv = [c.sluiced, "--data-dir", self.data_dir,
                "--api-listen", common["api"], "--admin-listen", self.admin_addr]
        for k, v in sets.items():
            argv += ["--set", "%s=%s" % (k, v)]
        return argv

    def dataplane_sets(self):
        """The kernel-socket dataplane on the node's address (Cluster(dataplane=True): the
        campaign's libsluice producer), one worker, no hugepages (the machine's hugepages
        are the DPDK device tests'); else none."""
        if not self.cluster.dataplane:
            return {"dataplane.enabled": "false"}
        return {"dataplane.backend": "kernel", "dataplane.ipv4": self.addr,
                "dataplane.ingest_port": str(DATAPLANE_PORT), "dataplane.no_huge": "true",
                "dataplane.workers": "1"}

    def start(self):
        """Starts the node's process in its namespace and waits for its ready line."""
        assert self.proc is None
        os.makedirs(self.data_dir, exist_ok=True)
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns] + self.argv(),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.starts += 1
        self.paused = False

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("node %d exited %d before ready; log:\n%s" %
                                   (self.id, self.proc.returncode, self.log_tail(offset)))
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return re.search(rb"^(sluiced: )?ready", f.read(), re.M) is not None
        wait_for(ready, "node %d ready" % self.id)

    def log_tail(self, offset=0):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read()[-3000:].decode(errors="replace")

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL by PID (ip netns exec execs the node: the PID is the node's)."""
        if self.proc is None:
            return
        self.proc.kill()
        self.reaped()

    def stop(self):
        """SIGTERM (a clean stop: the node resigns and leaves) and wait; SIGKILL after the
        deadline."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        stop_process(self.proc)
        self.reaped()

    def terminate(self):
        """SIGTERM without waiting (the campaign's f_term watches the stop); reaped() after."""
        assert self.alive and not self.paused
        self.proc.terminate()

    def reaped(self):
        """Waits for the process and forgets it. With the dataplane, removes the EAL runtime
        directory a killed node leaves (a clean stop removes its own; prefix sluice-<pid>)."""
        self.proc.wait()
        if self.cluster.dataplane:
            shutil.rmtree("/var/run/dpdk/sluice-%d" % self.proc.pid, ignore_errors=True)
        self.proc = None
        self.paused = False

    def pause(self):
        assert self.alive
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self):
        self.kill()
        self.start()


class Cluster:
    """N node namespaces, etcd, a client namespace; cleanup() on every exit path."""

    def __init__(self, nodes=3, name="chx", ttl_s=2, rf=3, acks="quorum", build_dir=None,
                 kind=None, dataplane=False, etcd_members=1):
        assert etcd_members in (1, len(ETCD_MEMBER_ADDRS))
        self.pid = os.getpid()
        self.dataplane = dataplane   # sluiced nodes with the kernel dataplane (Node)
        self.name = name
        self.ttl_s = ttl_s
        self.rf = rf
        self.acks = acks
        build = build_dir or os.environ.get("SLUICE_BUILD_DIR") or \
            os.path.join(os.path.dirname(__file__), "..", "..", "build")
        self.sluiced = os.path.join(build, "control", "sluiced")
        self.agent = os.path.join(build, "tests", "cluster", "cluster_agent")
        self.cli = os.path.join(build, "tools", "sluice")
        self.kind = kind or ("sluiced" if cluster_mode_supported(self.sluiced) else "agent")
        self.workdir = tempfile.mkdtemp(prefix="%s-%d-" % (PREFIX, self.pid))
        self.br_ns = "%s-%d-br" % (PREFIX, self.pid)
        self.etcd_ns = "%s-%d-e" % (PREFIX, self.pid)
        self.client_ns = "%s-%d-c" % (PREFIX, self.pid)
        self.nodes = [Node(self, i) for i in range(1, nodes + 1)]
        self.etcd_proc = None
        self.etcd_url = "http://%s:%d" % (ETCD_ADDR, ETCD_PORT)
        # etcd_members=3: member i's process (None while down) and URL; etcd_url lists them all
        # (the nodes', etcdctl's and `sluice cluster`'s endpoints).
        self.etcd_member_procs = [None] * (etcd_members if etcd_members > 1 else 0)
        self.etcd_member_urls = ["http://%s:%d" % (a, ETCD_PORT)
                                 for a in ETCD_MEMBER_ADDRS[:len(self.etcd_member_procs)]]
        if self.etcd_member_urls:
            self.etcd_url = ",".join(self.etcd_member_urls)
        self.blocked = {}     # namespace -> set of addresses it drops
        self.created = []     # namespaces, in creation order
        self.cleaned = False
        self._old_handlers = {}

    # ---- bring-up and cleanup

    def up(self):
        """Namespaces, bridge, etcd; not the nodes (start_nodes)."""
        sweep_stale()
        atexit.register(self.cleanup)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            self._add_ns(self.br_ns)
            sh("ip", "-n", self.br_ns, "link", "add", "chxbr", "type", "bridge")
            sh("ip", "-n", self.br_ns, "link", "set", "chxbr", "up")
            self._attach(self.etcd_ns, "e", ETCD_ADDR)
            for addr in ETCD_MEMBER_ADDRS[1:len(self.etcd_member_procs)]:
                sh("ip", "-n", self.etcd_ns, "addr", "add", addr + "/24", "dev", "eth0")
            self._attach(self.client_ns, "c", CLIENT_ADDR)
            for n in self.nodes:
                self._attach(n.ns, "n%d" % n.index, n.addr)
            if self.etcd_member_procs:
                self._start_etcd_members()
            else:
                self._start_etcd()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _on_signal(self, signum, frame):
        self.cleanup()
        raise SystemExit(128 + signum)

    def _add_ns(self, ns):
        sh("ip", "netns", "add", ns)
        self.created.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def _attach(self, ns, tag, addr):
        """A namespace with a veth into the bridge; its end is eth0 with addr/24."""
        self._add_ns(ns)
        host_end = "%s%d%s" % (PREFIX, self.pid % 100000, tag)   # <= 15 characters
        sh("ip", "-n", self.br_ns, "link", "add", host_end, "type", "veth", "peer", "name",
           "eth0", "netns", ns)
        sh("ip", "-n", self.br_ns, "link", "set", host_end, "master", "chxbr", "up")
        sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def _start_etcd(self):
        """etcd on its data directory: new at up(), the same one again after etcd_kill (etcd
        then ignores the --initial-* flags and recovers from its write-ahead log)."""
        assert self.etcd_proc is None
        data = os.path.join(self.workdir, "etcd")
        peer = "http://%s:%d" % (ETCD_ADDR, ETCD_PORT + 1)
        with open(os.path.join(self.workdir, "etcd.log"), "ab") as log:
            self.etcd_proc = subprocess.Popen(
                ["ip", "netns", "exec", self.etcd_ns, "etcd", "--name", "chx", "--data-dir", data,
                 "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", "chx=" + peer, "--initial-cluster-state", "new"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self.etcd_healthy, "etcd healthy")

    # ---- a 3-member etcd (etcd_members=3): the members, one lost, its leader

    def _etcd_member_argv(self, i):
        """Member i on its own address and data directory; the --initial-* flags name all three
        (ignored on a restart: etcd recovers from its write-ahead log and rejoins)."""
        peers = ["chx%d=http://%s:%d" % (j, a, ETCD_PORT + 1)
                 for j, a in enumerate(ETCD_MEMBER_ADDRS[:len(self.etcd_member_procs)])]
        url = self.etcd_member_urls[i]
        peer = "http://%s:%d" % (ETCD_MEMBER_ADDRS[i], ETCD_PORT + 1)
        return ["ip", "netns", "exec", self.etcd_ns, "etcd", "--name", "chx%d" % i,
                "--data-dir", os.path.join(self.workdir, "etcd%d" % i),
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", ",".join(peers), "--initial-cluster-state", "new",
                "--initial-cluster-token", "chx-%d" % self.pid]

    def _spawn_etcd_member(self, i):
        assert self.etcd_member_procs[i] is None
        with open(os.path.join(self.workdir, "etcd%d.log" % i), "ab") as log:
            self.etcd_member_procs[i] = subprocess.Popen(
                self._etcd_member_argv(i), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)

    def _start_etcd_members(self):
        """All members at once (each waits for a quorum of its peers), then every one healthy."""
        for i in range(len(self.etcd_member_procs)):
            self._spawn_etcd_member(i)
        for i in range(len(self.etcd_member_procs)):
            wait_for(lambda: self.etcd_member_healthy(i), "etcd member %d healthy" % i)

    def etcd_member_healthy(self, i):
        """Member i answers a linearizable read (it is up and has a leader)."""
        return subprocess.run(["ip", "netns", "exec", self.client_ns, "etcdctl", "--endpoints",
                               self.etcd_member_urls[i], "--dial-timeout=2s",
                               "--command-timeout=3s", "endpoint", "health"],
                              capture_output=True).returncode == 0

    def etcd_member_kill(self, i):
        """SIGKILL member i (by PID: ip netns exec execs etcd) and reap it."""
        self.etcd_member_procs[i].kill()
        self.etcd_member_procs[i].wait()
        self.etcd_member_procs[i] = None

    def etcd_member_start(self, i):
        """Member i again on its data directory; returns once it answers (it rejoined)."""
        self._spawn_etcd_member(i)
        wait_for(lambda: self.etcd_member_healthy(i), "etcd member %d rejoined" % i)

    def etcd_member_pause(self, i):
        """SIGSTOP member i: its connections stay open and it answers nothing."""
        self.etcd_member_procs[i].send_signal(signal.SIGSTOP)

    def etcd_member_resume(self, i):
        self.etcd_member_procs[i].send_signal(signal.SIGCONT)

    def etcd_members_status(self):
        """`etcdctl endpoint status` of the members that answer: {index: (member id, leader id,
        raft term)}; a member down or stopped is absent."""
        out = {}
        for i, url in enumerate(self.etcd_member_urls):
            if self.etcd_member_procs[i] is None:
                continue
            r = subprocess.run(["ip", "netns", "exec", self.client_ns, "etcdctl", "--endpoints",
                                url, "--dial-timeout=2s", "--command-timeout=3s", "endpoint",
                                "status", "-w", "json"], capture_output=True, text=True)
            if r.returncode != 0:
                continue
            st = json.loads(r.stdout)[0]["Status"]
            # proto3 omits zeros: no "leader" while the member knows none.
            out[i] = (st["header"]["member_id"], st.get("leader", 0), st["header"]["raft_term"])
        return out

    def etcd_leader(self):
        """The index of etcd's leader as the answering members agree on it (a majority of
        the members answering, naming one leader that is among them), else None."""
        st = self.etcd_members_status()
        leaders = {v[1] for v in st.values()}
        if len(st) * 2 <= len(self.etcd_member_urls) or len(leaders) != 1 or 0 in leaders:
            return None
        lead = leaders.pop()
        return next((i for i, v in st.items() if v[0] == lead), None)

    # ---- etcd itself as a fault (its PID is etcd's: ip netns exec execs it)

    def etcd_kill(self):
        """SIGKILL etcd (a crash: nothing flushed beyond its own fsyncs) and reap it."""
        self.etcd_proc.kill()
        self.etcd_proc.wait()
        self.etcd_proc = None

    def etcd_start(self):
        """etcd again on the same data directory; returns once it answers."""
        self._start_etcd()

    def etcd_pause(self):
        """SIGSTOP etcd: connections stay open and nothing answers (a stall, not a crash)."""
        self.etcd_proc.send_signal(signal.SIGSTOP)

    def etcd_resume(self):
        self.etcd_proc.send_signal(signal.SIGCONT)

    def etcd_healthy(self, ns=None):
        """etcdctl endpoint health from `ns` (default the client namespace) succeeds (with
        several members: every one listed answers)."""
        return subprocess.run(["ip", "netns", "exec", ns or self.client_ns, "etcdctl",
                               "--endpoints", self.etcd_url, "--dial-timeout=2s",
                               "--command-timeout=3s", "endpoint", "health"],
                              capture_output=True).returncode == 0

    def start_nodes(self):
        for n in self.nodes:
            n.start()

    def cleanup(self):
        """Processes (by PID), namespaces (with their veths, bridge and nft tables), etcd data."""
        if self.cleaned:
            return
        self.cleaned = True
        for n in self.nodes:
            try:
                n.kill()
            except Exception:
                pass
        if self.etcd_proc is not None:
            self.etcd_proc.send_signal(signal.SIGCONT)   # Should a fault have stopped it.
            self.etcd_proc.terminate()
            try:
                self.etcd_proc.wait(timeout=DEADLINE_S)   # Before its data directory goes.
            except subprocess.TimeoutExpired:
                self.etcd_proc.kill()
                self.etcd_proc.wait()
            self.etcd_proc = None
        for i, proc in enumerate(self.etcd_member_procs):
            if proc is not None:
                stop_process(proc)   # SIGCONT first: a fault may have stopped it.
                self.etcd_member_procs[i] = None
        for ns in reversed(self.created):
            sh("ip", "netns", "del", ns, check=False)
        self.created = []
        shutil.rmtree(self.workdir, ignore_errors=True)
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.cleanup()

    # ---- running things inside the namespaces

    def enter(self, ns=None):
        """Moves the calling thread into `ns` (default: the client namespace)."""
        fd = os.open("/run/netns/" + (ns or self.client_ns), os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def run(self, argv, ns=None, check=True, input=None):
        return sh("ip", "netns", "exec", ns or self.client_ns, *argv, check=check, input=input)

    def etcdctl(self, *args, check=True, input=None):
        return self.run(["etcdctl", "--endpoints", self.etcd_url, "--dial-timeout=2s",
                         "--command-timeout=5s"] + list(args), check=check, input=input)

    def sluice(self, *args, check=True):
        """`sluice cluster ARGS` from the client namespace, against this cluster's etcd."""
        return self.run([self.cli, "cluster"] + list(args) +
                        ["--etcd", self.etcd_url, "--cluster", self.name], check=check)

    def status(self):
        """`sluice cluster status --json` parsed (exit 3, a node's admin listener not answering,
        is an answer: a node may be down)."""
        extra = ["--etcd", self.etcd_url, "--cluster", self.name]
        if self.kind == "sluiced":
            extra += ["--token", ADMIN_TOKEN]
            for n in self.nodes:
                extra += ["--admin", "%d=%s" % (n.id, n.admin_addr)]
        r = subprocess.run(["ip", "netns", "exec", self.client_ns, self.cli, "cluster", "status",
                            "--json"] + extra, capture_output=True, text=True)
        if r.returncode not in (0, 3):
            raise RuntimeError("sluice cluster status: exit %d: %s" % (r.returncode, r.stderr))
        return json.loads(r.stdout)

    def tcp_ok(self, from_ns, addr, port, timeout_s=1.0):
        """Whether a TCP connection from from_ns to addr:port completes (a partition check)."""
        r = subprocess.run(["ip", "netns", "exec", from_ns, "/usr/bin/python3", "-c",
                            "import socket,sys\n"
                            "try:\n socket.create_connection((%r,%d),%r).close()\n"
                            "except OSError: sys.exit(1)" % (addr, port, timeout_s)],
                           capture_output=True)
        return r.returncode == 0

    # ---- partitions (nftables inside the namespaces)

    def _nft_apply(self, ns):
        addrs = sorted(self.blocked.get(ns, ()))
        sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "chx", check=False)
        if not addrs:
            return
        rules = ["table inet chx {",
                 " chain in { type filter hook input priority -10; policy accept;"]
        rules += ["  ip saddr %s drop" % a for a in addrs]
        rules += [" }", " chain out { type filter hook output priority -10; policy accept;"]
        rules += ["  ip daddr %s drop" % a for a in addrs]
        rules += [" }", "}"]
        sh("ip", "netns", "exec", ns, "nft", "-f", "-", input="\n".join(rules) + "\n")

    def _block(self, ns, addr, on):
        s = self.blocked.setdefault(ns, set())
        (s.add if on else s.discard)(addr)
        self._nft_apply(ns)

    def partition(self, a, b):
        """Nodes a and b (Node) no longer hear each other (both sides drop)."""
        self._block(a.ns, b.addr, True)
        self._block(b.ns, a.addr, True)

    def heal(self, a, b):
        self._block(a.ns, b.addr, False)
        self._block(b.ns, a.addr, False)

    def partition_etcd(self, n):
        """Node n no longer reaches etcd (dropped in n's namespace, both directions)."""
        self._block(n.ns, ETCD_ADDR, True)

    def heal_etcd(self, n):
        self._block(n.ns, ETCD_ADDR, False)

    def heal_all(self):
        for ns in list(self.blocked):
            self.blocked[ns] = set()
            self._nft_apply(ns)

    def leftovers(self):
        """What of this harness still exists (empty after cleanup): namespaces, workdir, PIDs."""
        out = [ns for ns in namespaces() if ns.startswith("%s-%d-" % (PREFIX, self.pid))]
        if os.path.exists(self.workdir):
            out.append(self.workdir)
        out += ["pid %d" % n.proc.pid for n in self.nodes if n.alive]
        if self.etcd_proc is not None and self.etcd_proc.poll() is None:
            out.append("etcd pid %d" % self.etcd_proc.pid)
        out += ["etcd member pid %d" % p.pid for p in self.etcd_member_procs
                if p is not None and p.poll() is None]
        return out
