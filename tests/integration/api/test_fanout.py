#!/usr/bin/python3
"""
Enhanced fan-out end to end: sluiced (API + log, no dataplane) driven by boto3.

  usage: test_fanout.py SLUICED [JS_DIR]

Consumers: Register/Describe/List (paginated)/Deregister with their status changes,
the 20-per-stream limit, duplicates, ARNs; DeleteStream's EnforceConsumerDeletion.
SubscribeToShard through boto3's EventStream reader (HTTP/1.1 chunked): while
PutRecords run and the shard is split, every acknowledged record arrives exactly once
and in order on the parent, then (after the event carrying ChildShards) on the
children; a second subscription of the same consumer and shard is
ResourceInUseException. 100 subscriptions at once (20 consumers x 5 shards, raw HTTP/1.1)
each get every record of their shard; a subscriber that stops reading while 24 MB wait
for it does not grow the server's memory (RSS), /metrics counts the writes refused to
it and the events deferred, and it gets everything once it reads.
The JS SDK v3 (@aws-sdk/client-kinesis, whose default handler for SubscribeToShard is
HTTP/2: h2c here) reads every record, in order, while PutRecords and a SplitShard run
(the parent up to its ChildShards, then the child); its package is
installed with npm into JS_DIR (the build tree) on first use, and that phase is skipped,
saying so, only when npm cannot install it. Uses its own temp dir and free port; stops only its own PID.
"""
import base64
import json
import os
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

from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import (Sluiced, check, client, expect_error, free_port,  # noqa: E402
                              npm_install, wait_active)

STREAM = "fanout"
DEADLINE_S = 60


def wait_consumer(kc, arn, status):
    end = time.time() + DEADLINE_S
    while time.time() < end:
        try:
            got = kc.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]
        except ClientError as e:
            if status is None and e.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        if got["ConsumerStatus"] == status:
            return got
        time.sleep(0.05)
    raise SystemExit("FAIL: consumer %s never %s" % (arn, status))


def consumers(kc, stream_arn):
    arn = kc.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    check(arn == stream_arn, "stream ARN")
    a = kc.register_stream_consumer(StreamARN=stream_arn, ConsumerName="app-a")["Consumer"]
    check(a["ConsumerStatus"] == "CREATING", "a new consumer is CREATING: %s" % a)
    check(a["ConsumerARN"].startswith(stream_arn + "/consumer/app-a:"), a["ConsumerARN"])
    check(a["ConsumerARN"].endswith(":%d" % int(a["ConsumerCreationTimestamp"].timestamp())),
          "the ARN ends in the creation epoch: %s" % a)
    wait_consumer(kc, a["ConsumerARN"], "ACTIVE")
    d = kc.describe_stream_consumer(StreamARN=stream_arn, ConsumerName="app-a")
    check(d["ConsumerDescription"]["StreamARN"] == stream_arn, "describe by name")
    expect_error("ResourceInUseException", kc.register_stream_consumer, StreamARN=stream_arn,
                 ConsumerName="app-a")
    expect_error("ResourceNotFoundException", kc.describe_stream_consumer,
                 ConsumerARN=a["ConsumerARN"] + "9")
    expect_error("InvalidArgumentException", kc.describe_stream_consumer,
                 ConsumerARN=a["ConsumerARN"], StreamARN=stream_arn)
    for i in range(19):
        kc.register_stream_consumer(StreamARN=stream_arn, ConsumerName="c%02d" % i)
    expect_error("LimitExceededException", kc.register_stream_consumer, StreamARN=stream_arn,
                 ConsumerName="one-too-many")
    names = []
    pages = 0
    for page in kc.get_paginator("list_stream_consumers").paginate(
            StreamARN=stream_arn, PaginationConfig={"PageSize": 7}):
        pages += 1
        names += [c["ConsumerName"] for c in page["Consumers"]]
    check(sorted(names) == sorted(["app-a"] + ["c%02d" % i for i in range(19)]),
          "ListStreamConsumers pages: %s" % names)
    check(pages == 3, "20 consumers in pages of 7: %d pages" % pages)
    summary = kc.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    check(summary["ConsumerCount"] == 20, "ConsumerCount %s" % summary["ConsumerCount"])
    gone = kc.describe_stream_consumer(StreamARN=stream_arn, ConsumerName="c00")
    kc.deregister_stream_consumer(ConsumerARN=gone["ConsumerDescription"]["ConsumerARN"])
    wait_consumer(kc, gone["ConsumerDescription"]["ConsumerARN"], None)
    for i in range(1, 19):
        kc.deregister_stream_consumer(StreamARN=stream_arn, ConsumerName="c%02d" % i)
    return a["ConsumerARN"]


class Reader(threading.Thread):
    """One subscription: collects (sequence number, data) until ChildShards or a count."""

    def __init__(self, srv, consumer_arn, shard_id, want=None):
        super().__init__(daemon=True)
        self.kc = client(srv)
        self.arn = consumer_arn
        self.shard_id = shard_id
        self.want = want
        self.records = []
        self.children = None
        self.error = None
        self.started = threading.Event()

    def run(self):
        try:
            position = {"Type": "TRIM_HORIZON"}
            # A subscription lasts 5 minutes: go on from ContinuationSequenceNumber.
            while self.children is None and (self.want is None or len(self.records) < self.want):
                r = self.kc.subscribe_to_shard(ConsumerARN=self.arn, ShardId=self.shard_id,
                                               StartingPosition=position)
                self.started.set()
                for event in r["EventStream"]:
                    e = event["SubscribeToShardEvent"]
                    self.records += [(x["SequenceNumber"], x["Data"]) for x in e["Records"]]
                    position = {"Type": "AFTER_SEQUENCE_NUMBER",
                                "SequenceNumber": e["ContinuationSequenceNumber"]}
                    if e.get("ChildShards"):
                        self.children = [c["ShardId"] for c in e["ChildShards"]]
                        break
                    if self.want is not None and len(self.records) >= self.want:
                        break
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e
            self.started.set()


def put_batch(kc, first, count, shard_hash):
    recs = [{"Data": b"r%06d" % i, "PartitionKey": "k", "ExplicitHashKey": shard_hash}
            for i in range(first, first + count)]
    out = kc.put_records(StreamName=STREAM, Records=recs)
    check(out.get("FailedRecordCount", 0) == 0, "put_records failed: %s" % out)
    return [(r["ShardId"], r["SequenceNumber"], recs[i]["Data"])
            for i, r in enumerate(out["Records"])]


def subscribe_during_split(srv, kc, consumer_arn):
    parent = Reader(srv, consumer_arn, "shardId-000000000000")
    parent.start()
    check(parent.started.wait(DEADLINE_S), "the subscription never started")
    expect_error("ResourceInUseException", kc.subscribe_to_shard, ConsumerARN=consumer_arn,
                 ShardId="shardId-000000000000", StartingPosition={"Type": "LATEST"})
    acked = []
    n = 0
    # Hash 0 is shard 0; after the split at 2^126 it is the lower child.
    for batch in range(40):
        acked += put_batch(kc, n, 50, "0")
        n += 50
        if batch == 20:
            kc.split_shard(StreamName=STREAM, ShardToSplit="shardId-000000000000",
                           NewStartingHashKey=str(2 ** 126))
    parent.join(DEADLINE_S)
    check(parent.error is None, "parent subscription: %r" % parent.error)
    check(parent.children is not None, "no ChildShards at the parent's end (%d records)"
          % len(parent.records))
    by_shard = {}
    for shard, seq, data in acked:
        by_shard.setdefault(shard, []).append((seq, data))
    want_parent = by_shard.pop("shardId-000000000000", [])
    check(parent.records == want_parent, "parent: %d records received, %d acknowledged; "
          "first difference at %s" % (len(parent.records), len(want_parent), next(
              (i for i, (a, b) in enumerate(zip(parent.records, want_parent)) if a != b),
              None)))
    for shard, want in by_shard.items():
        check(shard in parent.children, "records went to %s, not a child" % shard)
        child = Reader(srv, consumer_arn, shard, want=len(want))
        child.start()
        child.join(DEADLINE_S)
        check(child.error is None, "%s: %r" % (shard, child.error))
        check(child.records == want, "%s: %d received, %d acknowledged" % (
            shard, len(child.records), len(want)))
    print("fan-out: %d records over the split, each once and in order" % len(acked))


class RawSubscription:
    """SubscribeToShard over a raw HTTP/1.1 socket (auth is off), decoded with botocore."""

    def __init__(self, srv, consumer_arn, shard_id):
        self.sock = socket.socket()
        self.sock.connect(("127.0.0.1", srv.port))
        body = json.dumps({"ConsumerARN": consumer_arn, "ShardId": shard_id,
                           "StartingPosition": {"Type": "TRIM_HORIZON"}}).encode()
        self.sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202."
                          b"SubscribeToShard\r\nContent-Type: application/x-amz-json-1.1\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.raw = b""
        self.head = None
        self.events = EventStreamBuffer()
        self.records = []

    def fileno(self):
        return self.sock.fileno()

    def read_some(self):
        data = self.sock.recv(1 << 20)
        check(data, "the server closed a subscription")
        self.raw += data
        if self.head is None:
            if b"\r\n\r\n" not in self.raw:
                return
            self.head, self.raw = self.raw.split(b"\r\n\r\n", 1)
            check(self.head.startswith(b"HTTP/1.1 200") and b"chunked" in self.head,
                  "subscription head: %r" % self.head)
        while True:  # Whole chunks only.
            line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                return
            size = int(line, 16)
            if len(rest) < size + 2:
                return
            self.events.add_data(rest[:size])
            self.raw = rest[size + 2:]
            for m in self.events:
                if m.headers.get(":event-type") == "SubscribeToShardEvent":
                    self.records += json.loads(m.payload)["Records"]


def read_until(subs, done, what):
    end = time.time() + DEADLINE_S
    while not all(done(s) for s in subs):
        check(time.time() < end, "timed out: " + what)
        ready, _, _ = select.select([s for s in subs if not done(s)], [], [], 1.0)
        for s in ready:
            s.read_some()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("FAIL: no VmRSS")


def new_stream_with_consumers(kc, name, shards, consumers):
    kc.create_stream(StreamName=name, ShardCount=shards)
    wait_active(kc, name)
    stream_arn = kc.describe_stream_summary(
        StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    arns = [kc.register_stream_consumer(StreamARN=stream_arn, ConsumerName="m%02d" % i)
            ["Consumer"]["ConsumerARN"] for i in range(consumers)]
    for arn in arns:
        wait_consumer(kc, arn, "ACTIVE")
    return arns


def many(srv, kc):
    arns = new_stream_with_consumers(kc, "many", 5, 20)
    shards = ["shardId-%012d" % i for i in range(5)]
    hashes = [str(i * (2 ** 128 // 5)) for i in range(5)]
    subs = [RawSubscription(srv, arns[c], shards[s]) for c in range(20) for s in range(5)]
    for s in range(5):
        kc.put_records(StreamName="many", Records=[
            {"Data": b"m%d-%d" % (s, i), "PartitionKey": "k", "ExplicitHashKey": hashes[s]}
            for i in range(100)])
    read_until(subs, lambda x: len(x.records) >= 100, "100 subscriptions")
    for i, x in enumerate(subs):
        data = [base64.b64decode(r["Data"]) for r in x.records]
        check(data == [b"m%d-%d" % (i % 5, n) for n in range(100)],
              "subscription %d: %d records, or not in order" % (i, len(data)))
        x.sock.close()
    kc.delete_stream(StreamName="many", EnforceConsumerDeletion=True)
    print("fan-out: 100 subscriptions at once, each got its shard's 100 records in order")


def queued_bytes(sock):
    import fcntl
    import termios
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def metric(admin_port, name, labels=""):
    """One sample of sluiced's /metrics (its admin listener), 0 when absent."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=10) as r:
        text = r.read().decode()
    series = "%s{%s}" % (name, labels) if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def slow_reader(srv, kc, admin_port):
    """24 MB owed to a reader that does not read: the server's memory stays put."""
    arn = new_stream_with_consumers(kc, "slow", 1, 1)[0]
    blob = os.urandom(60000)
    for _ in range(400):
        kc.put_record(StreamName="slow", Data=blob, PartitionKey="s")
    rss_before = rss_kib(srv.proc.pid)
    slow = RawSubscription(srv, arn, "shardId-000000000000")
    # Stalled: what reached the socket stops changing (the server was refused since).
    end = time.time() + DEADLINE_S
    last, alike = -1, 0
    while alike < 50:
        check(time.time() < end, "the reader's socket never filled")
        time.sleep(0.02)
        now = queued_bytes(slow.sock)
        alike = alike + 1 if now == last and now > 0 else 0
        last = now
    rss_after = rss_kib(srv.proc.pid)
    print("fan-out: a stalled reader owed 24 MB: sluiced RSS %d -> %d KiB" % (
        rss_before, rss_after))
    # /metrics says so: writes refused for a slow reader, the events they held deferred.
    check(metric(admin_port, "sluice_api_stream_writes_refused_total",
                 'reason="slow_reader"') > 0, "no slow_reader refusal in /metrics")
    check(metric(admin_port, "sluice_fanout_events_deferred_total") > 0,
          "no deferred event in /metrics")
    check(rss_after - rss_before < 8 * 1024, "RSS grew %d KiB" % (rss_after - rss_before))
    read_until([slow], lambda x: len(x.records) >= 400, "the slow reader")
    check(len(slow.records) == 400, "slow reader: %d records" % len(slow.records))
    seqs = [int(r["SequenceNumber"]) for r in slow.records]
    check(seqs == sorted(set(seqs)), "slow reader: order or duplicates")
    slow.sock.close()
    kc.delete_stream(StreamName="slow", EnforceConsumerDeletion=True)


def js_modules(js_dir):
    """node_modules for js/package.json in js_dir (npm install once); None if impossible."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
    return npm_install(here, js_dir, ["package.json", "subscribe.mjs"],
                       os.path.join("node_modules", "@aws-sdk", "client-kinesis"))


def js_subscribe(srv, js_dir, arn, shard_id, count):
    """subscribe.mjs reading `count` records (or "children") of a shard: its Popen."""
    return subprocess.Popen(["node", os.path.join(js_dir, "subscribe.mjs"), srv.url, arn,
                             shard_id, str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def js_lines(what, node):
    """The JSON lines subscribe.mjs printed, once it exited 0."""
    try:
        stdout, stderr = node.communicate(timeout=DEADLINE_S)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    check(node.returncode == 0, "JS SDK %s: %s" % (what, stderr.decode()[-1000:]))
    return [json.loads(line) for line in stdout.decode().splitlines()]


def js_sdk(srv, kc, js_dir):
    """
    The JS SDK v3's SubscribeToShardCommand over its default HTTP/2 handler, while
    PutRecords and a SplitShard run: the parent's records up to ChildShards, then the
    lower child's, each once and in order.
    """
    arn = new_stream_with_consumers(kc, "js", 1, 1)[0]
    total = 1000
    node = js_subscribe(srv, js_dir, arn, "shardId-000000000000", "children")
    acked = []
    try:
        for b in range(total // 100):
            out = kc.put_records(StreamName="js", Records=[
                {"Data": b"js%05d" % (b * 100 + i), "PartitionKey": "k", "ExplicitHashKey": "0"}
                for i in range(100)])
            check(out.get("FailedRecordCount", 0) == 0, "put_records failed")
            acked += [(r["ShardId"], r["SequenceNumber"]) for r in out["Records"]]
            if b == 5:  # Hash 0 is shard 0, then its lower child.
                kc.split_shard(StreamName="js", ShardToSplit="shardId-000000000000",
                               NewStartingHashKey=str(2 ** 127))
        got = js_lines("parent", node)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    check(got and "children" in got[-1], "JS SDK: no ChildShards at the parent's end")
    children = got.pop()["children"]
    parent = [seq for shard, seq in acked if shard == "shardId-000000000000"]
    check([g["seq"] for g in got] == parent, "JS SDK parent: %d records, not the %d "
          "acknowledged in order" % (len(got), len(parent)))
    child = [seq for shard, seq in acked if shard != "shardId-000000000000"]
    child_shards = {shard for shard, _ in acked} - {"shardId-000000000000"}
    check(len(child_shards) == 1 and child_shards <= set(children) and child,
          "JS SDK: records went to %s, children %s" % (child_shards, children))
    got += js_lines("child", js_subscribe(srv, js_dir, arn, child_shards.pop(), len(child)))
    check([g["seq"] for g in got] == parent + child, "JS SDK child: not the %d acknowledged "
          "in order" % len(child))
    check([base64.b64decode(g["data"]) for g in got] == [b"js%05d" % i for i in range(total)],
          "JS SDK: record contents")
    kc.delete_stream(StreamName="js", EnforceConsumerDeletion=True)
    print("fan-out: the JS SDK v3 (HTTP/2) read %d records in order while they were put and "
          "the shard split (%d on the parent, %d on its child)" % (total, len(parent),
                                                                  len(child)))


def main():
    binary = sys.argv[1]
    data_dir = tempfile.mkdtemp(prefix="fanout-api-")
    srv = Sluiced(binary, data_dir)
    try:
        admin_port = free_port()
        srv.start("--admin-listen", "127.0.0.1:%d" % admin_port)
        kc = client(srv, validate=True)
        kc.create_stream(StreamName=STREAM, ShardCount=1)
        wait_active(kc, STREAM)
        stream_arn = kc.describe_stream_summary(
            StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
        consumer_arn = consumers(kc, stream_arn)
        subscribe_during_split(srv, kc, consumer_arn)
        many(srv, kc)
        slow_reader(srv, kc, admin_port)
        js_dir = js_modules(sys.argv[2] if len(sys.argv) > 2 else None)
        if js_dir is not None:
            js_sdk(srv, kc, js_dir)
        else:
            print("SKIPPED: the JS SDK phase (no node/npm, or npm could not install)")
        expect_error("ResourceInUseException", kc.delete_stream, StreamName=STREAM)
        kc.delete_stream(StreamName=STREAM, EnforceConsumerDeletion=True)
        srv.stop()
        print("PASS")
    finally:
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
