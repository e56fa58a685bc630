#!/usr/bin/python3
"""sluice-bench-cluster: the cluster's benchmark goals of issue 15 in one run. Run by
`sluice bench cluster [--short] [--duration D] [--rate N] [--ttl S]` (as root), which
replaces itself with this driver; it calls that same `sluice` for the load.

What it builds: the cluster harness's network namespaces (tests/cluster/harness.py: a
bridge, etcd, a client namespace and three node namespaces, every name `chx-<pid>-...`,
all removed on every exit path, also after Ctrl-C, SIGTERM and SIGHUP), a work directory
in /tmp holding every data directory (one filesystem for all of them).

What it measures, every load `sluice bench api --put-only` (PutRecords of 500 x 100 B,
HTTP/1.1 keep-alive, SigV4, one request in flight per connection, paced to an offered
rate, each connection's records to one shard through ExplicitHashKey) from the client
namespace, one generator per group of SHARDS / NODES shards, CPU of each sluiced as
utime + stime from /proc/PID/stat before and after; p50/p99 are those of the worst
generator (the same statistic on both sides):
  1. single: one sluiced (not in cluster mode: SQLite metadata, no replication) in node 1's
     namespace, a stream of SHARDS shards, CONNECTIONS_PER_SHARD connections per shard;
     its CPU with no load over IDLE_S; WARMUP_S of load not measured, then --rate
     records/s offered in total: records/s, records per sluiced CPU-second, PutRecords
     round-trip p50/p99. Then, unloaded, `sluice bench api --latency-only`: LATENCY_COUNT
     PutRecord of 100 B one at a time to one shard, interleaved in blocks of 100 with
     appends to a log of the generator's own in the work directory: p99 of both
     (put1_p99_single_ms; log_p99_ms is the larger of the two sides' log p99). Its stream
     is read back (6) and it is stopped.
  2. fdatasync: fio, 4 KiB writes each followed by fdatasync(2), over a laid-out file in
     the same work directory (what a follower's durable append costs at least): p99.
  3. quorum: the three cluster nodes (acks = quorum, replication factor 3, lease TTL
     --ttl), the same stream again, leaders spread (each node leads SHARDS / NODES, read
     with the nodes' API addresses from `sluice cluster status --json`); idle
     CPU and warm-up as in 1; the same offered load as 1, each generator sending its
     shards to the node that leads them (no forwarding hop): records/s, records per
     CPU-second of the three sluiceds together, p50/p99. ratio_quorum = cluster / single
     per CPU-second (rps_ratio: the same for records/s); p99_bound_ok: p99_cluster <=
     p99_single + fdatasync p99 (issue 15's bound, a PutRecords round trip standing for
     append -> replicated-durable). Then the one-in-flight PutRecord as in 1, to the
     shard's leader: put1_p99_cluster_ms; put1_bound_ok: put1_p99_cluster <=
     put1_p99_single + fdatasync p99 (the same bound without queueing).
  4. aggregate: single's offered load to each node (3x in total), again to the leaders.
     aggregate_ratio = NODES x (records per CPU-second of the three) / (single's): what
     three machines would ingest next to one if ingest is bound by CPU and each node had
     a machine of its own; one 2-vCPU host can show nothing more (docs/BENCHMARKS.md).
  5. failover: quorum's load on the two nodes that survive, for their shards; a shard led
     by the third (not the controller when there is a choice): PutRecord to it through a
     survivor until one succeeds, SIGKILL its leader, PutRecord again until one succeeds:
     failover_ms from the SIGKILL to that success, against ttl_ms (failover_bound_ok:
     <= 2 x TTL, issue 15's goal).
  6. lost: every shard of both streams is read back (GetRecords from TRIM_HORIZON through
     a live node). The load's records are counted per shard against what the generators
     were acknowledged for that shard (their bodies repeat: a count, not an identity); the
     probe's records are unique and matched one by one. lost = acknowledged but not read
     back; unacked_found = records read back beyond those acknowledged (requests that
     failed while a leader died may still have been written).

Last line:
  cluster-bench: single_per_cpu_s=... cluster_per_cpu_s=... ratio_quorum=...
  p99_single_ms=... p99_cluster_ms=... fdatasync_p99_ms=... p99_bound_ok=...
  aggregate_ratio=... failover_ms=... ttl_ms=... lost=... rps_single=... rps_cluster=...
  rps_ratio=... aggregate_per_cpu_s=... failover_bound_ok=... idle_cores_single=...
  idle_cores_cluster=... put1_p99_single_ms=... put1_p99_cluster_ms=... log_p99_ms=...
  put1_bound_ok=... unacked_found=... read=...   (one line)
--short: 1 s of load at a low rate per step, the same steps: behaviour only (the line,
lost = 0). Exit 0 when lost = 0 and every step ran, 1 otherwise, 2 on usage.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

import boto3
import botocore.config

HARNESS_DIR = "@HARNESS_DIR@"   # configure_file() puts tests/cluster's path here.
if HARNESS_DIR.startswith("@"):
    HARNESS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                               "cluster")
sys.path.insert(0, HARNESS_DIR)
import harness                                                   # noqa: E402
from harness import ACCESS_KEY, SECRET_KEY, wait_for             # noqa: E402

CLUSTER = "cbench"
STREAM = "cbench"
NODES = 3
SHARDS = 6                     # >= 3 and a multiple of NODES: leaders spread evenly.
CONNECTIONS_PER_SHARD = 2      # Two requests in flight per shard: the pacing has room.
RATE = 60000                   # Offered records/s in total (single, quorum); per node (aggregate).
DURATION_S = 10.0
TTL_S = 2
SHORT_RATE = 5000
SHORT_DURATION_S = 1.0
LATENCY_COUNT = 1000           # One-in-flight PutRecords (and log appends) timed per side.
SHORT_LATENCY_COUNT = 100
WARMUP_S = 1.0                 # Load before single's and quorum's, not measured: new
                               # connections, new logs and replica links are not steady.
FIO_SIZE = "16m"               # fdatasync baseline: 4 KiB writes over this laid-out file,
FIO_WRITES = 2000              # this many of them.
THREADS_SHOWN = 6              # Threads (by name, over the nodes) shown per step.
STATUS_PAUSE_S = 0.2           # Between `sluice cluster status` polls.
IDLE_S = 2.0                   # The sluiceds' CPU with no load is measured over this.
PROBE_TIMEOUT_S = 2            # A probe PutRecord's connect and read timeouts.
PROBE_PAUSE_S = 0.02           # Between failed probes (no busy loop against a dead node).
READ_LIMIT = 10000             # GetRecords' Limit.
HZ = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("sluice bench cluster: " + msg, flush=True)


def cpu_s(pid):
    """utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / HZ


def kinesis(url):
    cfg = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                 connect_timeout=PROBE_TIMEOUT_S, read_timeout=PROBE_TIMEOUT_S * 5)
    return boto3.client("kinesis", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=cfg)


def create_stream(url, name, shards):
    """The stream, ACTIVE; {shard id: starting hash key (decimal text)}."""
    k = kinesis(url)
    k.create_stream(StreamName=name, ShardCount=shards)
    wait_for(lambda: k.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", "stream %s active" % name)
    return {s["ShardId"]: s["HashKeyRange"]["StartingHashKey"]
            for s in k.list_shards(StreamName=name)["Shards"]}


def bench_api(cli, url, args):
    """`sluice bench api ARGS` against url, signed with the harness's keys, output piped."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    return subprocess.Popen([cli, "bench", "api", "--stream", STREAM, "--endpoint", url] + args,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, text=True)


def line_fields(proc, prefix):
    """The `prefix: k=v ...` line of a finished bench_api() as a dict of strings."""
    out, _ = proc.communicate()
    m = re.search(r"^%s: (.*)$" % prefix, out, re.M)
    if m is None:
        raise RuntimeError("sluice bench api exited %d without its %s line:\n%s" %
                           (proc.returncode, prefix, out[-2000:]))
    return dict(kv.split("=", 1) for kv in m.group(1).split())


def latency_step(what, cli, url, shard, workdir, count, ledger):
    """One PutRecord of 100 B at a time to `shard` through url (its leader), interleaved in
    blocks of 100 with appends to a log of the generator's own in workdir (the same
    filesystem, sluiced's defaults): both p50/p99 in ms."""
    f = line_fields(bench_api(cli, url, ["--latency-only", "--hash-keys", KEYS[shard],
                                         "--latency-count", str(count), "--log-dir", workdir]),
                    "bench-api-lat")
    ledger[shard] = ledger.get(shard, 0) + int(f["acked"])
    r = {k[:-3] + "_ms": float(v) / 1e3 for k, v in f.items() if k.endswith("_us")}
    log("%-10s PutRecord 100 B one in flight p50 %.2f ms p99 %.2f ms; log append -> durable "
        "p50 %.2f ms p99 %.2f ms (n=%d)" % (what, r["put_p50_ms"], r["put_p99_ms"],
                                           r["log_p50_ms"], r["log_p99_ms"], count))
    return r


class Load:
    """One `sluice bench api --put-only` process against one node for some shards."""

    def __init__(self, cli, url, keys_by_shard, shards, rate, duration_s):
        self.shards = list(shards)
        self.key_shard = {keys_by_shard[s]: s for s in self.shards}
        keys = [keys_by_shard[s] for s in self.shards] * CONNECTIONS_PER_SHARD
        self.proc = bench_api(cli, url, [
            "--put-only", "--connections", str(len(keys)), "--hash-keys", ",".join(keys),
            "--rate", str(max(1, int(rate))), "--duration", "%dms" % int(duration_s * 1000)])

    def wait(self):
        """{records_ok, ..., acked: {shard id: records}}; raises when no line came."""
        fields = line_fields(self.proc, "bench-api-put")
        r = {k: float(v) for k, v in fields.items() if k != "acked"}
        r["acked"] = {}
        for kv in fields["acked"].split(","):
            key, n = kv.rsplit(":", 1)
            r["acked"][self.key_shard[key]] = r["acked"].get(self.key_shard[key], 0) + int(n)
        return r


def thread_cpu_s(pids):
    """{thread name: utime + stime in seconds} summed over the threads of `pids` (where the
    CPU went; names as sluiced sets them)."""
    out = {}
    for pid in pids:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    head, rest = f.read().rsplit(")", 1)
            except FileNotFoundError:
                continue   # A thread that ended between the listing and the read.
            name = re.sub(r"\d+$", "", head.split("(", 1)[1])   # worker3 -> worker.
            fields = rest.split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / HZ
    return out


def run_phase(what, cli, pids, loads_spec, duration_s, ledger):
    """Runs the loads at once; their merged result with the sluiceds' CPU seconds. loads_spec:
    [(url, shards, rate)]; ledger: {shard id: acknowledged records} to add to."""
    before = {p: cpu_s(p) for p in pids}
    threads_before = thread_cpu_s(pids)
    loads = [Load(cli, url, KEYS, shards, rate, duration_s) for url, shards, rate in loads_spec]
    results = [ld.wait() for ld in loads]
    cpu = sum(cpu_s(p) - before[p] for p in pids)
    threads = {k: v - threads_before.get(k, 0.0) for k, v in thread_cpu_s(pids).items()}
    ok = sum(r["records_ok"] for r in results)
    for r in results:
        for shard, n in r["acked"].items():
            ledger[shard] = ledger.get(shard, 0) + n
    res = {"ok": ok, "failed": sum(r["records_failed"] for r in results),
           "errors": sum(r["errors"] for r in results),
           "rps": sum(r["records_per_s"] for r in results), "cpu_s": cpu,
           "per_cpu_s": ok / cpu if cpu > 0 else 0.0,
           # The loads' p50/p99 are of their own requests: the worst of them is reported.
           "p50_ms": max(r["p50_us"] for r in results) / 1e3,
           "p99_ms": max(r["p99_us"] for r in results) / 1e3,
           "max_ms": max(r["max_us"] for r in results) / 1e3,
           "offered": sum(rate for _, _, rate in loads_spec)}
    log("%-10s offered %8.0f rec/s: %8.0f rec/s acked, %d failed, %d errors, CPU %.2f s "
        "(%.0f records per CPU-s), p50 %.1f ms p99 %.1f ms max %.1f ms" %
        (what, res["offered"], res["rps"], res["failed"], res["errors"], cpu, res["per_cpu_s"],
         res["p50_ms"], res["p99_ms"], res["max_ms"]))
    for (url, shards, _), r in zip(loads_spec, results):
        log("%-10s   %s (%s): p99 %.1f ms, max %.1f ms" %
            (what, url, ",".join(sh[-2:] for sh in shards), r["p99_us"] / 1e3,
             r["max_us"] / 1e3))
    top = sorted(threads.items(), key=lambda kv: -kv[1])[:THREADS_SHOWN]
    log("%-10s CPU by thread (all its sluiceds): %s" %
        (what, ", ".join("%s %.2f s" % kv for kv in top if kv[1] > 0)))
    return res


KEYS = {}   # Shard id -> starting hash key (both streams have the same shards).


def fdatasync_p99_ms(workdir):
    """fio: 4 KiB sequential writes over a laid-out file, fdatasync after each; p99 of the
    sync's latency (ms)."""
    d = os.path.join(workdir, "fio")
    os.makedirs(d)
    out = harness.sh("fio", "--name=fdatasync", "--directory=" + d, "--rw=write", "--bs=4k",
                     "--size=" + FIO_SIZE, "--io_size=%dk" % (4 * FIO_WRITES), "--fdatasync=1",
                     "--ioengine=sync", "--output-format=json")
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return job["sync"]["lat_ns"]["percentile"]["99.000000"] / 1e6


def placement(c):
    """From `sluice cluster status --json` (etcd's placement, as an operator sees it):
    {shard id: {"leader", "replicas", "isr", ...}} of STREAM, the controller's node id,
    {node id: its API URL}."""
    st = c.status()
    shards = {"shardId-%012d" % p["shard"]: p for p in st["placements"]
              if p["stream"] == STREAM}
    controller = st["controller"]["node"] if st.get("controller") else None
    return shards, controller, {n["id"]: "http://" + n["api_addr"] for n in st["nodes"]}


def spread_settled(c, ids):
    """Placement of every shard on `ids`: led, 3 in-sync replicas, leaders even."""
    shards, _, api = placement(c)
    if len(shards) != SHARDS or set(api) != set(ids):
        return None
    led = {i: [] for i in ids}
    for sid, v in shards.items():
        if v["leader"] not in ids or sorted(v["isr"]) != sorted(v["replicas"]) or \
           len(v["replicas"]) != min(3, len(ids)):
            return None
        led[v["leader"]].append(sid)
    counts = [len(v) for v in led.values()]
    return (led, api) if max(counts) - min(counts) <= 1 else None


def read_back(url, name, ledger, probes):
    """Reads every shard of `name` through url; (lost, unacked_found, records read)."""
    k = kinesis(url)
    lost = extra = total = 0
    found_probes = set()
    for sid in KEYS:
        it = k.get_shard_iterator(StreamName=name, ShardId=sid,
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        n = 0
        while True:
            r = k.get_records(ShardIterator=it, Limit=READ_LIMIT)
            for rec in r["Records"]:
                if rec["Data"].startswith(b"cbench-probe-"):
                    found_probes.add(rec["Data"])
                else:
                    n += 1
            it = r["NextShardIterator"]
            if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                break
        total += n
        acked = ledger.get(sid, 0)
        lost += max(0, acked - n)
        extra += max(0, n - acked)
        if n != acked:
            log("%s %s: %d records read back, %d acknowledged" % (name, sid, n, acked))
    missing = [p for p in probes if p not in found_probes]
    lost += len(missing)
    extra += len(found_probes - set(probes))
    return lost, extra, total + len(found_probes)


class Probe:
    """PutRecord of unique records to one shard through one node, until one succeeds."""

    def __init__(self, url, hash_key):
        self.k = kinesis(url)
        self.hash_key = hash_key
        self.acked = []
        self.n = 0

    def until_ok(self, deadline_s):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            data = b"cbench-probe-%d" % self.n
            self.n += 1
            try:
                self.k.put_record(StreamName=STREAM, Data=data, PartitionKey="probe",
                                  ExplicitHashKey=self.hash_key)
                self.acked.append(data)
                return time.monotonic()
            except Exception:
                time.sleep(PROBE_PAUSE_S)
        raise TimeoutError("no PutRecord to the shard succeeded within %.0f s" % deadline_s)


def idle_cores(pids):
    """CPU the sluiceds use with no load (cores, over IDLE_S): their fixed cost, which the
    records per CPU-second of a light load include."""
    before = sum(cpu_s(p) for p in pids)
    time.sleep(IDLE_S)
    cores = (sum(cpu_s(p) for p in pids) - before) / IDLE_S
    log("idle       %d sluiced: %.3f cores" % (len(pids), cores))
    return cores


def single_phase(c, cli, rate, duration_s, lat_count, ledger):
    """Step 1 on a plain sluiced in node 1's namespace; its read-back before it stops."""
    n = harness.Node(c, 1)
    n.data_dir = os.path.join(c.workdir, "single")
    n.log_path = os.path.join(c.workdir, "single.log")
    argv = [a for a in n.argv()]
    # The node's own argv without the [cluster] section: single-node mode, SQLite.
    keep, i = [], 0
    while i < len(argv):
        if argv[i] == "--set" and argv[i + 1].startswith("cluster."):
            i += 2
            continue
        keep.append(argv[i])
        i += 1
    n.argv = lambda: keep
    n.start()
    try:
        KEYS.update(create_stream(n.api_url, STREAM, SHARDS))
        # As many generators as the cluster has leaders, over the same shard groups: the
        # same client processes, and the same statistic (the worst generator's p99).
        ids = sorted(KEYS)
        spec = [(n.api_url, ids[g::NODES], rate * len(ids[g::NODES]) / SHARDS)
                for g in range(NODES)]
        idle = idle_cores([n.proc.pid])
        run_phase("warm-up", cli, [n.proc.pid], spec, WARMUP_S, ledger)
        res = run_phase("single", cli, [n.proc.pid], spec, duration_s, ledger)
        res["idle_cores"] = idle
        res["lat"] = latency_step("single", cli, n.api_url, ids[0], c.workdir, lat_count, ledger)
        res["lost"], res["extra"], res["read"] = read_back(n.api_url, STREAM, ledger, [])
    finally:
        n.stop()
    return res


def failover_phase(c, cli, led, api, rate, duration_s, ledger, probes):
    _, controller, _ = placement(c)
    victims = [i for i in sorted(led) if i != controller and led[i]] or \
        [i for i in sorted(led) if led[i]]
    victim = victims[0]
    shard = sorted(led[victim])[0]
    survivors = [n for n in c.nodes if n.id != victim]
    via = survivors[0]
    probe = Probe(api[via.id], KEYS[shard])
    probe.until_ok(harness.DEADLINE_S)
    # The background load on the survivors' shards lasts past the bound (2 x TTL) and more.
    bg_s = max(duration_s, 4.0 * c.ttl_s + 2.0)
    spec = [(api[n.id], led[n.id], rate * len(led[n.id]) / SHARDS) for n in survivors]
    out = {}
    t = threading.Thread(target=lambda: out.update(
        run_phase("failover", cli, [n.proc.pid for n in survivors], spec, bg_s, ledger)))
    t.start()
    try:
        t0 = time.monotonic()
        c.nodes[victim - 1].kill()
        t1 = probe.until_ok(harness.DEADLINE_S)
    finally:
        t.join()
    probes.extend(probe.acked)
    failover_ms = (t1 - t0) * 1000.0
    log("failover: SIGKILL node %d (leader of %s; controller %s), PutRecord through node %d "
        "succeeded again after %.0f ms (%d probes, TTL %d ms)" %
        (victim, shard, controller, via.id, failover_ms, probe.n, c.ttl_s * 1000))
    return failover_ms, via


def run(args, cli, build):
    rate = SHORT_RATE if args.short else args.rate
    duration_s = SHORT_DURATION_S if args.short else args.duration_ms / 1000.0
    c = harness.Cluster(nodes=NODES, name=CLUSTER, ttl_s=args.ttl, rf=3, acks="quorum",
                        build_dir=build, kind="sluiced")
    with c:
        c.enter()
        log("work directory %s, %d shards, %d connections per shard, %.1f s per phase, "
            "load average %.2f" % (c.workdir, SHARDS, CONNECTIONS_PER_SHARD, duration_s,
                                   os.getloadavg()[0]))
        single_ledger, ledger, probes = {}, {}, []
        lat_count = SHORT_LATENCY_COUNT if args.short else LATENCY_COUNT
        single = single_phase(c, cli, rate, duration_s, lat_count, single_ledger)
        fsync_ms = fdatasync_p99_ms(c.workdir)
        log("fdatasync  p99 %.2f ms (fio, 4 KiB writes, same filesystem)" % fsync_ms)
        c.start_nodes()
        create_stream(c.nodes[0].api_url, STREAM, SHARDS)
        ids = [n.id for n in c.nodes]
        # `sluice cluster status` runs per poll: a slower pace than the harness's default.
        led, api = wait_for(lambda: spread_settled(c, ids), "leaders spread over %r" % ids,
                            pause_s=STATUS_PAUSE_S)
        log("leaders: %s" % ", ".join("node %d %s" % (i, ",".join(s[-2:] for s in sorted(v)))
                                      for i, v in sorted(led.items())))
        pids = [n.proc.pid for n in c.nodes]
        spec = [(api[i], s, rate * len(s) / SHARDS) for i, s in led.items()]
        idle = idle_cores(pids)
        run_phase("warm-up", cli, pids, spec, WARMUP_S, ledger)
        quorum = run_phase("quorum", cli, pids, spec, duration_s, ledger)
        first = sorted(KEYS)[0]
        leader = [i for i, s in led.items() if first in s][0]
        quorum["lat"] = latency_step("quorum", cli, api[leader], first, c.workdir,
                                     lat_count, ledger)
        aggregate = run_phase("aggregate", cli, pids,
                              [(api[i], s, rate * len(s) * NODES / SHARDS)
                               for i, s in led.items()], duration_s, ledger)
        failover_ms, via = failover_phase(c, cli, led, api, rate, duration_s, ledger, probes)
        lost, extra, read = read_back(api[via.id], STREAM, ledger, probes)
        lost += single["lost"]
        extra += single["extra"]
    ratio = quorum["per_cpu_s"] / single["per_cpu_s"] if single["per_cpu_s"] else 0.0
    agg = NODES * aggregate["per_cpu_s"] / single["per_cpu_s"] if single["per_cpu_s"] else 0.0
    bound_ok = quorum["p99_ms"] <= single["p99_ms"] + fsync_ms
    failover_ok = failover_ms <= 2 * args.ttl * 1000
    put1_single, put1_cluster = single["lat"]["put_p99_ms"], quorum["lat"]["put_p99_ms"]
    put1_ok = put1_cluster <= put1_single + fsync_ms
    print("cluster-bench: single_per_cpu_s=%.0f cluster_per_cpu_s=%.0f ratio_quorum=%.2f "
          "p99_single_ms=%.2f p99_cluster_ms=%.2f fdatasync_p99_ms=%.2f p99_bound_ok=%d "
          "aggregate_ratio=%.2f failover_ms=%.0f ttl_ms=%d lost=%d rps_single=%.0f "
          "rps_cluster=%.0f rps_ratio=%.2f aggregate_per_cpu_s=%.0f failover_bound_ok=%d "
          "idle_cores_single=%.3f idle_cores_cluster=%.3f put1_p99_single_ms=%.2f "
          "put1_p99_cluster_ms=%.2f log_p99_ms=%.2f put1_bound_ok=%d unacked_found=%d read=%d" %
          (single["per_cpu_s"], quorum["per_cpu_s"], ratio, single["p99_ms"], quorum["p99_ms"],
           fsync_ms, bound_ok, agg, failover_ms, args.ttl * 1000, lost, single["rps"],
           quorum["rps"], quorum["rps"] / single["rps"] if single["rps"] else 0.0,
           aggregate["per_cpu_s"], failover_ok, single["idle_cores"], idle, put1_single,
           put1_cluster, max(single["lat"]["log_p99_ms"], quorum["lat"]["log_p99_ms"]),
           put1_ok, extra, read + single["read"]), flush=True)
    return 0 if lost == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sluice", required=True, help="the sluice binary (build/tools/sluice)")
    p.add_argument("--short", action="store_true")
    p.add_argument("--duration-ms", type=int, default=0, help="each phase (default 10 s)")
    p.add_argument("--rate", type=int, default=RATE, help="offered records/s (default %d)" % RATE)
    p.add_argument("--ttl", type=int, default=TTL_S, help="etcd lease TTL, s (default %d)" % TTL_S)
    args = p.parse_args()
    if args.duration_ms <= 0:
        args.duration_ms = int(DURATION_S * 1000)
    if os.geteuid() != 0:
        print("sluice bench cluster: run as root (network namespaces)", file=sys.stderr)
        return 2
    cli = os.path.abspath(args.sluice)
    build = os.path.dirname(os.path.dirname(cli))
    if not harness.cluster_mode_supported(os.path.join(build, "control", "sluiced")):
        print("sluice bench cluster: %s/control/sluiced has no cluster mode" % build,
              file=sys.stderr)
        return 2
    try:
        return run(args, cli, build)
    except SystemExit:
        raise
    except Exception:   # Cleanup has run (the harness's context); say what failed, where.
        traceback.print_exc()
        print("sluice bench cluster: failed (above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
