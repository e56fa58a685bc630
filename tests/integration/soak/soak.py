#!/usr/bin/python3
"""
soak: a seeded fault campaign against one sluiced (--no-dataplane), for as long as asked.

Load, all at once: producers (PutRecords over HTTP/1.1, per-key sequences), a resharder
(SplitShard / MergeShards / UpdateShardCount), a reader (GetRecords on random shards), and
a filler that writes 1 MiB records to a scratch stream until the disk is full, then
deletes it (retention gives the space back). The data directory is a loop-mounted ext4
of --disk-mb (root; a plain temp dir otherwise, and then no disk-full phases).

Faults, one per round after a seeded 2..6 s of load: SIGKILL (70 %), SIGKILL again during
the recovery that follows (some of those), or SIGSTOP for 0.3..1.5 s then SIGCONT.

Checked after every restart and at the end, against the ledger of every acknowledged
record: each is read back exactly once, at the shard and sequence number it was
acknowledged with, with its bytes; nothing unacknowledged is read (records in flight at
a kill may be there, once); per partition key the records come in send order; closed
shards end and list their children. While sluiced is up (not stopped): RSS stays within
--rss-budget-mb, and DescribeStreamSummary answers within --answer-bound-s.

  usage: soak.py SLUICED [--duration S] [--seed N] [--disk-mb M] [--rss-budget-mb M]
                         [--answer-bound-s S]

Prints one summary line: operations, faults by kind, records acknowledged, lost (0).
Uses its own temp dir, loop device and port; stops only the sluiced it started.
"""
import argparse
import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "reshard_load", os.path.join(HERE, "..", "reshard", "test_reshard_load.py"))
rl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rl)
check = rl.check

STREAM = rl.STREAM


class Sluiced:
    """sluiced on data_dir; its stderr goes to log_path (outside a disk that fills)."""

    def __init__(self, binary, data_dir, log_path):
        self.binary, self.data_dir, self.log_path = binary, data_dir, log_path
        self.proc, self.port = None, None

    def spawn(self):
        self.port = rl.free_port()
        self.proc = subprocess.Popen(
            [self.binary, "--no-dataplane", "--data-dir", self.data_dir,
             "--api-listen", "127.0.0.1:%d" % self.port,
             "--set", "server.stream_status_delay_ms=5",
             "--set", "server.shard_count_updates_per_day=0",
             "--set", "log.segment_size_mb=8",
             "--set", "log.retention_check_s=1"],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "ab"))

    def start(self):
        self.spawn()
        line = self.proc.stdout.readline().decode()
        check("ready" in line, "sluiced did not start: %r (see %s)" % (line, self.log_path))

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SystemExit("FAIL: sluiced did not stop on SIGTERM")
        self.proc = None
        check(rc == 0, "sluiced exit code %d" % rc)

    def client(self, attempts=1):
        return rl.client("http://127.0.0.1:%d" % self.port, attempts)

    def rss_mb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except (OSError, AttributeError):
            pass
        return 0.0


class Loop:
    """A small ext4 on a loop device (root), or a plain directory."""

    def __init__(self, tmp, size_mb):
        self.mnt, self.mounted = os.path.join(tmp, "mnt"), False
        os.mkdir(self.mnt)
        if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None or size_mb == 0:
            return
        img = os.path.join(tmp, "disk.img")
        with open(img, "wb") as f:
            f.truncate(size_mb << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True)
        subprocess.run(["mount", "-o", "loop", img, self.mnt], check=True)
        self.mounted = True

    def close(self):
        if self.mounted:
            subprocess.run(["umount", self.mnt], check=False)
            self.mounted = False


class Background(threading.Thread):
    """A load thread that tolerates sluiced dying under it; counts what it did."""

    def __init__(self, srv, stop, rng):
        super().__init__(daemon=True)
        self.srv, self.stop, self.rng, self.count, self.error = srv, stop, rng, 0, None

    def run(self):
        try:
            self.kc = self.srv.client()
            while not self.stop.is_set():
                try:
                    self.step()
                except rl.ClientError:
                    time.sleep(0.01)
                except Exception:  # noqa: B902 - sluiced killed or stopped under us
                    if self.stop.is_set():
                        return
                    time.sleep(0.05)
        except BaseException as e:  # noqa: B902 - reported by the main thread
            self.error = e


class Resharder(Background):
    def __init__(self, srv, stop, rng, counts):
        super().__init__(srv, stop, rng)
        self.counts = counts

    def step(self):
        rl.reshard_once(self.kc, self.rng, self.counts)
        self.count += 1
        time.sleep(self.rng.uniform(0.05, 0.3))


class Reader(Background):
    def step(self):
        shards = rl.list_shards(self.kc)
        s = self.rng.choice(shards)
        it = self.kc.get_shard_iterator(StreamName=STREAM, ShardId=s["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        self.kc.get_records(ShardIterator=it, Limit=1000)
        self.count += 1
        time.sleep(0.05)


class Filler(Background):
    """Fills the disk with a scratch stream, then deletes it; counts disk-full episodes."""

    def __init__(self, srv, stop, rng, round_no):
        super().__init__(srv, stop, rng)
        self.name, self.refused, self.full = "ballast-%d" % round_no, 0, 0
        self.blob = os.urandom(1 << 20)
        self.created = False

    def step(self):
        if not self.created:
            # A kill may have left an earlier round's scratch stream: give its space back.
            for name in self.kc.list_streams()["StreamNames"]:
                if name.startswith("ballast") and name != self.name:
                    try:
                        self.kc.delete_stream(StreamName=name)
                    except rl.ClientError:
                        pass
            try:
                self.kc.create_stream(StreamName=self.name, ShardCount=1)
            except rl.ClientError as e:
                if e.response["Error"]["Code"] != "ResourceInUseException":
                    raise
            for _ in range(2000):
                s = self.kc.describe_stream_summary(StreamName=self.name)
                if s["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                    break
                time.sleep(0.005)
            self.created, self.refused = True, 0
        r = self.kc.put_records(StreamName=self.name, Records=[
            {"PartitionKey": "b%d" % i, "Data": self.blob} for i in range(4)])
        self.count += 4 - r["FailedRecordCount"]
        self.refused = self.refused + 1 if r["FailedRecordCount"] == 4 else 0
        if self.refused >= 5:  # Full (or the log's preallocation is): give it back.
            self.full += 1
            self.kc.delete_stream(StreamName=self.name)
            self.created = False
            self.name += "x"
            time.sleep(self.rng.uniform(0.5, 2.0))


class Watch(threading.Thread):
    """Samples RSS and how long a DescribeStreamSummary takes while sluiced runs."""

    def __init__(self, srv, stop):
        super().__init__(daemon=True)
        self.srv, self.stop, self.paused = srv, stop, threading.Event()
        self.rss_max, self.answer_max, self.error = 0.0, 0.0, None

    def run(self):
        kc = self.srv.client()
        while not self.stop.is_set():
            self.rss_max = max(self.rss_max, self.srv.rss_mb())
            t0 = time.time()
            try:
                kc.describe_stream_summary(StreamName=STREAM)
                if not self.paused.is_set():
                    self.answer_max = max(self.answer_max, time.time() - t0)
            except Exception:  # noqa: B902 - killed or stopped: not "up"
                pass
            time.sleep(0.2)


def verify_all(srv, acked, maybe):
    kc = srv.client(attempts=10)
    shards, read = rl.consume(kc)
    rl.verify(acked, read, maybe)
    rl.per_key_order(read, sorted(shards, key=lambda s: int(s["ShardId"].split("-")[1])))
    return len(shards)


def round_once(srv, rng, n, totals, args):
    """One round of load and one fault. Returns after sluiced is up again (and verified)."""
    stop = threading.Event()
    producers = [rl.Producer(srv, n * 10 + i, stop) for i in range(rl.PRODUCERS)]
    for p in producers:
        p.tolerate_death = True
        p.kc = srv.client()
    threads = [Resharder(srv, stop, random.Random(rng.random()), totals["reshards"]),
               Reader(srv, stop, random.Random(rng.random()))]
    filler = None
    if args.fill:
        filler = Filler(srv, stop, random.Random(rng.random()), n)
        threads.append(filler)
    watch = Watch(srv, stop)
    for t in producers + threads + [watch]:
        t.start()
    time.sleep(rng.uniform(2.0, 6.0))
    fault = rng.random()
    if fault < 0.3:
        totals["sigstop"] += 1
        watch.paused.set()
        srv.proc.send_signal(signal.SIGSTOP)
        time.sleep(rng.uniform(0.3, 1.5))
        srv.proc.send_signal(signal.SIGCONT)
        time.sleep(0.5)
        watch.paused.clear()
        time.sleep(rng.uniform(0.5, 2.0))
    watch.paused.set()
    srv.kill()
    totals["sigkill"] += 1
    stop.set()
    for t in producers + threads + [watch]:
        t.join(timeout=60)
        check(not t.is_alive(), "a load thread did not stop")
        check(t.error is None, "%s failed: %r" % (type(t).__name__, t.error))
    for p in producers:
        totals["acked"].update(p.acked)
        totals["maybe"].update(p.inflight)
        totals["puts"] += p.calls
    totals["reads"] += threads[1].count
    if filler is not None:
        totals["full"] += filler.full
        totals["filled_mb"] += filler.count
    totals["rss_max"] = max(totals["rss_max"], watch.rss_max)
    totals["answer_max"] = max(totals["answer_max"], watch.answer_max)
    check(watch.rss_max <= args.rss_budget_mb, "RSS %.0f MiB over the budget %d MiB" % (
        watch.rss_max, args.rss_budget_mb))
    check(watch.answer_max <= args.answer_bound_s, "an answer took %.1f s (bound %.1f s)" % (
        watch.answer_max, args.answer_bound_s))
    # Sometimes a second kill during the recovery that follows.
    if rng.random() < 0.25:
        srv.spawn()
        time.sleep(rng.uniform(0.0, 0.2))
        srv.kill()
        totals["sigkill_recovery"] += 1
    srv.start()
    totals["shards"] = verify_all(srv, totals["acked"], set(totals["maybe"].items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluiced")
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("TEST_SEED", "1")))
    ap.add_argument("--disk-mb", type=int, default=160)
    ap.add_argument("--rss-budget-mb", type=int, default=1024)
    ap.add_argument("--answer-bound-s", type=float, default=20.0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="sluice-soak-")
    loop = Loop(tmp, args.disk_mb)
    args.fill = loop.mounted
    srv = Sluiced(args.sluiced, os.path.join(loop.mnt, "data"), os.path.join(tmp, "sluiced.log"))
    totals = {"acked": {}, "maybe": {}, "puts": 0, "reads": 0, "full": 0, "filled_mb": 0,
              "sigkill": 0, "sigkill_recovery": 0, "sigstop": 0, "rss_max": 0.0,
              "answer_max": 0.0, "shards": 0,
              "reshards": {"split": 0, "merge": 0, "update": 0}}
    t0 = time.time()
    rounds = 0
    try:
        srv.start()
        kc = srv.client(attempts=10)
        kc.create_stream(StreamName=STREAM, ShardCount=2)
        rl.wait_active(kc)
        while time.time() - t0 < args.duration:
            round_once(srv, rng, rounds, totals, args)
            rounds += 1
        srv.stop()
    except BaseException as e:
        print("FAIL (seed %d, round %d): %s; sluiced log: %s" % (args.seed, rounds, e,
                                                                  srv.log_path),
              file=sys.stderr)
        if srv.proc is not None:
            srv.kill()
        loop.close()
        raise
    loop.close()
    shutil.rmtree(tmp, ignore_errors=True)
    r = totals["reshards"]
    print("soak: seed %d, %.0f s, %d rounds; operations: %d PutRecords calls, %d reads, "
          "%d splits, %d merges, %d UpdateShardCount, %d MiB of filler; faults: %d SIGKILL "
          "(+%d during recovery), %d SIGSTOP, %d disk-full episodes; %d records "
          "acknowledged, lost 0; %d shards; max RSS %.0f MiB; slowest answer %.2f s" % (
              args.seed, time.time() - t0, rounds, totals["puts"], totals["reads"],
              r["split"], r["merge"], r["update"], totals["filled_mb"], totals["sigkill"],
              totals["sigkill_recovery"], totals["sigstop"], totals["full"],
              len(totals["acked"]), totals["shards"], totals["rss_max"],
              totals["answer_max"]))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
