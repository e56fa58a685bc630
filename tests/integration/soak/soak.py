#!/usr/bin/python3
"""
soak: a seeded fault campaign against one sluiced, for as long as asked.

Load, all at once: producers (PutRecords over HTTP/1.1 with boto3, and over h2c with curl
--http2-prior-knowledge; per-key sequences), dataplane producers sending record frames
(docs/PROTOCOL.md) over UDP and over TCP to the kernel backend ([dataplane] backend =
kernel on 127.0.0.1), with durable ACKs, retries of the same bytes and exactly-once
dedup, a resharder (SplitShard / MergeShards / UpdateShardCount), a reader (GetRecords on
random shards), a fan-out reader (SubscribeToShard through a registered consumer, boto3's
event stream, resubscribing from where it stopped), and a filler that writes 1 MiB
records to a scratch stream until the disk
is full, holds it full for a while, then deletes it (retention gives the space back) and
leaves room for a while. The data directory is a loop-mounted ext4 of --disk-mb (root; a
plain temp dir otherwise, and then no disk-full phases).

Faults, one per round after a seeded spell of load (PROFILES): SIGKILL, sometimes after a
SIGSTOP and SIGCONT, sometimes right after a reshard was answered; then starts killed
during their recovery (0 or more), then a start, sometimes under prlimit with few
descriptors. Within rounds: stall phases (connections that send part of a request, over
HTTP/1.1, h2c and the dataplane's TCP, and hold it: sluiced must time them out and
count it in /metrics) and hog phases (connections beyond the cap, and beyond the
descriptors under prlimit: sluiced must count refusals and answer a new client after).
In the kills profile, SIGKILLs inside a stream's retirement (after DeleteStream, after
the next CreateStream). Retention expiry: sluiced runs with [log] retention_hour_ms =
RETENTION_HOUR_MS, so the stream (classic) or every other generation (kills) keeps its
records 24 h = 3.6 s and they age out all through the run, kills landing before, during
and after retention runs (every second); the others and the filler's streams are at
8760 h (22 min), which they never live to reach.

Checked after every start that served clients (a start killed during its recovery served
nothing; the next read-back covers what it recovered) and at the end, against the ledger
of every acknowledged record (a 200 of the API, or a frame's durable ACK, whose runs give
each record's shard and log sequence number): each is read back exactly once, at the
shard and sequence number it was acknowledged with, with its bytes; nothing
unacknowledged is read (records in flight at a kill may be there, once); per partition
key the records come in send order; closed shards end and list their children; a record
is missing only as expired (verify_all: old enough, below its shard's horizon probed
after the read-back, never read again); the open
shards partition the hash-key space (a reshard cut by a kill happened or not, never
half); every record a fan-out subscription delivered is there (delivered = durable),
and was acknowledged at that position or in flight. While
sluiced is up (not stopped): RSS stays within --rss-budget-mb, and DescribeStreamSummary
answers within --answer-bound-s.

Profiles: "classic" (the default) keeps one stream, of short retention, for the whole
run, so a read-back reads every shard within retention (closed ones leave ListShards a
retention after their close); "kills" keeps load spells short and retires the stream (a
new one takes the load) right after a read-back that found all its records, once it
holds gen_shards shards or gen_records records, so a read-back stays short and kills
stay dense (docs/TESTING.md, "The fault campaign").

  usage: soak.py SLUICED [--duration S] [--seed N] [--profile classic|kills] [--kills N]
                         [--disk-mb M] [--rss-budget-mb M] [--answer-bound-s S]
                         [--state DIR [--resume]]

Prints one summary line: operations, faults by kind, records acknowledged, lost (0); a
progress line every PROGRESS_S before it. --kills N ends the run at N SIGKILLs if that
comes before --duration.
Uses its own temp dir, loop device and port; stops only the sluiced it started.
--state DIR: the run lives in DIR (kept at the end) and is checkpointed after every round;
--resume continues it after its harness was killed (docs/TESTING.md, "A run longer than
a session"; save_checkpoint, resume_state, recover, adopt).
"""
import argparse
import base64
import hashlib
import importlib.util
import json
import os
import pickle
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "reshard_load", os.path.join(HERE, "..", "reshard", "test_reshard_load.py"))
rl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rl)
check = rl.check

sys.path.insert(0, os.path.join(HERE, "..", "..", "protocol"))
from test_spec_independent import records_frame  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "ops"))
from opslib import samples  # noqa: E402

FRAME_RECORDS = 10      # Per frame: at most 16 runs, so a replayed ACK keeps its detail.
FRAME_ACK_WAIT_S = 1.0  # Then the same bytes again (the dedup window answers a repeat).
ACK, NACK = 2, 3
NACK_RETRY = (5, 6)     # throttled, internal: retry the same bytes after retry_after_ms.
NACK_UNKNOWN_STREAM = 1  # Nothing stored; a stream just created may not be routed yet.
FILL_REFUSED = 5        # Filler calls refused in a row: the disk is full.
PROGRESS_S = 600        # A long run prints how far it got this often.
# The appliance's limits here, low enough that the faults below reach them.
CONNECTIONS_MAX = 128   # [server] connections_max: a hog goes beyond it.
IDLE_TIMEOUT_MS = 2000  # [server] idle_timeout_ms: longer than any SIGSTOP (stop_s).
TCP_IDLE_TIMEOUT_S = 2  # [dataplane] tcp_idle_timeout_s: a frame stalled mid-way is reset.
NOFILE_LOW = 160        # RLIMIT_NOFILE of the starts under prlimit (sluiced holds ~50 idle).
HOG_EXTRA = 32          # A hog holds CONNECTIONS_MAX + this many connections.
HOG_HOLD_S = (1.5, 3.0)  # ... this long (past SERVER_EVICT_AGE_MS: newcomers evict it).
STALLS_EXTRA = (0, 4)   # A stall phase: one of each of Staller.KINDS and this many more.
PHASE_DEADLINE_S = 60   # A stall or hog phase is over by then (bounds a hang only).
ANSWERED_AGAIN_S = 30   # After a hog phase, a new client is answered by then.
RESHARD_WAIT_S = 20     # A reshard kill waits this long for a reshard to be answered.
FANOUT_CONSUMER = "soak-fanout"
# Retention expiry: [log] retention_hour_ms here, so that a stream of the shortest
# retention Kinesis allows (SHORT_H) keeps its records SHORT_H x this (9.6 s) and ages out
# many times in a run, while LONG_H (the longest) lasts 58 min: the filler's streams and
# the kills profile's odd generations, which live far shorter, never lose a record to it.
RETENTION_HOUR_MS = 150
SHORT_H, LONG_H = 24, 8760
# A record may have expired once the read-back ended more than its stream's retention
# minus this after it was first sent: the dataplane stamps a record joining a staged
# batch with the batch's arrival, up to 1 ms early (DP_GROUPED_ARRIVAL_SKEW_NS).
EXPIRY_SLACK_S = 0.01
CONN_RESULTS = ("refused", "evicted", "shed", "timed_out")  # sluice_api_connections_total

# Profiles (--profile). A round: load for load_s, then the fault: with probability
# sigstop a SIGSTOP of stop_s, SIGCONT, after_stop_s more load; then SIGKILL. Then up to
# recovery_kills starts are each killed (probability recovery) 0..recovery_window_s into
# their recovery; then a start and the full read-back. gen_shards / gen_records: once the
# stream holds that many shards (open or closed) or acknowledged records, right after a
# read-back, it is retired (deleted; its records left the ledger verified) and a new one
# takes the load, so a read-back stays short. Filler: fills the disk, holds it full for
# hold_s, deletes its stream, leaves room_s, fills again. The faults besides the kill,
# each a probability: stall (a round with a Staller), hog (with a Hog), nofile_low (a
# start under prlimit with NOFILE_LOW), reshard_kill (the round's SIGKILL right after a
# reshard is answered), retire_kill (a SIGKILL inside retire(): after DeleteStream or
# after the next CreateStream is answered). short_every: generation g's stream has
# SHORT_H retention when g % short_every == 0, else LONG_H (retention expiry).
PROFILES = {
    # The mixed campaign: long load phases, one stream (short retention) for the whole run.
    "classic": dict(load_s=(2.0, 6.0), sigstop=0.3, stop_s=(0.3, 1.5), after_stop_s=(1.0, 2.5),
                    recovery=0.25, recovery_kills=1, recovery_window_s=0.2,
                    gen_shards=None, gen_records=None, hold_s=(0.0, 0.0), room_s=(0.5, 2.0),
                    stall=0.3, hog=0.2, nofile_low=0.2, reshard_kill=0.2, retire_kill=0.0,
                    short_every=1),
    # Kill-dense: short load phases, bounded streams, chains of kills during recovery.
    "kills": dict(load_s=(0.3, 1.0), sigstop=0.1, stop_s=(0.1, 0.5), after_stop_s=(0.2, 0.5),
                  recovery=0.5, recovery_kills=3, recovery_window_s=0.3,
                  gen_shards=40, gen_records=3000, hold_s=(2.0, 8.0), room_s=(4.0, 15.0),
                  stall=0.15, hog=0.1, nofile_low=0.2, reshard_kill=0.25, retire_kill=0.3,
                  short_every=2),
}


def log_position(sid, sequence_number):
    """(ShardId, the log's per-shard seq) of a Kinesis sequence number (control/seqnum.h)."""
    return sid, int(("%047x" % int(sequence_number))[11:27], 16)


class Sluiced:
    """sluiced on data_dir; its stderr goes to log_path (outside a disk that fills)."""

    def __init__(self, binary, data_dir, log_path, pid_path=None):
        self.binary, self.data_dir, self.log_path = binary, data_dir, log_path
        self.pid_path = pid_path  # --state: a resume checks no sluiced of the run is left.
        self.proc, self.port, self.admin = None, None, None
        self.ingest = rl.free_port()  # UDP and TCP, the same port for the whole run.

    def spawn(self, nofile=None):
        """nofile: run it under prlimit with that RLIMIT_NOFILE (accept meets EMFILE)."""
        self.port, self.admin = rl.free_port(), rl.free_port()
        limit = ["prlimit", "--nofile=%d:%d" % (nofile, nofile), "--"] if nofile else []
        self.proc = subprocess.Popen(
            limit + [self.binary, "--data-dir", self.data_dir,
             "--api-listen", "127.0.0.1:%d" % self.port,
             "--admin-listen", "127.0.0.1:%d" % self.admin,
             "--set", "server.connections_max=%d" % CONNECTIONS_MAX,
             "--set", "server.idle_timeout_ms=%d" % IDLE_TIMEOUT_MS,
             "--set", "dataplane.tcp_idle_timeout_s=%d" % TCP_IDLE_TIMEOUT_S,
             "--set", "dataplane.backend=kernel", "--set", "dataplane.ipv4=127.0.0.1",
             "--set", "dataplane.ingest_port=%d" % self.ingest,
             "--set", "dataplane.no_huge=true",
             "--set", "server.stream_status_delay_ms=5",
             "--set", "server.shard_count_updates_per_day=0",
             "--set", "log.segment_size_mb=8",
             "--set", "log.retention_check_s=1",
             "--set", "log.retention_hour_ms=%d" % RETENTION_HOUR_MS],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "ab"))
        if self.pid_path:
            with open(self.pid_path, "w") as f:
                f.write("%d\n" % self.proc.pid)

    def start(self, nofile=None):
        self.spawn(nofile)
        line = self.proc.stdout.readline().decode()
        check("ready" in line, "sluiced did not start: %r (see %s)" % (line, self.log_path))

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.forget()

    def forget(self):
        """EAL's runtime directory of the process just gone (a SIGKILL leaves it)."""
        shutil.rmtree("/var/run/dpdk/sluice-%d" % self.proc.pid, ignore_errors=True)
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
        self.forget()
        check(rc == 0, "sluiced exit code %d" % rc)

    def client(self, attempts=1):
        return rl.client("http://127.0.0.1:%d" % self.port, attempts)

    def conn_counts(self):
        """From the admin /metrics: sluice_api_connections_total by result, and the
        dataplane's TCP connections reset idle (tcp_idle, over the workers)."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                    timeout=30) as r:
            s = samples(r.read().decode())

        def total(name, *labels):
            return sum(v for (n, ls), v in s.items() if n == name and set(labels) <= ls)
        out = {r: total("sluice_api_connections_total", 'result="%s"' % r) for r in CONN_RESULTS}
        out["tcp_idle"] = total("sluice_dataplane_tcp_timeout_idle_total")
        return out

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
    """A small ext4 on a loop device (root), or a plain directory. resume: the image of a
    killed run (--state), still mounted (reused), or with a loop device left attached to it
    and nothing mounted (detached), or neither: mounted again."""

    def __init__(self, tmp, size_mb, resume=False):
        self.mnt, self.mounted = os.path.join(tmp, "mnt"), False
        self.img = os.path.join(tmp, "disk.img")
        if resume:
            if os.path.exists(self.img):
                self.reattach()
            return
        os.mkdir(self.mnt)
        if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None or size_mb == 0:
            return
        with open(self.img, "wb") as f:
            f.truncate(size_mb << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", self.img], check=True)
        subprocess.run(["mount", "-o", "loop", self.img, self.mnt], check=True)
        self.mounted = True

    def devices(self):
        """The loop devices attached to the image."""
        out = subprocess.run(["losetup", "-j", self.img], capture_output=True, text=True,
                             check=True).stdout
        return [line.split(":")[0] for line in out.splitlines()]

    def reattach(self):
        if os.path.ismount(self.mnt):
            src = subprocess.run(["findmnt", "-n", "-o", "SOURCE", self.mnt],
                                 capture_output=True, text=True, check=True).stdout.strip()
            refuse(src in self.devices(), "%s is mounted from %s, not from %s" % (
                self.mnt, src, self.img))
        else:
            for dev in self.devices():
                subprocess.run(["losetup", "-d", dev], check=True)
            subprocess.run(["mount", "-o", "loop", self.img, self.mnt], check=True)
        self.mounted = True

    def close(self):
        if self.mounted:
            subprocess.run(["umount", self.mnt], check=False)
            self.mounted = False


class Background(threading.Thread):
    """A load thread that tolerates sluiced dying under it; counts what it did. Its waits
    end at once when the round stops (stop.wait), so a kill is followed by a quick join."""

    def __init__(self, srv, stop, rng):
        super().__init__(daemon=True)
        self.srv, self.stop, self.rng, self.count, self.error = srv, stop, rng, 0, None

    def run(self):
        try:
            self.kc = self.srv.client()
            while not self.stop.is_set():
                try:
                    self.step()
                except rl.ClientError as e:
                    self.refused(e)
                    self.stop.wait(0.01)
                except Exception:  # noqa: B902 - sluiced killed or stopped under us
                    if self.stop.is_set():
                        return
                    self.stop.wait(0.05)
        except BaseException as e:  # noqa: B902 - reported by the main thread
            self.error = e

    def refused(self, e):
        pass


class Resharder(Background):
    """Reshards at random. Once armed: lists the open shards (before), sends one reshard
    without waiting for it to complete, sets fired (the main thread kills at once) and
    sends nothing more."""

    def __init__(self, srv, stop, rng, counts):
        super().__init__(srv, stop, rng)
        self.counts, self.arm, self.fired = counts, threading.Event(), threading.Event()
        self.before, self.kind = None, None

    def step(self):
        if self.fired.is_set():
            self.stop.wait()
            return
        armed = self.arm.is_set()
        if armed:
            self.before = rl.list_shards(self.kc, ShardFilter={"Type": "AT_LATEST"})
        kind = rl.reshard_once(self.kc, self.rng, self.counts, wait=not armed)
        self.count += 1
        if armed and kind is not None:
            self.kind = kind
            self.fired.set()
            return
        self.stop.wait(self.rng.uniform(0.05, 0.3))


class Reader(Background):
    def step(self):
        shards = rl.list_shards(self.kc)
        s = self.rng.choice(shards)
        it = self.kc.get_shard_iterator(StreamName=rl.STREAM, ShardId=s["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        self.kc.get_records(ShardIterator=it, Limit=1000)
        self.count += 1
        self.stop.wait(0.05)


class Phase(threading.Thread):
    """A fault phase inside a round (Staller, Hog): done is set once it is over; the
    round's kill waits for it (PHASE_DEADLINE_S bounds a hang)."""

    def __init__(self, srv, stop, rng):
        super().__init__(daemon=True)
        self.srv, self.stop, self.rng = srv, stop, rng
        self.done, self.error = threading.Event(), None

    def run(self):
        try:
            self.phase()
        except BaseException as e:  # noqa: B902 - reported by the main thread
            self.error = e
        finally:
            self.done.set()

    @staticmethod
    def closed_by_peer(sock):
        """Reads what the server sent (h2c: SETTINGS, RST_STREAM, GOAWAY); True at EOF."""
        try:
            return sock.recv(65536) == b""
        except OSError:
            return True  # Reset.


class Staller(Phase):
    """Connections that send part of a request and hold it: KINDS. Over once the server
    closed every one (its idle timeout: IDLE_TIMEOUT_MS for the API, TCP_IDLE_TIMEOUT_S
    for the dataplane's TCP); then sluice_api_connections_total{result="timed_out"} (or
    "evicted", when a hog filled the table meanwhile) and the dataplane's idle resets
    must have moved by as many. Honest clients meanwhile are
    the Watch's: its answer bound holds."""

    # headers: a PutRecords' head announcing a body never sent; half_body: half of it;
    # h2c: HEADERS without END_STREAM; frame: half a record frame over TCP.
    KINDS = ("headers", "half_body", "h2c", "frame")

    def __init__(self, srv, stop, rng):
        super().__init__(srv, stop, rng)
        self.kinds = list(self.KINDS) + [rng.choice(self.KINDS)
                                         for _ in range(rng.randint(*STALLS_EXTRA))]

    def open(self, kind):
        if kind == "frame":
            sock = socket.create_connection(("127.0.0.1", self.srv.ingest), timeout=5)
            frame = bytes(records_frame(self.rng.getrandbits(63) | 1, 0, 1, 2,
                                        rl.STREAM.encode(), [(b"k", b"stalled", 0, b"")]))
            sock.sendall(frame[:len(frame) // 2])
            return sock
        sock = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
        if kind == "h2c":
            sock.sendall(h2c_stalled_stream())
            return sock
        body = json.dumps({"StreamName": rl.STREAM, "Records": [
            {"PartitionKey": "stalled", "Data": base64.b64encode(b"x" * 3000).decode()}]})
        sock.sendall(("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "X-Amz-Target: Kinesis_20131202.PutRecords\r\n"
                      "Content-Type: application/x-amz-json-1.1\r\n"
                      "Content-Length: %d\r\n\r\n" % len(body)).encode())
        if kind == "half_body":
            sock.sendall(body[:len(body) // 2].encode())
        return sock

    def phase(self):
        before = self.srv.conn_counts()
        socks = [self.open(kind) for kind in self.kinds]
        deadline = time.time() + PHASE_DEADLINE_S
        try:
            while socks and time.time() < deadline and not self.stop.is_set():
                for sock in select.select(socks, [], [], 0.1)[0]:
                    if self.closed_by_peer(sock):
                        socks.remove(sock)
                        sock.close()
        finally:
            for sock in socks:
                sock.close()
        check(not socks, "%d stalled connections not closed in %d s (idle timeout %d ms)" % (
            len(socks), PHASE_DEADLINE_S, IDLE_TIMEOUT_MS))
        after = self.srv.conn_counts()
        frames = self.kinds.count("frame")
        # Timed out; or, with a hog phase in the same round filling the table, evicted
        # (the oldest unproven connections make room for a newcomer).
        moved = {r: after[r] - before[r] for r in CONN_RESULTS}
        check(moved["timed_out"] + moved["evicted"] >= len(self.kinds) - frames,
              "%d API connections stalled, sluice_api_connections_total moved %s" % (
                  len(self.kinds) - frames, moved))
        check(after["tcp_idle"] - before["tcp_idle"] >= frames,
              "%d frames stalled, tcp_timeout_idle moved %d" % (
                  frames, after["tcp_idle"] - before["tcp_idle"]))


def h2c_stalled_stream():
    """The h2c preface, an empty SETTINGS and stream 1's HEADERS (END_HEADERS, no
    END_STREAM) of a PutRecords: HPACK static indexes for :method POST (3), :scheme http
    (6), :path / (4); the two Kinesis headers as literals without indexing (RFC 7541)."""
    def literal(name, value):
        return bytes([0, len(name)]) + name + bytes([len(value)]) + value
    block = bytes([0x83, 0x86, 0x84]) + literal(
        b"x-amz-target", b"Kinesis_20131202.PutRecords") + literal(
        b"content-type", b"application/x-amz-json-1.1")
    settings = struct.pack(">I", 0)[1:] + bytes([4, 0]) + struct.pack(">I", 0)
    headers = struct.pack(">I", len(block))[1:] + bytes([1, 4]) + struct.pack(">I", 1)
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + headers + block


class Hog(Phase):
    """Descriptor exhaustion: holds CONNECTIONS_MAX + HOG_EXTRA silent connections to the
    API (past the cap; past the descriptors on a start under prlimit), opening again the
    ones the server closes, for HOG_HOLD_S; then closes them and waits until a new client
    is answered. sluiced must have counted refusals, evictions or sheds meanwhile."""

    def __init__(self, srv, stop, rng):
        super().__init__(srv, stop, rng)
        self.hold_s, self.opened, self.closed = rng.uniform(*HOG_HOLD_S), 0, 0
        self.moved, self.again_s = {}, 0.0

    def phase(self):
        before = self.srv.conn_counts()
        socks, end = [], time.time() + self.hold_s
        try:
            while time.time() < end and not self.stop.is_set():
                for _ in range(min(HOG_EXTRA, CONNECTIONS_MAX + HOG_EXTRA - len(socks))):
                    try:
                        socks.append(socket.create_connection(("127.0.0.1", self.srv.port),
                                                              timeout=2))
                        self.opened += 1
                    except OSError:
                        break
                for sock in select.select(socks, [], [], 0.1)[0]:
                    if self.closed_by_peer(sock):
                        socks.remove(sock)
                        sock.close()
                        self.closed += 1
                self.stop.wait(0.05)  # At most HOG_EXTRA new connections a pass.
        finally:
            for sock in socks:
                sock.close()
        if self.stop.is_set():
            return
        t0, kc = time.time(), self.srv.client()
        while True:
            try:
                kc.describe_stream_summary(StreamName=rl.STREAM)
                break
            except Exception as e:  # noqa: B902 - refused, reset or throttled: again
                check(time.time() - t0 < ANSWERED_AGAIN_S,
                      "no answer %d s after a hog phase: %r" % (ANSWERED_AGAIN_S, e))
                time.sleep(0.05)
        self.again_s = time.time() - t0
        after = self.srv.conn_counts()
        self.moved = {r: after[r] - before[r] for r in CONN_RESULTS}
        check(self.moved["refused"] + self.moved["evicted"] + self.moved["shed"] > 0,
              "%d connections held, %d closed by sluiced, none counted refused, evicted "
              "or shed: %s" % (self.opened, self.closed, self.moved))


class FanoutReader(Background):
    """SubscribeToShard (boto3's event stream) through the stream's consumer, one shard at
    a time, from where the last subscription to it stopped (TRIM_HORIZON the first
    time): each shard's sequence numbers rise; seen[(key, n)] = (ShardId, log seq). The
    state (consumer, positions) outlives rounds and is dropped with the stream."""

    def __init__(self, srv, stop, rng, state):
        super().__init__(srv, stop, rng)
        self.st, self.seen, self.records = state, {}, 0

    def consumer(self):
        st = self.st
        if st.get("arn") is not None:
            return st["arn"]
        sarn = self.kc.describe_stream_summary(
            StreamName=rl.STREAM)["StreamDescriptionSummary"]["StreamARN"]
        try:
            arn = self.kc.register_stream_consumer(
                StreamARN=sarn, ConsumerName=FANOUT_CONSUMER)["Consumer"]["ConsumerARN"]
        except rl.ClientError as e:
            if e.response["Error"]["Code"] != "ResourceInUseException":
                raise
            arn = self.kc.describe_stream_consumer(
                StreamARN=sarn, ConsumerName=FANOUT_CONSUMER)["ConsumerDescription"]["ConsumerARN"]
        while self.kc.describe_stream_consumer(ConsumerARN=arn)[
                "ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
            self.stop.wait(0.01)
        st["arn"] = arn
        return arn

    def step(self):
        arn = self.consumer()
        sid = self.rng.choice(rl.list_shards(self.kc))["ShardId"]
        after, last = self.st.setdefault("after", {}), self.st.setdefault("last", {})
        pos = ({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after[sid]} if sid in after
               else {"Type": "TRIM_HORIZON"})
        events = self.kc.subscribe_to_shard(ConsumerARN=arn, ShardId=sid,
                                            StartingPosition=pos)["EventStream"]
        self.count += 1
        try:
            for ev in events:
                for x in ev["SubscribeToShardEvent"]["Records"]:
                    k, n = x["Data"].decode().rsplit(":", 1)
                    seq = log_position(sid, x["SequenceNumber"])[1]
                    check(seq > last.get(sid, -1), "fan-out %s: seq %d after %d" % (
                        sid, seq, last.get(sid, -1)))
                    last[sid], after[sid] = seq, x["SequenceNumber"]
                    self.seen[(k, int(n))] = (sid, seq)
                    self.records += 1
                if self.stop.is_set():
                    return
        finally:
            events.close()

    def refused(self, e):
        if e.response["Error"]["Code"] == "ResourceNotFoundException":
            self.st["arn"] = None  # The stream is new: its consumer is registered again.


class FillState:
    """The filler's phase, kept across rounds (a phase outlives the kills in it):
    fill (1 MiB records to a scratch stream until FILL_REFUSED calls in a row are
    refused whole: the disk is full), hold (keep it full for hold_s), room (the stream
    deleted: retention gives its segments back; room_s before the next fill)."""

    def __init__(self, rng, hold_s, room_s):
        self.rng, self.hold_s, self.room_s = rng, hold_s, room_s
        self.phase, self.until, self.episode = "fill", 0.0, 0
        self.since, self.spent = time.time(), {"fill": 0.0, "hold": 0.0, "room": 0.0}
        self.created, self.refused, self.full, self.mib = False, 0, 0, 0

    @property
    def name(self):
        return "ballast-%d" % self.episode

    def free(self, kc):
        """Deletes every scratch stream (this episode's and any a kill left behind)."""
        for name in kc.list_streams()["StreamNames"]:
            if name.startswith("ballast"):
                try:
                    kc.delete_stream(StreamName=name)
                except rl.ClientError:
                    pass  # Already deleting, or gone.
        self.enter("room", self.rng.uniform(*self.room_s))
        self.created, self.episode = False, self.episode + 1

    def enter(self, phase, seconds):
        now = time.time()
        self.spent[self.phase] += now - self.since
        self.phase, self.until, self.since = phase, now + seconds, now


class Filler(Background):
    """Runs FillState's phases while the round lasts; counts disk-full episodes."""

    def __init__(self, srv, stop, rng, state):
        super().__init__(srv, stop, rng)
        self.st, self.blob = state, os.urandom(1 << 20)

    def step(self):
        st, left = self.st, self.st.until - time.time()
        if st.phase != "fill" and left > 0:
            self.stop.wait(min(left, 0.1))
            return
        if st.phase == "hold":
            st.free(self.kc)
            return
        if st.phase == "room":
            st.enter("fill", 0.0)
        if not st.created:
            self.create(st.name)
            st.created, st.refused = True, 0
        r = self.kc.put_records(StreamName=st.name, Records=[
            {"PartitionKey": "b%d" % i, "Data": self.blob} for i in range(4)])
        st.mib += 4 - r["FailedRecordCount"]
        st.refused = st.refused + 1 if r["FailedRecordCount"] == 4 else 0
        if st.refused >= FILL_REFUSED:  # Full (or the log's preallocation is): hold it.
            st.full += 1
            st.enter("hold", self.rng.uniform(*st.hold_s))

    def create(self, name):
        # A kill may have undone an earlier episode's delete: give that space back too.
        for other in self.kc.list_streams()["StreamNames"]:
            if other.startswith("ballast") and other != name:
                try:
                    self.kc.delete_stream(StreamName=other)
                except rl.ClientError:
                    pass
        try:
            self.kc.create_stream(StreamName=name, ShardCount=1)
        except rl.ClientError as e:
            if e.response["Error"]["Code"] != "ResourceInUseException":
                raise
        for _ in range(2000):
            s = self.kc.describe_stream_summary(StreamName=name)
            if s["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                # Its phases, not retention, decide when its space comes back.
                set_retention(self.kc, name, LONG_H)
                return
            self.stop.wait(0.005)

    def refused(self, e):
        # A kill may have undone the create (not yet durable): create it again.
        if e.response["Error"]["Code"] == "ResourceNotFoundException":
            self.st.created = False


class KeyedProducer(threading.Thread):
    """Sends "key:n" records, FRAME_RECORDS keys per batch, each key's n in order, one
    batch in flight; acked[(key, n)] = (ShardId, log seq). A batch whose outcome is
    unknown (sluiced died, or the answer says so) goes to inflight and its keys retire,
    so no (key, n) is ever sent twice with two outcomes. born[(key, n)]: when it was
    first sent."""

    def __init__(self, prefix, stop, rng):
        super().__init__(daemon=True)
        self.stop, self.rng, self.error = stop, rng, None
        self.keys = ["%s-k%d" % (prefix, i) for i in range(rl.KEYS_PER_PRODUCER)]
        self.next = {k: 0 for k in self.keys}
        self.acked, self.inflight, self.calls, self.born = {}, {}, 0, {}

    def run(self):
        try:
            while not self.stop.is_set() and len(self.keys) >= FRAME_RECORDS:
                batch = [(k, self.next[k]) for k in self.rng.sample(self.keys, FRAME_RECORDS)]
                sent = time.time()  # Before its first copy went: a bound of its arrival.
                self.born.update({kn: sent for kn in batch})
                if not self.send(batch):
                    self.inflight.update(batch)
                    for k, _ in batch:
                        self.keys.remove(k)
                    if self.dead:
                        return
                time.sleep(0.005)
        except BaseException as e:  # noqa: B902 - reported by the main thread
            self.error = e
        finally:
            self.close()

    def acked_at(self, batch, positions):
        for (k, n), where in zip(batch, positions):
            self.acked[(k, n)] = where
            self.next[k] = n + 1
        self.calls += 1

    def close(self):
        pass


class FrameProducer(KeyedProducer):
    """Record frames over UDP or TCP to the kernel backend, durable ACKs (docs/PROTOCOL.md):
    a lost or late answer is a resend of the same bytes (same batch_seq), which the dedup
    window answers with the original ACK, never a second copy."""

    def __init__(self, srv, transport, round_no, stop, rng):
        super().__init__("%s%d" % (transport[0], round_no), stop, rng)
        self.srv, self.transport, self.sock, self.dead = srv, transport, None, False
        self.producer_id = rng.getrandbits(63) | 1
        self.batch_seq, self.resent, self.nacked, self.unrouted = 0, 0, 0, 0

    def connect(self):
        if self.transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.connect(("127.0.0.1", self.srv.ingest))
        else:
            self.sock = socket.create_connection(("127.0.0.1", self.srv.ingest), timeout=2)
        self.sock.settimeout(FRAME_ACK_WAIT_S)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def answer(self):
        """One ACK/NACK frame (bytes), or None after FRAME_ACK_WAIT_S (or once the round
        stops: a kill leaves a UDP question unanswered, and the join should not wait)."""
        deadline = time.time() + FRAME_ACK_WAIT_S
        while not select.select([self.sock], [], [], 0.05)[0]:
            if self.stop.is_set() or time.time() >= deadline:
                return None
        try:
            if self.transport == "udp":
                return self.sock.recv(65536)
            head = self.recv_exact(16)
            return head + self.recv_exact(struct.unpack_from("<I", head, 8)[0] - 16)
        except socket.timeout:
            return None

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionResetError("closed")
            out += chunk
        return out

    def send(self, batch):
        """True when acked; False when the outcome is unknown (self.dead if sluiced is)."""
        records = [(k.encode(), ("%s:%d" % (k, n)).encode(), 0, b"") for k, n in batch]
        frame = bytes(records_frame(self.producer_id, self.batch_seq, 1, 2, rl.STREAM.encode(),
                                    records))
        seq, self.batch_seq = self.batch_seq, self.batch_seq + 1
        while not self.stop.is_set():
            try:
                if self.sock is None:
                    self.connect()
                self.sock.sendall(frame)
                a = self.answer()
                while a is not None and struct.unpack_from("<Q", a, 24)[0] != seq:
                    a = self.answer()  # A late answer to an earlier batch (UDP).
            except OSError:
                self.close()  # Refused or reset: sluiced is down, or restarting.
                time.sleep(0.05)
                continue
            if a is None:
                self.resent += 1
                continue  # Same bytes again.
            ftype, status = a[13], a[36]
            if ftype == ACK:
                self.acked_at(batch, self.positions(a))
                return True
            if status in NACK_RETRY:
                self.nacked += 1
                time.sleep(max(struct.unpack_from("<I", a, 48)[0], 5) / 1000.0)
                continue
            if status == NACK_UNKNOWN_STREAM:  # Created and ACTIVE, not routed yet.
                self.unrouted += 1
                self.stop.wait(0.01)
                continue
            check(status == 8, "%s frame NACKed with status %d" % (self.transport, status))
            return False  # sequence_old: outcome unknown.
        self.dead = True
        return False

    @staticmethod
    def positions(a):
        check(not struct.unpack_from("<H", a, 14)[0] & 0x10, "ACK without runs")
        out = []
        for r in range(struct.unpack_from("<H", a, 42)[0]):
            seq_first, shard, count = struct.unpack_from("<QIH", a, 56 + 16 * r)
            out += [("shardId-%012d" % shard, seq_first + i) for i in range(count)]
        check(len(out) == FRAME_RECORDS, "ACK runs cover %d records" % len(out))
        return out


class H2cProducer(KeyedProducer):
    """PutRecords over h2c (HTTP/2 prior knowledge), one curl per call."""

    def __init__(self, srv, round_no, stop, rng):
        super().__init__("h%d" % round_no, stop, rng)
        self.srv, self.dead = srv, False

    def send(self, batch):
        body = json.dumps({"StreamName": rl.STREAM, "Records": [
            {"PartitionKey": k, "Data": base64.b64encode(("%s:%d" % (k, n)).encode()).decode()}
            for k, n in batch]})
        while not self.stop.is_set():
            out = subprocess.run(
                ["curl", "-s", "--http2-prior-knowledge", "--max-time", "30", "-X", "POST",
                 "-H", "x-amz-target: Kinesis_20131202.PutRecords",
                 "-H", "content-type: application/x-amz-json-1.1", "--data-binary", "@-",
                 "-w", "\n%{http_code}", "http://127.0.0.1:%d/" % self.srv.port],
                input=body.encode(), capture_output=True)
            text, _, code = out.stdout.decode().rpartition("\n")
            if out.returncode != 0:
                break  # Refused, reset or timed out: the outcome is unknown.
            if code != "200":
                time.sleep(0.01)  # Throttled as a whole: the same batch again.
                continue
            r = json.loads(text)
            if r["FailedRecordCount"] != 0:
                for res in r["Records"]:
                    check("ErrorCode" not in res or
                          res["ErrorCode"] == "ProvisionedThroughputExceededException",
                          "h2c put error %r" % res)
                # Records that went are acked; the batch's keys retry only what failed.
                done = [(b, res) for b, res in zip(batch, r["Records"]) if "ErrorCode" not in res]
                self.acked_at([b for b, _ in done],
                              [log_position(res["ShardId"], res["SequenceNumber"])
                               for _, res in done])
                batch = [b for b, res in zip(batch, r["Records"]) if "ErrorCode" in res]
                body = json.dumps({"StreamName": rl.STREAM, "Records": [
                    {"PartitionKey": k,
                     "Data": base64.b64encode(("%s:%d" % (k, n)).encode()).decode()}
                    for k, n in batch]})
                time.sleep(0.01)
                continue
            self.acked_at(batch, [log_position(res["ShardId"], res["SequenceNumber"])
                                  for res in r["Records"]])
            return True
        self.dead = True
        return False


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
                kc.describe_stream_summary(StreamName=rl.STREAM)
                if not self.paused.is_set():
                    self.answer_max = max(self.answer_max, time.time() - t0)
            except Exception:  # noqa: B902 - killed or stopped: not "up"
                pass
            self.stop.wait(0.2)


def retention_s(hours):
    """How long a stream of RetentionPeriodHours `hours` keeps its records here."""
    return hours * RETENTION_HOUR_MS / 1000.0


def set_retention(kc, name, hours):
    """RetentionPeriodHours of ACTIVE stream `name` (SHORT_H, the default, or more)."""
    if hours != SHORT_H:
        kc.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=hours)


def verify_all(srv, totals):
    """Reads the stream back (following lineage) against the ledger: totals["acked"]:
    (key, n) -> (ShardId, log seq); reads compare at the log's positions (a frame's ACK
    names (shard, seq), not the Kinesis rendering, which adds the arrival second).

    Retention: a retention run trims a batch only once now - arrival > the stream's
    retention, and arrival >= born (the record's first send; EXPIRY_SLACK_S less for
    the dataplane's grouped stamps); it trims a prefix of each
    shard and never gives it back. So an acknowledged record not read is expired, not
    lost, only if (1) the read-back (with its probes) ended more than the retention after
    its born and (2) it lies below its shard's horizon, probed after the read-back (the
    first record TRIM_HORIZON reads then; a shard no longer listed expired whole). A
    shard's read is not atomic (retention may trim it between two GetRecords), so both
    hold per record; a record at or above the horizon, or younger, is lost. An expired
    record leaves the ledger and must never be read again; a record read, past retention
    or not, must be exact. Returns (shards, seen, may_expire(kn))."""
    kc = srv.client(attempts=10)
    shards, read = rl.consume(kc)
    acked, born, maybe = totals["acked"], totals["born"], totals["maybe"]
    ret = totals["retention"]
    seen = {}
    for sid, recs in read.items():
        for x in recs:
            k, n = x["Data"].decode().rsplit(":", 1)
            kn = (k, int(n))
            check(kn not in seen, "record %s:%s read twice" % kn)
            seen[kn] = (sid, log_position(sid, x["SequenceNumber"])[1])
            check(kn in acked or maybe.get(k) == kn[1] or round_lost(totals, k),
                  "read %s at %s: %s" % (kn, seen[kn], "it expired at an earlier read-back"
                                         if kn in ret["gone"] else
                                         "never acknowledged nor in flight"))
    gone = [kn for kn in acked if kn not in seen]
    horizon = {sid: shard_horizon(kc, sid) for sid in {acked[kn][0] for kn in gone}
               if sid in read}
    t_end, keep = time.time(), retention_s(totals["retention_h"])

    def may_expire(kn):
        return t_end - born[kn] > keep - EXPIRY_SLACK_S

    def trimmed(kn):
        sid, seq = acked[kn]
        return sid not in read or seq < horizon[sid]

    lost = [kn for kn in gone if not (may_expire(kn) and trimmed(kn))]
    check(not lost, "read %d records, acknowledged %d: %d missing that retention cannot "
          "have taken (retention %.1f s), e.g. %s at %s (horizon now %s), sent %.1f s "
          "before the read-back ended" % (
              len(seen), len(acked), len(lost), keep, lost[0] if lost else None,
              acked[lost[0]] if lost else None,
              horizon.get(acked[lost[0]][0], "not listed") if lost else None,
              t_end - born[lost[0]] if lost else 0))
    for kn, where in seen.items():
        if kn in acked:
            check(where == acked[kn], "%s acknowledged at %s, read at %s" % (
                kn, acked[kn], where))
            ret["past"] += may_expire(kn)
            ret["young"] += not may_expire(kn)
    for kn in gone:
        ret["gone"].add(kn)
        del acked[kn]
    ret["expired"] += len(gone)
    adopt(totals, seen)
    per_key_order(read, sorted(shards, key=lambda s: int(s["ShardId"].split("-")[1])),
                  ret["gone"])
    return len(shards), seen, may_expire


def round_lost(totals, key):
    """Whether `key` is a key of a round whose ledger died with a killed harness (--resume):
    its keys are "<prefix><round>-k<i>" (rl.Producer's prefix p<round*10+i>, the keyed
    producers' u, t, h<round>)."""
    return key.rsplit("-k", 1)[0] in totals["unadopted"]


def adopt(totals, seen):
    """After a resume, the first read-back: the records of the lost rounds it found join
    the ledger where they were read (durable now, so exact from here on), born no later
    than the checkpoint the resume started from (their round began after it); each such
    key's records below the first one found are gone (expired, or never stored): never
    to be read. per_key_order then checks that the ones found follow each other."""
    lost = [kn for kn in seen if round_lost(totals, kn[0])]
    first = {}
    for kn in lost:
        totals["acked"][kn] = seen[kn]
        totals["born"][kn] = totals["checkpoint_at"]
        first[kn[0]] = min(first.get(kn[0], kn[1]), kn[1])
    for k, n0 in first.items():
        totals["retention"]["gone"].update((k, m) for m in range(n0))
    totals["adopted"] += len(lost)
    totals["unadopted"].clear()


def shard_horizon(kc, sid):
    """The log seq of the first record TRIM_HORIZON reads in shard `sid` now (retention
    has trimmed everything below it); infinity when it reads none (all trimmed)."""
    it = kc.get_shard_iterator(StreamName=rl.STREAM, ShardId=sid,
                               ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it is not None:
        r = kc.get_records(ShardIterator=it, Limit=1)
        if r["Records"]:
            return log_position(sid, r["Records"][0]["SequenceNumber"])[1]
        it = r.get("NextShardIterator")
        if r["MillisBehindLatest"] == 0:
            break
    return float("inf")


def per_key_order(read, shards, gone):
    """Lineage order: each key's records read come in send order; a record skipped is
    one retention took (gone: found expired now or at an earlier read-back)."""
    pos = {s["ShardId"]: i for i, s in enumerate(shards)}
    last = {}
    for sid in sorted(read, key=lambda x: pos[x]):
        for x in read[sid]:
            k, n = x["Data"].decode().rsplit(":", 1)
            n = int(n)
            skipped = [m for m in range(last.get(k, -1) + 1, n) if (k, m) not in gone]
            check(n > last.get(k, -1) and not skipped, "key %s: %d read after %d (%s)" % (
                k, n, last.get(k, -1), "out of order" if n <= last.get(k, -1) else
                "%s skipped, not expired" % skipped[:5]))
            last[k] = n


def check_open_partition(kc):
    """The open shards' hash-key ranges cover 0 .. 2^128-1 without a gap or an overlap:
    no reshard is ever half done. Returns the open shards."""
    rl.wait_active(kc)
    shards = sorted(rl.list_shards(kc, ShardFilter={"Type": "AT_LATEST"}),
                    key=lambda x: int(x["HashKeyRange"]["StartingHashKey"]))
    at = 0
    for x in shards:
        check(int(x["HashKeyRange"]["StartingHashKey"]) == at,
              "open shards: %s starts at %s, want %d" % (
                  x["ShardId"], x["HashKeyRange"]["StartingHashKey"], at))
        at = int(x["HashKeyRange"]["EndingHashKey"]) + 1
    check(at == 2 ** 128, "open shards end at %d, want 2^128" % at)
    return shards


def spans(shards):
    """The hash-key ranges of `shards` merged: [(first, last)]."""
    out = []
    for lo, hi in sorted((int(x["HashKeyRange"]["StartingHashKey"]),
                          int(x["HashKeyRange"]["EndingHashKey"])) for x in shards):
        if out and out[-1][1] + 1 == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def check_reshard_whole(kc, before, kind, killed_at, totals):
    """After a SIGKILL right after a reshard was answered: it happened or it did not.
    Happened: the shards it closed are listed closed (unless the stream's retention has
    passed since: expired shards are not listed), and the new open shards cover exactly
    their ranges (a split: one for two; a merge: two for one)."""
    now = {x["ShardId"]: x for x in check_open_partition(kc)}
    was = {x["ShardId"]: x for x in before}
    if set(now) == set(was):
        totals["reshard_kill"]["not"] += 1
        return
    gone, new = set(was) - set(now), set(now) - set(was)
    check(gone and new and spans([was[i] for i in gone]) == spans([now[i] for i in new]),
          "%s after a kill: closed %s, opened %s" % (kind, sorted(gone), sorted(new)))
    want = {"split": (1, 2), "merge": (2, 1)}.get(kind, (len(gone), len(new)))
    check((len(gone), len(new)) == want, "%s after a kill closed %d shards and opened %d" % (
        kind, len(gone), len(new)))
    listed = {x["ShardId"] for x in rl.list_shards(kc)}
    check(gone <= listed or time.time() - killed_at > retention_s(totals["retention_h"]),
          "%s after a kill: closed shards not listed" % kind)
    totals["reshard_kill"]["happened"] += 1


def check_fanout_durable(fanout, seen, may_expire):
    """Every record a subscription delivered is durable: the read-back after the restart
    has it, at the same shard and sequence number, unless it may have expired since."""
    for kn, at in list(fanout.items()):
        if kn not in seen and may_expire(kn):
            del fanout[kn]  # Expired: not read again.
            continue
        check(seen.get(kn) == at, "fan-out delivered %s at %s; after the restart: %s" % (
            kn, at, seen.get(kn)))


def load_and_kill(srv, rng, n, totals, args, prof):
    """Load for a while, maybe a SIGSTOP, then SIGKILL. Returns settle(), which waits for
    the load threads and puts what they got acknowledged into the ledger: the restart
    runs meanwhile (boto3 threads take a while to notice the kill, and the next sluiced
    takes a while to start). A frame sent to the next sluiced before its producer saw
    the stop is acknowledged by it (in the ledger) or not (in flight): either holds."""
    stop = threading.Event()
    producers = [rl.Producer(srv, n * 10 + i, stop) for i in range(rl.PRODUCERS)]
    for p in producers:
        p.tolerate_death = True
    keyed = [FrameProducer(srv, "udp", n, stop, random.Random(rng.random())),
             FrameProducer(srv, "tcp", n, stop, random.Random(rng.random())),
             H2cProducer(srv, n, stop, random.Random(rng.random()))]
    resharder = Resharder(srv, stop, random.Random(rng.random()), totals["reshards"])
    threads = [resharder, Reader(srv, stop, random.Random(rng.random())),
               FanoutReader(srv, stop, random.Random(rng.random()), totals["fanout"])]
    if args.fill:
        threads.append(Filler(srv, stop, random.Random(rng.random()), totals["fill"]))
    phases = [kind(srv, stop, random.Random(rng.random())) for kind, name in (
        (Staller, "stall"), (Hog, "hog")) if draw(rng, totals, prof, name)]
    reshard_kill = draw(rng, totals, prof, "reshard_kill")
    watch = Watch(srv, stop)
    for t in producers + keyed + threads + phases + [watch]:
        t.start()
    time.sleep(rng.uniform(*prof["load_s"]))
    if rng.random() < prof["sigstop"]:
        totals["sigstop"] += 1
        watch.paused.set()
        srv.proc.send_signal(signal.SIGSTOP)
        time.sleep(rng.uniform(*prof["stop_s"]))
        srv.proc.send_signal(signal.SIGCONT)
        after = rng.uniform(*prof["after_stop_s"])
        time.sleep(min(0.5, after / 2))  # Catching up: not timed by the watch.
        watch.paused.clear()
        time.sleep(after - min(0.5, after / 2))
    for t in phases:  # The kill comes after a stall or hog phase is over.
        check(t.done.wait(PHASE_DEADLINE_S + ANSWERED_AGAIN_S), "a fault phase hung")
    resharded = None
    if reshard_kill:
        resharder.arm.set()
        if resharder.fired.wait(RESHARD_WAIT_S):
            resharded = (resharder.before, resharder.kind, time.time())
        else:
            totals["reshard_kill"]["none_sent"] += 1  # Refused all along (a full disk).
    watch.paused.set()
    srv.kill()
    totals["sigkill"] += 1
    stop.set()
    return lambda: settle(producers, keyed, threads, phases, watch, totals, args), resharded


def settle(producers, keyed, threads, phases, watch, totals, args):
    for t in producers + keyed + threads + phases + [watch]:
        t.join(timeout=60)
        check(not t.is_alive(), "a load thread did not stop")
        check(t.error is None, "%s failed: %r" % (type(t).__name__, t.error))
    for p in producers + keyed:
        totals["born"].update(p.born)
    for p in producers:
        totals["acked"].update({kn: log_position(*at) for kn, at in p.acked.items()})
        totals["maybe"].update(p.inflight)
        totals["puts"] += p.calls
        totals["throttled"] += p.retried
    for p, kind in zip(keyed, ("udp", "tcp", "h2c")):
        totals["acked"].update(p.acked)
        totals["maybe"].update(p.inflight)
        totals[kind] += p.calls
        totals["acked_" + kind] += len(p.acked)
        totals["frame_resends"] += getattr(p, "resent", 0)
        totals["frame_nacks"] += getattr(p, "nacked", 0)
        totals["frame_unrouted"] += getattr(p, "unrouted", 0)
    totals["reads"] += threads[1].count
    fan = threads[2]
    for kn, at in fan.seen.items():  # Delivered: acknowledged there, or in flight.
        check(totals["acked"].get(kn, at) == at and (kn in totals["acked"] or
                                                    totals["maybe"].get(kn[0]) == kn[1]),
              "fan-out delivered %s at %s: acknowledged at %s" % (
                  kn, at, totals["acked"].get(kn, "none (not in flight either)")))
    totals["fanout"].setdefault("seen", {}).update(fan.seen)
    totals["subscriptions"] += fan.count
    totals["fanout_records"] += fan.records
    for t in phases:
        if isinstance(t, Staller):
            for kind in t.kinds:
                totals["stalls"][kind] += 1
        elif t.moved:  # A hog phase that ran to its end.
            totals["hogs"] += 1
            totals["hog_again_max"] = max(totals["hog_again_max"], t.again_s)
            for r, n in t.moved.items():
                totals["hog_" + r] += n
    totals["rss_max"] = max(totals["rss_max"], watch.rss_max)
    totals["answer_max"] = max(totals["answer_max"], watch.answer_max)
    check(watch.rss_max <= args.rss_budget_mb, "RSS %.0f MiB over the budget %d MiB" % (
        watch.rss_max, args.rss_budget_mb))
    check(watch.answer_max <= args.answer_bound_s, "an answer took %.1f s (bound %.1f s)" % (
        watch.answer_max, args.answer_bound_s))


OWED = ("stall", "hog", "reshard_kill", "nofile_low")  # draw(): each once early.


def draw(rng, totals, prof, kind):
    """A fault of `kind` with the profile's probability; besides, every kind in OWED is
    owed once: the first rounds take the owed ones one a round, in a seeded order, so a
    short run meets each kind (retire() does the same for retire_kill)."""
    hit, owed = rng.random() < prof[kind], totals["owed"]
    if kind in owed and (hit or owed[0] == kind):
        owed.remove(kind)
        return True
    return hit


def restart(srv, rng, totals, prof):
    """Up to recovery_kills starts killed during their recovery, then a start to ready
    (under prlimit with NOFILE_LOW descriptors with probability nofile_low)."""
    for _ in range(prof["recovery_kills"]):
        if rng.random() >= prof["recovery"]:
            break
        srv.spawn()
        time.sleep(rng.uniform(0.0, prof["recovery_window_s"]))
        srv.kill()
        totals["sigkill_recovery"] += 1
    low = draw(rng, totals, prof, "nofile_low")
    totals["nofile_low_starts"] += low
    srv.start(NOFILE_LOW if low else None)


def retire_kill(srv, rng, totals, prof, old, point):
    """A SIGKILL inside retire(), right after DeleteStream of `old` (point "delete") or
    the next CreateStream (point "create") was answered; after the restart `old` is gone
    (DELETING finishes) and, at "create", the new stream is there."""
    srv.kill()
    totals["retire_kill"][point] += 1
    restart(srv, rng, totals, prof)
    kc = srv.client(attempts=10)
    deadline = time.time() + PHASE_DEADLINE_S
    while True:
        try:
            st = kc.describe_stream_summary(StreamName=old)["StreamDescriptionSummary"]
        except rl.ClientError as e:
            check(e.response["Error"]["Code"] == "ResourceNotFoundException", repr(e))
            break
        check(st["StreamStatus"] == "DELETING" and time.time() < deadline,
              "%s is %s after a kill following its DeleteStream" % (old, st["StreamStatus"]))
        time.sleep(0.05)
    if point == "create":
        rl.wait_active(kc)  # Describes rl.STREAM: ResourceNotFoundException if it is gone.
    return kc


def retire(srv, rng, totals, prof):
    """After a read-back that found every record of the stream: delete it (its records
    leave the ledger as verified) and create the next one. Nothing is in flight: the
    round's load stopped with the kill, and the read-back ran after the start. With
    probability retire_kill a SIGKILL right after the DeleteStream or the CreateStream."""
    kc = srv.client(attempts=10)
    old = rl.STREAM
    first = prof["retire_kill"] > 0 and not sum(totals["retire_kill"].values())
    point = (rng.choice(("delete", "create")) if rng.random() < prof["retire_kill"] or first
             else None)
    totals["generation"] += 1
    rl.STREAM = "soak-g%d" % totals["generation"]
    for name in kc.list_streams()["StreamNames"]:
        if name.startswith("soak-g"):  # This one, and any a kill brought back.
            try:  # Its consumer (the fan-out reader's) goes with it.
                kc.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
            except rl.ClientError as e:
                check(name != old, "DeleteStream %s: %s" % (name, e))  # Verified, ACTIVE.
                # Another: already deleting, or gone.
    if point == "delete":
        kc = retire_kill(srv, rng, totals, prof, old, point)
    create_stream(kc, totals)
    if point == "create":
        kc = retire_kill(srv, rng, totals, prof, old, point)
    rl.wait_active(kc)
    stream_retention(kc, totals, prof)
    forget_stream(totals)


def create_stream(kc, totals, busy=False):
    """CreateStream rl.STREAM. A full disk refuses it: end the filler's hold early. busy:
    also wait while a stream of that name is still being deleted (a resume)."""
    deadline = time.time() + 120
    while True:
        try:
            kc.create_stream(StreamName=rl.STREAM, ShardCount=2)
            return
        except rl.ClientError as e:
            code = e.response["Error"]["Code"]
            check((code == "LimitExceededException" or busy and code == "ResourceInUseException")
                  and time.time() < deadline, "CreateStream %s: %s" % (rl.STREAM, e))
            if code == "LimitExceededException":
                totals["fill"].free(kc)
                totals["create_refused"] += 1
            time.sleep(0.2)


def forget_stream(totals):
    """The retired stream's records leave the ledger as verified."""
    totals["retired"] += len(totals["acked"])
    totals["acked"].clear()
    totals["maybe"].clear()
    totals["born"].clear()
    totals["retention"]["gone"].clear()
    totals["fanout"].clear()  # The consumer went with the stream.


def stream_retention(kc, totals, prof):
    """The new stream's retention (before any load): SHORT_H for every short_every-th
    generation, LONG_H for the others."""
    short = totals["generation"] % prof["short_every"] == 0
    totals["retention_h"] = SHORT_H if short else LONG_H
    totals["retention"]["short_streams"] += short
    set_retention(kc, rl.STREAM, totals["retention_h"])


def round_once(srv, rng, n, totals, args, prof):
    """One round of load and one fault. Returns after sluiced is up again and every
    record acknowledged so far was read back."""
    t0, before = time.time(), len(totals["acked"])
    settle_load, resharded = load_and_kill(srv, rng, n, totals, args, prof)
    t1 = time.time()
    restart(srv, rng, totals, prof)
    settle_load()
    t2 = time.time()
    in_flight(args, n, "verify", len(totals["acked"]) - before, totals["retention_h"])
    kc = srv.client(attempts=10)
    if resharded:
        check_reshard_whole(kc, *resharded, totals)
    else:
        check_open_partition(kc)
    shards, seen, may_expire = verify_all(srv, totals)
    check_fanout_durable(totals["fanout"].get("seen", {}), seen, may_expire)
    totals["shards"] = max(totals["shards"], shards)
    totals["verified"] += len(totals["acked"])
    if prof["gen_shards"] and (shards >= prof["gen_shards"] or
                               len(totals["acked"]) >= prof["gen_records"]):
        in_flight(args, n, "retire", 0, totals["retention_h"])
        retire(srv, rng, totals, prof)
    t3 = time.time()
    for k, dt in (("t_load", t1 - t0), ("t_restart", t2 - t1), ("t_verify", t3 - t2)):
        totals[k] += dt


def in_flight(args, n, phase, acked, retention_h):
    """--state: DIR/in-flight says what the round after the checkpoint is doing, for
    whoever finds the harness killed (and soak_resume, which kills it on cue): its number,
    phase ("verify": its load is over, `acked` records of it acknowledged, in a stream
    of retention_h; "retire": its stream is being replaced). Not needed to resume."""
    if not args.state:
        return
    path = os.path.join(args.state, "in-flight")
    with open(path + ".tmp", "w") as f:
        json.dump({"round": n, "phase": phase, "acked": acked, "retention_h": retention_h}, f)
    os.rename(path + ".tmp", path)


CHECKPOINT_FORMAT = "sluice-soak-checkpoint"
CHECKPOINT_VERSION = 1  # Bump when the checkpoint's content changes: an old one is refused.


def refuse(cond, what):
    """A state directory that cannot be resumed (or started afresh) is refused, never
    replaced by a fresh run in silence."""
    if not cond:
        raise SystemExit("FAIL: soak: refusing %s" % what)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The checkpoint (--state DIR/checkpoint): one line of JSON, then the pickled state.
#   header   {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
#             "sha256": hex digest of the payload, and for people: rounds, elapsed_s,
#             kills, resumed, finished}
#   payload  pickle: args (profile, seed, kills, duration), rounds, elapsed, rng, stream,
#            totals (the ledger: acked, maybe, born, retention, fan-out and filler state;
#            every counter)
def save_checkpoint(state, args, totals, rng, rounds, elapsed):
    totals["checkpoint_at"] = time.time()
    payload = pickle.dumps({
        "args": {k: getattr(args, k) for k in ("profile", "seed", "kills", "duration")},
        "rounds": rounds, "elapsed": elapsed, "rng": rng, "stream": rl.STREAM,
        "totals": totals}, protocol=4)
    head = json.dumps({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                       "sha256": hashlib.sha256(payload).hexdigest(), "rounds": rounds,
                       "elapsed_s": round(elapsed, 1), "kills": kills_sent(totals),
                       "resumed": totals["resumed"], "finished": totals["finished"]})
    path = os.path.join(state, "checkpoint")
    with open(path + ".tmp", "wb") as f:
        f.write(head.encode() + b"\n" + payload)
        f.flush()
        os.fsync(f.fileno())
    os.rename(path + ".tmp", path)
    fsync_dir(state)


def load_checkpoint(state):
    path = os.path.join(state, "checkpoint")
    refuse(os.path.exists(path), "to resume: no checkpoint %s (start without --resume)" % path)
    with open(path, "rb") as f:
        head, _, payload = f.read().partition(b"\n")
    try:
        h = json.loads(head)
    except ValueError:
        h = None
    refuse(isinstance(h, dict) and h.get("format") == CHECKPOINT_FORMAT,
           "to resume: %s is not a soak checkpoint (corrupt header)" % path)
    refuse(h.get("version") == CHECKPOINT_VERSION,
           "to resume: %s is checkpoint version %r, this soak.py reads version %d "
           "(resume with the soak.py that wrote it, or remove %s)" % (
               path, h.get("version"), CHECKPOINT_VERSION, state))
    refuse(hashlib.sha256(payload).hexdigest() == h.get("sha256"),
           "to resume: %s is corrupt (its checksum does not match)" % path)
    return pickle.loads(payload)


def left_running(state):
    """The sluiced a killed run left, if it still runs (a harness killed alone)."""
    try:
        with open(os.path.join(state, "sluiced.pid")) as f:
            pid = int(f.read())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return pid if os.path.join(state, "mnt").encode() in f.read() else None
    except (OSError, ValueError):
        return None


def forget_killed(state):
    """EAL's runtime directory of the killed run's sluiced (the SIGKILL left it), unless
    its PID lives again (then the directory may be another process's)."""
    try:
        with open(os.path.join(state, "sluiced.pid")) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "Z":  # A zombie is gone too.
                return
    except OSError:
        pass
    shutil.rmtree("/var/run/dpdk/sluice-%d" % pid, ignore_errors=True)


def stream_gone(kc, name):
    try:
        st = kc.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except rl.ClientError as e:
        check(e.response["Error"]["Code"] == "ResourceNotFoundException", repr(e))
        return True
    return st["StreamStatus"] == "DELETING"


def recover(srv, totals, prof):
    """The first start after --resume: the recovery from the SIGKILL the harness's end
    was. The stream is read back against the checkpoint's ledger, the records of the
    round in flight then adopted (adopt()). A stream gone (kills profile) was retired by
    that round, after a read-back that found all its records: a new one takes the load."""
    totals["sigkill_harness"] += 1
    srv.start()
    kc = srv.client(attempts=10)
    if prof["gen_shards"] and stream_gone(kc, rl.STREAM):
        totals["generation"] += 1
        rl.STREAM = "soak-g%d" % totals["generation"]
        for name in kc.list_streams()["StreamNames"]:
            if name.startswith("soak-g"):  # Any the lost round created.
                try:
                    kc.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
                except rl.ClientError:
                    pass  # Already deleting.
        create_stream(kc, totals, busy=True)
        rl.wait_active(kc)
        stream_retention(kc, totals, prof)
        forget_stream(totals)
        totals["unadopted"].clear()
        return
    check_open_partition(kc)
    _, seen, may_expire = verify_all(srv, totals)
    check_fanout_durable(totals["fanout"].get("seen", {}), seen, may_expire)
    totals["verified"] += len(totals["acked"])


def lost_prefixes(n):
    """The key prefixes of round n (load_and_kill's producers)."""
    return {"p%d" % (n * 10 + i) for i in range(rl.PRODUCERS)} | {
        "%s%d" % (c, n) for c in "uth"}


def new_totals(prof, rng):
    totals = {"acked": {}, "maybe": {}, "born": {}, "retention_h": SHORT_H,
              "retention": {"expired": 0, "past": 0, "young": 0, "gone": set(),
                            "short_streams": 0},
              "puts": 0, "udp": 0, "tcp": 0, "h2c": 0,
              "acked_udp": 0, "acked_tcp": 0, "acked_h2c": 0, "frame_resends": 0,
              "frame_nacks": 0, "frame_unrouted": 0, "reads": 0,
              "sigkill": 0, "sigkill_recovery": 0, "sigstop": 0, "rss_max": 0.0,
              "answer_max": 0.0, "shards": 0, "generation": 0, "retired": 0, "verified": 0,
              "create_refused": 0, "throttled": 0, "t_load": 0.0, "t_restart": 0.0, "t_verify": 0.0,
              "fill": FillState(random.Random(rng.random()), prof["hold_s"], prof["room_s"]),
              "reshards": {"split": 0, "merge": 0, "update": 0},
              "fanout": {}, "subscriptions": 0, "fanout_records": 0,
              "stalls": {k: 0 for k in Staller.KINDS}, "hogs": 0, "hog_again_max": 0.0,
              "hog_refused": 0, "hog_evicted": 0, "hog_shed": 0, "hog_timed_out": 0,
              "nofile_low_starts": 0,
              "reshard_kill": {"happened": 0, "not": 0, "none_sent": 0},
              "retire_kill": {"delete": 0, "create": 0},
              # --resume: starts that recovered from a killed harness; the key prefixes
              # of rounds whose ledger died with it; their records found after.
              "sigkill_harness": 0, "resumed": 0, "unadopted": set(), "adopted": 0,
              "checkpoint_at": 0.0, "finished": False}
    totals["owed"] = [k for k in OWED if prof[k] > 0]
    rng.shuffle(totals["owed"])
    return totals


def resume_state(args):
    """--resume: the checkpoint's run, its clock moved on past the dead time. The round
    in flight at the kill (number `rounds`) is lost; its keys are never used again."""
    ck = load_checkpoint(args.state)
    pid = left_running(args.state)
    refuse(pid is None, "to resume: sluiced %s of the killed run still runs on %s (stop "
           "it first)" % (pid, args.state))
    forget_killed(args.state)
    for k in ("profile", "seed"):
        setattr(args, k, ck["args"][k])
    for k in ("kills", "duration"):  # Unless given again (a longer run, a higher target).
        if getattr(args, k) is None:
            setattr(args, k, ck["args"][k])
    totals, rounds = ck["totals"], ck["rounds"]
    refuse(not totals["finished"], "to resume: the run in %s finished (its summary was "
           "printed); nothing to resume" % args.state)
    totals["resumed"] += 1
    totals["unadopted"] |= lost_prefixes(rounds)
    fill = totals["fill"]
    dead = time.time() - totals["checkpoint_at"]
    fill.since, fill.until = fill.since + dead, fill.until + dead  # Phases skip the gap.
    rl.STREAM = ck["stream"]
    return totals, ck["rng"], rounds + 1, ck["elapsed"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluiced")
    ap.add_argument("--duration", type=float, default=None, help="seconds (default 120)")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("TEST_SEED", "1")))
    ap.add_argument("--profile", choices=sorted(PROFILES), default="classic")
    ap.add_argument("--kills", type=int, default=None,
                    help="also stop once this many SIGKILLs (any kind) were sent")
    ap.add_argument("--disk-mb", type=int, default=160)
    ap.add_argument("--rss-budget-mb", type=int, default=1024)
    ap.add_argument("--answer-bound-s", type=float, default=20.0)
    ap.add_argument("--state", help="keep the run (image, data, log, checkpoint) in this "
                    "directory, checkpointed every round; kept at the end")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run checkpointed in --state (after a killed harness)")
    args = ap.parse_args()
    refuse(args.state or not args.resume, "--resume without --state DIR")
    if args.resume:
        totals, rng, rounds, elapsed = resume_state(args)
        prof = PROFILES[args.profile]
        tmp = args.state
    else:
        args.duration = 120 if args.duration is None else args.duration
        args.kills = args.kills or 0
        prof = PROFILES[args.profile]
        rng = random.Random(args.seed)
        totals, rounds, elapsed = new_totals(prof, rng), 0, 0.0
        if args.state:
            refuse(not os.path.exists(os.path.join(args.state, "checkpoint")),
                   "to start afresh in %s: it holds a run (--resume it, or remove the "
                   "directory)" % args.state)
            os.makedirs(args.state, exist_ok=True)
            tmp = args.state
        else:
            tmp = tempfile.mkdtemp(prefix="sluice-soak-")
        if prof["gen_shards"]:
            rl.STREAM = "soak-g0"
    loop = Loop(tmp, args.disk_mb, resume=args.resume)
    args.fill = loop.mounted
    srv = Sluiced(args.sluiced, os.path.join(loop.mnt, "data"), os.path.join(tmp, "sluiced.log"),
                  os.path.join(tmp, "sluiced.pid") if args.state else None)
    t0 = time.time() - elapsed

    def checkpoint():
        if args.state:
            save_checkpoint(args.state, args, totals, rng, rounds, time.time() - t0)
    try:
        if args.resume:
            checkpoint()  # Counts this resume (and its kill) even if it is killed too.
            recover(srv, totals, prof)
            checkpoint()
        else:
            srv.start()
            kc = srv.client(attempts=10)
            kc.create_stream(StreamName=rl.STREAM, ShardCount=2)
            rl.wait_active(kc)
            stream_retention(kc, totals, prof)
        shown = time.time()
        while time.time() - t0 < args.duration and not (
                args.kills and kills_sent(totals) >= args.kills):
            round_once(srv, rng, rounds, totals, args, prof)
            rounds += 1
            checkpoint()
            if time.time() - shown >= PROGRESS_S:
                shown = time.time()
                progress(totals, rounds, shown - t0)
        srv.stop()
        totals["finished"] = True
        checkpoint()
    except BaseException as e:
        print("FAIL (seed %d, round %d): %s; sluiced log: %s" % (args.seed, rounds, e,
                                                                  srv.log_path),
              file=sys.stderr)
        if srv.proc is not None:
            srv.kill()
        loop.close()
        raise
    loop.close()
    if not args.state:
        shutil.rmtree(tmp, ignore_errors=True)
    summary(args, totals, rounds, time.time() - t0)
    if args.state:
        print("soak: the run is kept in %s (remove it with: rm -rf %s)" % (
            args.state, args.state))


def kills_sent(t):
    return (t["sigkill"] + t["sigkill_recovery"] + sum(t["retire_kill"].values()) +
            t["sigkill_harness"])


def progress(t, rounds, elapsed):
    """A line every PROGRESS_S of a long run: how far it got, all checks passed so far."""
    print("soak: %.0f s, %d rounds, %d SIGKILL (+%d during recovery, +%d inside a "
          "retirement%s), %d SIGSTOP, %d records acknowledged, all read back so far%s" % (
              elapsed, rounds, t["sigkill"], t["sigkill_recovery"],
              sum(t["retire_kill"].values()), harness_killed(t), t["sigstop"],
              t["retired"] + len(t["acked"]) + t["retention"]["expired"], resumed(t)),
          flush=True)


def harness_killed(t):
    """With the kills: the starts that recovered from a killed harness (--resume)."""
    return ", +%d harness killed" % t["sigkill_harness"] if t["resumed"] else ""


def resumed(t):
    return "; resumed %d times" % t["resumed"] if t["resumed"] else ""


def summary(args, totals, rounds, elapsed):
    """One line: operations, faults by kind, records acknowledged, lost (0), where time went."""
    t, r, fill, ret = totals, totals["reshards"], totals["fill"], totals["retention"]
    fill.enter(fill.phase, 0.0)  # Closes the current phase's time.
    kills, rk, tk = kills_sent(t), t["reshard_kill"], t["retire_kill"]
    parts = [
        "soak: profile %s, seed %d, %.0f s, %d rounds" % (args.profile, args.seed, elapsed,
                                                         rounds),
        "operations: %d PutRecords calls (HTTP/1.1; %d records throttled and retried), "
        "%d over h2c, %d UDP frames, %d TCP frames acked (%d resent after %.0f s without an "
        "answer, %d NACKed throttled, %d unknown stream), %d reads, %d splits, %d merges, "
        "%d UpdateShardCount, %d MiB of filler, %d fan-out subscriptions (%d records "
        "delivered)" % (
            t["puts"], t["throttled"], t["h2c"], t["udp"], t["tcp"], t["frame_resends"],
            FRAME_ACK_WAIT_S, t["frame_nacks"], t["frame_unrouted"], t["reads"], r["split"],
            r["merge"], r["update"], fill.mib, t["subscriptions"], t["fanout_records"]),
        "faults: %d SIGKILL (+%d during recovery%s; %.1f a minute; %d right after a reshard "
        "was answered: %d happened, %d not, and %d rounds found none answered in time; "
        "%d inside a stream's retirement: %d after DeleteStream, %d after the next "
        "CreateStream), %d SIGSTOP, %d disk-full episodes (disk filling %.0f s, held full "
        "%.0f s, room %.0f s; %d CreateStream refused on a full disk), stalled connections "
        "%s, %d descriptor-exhaustion phases (sluiced counted %d refused, %d evicted, %d "
        "shed, %d timed out; a new client answered again within %.2f s), %d starts with "
        "RLIMIT_NOFILE %d; retention expiry on %d of %d streams (RetentionPeriodHours %d "
        "lasting %.1f s at [log] retention_hour_ms %d): %d records expired, %d read back "
        "past retention (exact), %d read back younger than it (none missing)" % (
            t["sigkill"], t["sigkill_recovery"], harness_killed(t), kills * 60.0 / elapsed,
            rk["happened"] + rk["not"], rk["happened"], rk["not"], rk["none_sent"],
            tk["delete"] + tk["create"], tk["delete"], tk["create"], t["sigstop"],
            fill.full, fill.spent["fill"], fill.spent["hold"], fill.spent["room"],
            t["create_refused"],
            " ".join("%s %d" % kv for kv in t["stalls"].items()), t["hogs"], t["hog_refused"],
            t["hog_evicted"], t["hog_shed"], t["hog_timed_out"], t["hog_again_max"],
            t["nofile_low_starts"], NOFILE_LOW, ret["short_streams"], t["generation"] + 1,
            SHORT_H, retention_s(SHORT_H), RETENTION_HOUR_MS, ret["expired"], ret["past"],
            ret["young"]),
        "%d records acknowledged (%d h2c, %d UDP, %d TCP), %d record read-backs, lost 0" % (
            t["retired"] + len(t["acked"]) + t["retention"]["expired"], t["acked_h2c"], t["acked_udp"], t["acked_tcp"],
            t["verified"]),
        "%d streams retired after their read-back; most shards in one read-back %d" % (
            t["generation"], t["shards"]),
        "max RSS %.0f MiB; slowest answer %.2f s" % (t["rss_max"], t["answer_max"]),
    ]
    if t["resumed"]:
        parts += [
            "resumed %d times: %d SIGKILLs in all (%d harness killed); %d records of the "
            "rounds in flight then found and adopted" % (
                t["resumed"], kills, t["sigkill_harness"], t["adopted"])]
    parts += [
        "time: load and kill %.0f s, restarts (and load threads ending) %.0f s, "
        "read-backs %.0f s" % (
            t["t_load"], t["t_restart"], t["t_verify"]),
    ]
    print("; ".join(parts))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
