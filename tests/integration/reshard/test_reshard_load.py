#!/usr/bin/python3
"""
Resharding under live ingest: sluiced (--no-dataplane) takes PutRecords from
producer threads at a steady rate while boto3 runs at least 100 SplitShard /
MergeShards / UpdateShardCount operations. Then a consumer that follows
lineage (a shard only after its parents ended) reads every shard and checks:

  - every acknowledged record is read exactly once, where it was acknowledged
    (shard and sequence number), and nothing unacknowledged is read;
  - per partition key, records come in send order;
  - a closed parent ends (NextShardIterator null, ChildShards listed) and holds
    nothing beyond its EndingSequenceNumber;
  - a restart keeps the lineage and every record;
  - SIGKILL in the middle of reshards under load, then a start: every record
    acknowledged before the kill is there exactly once (records in flight at
    the kill may be there too, once), lineage complete, per-key order kept.

  usage: test_reshard_load.py SLUICED [OPERATIONS]
         test_reshard_load.py reshard ENDPOINT STREAM OPERATIONS   (only reshards)
         test_reshard_load.py check ENDPOINT STREAM LEDGER         (dataplane ledger)

The last two serve tests/integration/reshard/test_dp_reshard.sh, whose records come
through the dataplane (dp_sender's ledger: "<shard index> <seq> <key> <data>").

Producers keep each key at most once per PutRecords and retry a key's failed
record before its next one: per-key order is then the producer's send order.
Uses its own temp dir and free port; stops only the process it started.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import botocore.config
from botocore.exceptions import ClientError

STREAM = "reshard"
ENDPOINT = None
PRODUCERS = 3
KEYS_PER_PRODUCER = 40
BATCH = 20


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sluiced:
    def __init__(self, binary, data_dir):
        self.binary, self.data_dir, self.proc, self.port = binary, data_dir, None, None

    def start(self):
        self.port = free_port()
        log = open(os.path.join(self.data_dir, "sluiced.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--no-dataplane", "--data-dir", self.data_dir,
             "--api-listen", "127.0.0.1:%d" % self.port,
             "--set", "server.stream_status_delay_ms=5",
             "--set", "server.shard_count_updates_per_day=0"],
            stdout=subprocess.PIPE, stderr=log)
        line = self.proc.stdout.readline().decode()
        check("ready" in line, "sluiced did not start: %r" % line)

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise SystemExit("FAIL: sluiced did not stop on SIGTERM")
        self.proc = None
        check(rc == 0, "sluiced exit code %d" % rc)

    def client(self, attempts=10):
        return client("http://127.0.0.1:%d" % self.port, attempts)


def client(endpoint, attempts=10):
    cfg = botocore.config.Config(retries={"max_attempts": attempts, "mode": "standard"},
                                 connect_timeout=5, read_timeout=30)
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKID", aws_secret_access_key="SECRET", config=cfg)


def wait_active(kc):
    for _ in range(2000):
        s = kc.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
        if s["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.002)
    raise SystemExit("FAIL: stream never became ACTIVE")


def list_shards(kc, **kw):
    shards, token = [], None
    while True:
        r = kc.list_shards(NextToken=token) if token else kc.list_shards(StreamName=STREAM, **kw)
        shards += r["Shards"]
        token = r.get("NextToken")
        if not token:
            return shards


class Producer(threading.Thread):
    """Sends key:n records; acked[(key, n)] = (shard, seq); born[(key, n)]: when the first
    PutRecords carrying it was sent (a lower bound of its arrival, for retention)."""

    def __init__(self, srv, pid, stop):
        super().__init__(daemon=True)
        self.kc, self.stop, self.error = srv.client(), stop, None
        self.keys = ["p%d-k%d" % (pid, i) for i in range(KEYS_PER_PRODUCER)]
        self.next = {k: 0 for k in self.keys}
        self.acked, self.calls, self.retried = {}, 0, 0
        self.rng = random.Random(pid)
        self.inflight, self.tolerate_death, self.born = {}, False, {}

    def run(self):
        try:
            self.loop()
        except BaseException as e:  # noqa: B902 - reported by the main thread
            self.error = e

    def loop(self):
        while not self.stop.is_set():
            keys = self.rng.sample(self.keys, BATCH)
            pending = {k: self.next[k] for k in keys}
            sent = time.time()
            self.born.update({(k, n): sent for k, n in pending.items()})
            while pending:
                batch = list(pending.items())
                try:
                    r = self.kc.put_records(StreamName=STREAM, Records=[
                        {"PartitionKey": k, "Data": ("%s:%d" % (k, n)).encode()}
                        for k, n in batch])
                except ClientError:
                    if not self.tolerate_death:
                        raise
                    time.sleep(0.01)  # Throttled as a whole: the same batch again.
                    continue
                except Exception:  # noqa: B902 - the connection, when sluiced was killed
                    if not self.tolerate_death:
                        raise
                    self.inflight = dict(pending)  # Maybe stored, never acknowledged.
                    return
                self.calls += 1
                for (k, n), res in zip(batch, r["Records"]):
                    if "ErrorCode" in res:
                        check(res["ErrorCode"] == "ProvisionedThroughputExceededException",
                              "put error %r" % res)
                        self.retried += 1
                        continue
                    self.acked[(k, n)] = (res["ShardId"], int(res["SequenceNumber"]))
                    self.next[k] = n + 1
                    del pending[k]
                if pending:
                    time.sleep(0.002)
            time.sleep(0.003)  # A steady rate, not a flood: 2 cores are shared.


def reshard_once(kc, rng, counts, wait=True):
    """One random split, merge or UpdateShardCount; returns its kind (None: nothing sent).
    wait: until the stream is ACTIVE again (else it returns as soon as it is answered)."""
    open_shards = sorted(list_shards(kc, ShardFilter={"Type": "AT_LATEST"}),
                         key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    n = len(open_shards)
    roll = rng.random()
    if roll < 0.06:
        target = rng.randint(max(1, (n + 1) // 2), min(2 * n, 8))
        kc.update_shard_count(StreamName=STREAM, TargetShardCount=target,
                              ScalingType="UNIFORM_SCALING")
        kind = "update"
    elif n < 3 or (n < 10 and roll < 0.53):
        s = rng.choice(open_shards)
        lo, hi = int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])
        if hi - lo < 4:
            return None
        kc.split_shard(StreamName=STREAM, ShardToSplit=s["ShardId"],
                       NewStartingHashKey=str(rng.randint(lo + 2, hi - 1)))
        kind = "split"
    else:
        i = rng.randrange(n - 1)
        kc.merge_shards(StreamName=STREAM, ShardToMerge=open_shards[i]["ShardId"],
                        AdjacentShardToMerge=open_shards[i + 1]["ShardId"])
        kind = "merge"
    counts[kind] += 1
    if wait:
        wait_active(kc)
    return kind


def consume(kc):
    """Reads every shard after its parents; returns (records by shard, lineage checks)."""
    shards = list_shards(kc)
    by_id = {s["ShardId"]: s for s in shards}
    done, order, read = set(), [], {}
    while len(done) < len(shards):
        ready = [s for s in shards if s["ShardId"] not in done and
                 all(p in done for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))
                     if p is not None and p in by_id)]
        check(ready, "lineage has a cycle")
        s = min(ready, key=lambda x: int(x["ShardId"].split("-")[1]))
        sid = s["ShardId"]
        it = kc.get_shard_iterator(StreamName=STREAM, ShardId=sid,
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        recs, closed = [], "EndingSequenceNumber" in s["SequenceNumberRange"]
        while True:
            r = kc.get_records(ShardIterator=it, Limit=10000)
            recs += r["Records"]
            it = r.get("NextShardIterator")
            if it is None:
                check(closed, "%s: open shard ended" % sid)
                kids = {c["ShardId"] for c in r.get("ChildShards", [])}
                want = {x["ShardId"] for x in shards if sid in
                        (x.get("ParentShardId"), x.get("AdjacentParentShardId"))}
                check(kids == want, "%s: ChildShards %s, want %s" % (sid, kids, want))
                break
            if not r["Records"] and r["MillisBehindLatest"] == 0:
                check(not closed, "%s: closed shard never ended" % sid)
                break
        if closed:
            end = int(s["SequenceNumberRange"]["EndingSequenceNumber"])
            check(all(int(x["SequenceNumber"]) <= end for x in recs),
                  "%s: records past EndingSequenceNumber" % sid)
        read[sid] = recs
        done.add(sid)
        order.append(sid)
    return shards, read


def verify(acked, read, maybe=()):
    seen, last = {}, {}
    for sid, recs in read.items():
        for x in recs:
            k, n = x["Data"].decode().rsplit(":", 1)
            check((k, int(n)) not in seen, "record %s:%s read twice" % (k, n))
            seen[(k, int(n))] = (sid, int(x["SequenceNumber"]))
    extra = set(seen) - set(acked) - set(maybe)
    check(set(acked) <= set(seen) and not extra,
          "read %d records, acknowledged %d (missing %d, extra %d)" % (
              len(seen), len(acked), len(set(acked) - set(seen)), len(extra)))
    for key_n, where in acked.items():
        check(seen[key_n] == where, "%s acknowledged at %s, read at %s" % (key_n, where,
                                                                       seen[key_n]))
    return seen, last


def per_key_order(read, shards):
    """Lineage order: a key's records, parents before children, must be in send order."""
    pos = {s["ShardId"]: i for i, s in enumerate(shards)}
    last = {}
    for sid in sorted(read, key=lambda x: pos[x]):
        for x in read[sid]:
            k, n = x["Data"].decode().rsplit(":", 1)
            check(int(n) == last.get(k, -1) + 1, "key %s: %s after %d" % (k, n, last.get(k, -1)))
            last[k] = int(n)


def reshard_loop(kc, operations):
    rng, counts = random.Random(int(os.environ.get("TEST_SEED", "7"))), {
        "split": 0, "merge": 0, "update": 0}
    while sum(counts.values()) < operations:
        try:
            reshard_once(kc, rng, counts)
        except ClientError as e:
            check(e.response["Error"]["Code"] == "ResourceInUseException", str(e))
            time.sleep(0.005)
    return counts


def check_ledger(kc, path):
    """Dataplane records: each ledger line read once, at its shard and seq, nothing else."""
    shards, read = consume(kc)
    want = {}
    for line in open(path):
        shard, seq, key, data = line.split()
        want[("shardId-%012d" % int(shard), int(seq))] = (key, data)
    got = {}
    for sid, recs in read.items():
        for x in recs:
            where = (sid, int(x["SequenceNumber"]) >> 80 & 0xffffffffffffffff)
            check(where not in got, "%s read twice" % (where,))
            got[where] = (x["PartitionKey"], x["Data"].decode())
    check(len(got) == len(want), "read %d records, acknowledged %d" % (len(got), len(want)))
    for where, kd in want.items():
        check(got.get(where) == kd, "%s: acknowledged %s, read %s" % (where, kd, got.get(where)))
    return shards


def crash_phase(srv, acked):
    """Producers and reshards again, SIGKILL at a random moment, start, check."""
    rng = random.Random(int(os.environ.get("TEST_SEED", "7")) + 1)
    stop = threading.Event()
    producers = [Producer(srv, 10 + i, stop) for i in range(PRODUCERS)]
    for p in producers:
        p.tolerate_death = True
        p.kc = srv.client(attempts=1)  # A dead sluiced must not be retried for a minute.
        p.start()
    counts = {"split": 0, "merge": 0, "update": 0}

    def resharder():
        kc = srv.client(attempts=1)
        while not stop.is_set():
            try:
                reshard_once(kc, rng, counts)
            except Exception:  # noqa: B902 - ResourceInUse, or sluiced is gone
                time.sleep(0.005)

    t = threading.Thread(target=resharder, daemon=True)
    t.start()
    time.sleep(rng.uniform(0.8, 2.0))
    dead, srv.proc = srv.proc, None
    dead.kill()
    dead.wait()
    stop.set()
    t.join(timeout=30)
    maybe = {}
    for p in producers:
        p.join(timeout=30)
        check(p.error is None, "producer failed: %r" % p.error)
        acked.update(p.acked)
        maybe.update(p.inflight)
    srv.start()
    shards, read = consume(srv.client())
    verify(acked, read, {(k, n) for k, n in maybe.items()})
    per_key_order(read, sorted(shards, key=lambda s: int(s["ShardId"].split("-")[1])))
    print("reshard-crash: SIGKILL after %d reshards; %d acknowledged records all read once "
          "after the start, %d shards" % (sum(counts.values()), len(acked), len(shards)))


def main():
    global STREAM
    if sys.argv[1] in ("reshard", "check"):
        STREAM = sys.argv[3]
        kc = client(sys.argv[2])
        if sys.argv[1] == "reshard":
            counts = reshard_loop(kc, int(sys.argv[4]))
            print("reshard: %d splits, %d merges, %d UpdateShardCount" % (
                counts["split"], counts["merge"], counts["update"]))
        else:
            shards = check_ledger(kc, sys.argv[4])
            print("check: %d shards, ledger read back exactly once" % len(shards))
        return
    binary = sys.argv[1]
    operations = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    tmp = tempfile.mkdtemp(prefix="sluice-reshard-")
    srv = Sluiced(binary, tmp)
    t0 = time.time()
    try:
        srv.start()
        kc = srv.client()
        kc.create_stream(StreamName=STREAM, ShardCount=4)
        wait_active(kc)
        stop = threading.Event()
        producers = [Producer(srv, i, stop) for i in range(PRODUCERS)]
        for p in producers:
            p.start()
        rng, counts = random.Random(int(os.environ.get("TEST_SEED", "7"))), {
            "split": 0, "merge": 0, "update": 0}
        while sum(counts.values()) < operations:
            try:
                reshard_once(kc, rng, counts)
            except ClientError as e:
                check(e.response["Error"]["Code"] == "ResourceInUseException", str(e))
                time.sleep(0.005)
            check(all(p.error is None for p in producers), "producer: %s" % [
                p.error for p in producers if p.error])
        stop.set()
        for p in producers:
            p.join(timeout=30)
            check(p.error is None, "producer failed: %r" % p.error)
        acked = {}
        for p in producers:
            acked.update(p.acked)
        shards, read = consume(kc)
        verify(acked, read)
        per_key_order(read, sorted(shards, key=lambda s: int(s["ShardId"].split("-")[1])))
        srv.stop()
        srv.start()
        kc = srv.client()
        shards2, read2 = consume(kc)
        check(len(shards2) == len(shards), "restart: %d shards, had %d" % (len(shards2),
                                                                         len(shards)))
        verify(acked, read2)
        crash_phase(srv, acked)
        print("reshard-load: %d splits, %d merges, %d UpdateShardCount, %d shards, %d records "
              "acknowledged (%d retried after a cut), %.1f s" % (
                  counts["split"], counts["merge"], counts["update"], len(shards), len(acked),
                  sum(p.retried for p in producers), time.time() - t0))
    except BaseException as e:
        print("FAIL: %s" % (e,), file=sys.stderr)
        raise
    finally:
        try:
            srv.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print("OK")


if __name__ == "__main__":
    # meson's timeout sends SIGTERM: exit through the finally blocks, which stop
    # our sluiced and remove the temp dirs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
