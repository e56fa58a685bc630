#!/usr/bin/python3
"""sluice-bench-compare: every ingest path side by side, per appliance CPU-second
(issue 11). Run by `sluice bench ingest --compare [--short]` (as root), which
replaces itself with this driver; it calls that same `sluice` for each run.

What it builds (all named cmp-<pid> / cmp<pid>x, removed on every exit path, also
after Ctrl-C, SIGTERM and SIGHUP):
  - a network namespace cmp-<pid> with one veth pair: cmp<pid>a is the
    appliance's AF_XDP port (no address), cmp<pid>b the producers' end
    (198.18.0.2/15, TX checksum offload off: AF_XDP hands the raw bytes over);
  - a temp dir (data dirs, memif sockets, logs);
  - one sluiced per device, one after the other, each on a data dir of its own,
    one worker, no hugepages, defaults otherwise: "memif" ([dataplane] backend =
    dpdk, a memif server; HTTP runs against it too), "af_xdp" (AF_XDP on
    cmp<pid>a) and "kernel" (backend = kernel; 198.18.0.1 then moves to the
    namespace's lo). One device per process: an idle AF_XDP port on veth costs
    its worker a recvfrom() per poll, which must not be charged to memif or HTTP;
  - dpdk-testpmd rxonly as a memif server on a socket of its own;
  - hugepages for `sluice bench dataplane` if fewer than 256 are reserved
    (the old count is restored).

What it measures, each record 100 B (see docs/BENCHMARKS.md for the reasons):
  1. After a 2 s warm-up at 5,000 records/s (a fresh log's first seconds are not
     its steady state), the saturating rate S on the memif path (12 records per
     datagram, open loop): 5 s holds, the rate doubling from 100,000 records/s
     until a hold is not held, then bisection between the highest held and the
     lowest not held until they are within 10 %. Held: during the hold itself
     (not the drain) durable ACKs came for >= 95 % of the records offered, at
     most 1 % were refused, unanswered or unsent, and the mean latency of the
     frames due in the hold's last fifth is at most 50 ms above the first
     fifth's (no growing queue); a hold not held is tried once more (a stall
     of the shared disk is not saturation). S is the highest held rate
     (RAMP_* below).
  2. The same offered load, S, through four paths, records acked per CPU-second
     of sluiced (utime + stime from /proc/PID/stat, before and after each run):
     DPDK memif (sluice-dp-gen), DPDK AF_XDP on the veth (sluice-dp-gen on the
     producers' end), HTTP PutRecords (500 records per request, 16
     connections) and, on the kernel backend, UDP through libsluice (12 records
     per datagram, 4 producers). Also on memif: a producer that knows the shard map
     (--grouped: ListShards, then SHARD_RECORDS frames, 10 records per datagram), a
     row of its own, not in the final line.
  3. memif with 1 record per datagram next to dpdk-testpmd --forward-mode=rxonly
     on a memif link of its own, offered the same packet rate by the same
     generator: packets per CPU-second of the receiving process.
  4. Latency on the memif path (from each frame's scheduled send time, acked
     frames only): at S/20 (unloaded), at S/2 against the log's own append p99
     (`sluice bench log --only lat`, same filesystem), and at 2S, where the
     admitted records' p99 is set against the unloaded p99 and every refused
     frame must have been answered. The generator shares the two CPUs with
     sluiced: the final line also says what it really sent at "2S", in units of
     S (overload_sent_x; below 2 its own lag is in the p99 from the due time),
     and the overload ratio with latency from each frame's send
     (p99_overload_sent_ratio), after the fields the issue names.
  5. The worker hot path: `sluice bench dataplane --only 12x100B` and `--only
     12x100B_grp` (shard-grouped SHARD_RECORDS frames), each a replayed pcap,
     records per CPU-second of the worker thread; 12x100B_grp again with
     --replay ring (the pcap's frames from pre-built mbufs, no net_pcap copy).
  6. Read-back: each sluiced's stream, read through the API before it stops
     (or, past READBACK_API_MAX records, counted by `sluice log verify` on its
     stopped log: a quiet full run stores ~3 x 10^8 records, ~35 GB, whose API
     read-back took ~25 min), must hold exactly the records its runs
     acknowledged; its data dir is removed then. lost = records
     acknowledged but not read back + records never answered. The DPDK runs'
     unanswered frames are split by who counted them (UNANSWERED_SLUICED, UNANSWERED_DEVICE):
     sluiced (refusals or answers it chose to drop, on /metrics), a device
     (sluiced's port and XDP socket, the veth pair, the generator's port), or
     nobody (unaccounted).
--short runs each path once, briefly, at a fixed low rate (no ramp, no
hugepages, no worker bench) and checks behaviour only: the final line, every
path acknowledged records, lost = 0. Exit 0 when those hold, 1 otherwise.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

STREAM = "cmp"
SHARDS = 4
RECORD_SIZE = 100
RECORDS_PER_DATAGRAM = 12        # 12 x 100 B fit one 1,500 B datagram.
GROUPED_PER_DATAGRAM = 10        # SHARD_RECORDS add a 16 B hash key a record: 12 do not fit.
RECORDS_PER_REQUEST = 500        # PutRecords' limit.
HTTP_CONNECTIONS = 16
UDP_PRODUCERS = 4
WORKERS = 1                      # Each sluiced's [dataplane] workers (the default).
APPLIANCE = "198.18.0.1"
PEER = "198.18.0.2/15"
INGEST_PORT = 4570
API_PORT = 4580                  # Inside our namespace: nothing else listens there.
APPLIANCE_MAC = "02:00:c6:12:00:01"
TESTPMD_MAC = "02:00:c6:12:00:09"
# The saturating rate S: holds of RAMP_HOLD_MS at one rate each, the rate doubling from
# RAMP_START until a hold is not held, then bisection between the highest held and the
# lowest not held until they are within RAMP_PRECISION. A hold is held when, over the
# hold itself (not the drain after it), the log kept up:
RAMP_START = 100000              # records/s
RAMP_HOLD_MS = 5000              # Long enough for a log that falls behind to show it.
RAMP_HOLDS_MAX = 12
RAMP_PRECISION = 0.10            # (lowest not held - highest held) / highest held.
RAMP_KEEP_UP = 0.95              # Durable ACKs during the hold / records offered in it,
RAMP_REFUSED_MAX = 0.01          # refused + unanswered / sent at most this share,
RAMP_GROWTH_MAX_US = 50000       # and the mean latency of the hold's last fifth at most
                                 # this much above its first fifth's (queue growth).
RAMP_TRIES = 2                   # A hold not held is tried again: one stall of a disk
                                 # shared with other sessions is not saturation.
SHORT_RATE = 12000               # --short: every path, records/s.
SHORT_DURATION_MS = 1000
FULL_DURATION_MS = 5000
DRAIN_MS = 5000
PACKET_RATE_MAX = 1000000        # memif 1-record / testpmd: at most this many packets/s.
HUGEPAGES_WANT = 256             # 2 MiB pages for `sluice bench dataplane`.
READY_S = 60
QUIET_CPU_SHARE = 0.05           # sluiced within this CPU share of its idle share: quiet.
QUIET_S = 0.5
QUIET_MAX_S = 30
IDLE_S = 1.0                     # The idle share (workers' back-off polling) over this.
LOG_LAT_COUNT = 2000
TELEMETRY_SIZE = 1 << 16
READBACK_CHUNK = 1 << 20         # `sluice consume` output read this much at a time.
# Read back through the API up to this many records; above it the log's own reader counts
# them (a quiet run's memif sluiced holds ~3 x 10^8: the API read-back took ~25 min).
READBACK_API_MAX = int(os.environ.get("SLUICE_COMPARE_READBACK_API_MAX", 20000000))  # Tests.
# Per-stage counters of the DPDK path printed after each run when they moved: where
# records were refused or packets lost (dataplane/dp_stats.c; ethdev's own for the port).
STAGE_COUNTERS = ("records_failed", "nacks_sent", "nacks_suppressed", "drop_frames_full",
                  "drop_frames_late", "drop_producers_full", "drop_no_batch", "drop_no_mbuf",
                  "ring_full", "tx_dropped", "rx_paused", "idle_sleeps", "dev_rx_missed",
                  "dev_xsk_rx_ring_full")
# Where a datagram of a DPDK run can go unanswered with something counting it, one
# frame or answer per count. "sluiced": the appliance chose not to answer (on /metrics).
# "device": a device or the kernel between the two processes dropped it, per direction
# and stage; a stage's counters overlap (a datagram the kernel drops at the XSK ring
# also counts in the veth end's rx_dropped), so a stage counts the largest of them.
# The rest of the unanswered frames are "unaccounted".
UNANSWERED_SLUICED = ("tx_dropped",        # Answers past the TX backlog.
                      "nacks_suppressed",  # Refusals over the NACK bucket.
                      "drop_no_mbuf")      # Answers with no mbuf to build them in.
UNANSWERED_DEVICE = (      # Stages, each a tuple of alternatives (counters summed): max.
    (("gen_tx_errors",),),                             # The generator's device did not send.
    (("veth_b_tx_dropped",),),                         # The veth did not pass a request on.
    (("dev_rx_missed", "dev_xsk_rx_ring_full"),        # sluiced's port / XSK ring full, as
     ("veth_a_rx_dropped",)),                          # the kernel's veth end saw them too.
    (("veth_a_tx_dropped",),),                         # The veth did not pass an answer on.
    (("gen_rx_missed", "gen_rx_nombuf"),               # The generator's port dropped an
     ("veth_b_rx_dropped",)),                          # answer, as its veth end saw it.
    (("udp_rcvbuf_errors", "udp_sndbuf_errors"),),     # Kernel UDP (the kernel backend and
)                                                      # libsluice): socket buffers full.
HZ = os.sysconf("SC_CLK_TCK")


class Stop(Exception):
    """A signal asked us to stop: cleanup runs, the exit status says why."""


def on_signal(signum, frame):
    raise Stop(128 + signum)


START = time.monotonic()


def say(text):
    print(f"compare: [{time.monotonic() - START:6.1f} s] {text}", file=sys.stderr, flush=True)


class Env:
    """Everything this run made, so that cleanup can remove exactly that."""

    def __init__(self, args):
        self.args = args
        self.pid = os.getpid()
        self.ns = f"cmp-{self.pid}"
        self.dev_a = f"cmp{self.pid}a"
        self.dev_b = f"cmp{self.pid}b"
        self.tmp = tempfile.mkdtemp(prefix="cmp-", dir=args.dir)
        self.ns_made = False
        self.procs = []              # Popen objects we started and have not reaped.
        self.hugepages_old = None
        self.sluice = args.sluice
        bindir = os.path.dirname(os.path.realpath(args.sluice))
        self.sluiced = find("SLUICED", [f"{bindir}/sluiced", f"{bindir}/../control/sluiced"])
        self.gen = find("SLUICE_DP_GEN", [f"{bindir}/sluice-dp-gen",
                                          f"{bindir}/../dataplane/sluice-dp-gen"])

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            shutil.rmtree(f"/var/run/dpdk/sluice-{p.pid}", ignore_errors=True)
        for name in os.listdir("/var/run/dpdk") if os.path.isdir("/var/run/dpdk") else []:
            if name.startswith(f"cmp-{self.pid}-"):
                shutil.rmtree(f"/var/run/dpdk/{name}", ignore_errors=True)
        if self.ns_made:
            subprocess.run(["ip", "netns", "del", self.ns], stderr=subprocess.DEVNULL)
        if self.hugepages_old is not None:
            write_file("/proc/sys/vm/nr_hugepages", str(self.hugepages_old))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def in_ns(self, argv):
        return ["ip", "netns", "exec", self.ns] + argv


def find(env, candidates):
    for path in [os.environ.get(env)] + candidates:
        if path and os.access(path, os.X_OK):
            return os.path.realpath(path)
    raise SystemExit(f"compare: {candidates[0]} not found (set {env})")


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def run(argv, check=True, env=None):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def cpu_s(pid):
    """utime + stime of a process, seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def wait_line(path, text, seconds, proc):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path) and text in open(path, errors="replace").read():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    log = open(path, errors="replace").read() if os.path.exists(path) else ""
    raise RuntimeError(f"no '{text}' within {seconds} s:\n{log}")


# ---- The wire ----------------------------------------------------------------------


def make_namespace(env):
    ns = env.ns
    run(["ip", "netns", "add", ns])
    env.ns_made = True
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "add", env.dev_a, "type", "veth", "peer", "name", env.dev_b])
    run(["ip", "-n", ns, "link", "set", env.dev_a, "address", APPLIANCE_MAC])
    run(env.in_ns(["sysctl", "-qw", f"net.ipv6.conf.{env.dev_a}.disable_ipv6=1"]))
    run(env.in_ns(["ethtool", "-K", env.dev_b, "tx", "off"]))
    run(["ip", "-n", ns, "addr", "add", PEER, "dev", env.dev_b])
    for dev in (env.dev_a, env.dev_b):
        run(["ip", "-n", ns, "link", "set", dev, "up"])


def reserve_hugepages(env):
    have = int(open("/proc/sys/vm/nr_hugepages").read())
    if have >= HUGEPAGES_WANT:
        return
    env.hugepages_old = have
    write_file("/proc/sys/vm/nr_hugepages", str(HUGEPAGES_WANT))


# ---- sluiced -----------------------------------------------------------------------


def udp_counters(env):
    """The namespace's UDP datagrams dropped on full socket buffers (/proc/net/snmp)."""
    r = run(env.in_ns(["cat", "/proc/net/snmp"]), check=False)
    rows = [x.split()[1:] for x in r.stdout.splitlines() if x.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    udp = dict(zip(rows[0], rows[1]))
    return {"udp_rcvbuf_errors": int(udp.get("RcvbufErrors", 0)),
            "udp_sndbuf_errors": int(udp.get("SndbufErrors", 0))}


def veth_counters(env):
    """Drops on the veth pair: what one end sent that the other never received."""
    r = run(["ip", "-n", env.ns, "-s", "-j", "link", "show"], check=False)
    links = {x["ifname"]: x.get("stats64", {}) for x in json.loads(r.stdout or "[]")}
    if env.dev_a not in links or env.dev_b not in links:
        return {}
    got = {}
    for end, dev in (("a", env.dev_a), ("b", env.dev_b)):
        for way in ("rx", "tx"):
            got[f"veth_{end}_{way}_dropped"] = links[dev][way]["dropped"]
    return got


class Sluiced:
    def __init__(self, env, name, sets):
        self.env = env
        self.name = name
        self.endpoint = f"http://127.0.0.1:{API_PORT}"
        self.log = f"{env.tmp}/sluiced-{name}.log"
        self.acked = 0               # Records its runs acknowledged (read back at the end).
        self.unanswered = 0
        self.split = {}              # Unanswered frames by who counted them (split()).
        self.data_dir = f"{env.tmp}/data-{name}"
        self.readback_how = None
        argv = [env.sluiced, "--data-dir", self.data_dir,
                "--api-listen", f"127.0.0.1:{API_PORT}",
                "--set", "dataplane.no_huge=true"]
        for s in sets + env.args.set:
            argv += ["--set", s]
        self.proc = subprocess.Popen(env.in_ns(argv), stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        env.procs.append(self.proc)
        say(f"sluiced {name} pid {self.proc.pid}")
        wait_line(self.log, "sluiced: ready", READY_S, self.proc)
        run(env.in_ns([env.sluice, "stream", "create", STREAM, "--shards", str(SHARDS),
                       "--endpoint", self.endpoint]))
        wait_line(self.log, "published 1 streams", 10, self.proc)
        c0 = self.cpu_s()
        time.sleep(IDLE_S)
        self.idle_share = (self.cpu_s() - c0) / IDLE_S
        say(f"sluiced {name} ready, idle at {self.idle_share:.2f} of a CPU")

    def cpu_s(self):
        return cpu_s(self.proc.pid)

    def counters(self):
        """The DPDK path's per-stage counters summed over workers (its devices' drops among
        them), the veth pair's drops and the namespace's UDP socket drops."""
        path = f"/var/run/dpdk/sluice-{self.proc.pid}/dpdk_telemetry.v2"
        got = udp_counters(self.env)
        if not os.path.exists(path):
            return got
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.connect(path)
            s.recv(TELEMETRY_SIZE)
            for w in range(WORKERS):
                s.send(f"/sluice/dp/worker,{w}".encode())
                d = json.loads(s.recv(TELEMETRY_SIZE)).get("/sluice/dp/worker") or {}
                for k in STAGE_COUNTERS:
                    got[k] = got.get(k, 0) + d.get(k, 0)
        got.update(veth_counters(self.env))
        return got

    def quiesce(self):
        """Waits until the previous run's backlog is gone (sluiced nearly idle)."""
        deadline = time.monotonic() + QUIET_MAX_S
        while time.monotonic() < deadline:
            c0 = self.cpu_s()
            time.sleep(QUIET_S)
            if self.cpu_s() - c0 < (self.idle_share + QUIET_CPU_SHARE) * QUIET_S:
                return
        say(f"sluiced {self.name} still busy after {QUIET_MAX_S} s: measuring anyway")

    def stored(self):
        """Records the stream holds: read through the Kinesis API, or, past
        READBACK_API_MAX acknowledged, counted by `sluice log verify` on the stopped
        sluiced's log (every batch's CRC checked; the stream is the log's only one)."""
        if self.acked + self.unanswered > READBACK_API_MAX:
            self.stop()
            r = run([self.env.sluice, "log", "verify", f"{self.data_dir}/log"])
            m = re.search(r"records ([0-9]+)", r.stdout)
            if m is None:
                raise RuntimeError(f"sluice log verify: no record count in:\n{r.stdout}")
            self.readback_how = "log verify"
            return int(m.group(1))
        self.readback_how = "api"
        # At most what was acknowledged or left unanswered can be there: read past it.
        # Counted as it streams: a full run stores ~10^8 records, more than fits in memory.
        argv = self.env.in_ns([self.env.sluice, "consume", STREAM, "--max",
                               str(self.acked + self.unanswered + 1000),
                               "--endpoint", self.endpoint])
        lines = 0
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
            while chunk := p.stdout.read(READBACK_CHUNK):
                lines += chunk.count(b"\n")
            err = p.stderr.read().decode(errors="replace").strip()
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {err}")
        return lines

    def stop(self):
        if self.proc not in self.env.procs:
            return
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.env.procs.remove(self.proc)
        shutil.rmtree(f"/var/run/dpdk/sluice-{self.proc.pid}", ignore_errors=True)

    def remove(self):
        """Stopped and read back: its log goes (a full run's memif log is ~35 GB)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def bench_ingest(env, sluiced, label, transport_args, rate, per_frame, duration_ms):
    """One `sluice bench ingest --json` run; its result with the appliance's CPU seconds."""
    sluiced.quiesce()
    argv = env.in_ns(["env", f"SLUICE_DP_GEN={env.gen}", env.sluice, "bench", "ingest",
                      STREAM] + transport_args +
                     ["--rate", str(int(rate)), "--records-per-frame", str(per_frame),
                      "--size", str(RECORD_SIZE), "--duration", f"{duration_ms}ms",
                      "--drain", f"{DRAIN_MS}ms", "--json"])
    k0 = sluiced.counters()
    c0 = sluiced.cpu_s()
    r = run(argv, check=False)
    cpu = sluiced.cpu_s() - c0
    k1 = sluiced.counters()
    moved = {k: v - k0.get(k, 0) for k, v in k1.items() if v != k0.get(k, 0)}
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    if r.returncode not in (0, 3) or not lines:
        raise RuntimeError(f"{label}: exit {r.returncode}: {r.stderr.strip()}")
    res = json.loads(lines[-1])
    res["label"] = label
    res["cpu_s"] = cpu
    res["per_cpu_s"] = res["records_acked"] / cpu if cpu > 0 else 0.0
    res["counters"] = moved
    res["split"] = split(res, moved, per_frame)
    sluiced.acked += int(res["records_acked"])
    sluiced.unanswered += int(res["records_unanswered"])
    for k, v in res["split"].items():
        sluiced.split[k] = sluiced.split.get(k, 0) + v
    gen = res.get("generator")
    if gen is not None:
        # The DPDK generator's own pace: what it sent during the run, and latency from
        # each frame's send (the p99 above is from its due time, as for every path).
        res["sent_per_s"] = res["records_sent"] / (duration_ms / 1000)
        res["sent_p99_us"] = gen.get("sent_p99_ns", 0) / 1000
    say(f"{label}: offered {int(rate)}/s, acked {res['records_acked']:.0f} "
        f"({res['records_per_s']:.0f}/s), failed {res['records_failed']:.0f}, "
        f"unanswered {res['records_unanswered']:.0f}, cpu {cpu:.2f} s, "
        f"p99 {res['latency_us']['p99']:.0f} us; load {loadavg()}")
    if gen is not None:
        say(f"  generator sent {res['sent_per_s']:.0f}/s ({res['frames_unsent']:.0f} frames "
            f"unsent), p99 from the send {res['sent_p99_us']:.0f} us")
    if moved:
        say("  counters: " + " ".join(f"{k}={v}" for k, v in sorted(moved.items())))
    if res["records_unanswered"]:
        say("  unanswered frames: " + " ".join(f"{k}={v}" for k, v in res["split"].items()))
    return res


def split(res, moved, per_frame):
    """A run's unanswered frames by who counted them (UNANSWERED_SLUICED and _DEVICE);
    what no counter saw is unaccounted. Counters count frames and answers alike."""
    gen = res.get("generator", {})
    seen = dict(moved)
    for k in ("rx_missed", "rx_nombuf", "tx_errors"):
        seen[f"gen_{k}"] = int(gen.get(k, 0))
    frames = int(res["records_unanswered"]) // per_frame
    out = {"frames": frames, "sluiced": sum(int(seen.get(k, 0)) for k in UNANSWERED_SLUICED),
           "device": sum(max(sum(int(seen.get(k, 0)) for k in names) for names in stage)
                         for stage in UNANSWERED_DEVICE)}
    out["unaccounted"] = max(0, frames - out["sluiced"] - out["device"])
    return out


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def grouped_args(sluiced):
    """Frame producers know the shard map (ListShards first), as libsluice with one."""
    return ["--grouped", "--endpoint", sluiced.endpoint]


def memif_args(env):
    return ["--transport", "dpdk", "--device", "memif", "--socket", f"{env.tmp}/memif.sock"]


def af_xdp_args(env):
    return ["--transport", "dpdk", "--device", "af_xdp", "--iface", env.dev_b]


def http_args(sluiced):
    return ["--transport", "http", "--endpoint", sluiced.endpoint,
            "--connections", str(HTTP_CONNECTIONS)]


def ramp(env, sluiced):
    """The saturating rate S: the highest offered rate a RAMP_HOLD_MS hold showed the log
    keeping up with (hold_held), found by doubling, then bisection. Returns S and the
    holds, each (rate, held, why)."""
    holds = []
    held_max, missed_min = 0, None
    rate = RAMP_START
    # A fresh log's first seconds (new segments, cold page cache) are not its steady state.
    bench_ingest(env, sluiced, "warm-up", memif_args(env), RAMP_START / 20,
                 RECORDS_PER_DATAGRAM, 2000)
    while len(holds) < RAMP_HOLDS_MAX:
        for attempt in range(RAMP_TRIES):
            r = bench_ingest(env, sluiced, f"hold {rate} ({attempt + 1})", memif_args(env),
                             rate, RECORDS_PER_DATAGRAM, RAMP_HOLD_MS)
            held, why = hold_held(r, rate)
            say(f"  hold {rate} ({attempt + 1}): {'held' if held else 'not held'} ({why})")
            if held:
                break
        holds.append((rate, held, why))
        if held:
            held_max = max(held_max, rate)
        else:
            missed_min = rate if missed_min is None else min(missed_min, rate)
        if missed_min is None:
            rate *= 2
        elif held_max == 0:
            rate //= 2          # Not even RAMP_START: downwards until one holds.
        elif (missed_min - held_max) <= RAMP_PRECISION * held_max:
            break
        else:
            rate = (held_max + missed_min) // 2
    if held_max == 0:
        raise RuntimeError(f"no hold down to {rate * 2} records/s was held")
    return held_max, holds


def hold_held(r, rate):
    """(held, why): did the log keep up over the hold? See RAMP_KEEP_UP and after."""
    gen = r.get("generator", {})
    offered = rate * RAMP_HOLD_MS / 1000
    in_run = gen.get("records_acked_in_run", 0) / offered
    unsent = r["frames_unsent"] * r["records_per_frame"]
    refused = (r["records_failed"] + r["records_unanswered"] + unsent) / offered
    growth_us = (gen.get("lat_last_ns", 0) - gen.get("lat_first_ns", 0)) / 1000
    why = (f"durable ACKs in the hold {in_run:.3f} of offered, refused or unanswered "
           f"or unsent {refused:.4f}, mean latency first fifth {gen.get('lat_first_ns', 0) / 1e6:.1f} ms"
           f" last fifth {gen.get('lat_last_ns', 0) / 1e6:.1f} ms")
    return (in_run >= RAMP_KEEP_UP and refused <= RAMP_REFUSED_MAX and
            growth_us <= RAMP_GROWTH_MAX_US), why


# ---- dpdk-testpmd on a memif link of its own ---------------------------------------


def testpmd_rxonly(env, packet_rate, duration_ms):
    """Packets per CPU-second of dpdk-testpmd rxonly, fed by sluice-dp-gen over memif."""
    sock = f"{env.tmp}/testpmd.sock"
    log = f"{env.tmp}/testpmd.log"
    argv = ["dpdk-testpmd", "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
            f"--file-prefix=cmp-{env.pid}-tp", "--lcores=0@(0-1),1@(0-1)",
            f"--vdev=net_memif0,role=server,socket={sock},socket-abstract=no,"
            f"mac={TESTPMD_MAC}",
            "--", "--forward-mode=rxonly", "--auto-start", "--stats-period", "1",
            "--total-num-mbufs=65536"]
    tp = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL)
    env.procs.append(tp)
    try:
        wait_line(log, "rxonly packet forwarding - ports", 60, tp)
        time.sleep(1)  # testpmd's start-up burst of CPU is not part of the run.
        gen = [env.gen, "--vdev", f"net_memif0,role=client,socket={sock},socket-abstract=no",
               "--file-prefix", f"cmp-{env.pid}-gen", "--stream", STREAM,
               "--rate", str(int(packet_rate)), "--records-per-frame", "1",
               "--size", str(RECORD_SIZE), "--duration-ms", str(duration_ms),
               "--drain-ms", "0", "--peer-mac", TESTPMD_MAC]
        c0 = cpu_s(tp.pid)
        g = run(gen, check=False)
        cpu = cpu_s(tp.pid) - c0
        m = re.search(r"frames_sent=(\d+)", g.stdout)
        if m is None:
            raise RuntimeError(f"sluice-dp-gen to testpmd: {g.stderr.strip()}")
        sent = int(m.group(1))
        time.sleep(1.5)  # One more stats period, with every packet counted.
    finally:
        tp.send_signal(signal.SIGINT)
        try:
            tp.wait(timeout=20)
        except subprocess.TimeoutExpired:
            tp.kill()
            tp.wait()
        env.procs.remove(tp)
    text = open(log, errors="replace").read()
    totals = re.findall(r"RX-packets:\s*(\d+)", text)
    received = max((int(x) for x in totals), default=0)
    say(f"testpmd rxonly: sent {sent}, received {received}, cpu {cpu:.2f} s")
    return {"sent": sent, "received": received, "cpu_s": cpu,
            "per_cpu_s": received / cpu if cpu > 0 else 0.0}


# ---- The log and the worker ------------------------------------------------------


def log_p99_us(env):
    r = run([env.sluice, "bench", "log", "--dir", env.tmp, "--only", "lat",
             "--lat-count", str(LOG_LAT_COUNT), "--reps", "1"])
    m = re.search(r"one at a time.*?p99 ([0-9.]+) us", r.stdout)
    if m is None:
        raise RuntimeError(f"sluice bench log: no p99 in:\n{r.stdout}")
    say(f"log append p99 {m.group(1)} us")
    return float(m.group(1))


def worker_per_cpu_s(env, scenario, replay="pcap"):
    """Records per worker CPU-second, or None when the bench failed (said why): the
    ingest paths' figures, measured before it, are still reported."""
    try:
        return worker_bench(env, scenario, replay)
    except RuntimeError as e:
        say(f"worker {scenario} ({replay}) failed, not reported: {str(e)[:300]}")
        return None


def worker_bench(env, scenario, replay):
    r = run([env.sluice, "bench", "dataplane", "--only", scenario, "--rounds", "1",
             "--dir", f"{env.tmp}/dpbench", "--replay", replay])
    for line in r.stdout.splitlines():
        f = line.split()
        if f and f[0] == scenario:
            records, cpu = float(f[5]), float(f[6])
            say(f"worker {scenario} ({replay}): {records:.0f} records/s at {cpu:.2f} of a CPU")
            return records / cpu if cpu > 0 else 0.0
    raise RuntimeError(f"sluice bench dataplane: no {scenario} row in:\n{r.stdout}")


# ---- The run -----------------------------------------------------------------------


def measure(env, short):
    duration = env.args.duration_ms or (SHORT_DURATION_MS if short else FULL_DURATION_MS)
    out = {"paths": {}, "readback": []}
    make_namespace(env)
    say(f"namespace {env.ns}, devices {env.dev_a} {env.dev_b}, dir {env.tmp}")
    if not short:
        reserve_hugepages(env)
    packet_rate = measure_memif(env, short, duration, out)
    dev = Sluiced(env, "af_xdp", [f"dataplane.vdev=net_af_xdp0,iface={env.dev_a}"])
    out["paths"]["dpdk_af_xdp"] = bench_ingest(env, dev, "dpdk af_xdp 12x100B",
                                               af_xdp_args(env), out["saturating"],
                                               RECORDS_PER_DATAGRAM, duration)
    out["readback"].append(readback(dev))
    dev.remove()
    out["testpmd"] = testpmd_rxonly(env, packet_rate, duration)
    out["log_p99_us"] = log_p99_us(env)
    measure_kernel(env, duration, out)
    out["worker_per_cpu_s"] = None if short else worker_per_cpu_s(env, "12x100B")
    out["worker_grouped_per_cpu_s"] = None if short else worker_per_cpu_s(env, "12x100B_grp")
    out["worker_grouped_ring_per_cpu_s"] = (None if short else
                                            worker_per_cpu_s(env, "12x100B_grp", "ring"))
    return out


def measure_memif(env, short, duration, out):
    """The ramp, memif 12 and 1 records per datagram, HTTP and latency on one sluiced."""
    dev = Sluiced(env, "memif", [
        f"dataplane.vdev=net_memif0,role=server,socket={env.tmp}/memif.sock,"
        f"socket-abstract=no,mac={APPLIANCE_MAC}"])
    sat, out["holds"] = (SHORT_RATE, []) if short else ramp(env, dev)
    out["saturating"] = sat
    say(f"saturating rate {sat:.0f} records/s ({len(out['holds'])} holds)")
    paths = out["paths"]
    paths["dpdk_memif"] = bench_ingest(env, dev, "dpdk memif 12x100B", memif_args(env),
                                       sat, RECORDS_PER_DATAGRAM, duration)
    paths["dpdk_memif_grouped"] = bench_ingest(env, dev, "dpdk memif 10x100B grouped",
                                               memif_args(env) + grouped_args(dev), sat,
                                               GROUPED_PER_DATAGRAM, duration)
    paths["http"] = bench_ingest(env, dev, "http 500x100B", http_args(dev), sat,
                                 RECORDS_PER_REQUEST, duration)
    lat = out["latency"] = {}
    for name, rate in (("unloaded", max(sat / 20, RECORDS_PER_DATAGRAM * 100)),
                       ("half", sat / 2), ("overload", sat * 2)):
        lat[name] = bench_ingest(env, dev, f"latency {name}", memif_args(env), rate,
                                 RECORDS_PER_DATAGRAM, duration)
    # Short: the same datagram rate as the 12-record paths (no overload, so lost must be 0).
    packet_rate = sat / RECORDS_PER_DATAGRAM if short else min(sat, PACKET_RATE_MAX)
    paths["memif_1rec"] = bench_ingest(env, dev, "dpdk memif 1x100B", memif_args(env),
                                       packet_rate, 1, duration)
    out["readback"].append(readback(dev))
    dev.remove()
    return packet_rate


def measure_kernel(env, duration, out):
    """HTTP and UDP on the kernel backend, which serves 198.18.0.1 from the namespace's lo."""
    run(["ip", "-n", env.ns, "addr", "add", f"{APPLIANCE}/32", "dev", "lo"])
    kern = Sluiced(env, "kernel", ["dataplane.backend=kernel"])
    out["paths"]["http_kernel"] = bench_ingest(env, kern, "http 500x100B (kernel)",
                                               http_args(kern), out["saturating"],
                                               RECORDS_PER_REQUEST, duration)
    out["paths"]["kernel_udp"] = bench_ingest(env, kern, "kernel udp 12x100B",
                                              ["--transport", "udp", "--target",
                                               f"{APPLIANCE}:{INGEST_PORT}",
                                               "--producers", str(UDP_PRODUCERS)],
                                              out["saturating"], RECORDS_PER_DATAGRAM,
                                              duration)
    out["readback"].append(readback(kern))
    kern.remove()


def readback(s):
    """lost: acknowledged records missing from the stream, plus records neither answered
    nor stored (dropped without a word; unanswered ones that were stored are not lost)."""
    stored = s.stored()
    extra = max(0, stored - s.acked)
    lost = max(0, s.acked - stored) + max(0, s.unanswered - extra)
    say(f"read back from sluiced {s.name} ({s.readback_how}): {stored} stored, {s.acked} "
        f"acknowledged, {s.unanswered} unanswered")
    return {"name": s.name, "idle_share": s.idle_share, "stored": stored, "acked": s.acked,
            "unanswered": s.unanswered, "lost": lost, "extra": extra, "split": s.split,
            "how": s.readback_how}


def fmt(value):
    return "failed" if value is None else f"{value:.0f}"


def ratio(a, b):
    return a / b if b else 0.0


def report(out, short):
    p = out["paths"]
    lat = out["latency"]
    tp = out["testpmd"]
    print(f"{'path':22} {'offered/s':>10} {'acked/s':>10} {'failed':>8} {'unansw':>7} "
          f"{'cpu_s':>6} {'per_cpu_s':>11} {'p50_us':>8} {'p99_us':>9}")
    rows = list(p.items()) + [(f"latency {k}", v) for k, v in lat.items()]
    for name, r in rows:
        print(f"{name:22} {r['rate_target']:10.0f} {r['records_per_s']:10.0f} "
              f"{r['records_failed']:8.0f} {r['records_unanswered']:7.0f} {r['cpu_s']:6.2f} "
              f"{r['per_cpu_s']:11.0f} {r['latency_us']['p50']:8.0f} "
              f"{r['latency_us']['p99']:9.0f}")
    print(f"{'testpmd rxonly memif':22} {'':10} {tp['received']:10d} {'':8} {'':7} "
          f"{tp['cpu_s']:6.2f} {tp['per_cpu_s']:11.0f}  (packets, of {tp['sent']} sent)")
    if not short:
        print(f"worker hot path 12x100B (replayed pcap): "
              f"{fmt(out['worker_per_cpu_s'])} records per worker CPU-second; shard-grouped "
              f"(SHARD_RECORDS): {fmt(out['worker_grouped_per_cpu_s'])}; shard-grouped from "
              f"pre-built mbufs (--replay ring, no net_pcap copy): "
              f"{fmt(out['worker_grouped_ring_per_cpu_s'])}")
    holds = out["holds"]
    if holds:
        held = [h[0] for h in holds if h[1]]
        missed = [h[0] for h in holds if not h[1]]
        print(f"saturating rate S: {out['saturating']:.0f} records/s, the highest of "
              f"{len(holds)} {RAMP_HOLD_MS / 1000:.0f} s memif holds (12 x 100 B) the log kept "
              f"up with (durable ACKs during the hold >= {RAMP_KEEP_UP:.0%} of offered, "
              f"<= {RAMP_REFUSED_MAX:.0%} refused/unanswered/unsent, mean latency of the "
              f"last fifth <= {RAMP_GROWTH_MAX_US / 1000:.0f} ms above the first's; "
              f"{RAMP_TRIES} tries); the "
              f"lowest not held: {min(missed) if missed else 'none'}; holds: " +
              ", ".join(f"{h[0]}{'+' if h[1] else '-'}" for h in holds) +
              f" (held {len(held)})")
    else:
        print(f"saturating rate S: {out['saturating']:.0f} records/s (--short: fixed)")
    print(f"log append p99 {out['log_p99_us']:.0f} us; load average "
          f"{open('/proc/loadavg').read().split()[0]}")
    for rb in out["readback"]:
        print(f"sluiced {rb['name']}: idle at {rb['idle_share']:.2f} CPU; read back "
              f"({rb['how']}) "
              f"{rb['stored']} stored, {rb['acked']} acknowledged, {rb['unanswered']} "
              f"unanswered, {rb['extra']} unexpected")
    # Unanswered frames of the DPDK runs, by who counted them (UNANSWERED_SLUICED, UNANSWERED_DEVICE).
    tot = {}
    for rb in out["readback"]:
        for k, v in rb["split"].items():
            tot[k] = tot.get(k, 0) + v
    print(f"unanswered frames: {tot.get('frames', 0)}, counted by sluiced "
          f"{tot.get('sluiced', 0)}, counted by a device {tot.get('device', 0)}, "
          f"unaccounted {tot.get('unaccounted', 0)}")
    # The DPDK path's better device; HTTP's better appliance (the kernel backend's
    # workers do not poll, so HTTP pays no idle polling there).
    dpdk = max(p["dpdk_memif"]["per_cpu_s"], p["dpdk_af_xdp"]["per_cpu_s"])
    http = max(p["http"]["per_cpu_s"], p["http_kernel"]["per_cpu_s"])
    lost = sum(rb["lost"] for rb in out["readback"])
    p99 = {k: v["latency_us"]["p99"] for k, v in lat.items()}
    over = lat["overload"]
    fields = {
        "dpdk_per_cpu_s": f"{dpdk:.0f}",
        "http_per_cpu_s": f"{http:.0f}",
        "kernel_per_cpu_s": f"{p['kernel_udp']['per_cpu_s']:.0f}",
        "ratio_http": f"{ratio(dpdk, http):.2f}",
        "ratio_kernel": f"{ratio(dpdk, p['kernel_udp']['per_cpu_s']):.2f}",
        "memif_vs_testpmd": f"{ratio(p['memif_1rec']['per_cpu_s'], tp['per_cpu_s']):.3f}",
        "p99_half_ratio": f"{ratio(p99['half'], out['log_p99_us']):.2f}",
        "p99_overload_ratio": f"{ratio(p99['overload'], p99['unloaded']):.2f}",
        "lost": str(lost),
        # The overload step's honesty: the rate the generator really sent, in units of S
        # (below 2, it could not offer twice S on this host: its lag is in the p99 above),
        # and the same ratio with latency from each frame's send.
        "overload_sent_x": f"{ratio(over.get('sent_per_s', 0), out['saturating']):.2f}",
        "p99_overload_sent_ratio":
            f"{ratio(over.get('sent_p99_us', 0), lat['unloaded'].get('sent_p99_us', 0)):.2f}",
    }
    print("ingest-compare: " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
    acked_all = all(r["records_acked"] > 0 for _, r in rows)
    if not acked_all:
        say("a path acknowledged no records")
    return 0 if acked_all and lost == 0 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--duration-ms", type=int, default=0)
    ap.add_argument("--dir", default=None, help="temp dir parent (default $TMPDIR)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more setting for every sluiced it starts (exploring a limit)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("sluice-bench-compare: run as root", file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_signal)
    env = Env(args)
    try:
        return report(measure(env, args.short), args.short)
    except Stop as stop:
        say("interrupted: cleaning up")
        return stop.args[0]
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        say(f"failed: {e}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # A second Ctrl-C must not skip cleanup.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        env.cleanup()


if __name__ == "__main__":
    sys.exit(main())
