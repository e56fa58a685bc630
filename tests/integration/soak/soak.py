#!/usr/bin/python3
"""
soak: a seeded fault campaign against one sluiced, for as long as asked.

Load, all at once: producers (PutRecords over HTTP/1.1 with boto3, and over h2c with curl
--http2-prior-knowledge; per-key sequences), dataplane producers sending record frames
(docs/PROTOCOL.md) over UDP and over TCP to the kernel backend ([dataplane] backend =
kernel on 127.0.0.1), with durable ACKs, retries of the same bytes and exactly-once
dedup, a resharder (SplitShard / MergeShards / UpdateShardCount), a reader (GetRecords on
random shards), and a filler that writes 1 MiB records to a scratch stream until the disk
is full, holds it full for a while, then deletes it (retention gives the space back) and
leaves room for a while. The data directory is a loop-mounted ext4 of --disk-mb (root; a
plain temp dir otherwise, and then no disk-full phases).

Faults, one per round after a seeded spell of load (PROFILES): SIGKILL, sometimes after a
SIGSTOP and SIGCONT; then starts killed during their recovery (0 or more), then a start.

Checked after every start that served clients (a start killed during its recovery served
nothing; the next read-back covers what it recovered) and at the end, against the ledger
of every acknowledged record (a 200 of the API, or a frame's durable ACK, whose runs give
each record's shard and log sequence number): each is read back exactly once, at the
shard and sequence number it was acknowledged with, with its bytes; nothing
unacknowledged is read (records in flight at a kill may be there, once); per partition
key the records come in send order; closed shards end and list their children. While
sluiced is up (not stopped): RSS stays within --rss-budget-mb, and DescribeStreamSummary
answers within --answer-bound-s.

Profiles: "classic" (the default) lets one stream grow for the whole run, so a read-back
reads every shard ever made; "kills" keeps load spells short and retires the stream (a
new one takes the load) right after a read-back that found all its records, once it
holds gen_shards shards or gen_records records, so a read-back stays short and kills
stay dense (docs/TESTING.md, "The fault campaign").

  usage: soak.py SLUICED [--duration S] [--seed N] [--profile classic|kills] [--kills N]
                         [--disk-mb M] [--rss-budget-mb M] [--answer-bound-s S]

Prints one summary line: operations, faults by kind, records acknowledged, lost (0); a
progress line every PROGRESS_S before it. --kills N ends the run at N SIGKILLs if that
comes before --duration.
Uses its own temp dir, loop device and port; stops only the sluiced it started.
"""
import argparse
import base64
import importlib.util
import json
import os
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

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "reshard_load", os.path.join(HERE, "..", "reshard", "test_reshard_load.py"))
rl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rl)
check = rl.check

sys.path.insert(0, os.path.join(HERE, "..", "..", "protocol"))
from test_spec_independent import records_frame  # noqa: E402

FRAME_RECORDS = 10      # Per frame: at most 16 runs, so a replayed ACK keeps its detail.
FRAME_ACK_WAIT_S = 1.0  # Then the same bytes again (the dedup window answers a repeat).
ACK, NACK = 2, 3
NACK_RETRY = (5, 6)     # throttled, internal: retry the same bytes after retry_after_ms.
NACK_UNKNOWN_STREAM = 1  # Nothing stored; a stream just created may not be routed yet.
FILL_REFUSED = 5        # Filler calls refused in a row: the disk is full.
PROGRESS_S = 600        # A long run prints how far it got this often.

# Profiles (--profile). A round: load for load_s, then the fault: with probability
# sigstop a SIGSTOP of stop_s, SIGCONT, after_stop_s more load; then SIGKILL. Then up to
# recovery_kills starts are each killed (probability recovery) 0..recovery_window_s into
# their recovery; then a start and the full read-back. gen_shards / gen_records: once the
# stream holds that many shards (open or closed) or acknowledged records, right after a
# read-back, it is retired (deleted; its records left the ledger verified) and a new one
# takes the load, so a read-back stays short. Filler: fills the disk, holds it full for
# hold_s, deletes its stream, leaves room_s, fills again.
PROFILES = {
    # The mixed campaign: long load phases, the stream grows for the whole run.
    "classic": dict(load_s=(2.0, 6.0), sigstop=0.3, stop_s=(0.3, 1.5), after_stop_s=(1.0, 2.5),
                    recovery=0.25, recovery_kills=1, recovery_window_s=0.2,
                    gen_shards=None, gen_records=None, hold_s=(0.0, 0.0), room_s=(0.5, 2.0)),
    # Kill-dense: short load phases, bounded streams, chains of kills during recovery.
    "kills": dict(load_s=(0.3, 1.0), sigstop=0.1, stop_s=(0.1, 0.5), after_stop_s=(0.2, 0.5),
                  recovery=0.5, recovery_kills=3, recovery_window_s=0.3,
                  gen_shards=40, gen_records=3000, hold_s=(2.0, 8.0), room_s=(4.0, 15.0)),
}


def log_position(sid, sequence_number):
    """(ShardId, the log's per-shard seq) of a Kinesis sequence number (control/seqnum.h)."""
    return sid, int(("%047x" % int(sequence_number))[11:27], 16)


class Sluiced:
    """sluiced on data_dir; its stderr goes to log_path (outside a disk that fills)."""

    def __init__(self, binary, data_dir, log_path):
        self.binary, self.data_dir, self.log_path = binary, data_dir, log_path
        self.proc, self.port = None, None
        self.ingest = rl.free_port()  # UDP and TCP, the same port for the whole run.

    def spawn(self):
        self.port = rl.free_port()
        self.proc = subprocess.Popen(
            [self.binary, "--data-dir", self.data_dir,
             "--api-listen", "127.0.0.1:%d" % self.port,
             "--set", "dataplane.backend=kernel", "--set", "dataplane.ipv4=127.0.0.1",
             "--set", "dataplane.ingest_port=%d" % self.ingest,
             "--set", "dataplane.no_huge=true",
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
    def __init__(self, srv, stop, rng, counts):
        super().__init__(srv, stop, rng)
        self.counts = counts

    def step(self):
        rl.reshard_once(self.kc, self.rng, self.counts)
        self.count += 1
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
    so no (key, n) is ever sent twice with two outcomes."""

    def __init__(self, prefix, stop, rng):
        super().__init__(daemon=True)
        self.stop, self.rng, self.error = stop, rng, None
        self.keys = ["%s-k%d" % (prefix, i) for i in range(rl.KEYS_PER_PRODUCER)]
        self.next = {k: 0 for k in self.keys}
        self.acked, self.inflight, self.calls = {}, {}, 0

    def run(self):
        try:
            while not self.stop.is_set() and len(self.keys) >= FRAME_RECORDS:
                batch = [(k, self.next[k]) for k in self.rng.sample(self.keys, FRAME_RECORDS)]
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


def verify_all(srv, acked, maybe):
    """acked: (key, n) -> (ShardId, log seq). Reads compare at the log's positions: a frame's
    ACK names (shard, seq), not the Kinesis rendering (which adds the arrival second)."""
    kc = srv.client(attempts=10)
    shards, read = rl.consume(kc)
    at_log = {sid: [dict(x, SequenceNumber=log_position(sid, x["SequenceNumber"])[1])
                    for x in recs] for sid, recs in read.items()}
    rl.verify(acked, at_log, maybe)
    rl.per_key_order(read, sorted(shards, key=lambda s: int(s["ShardId"].split("-")[1])))
    return len(shards)


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
    threads = [Resharder(srv, stop, random.Random(rng.random()), totals["reshards"]),
               Reader(srv, stop, random.Random(rng.random()))]
    if args.fill:
        threads.append(Filler(srv, stop, random.Random(rng.random()), totals["fill"]))
    watch = Watch(srv, stop)
    for t in producers + keyed + threads + [watch]:
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
    watch.paused.set()
    srv.kill()
    totals["sigkill"] += 1
    stop.set()
    return lambda: settle(producers, keyed, threads, watch, totals, args)


def settle(producers, keyed, threads, watch, totals, args):
    for t in producers + keyed + threads + [watch]:
        t.join(timeout=60)
        check(not t.is_alive(), "a load thread did not stop")
        check(t.error is None, "%s failed: %r" % (type(t).__name__, t.error))
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
    totals["rss_max"] = max(totals["rss_max"], watch.rss_max)
    totals["answer_max"] = max(totals["answer_max"], watch.answer_max)
    check(watch.rss_max <= args.rss_budget_mb, "RSS %.0f MiB over the budget %d MiB" % (
        watch.rss_max, args.rss_budget_mb))
    check(watch.answer_max <= args.answer_bound_s, "an answer took %.1f s (bound %.1f s)" % (
        watch.answer_max, args.answer_bound_s))


def restart(srv, rng, totals, prof):
    """Up to recovery_kills starts killed during their recovery, then a start to ready."""
    for _ in range(prof["recovery_kills"]):
        if rng.random() >= prof["recovery"]:
            break
        srv.spawn()
        time.sleep(rng.uniform(0.0, prof["recovery_window_s"]))
        srv.kill()
        totals["sigkill_recovery"] += 1
    srv.start()


def retire(srv, totals):
    """After a read-back that found every record of the stream: delete it (its records
    leave the ledger as verified) and create the next one. Nothing is in flight: the
    round's load stopped with the kill, and the read-back ran after the start."""
    kc = srv.client(attempts=10)
    totals["generation"] += 1
    rl.STREAM = "soak-g%d" % totals["generation"]
    for name in kc.list_streams()["StreamNames"]:
        if name.startswith("soak-g"):  # This one, and any a kill brought back.
            try:
                kc.delete_stream(StreamName=name)
            except rl.ClientError:
                pass  # Already deleting, or gone.
    deadline = time.time() + 120
    while True:
        try:
            kc.create_stream(StreamName=rl.STREAM, ShardCount=2)
            break
        except rl.ClientError as e:
            # A full disk refuses CreateStream: end the filler's hold early.
            check(e.response["Error"]["Code"] == "LimitExceededException" and
                  time.time() < deadline, "CreateStream %s: %s" % (rl.STREAM, e))
            totals["fill"].free(kc)
            totals["create_refused"] += 1
            time.sleep(0.2)
    rl.wait_active(kc)
    totals["retired"] += len(totals["acked"])
    totals["acked"].clear()
    totals["maybe"].clear()


def round_once(srv, rng, n, totals, args, prof):
    """One round of load and one fault. Returns after sluiced is up again and every
    record acknowledged so far was read back."""
    t0 = time.time()
    settle_load = load_and_kill(srv, rng, n, totals, args, prof)
    t1 = time.time()
    restart(srv, rng, totals, prof)
    settle_load()
    t2 = time.time()
    shards = verify_all(srv, totals["acked"], set(totals["maybe"].items()))
    totals["shards"] = max(totals["shards"], shards)
    totals["verified"] += len(totals["acked"])
    if prof["gen_shards"] and (shards >= prof["gen_shards"] or
                               len(totals["acked"]) >= prof["gen_records"]):
        retire(srv, totals)
    t3 = time.time()
    for k, dt in (("t_load", t1 - t0), ("t_restart", t2 - t1), ("t_verify", t3 - t2)):
        totals[k] += dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluiced")
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("TEST_SEED", "1")))
    ap.add_argument("--profile", choices=sorted(PROFILES), default="classic")
    ap.add_argument("--kills", type=int, default=0,
                    help="also stop once this many SIGKILLs (any kind) were sent")
    ap.add_argument("--disk-mb", type=int, default=160)
    ap.add_argument("--rss-budget-mb", type=int, default=1024)
    ap.add_argument("--answer-bound-s", type=float, default=20.0)
    args = ap.parse_args()
    prof = PROFILES[args.profile]
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="sluice-soak-")
    loop = Loop(tmp, args.disk_mb)
    args.fill = loop.mounted
    srv = Sluiced(args.sluiced, os.path.join(loop.mnt, "data"), os.path.join(tmp, "sluiced.log"))
    totals = {"acked": {}, "maybe": {}, "puts": 0, "udp": 0, "tcp": 0, "h2c": 0,
              "acked_udp": 0, "acked_tcp": 0, "acked_h2c": 0, "frame_resends": 0,
              "frame_nacks": 0, "frame_unrouted": 0, "reads": 0,
              "sigkill": 0, "sigkill_recovery": 0, "sigstop": 0, "rss_max": 0.0,
              "answer_max": 0.0, "shards": 0, "generation": 0, "retired": 0, "verified": 0,
              "create_refused": 0, "throttled": 0, "t_load": 0.0, "t_restart": 0.0, "t_verify": 0.0,
              "fill": FillState(random.Random(rng.random()), prof["hold_s"], prof["room_s"]),
              "reshards": {"split": 0, "merge": 0, "update": 0}}
    if prof["gen_shards"]:
        rl.STREAM = "soak-g0"
    t0 = time.time()
    rounds = 0
    try:
        srv.start()
        kc = srv.client(attempts=10)
        kc.create_stream(StreamName=rl.STREAM, ShardCount=2)
        rl.wait_active(kc)
        shown = t0
        while time.time() - t0 < args.duration and not (
                args.kills and totals["sigkill"] + totals["sigkill_recovery"] >= args.kills):
            round_once(srv, rng, rounds, totals, args, prof)
            rounds += 1
            if time.time() - shown >= PROGRESS_S:
                shown = time.time()
                progress(totals, rounds, shown - t0)
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
    summary(args, totals, rounds, time.time() - t0)


def progress(t, rounds, elapsed):
    """A line every PROGRESS_S of a long run: how far it got, all checks passed so far."""
    print("soak: %.0f s, %d rounds, %d SIGKILL (+%d during recovery), %d SIGSTOP, %d records "
          "acknowledged, all read back so far" % (
              elapsed, rounds, t["sigkill"], t["sigkill_recovery"], t["sigstop"],
              t["retired"] + len(t["acked"])), flush=True)


def summary(args, totals, rounds, elapsed):
    """One line: operations, faults by kind, records acknowledged, lost (0), where time went."""
    t, r, fill = totals, totals["reshards"], totals["fill"]
    fill.enter(fill.phase, 0.0)  # Closes the current phase's time.
    kills = t["sigkill"] + t["sigkill_recovery"]
    parts = [
        "soak: profile %s, seed %d, %.0f s, %d rounds" % (args.profile, args.seed, elapsed,
                                                         rounds),
        "operations: %d PutRecords calls (HTTP/1.1; %d records throttled and retried), "
        "%d over h2c, %d UDP frames, %d TCP frames acked (%d resent after %.0f s without an "
        "answer, %d NACKed throttled, %d unknown stream), %d reads, %d splits, %d merges, "
        "%d UpdateShardCount, %d MiB of filler" % (
            t["puts"], t["throttled"], t["h2c"], t["udp"], t["tcp"], t["frame_resends"],
            FRAME_ACK_WAIT_S, t["frame_nacks"], t["frame_unrouted"], t["reads"], r["split"],
            r["merge"], r["update"], fill.mib),
        "faults: %d SIGKILL (+%d during recovery; %.1f a minute), %d SIGSTOP, %d disk-full "
        "episodes (disk filling %.0f s, held full %.0f s, room %.0f s; %d CreateStream "
        "refused on a full disk)" % (
            t["sigkill"], t["sigkill_recovery"], kills * 60.0 / elapsed, t["sigstop"],
            fill.full, fill.spent["fill"], fill.spent["hold"], fill.spent["room"],
            t["create_refused"]),
        "%d records acknowledged (%d h2c, %d UDP, %d TCP), %d record read-backs, lost 0" % (
            t["retired"] + len(t["acked"]), t["acked_h2c"], t["acked_udp"], t["acked_tcp"],
            t["verified"]),
        "%d streams retired after their read-back; most shards in one read-back %d" % (
            t["generation"], t["shards"]),
        "max RSS %.0f MiB; slowest answer %.2f s" % (t["rss_max"], t["answer_max"]),
        "time: load and kill %.0f s, restarts (and load threads ending) %.0f s, "
        "read-backs %.0f s" % (
            t["t_load"], t["t_restart"], t["t_verify"]),
    ]
    print("; ".join(parts))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
