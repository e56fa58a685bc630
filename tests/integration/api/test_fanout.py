#!/usr/bin/python3
"""
Enhanced fan-out end to end: sluiced (API + log, no dataplane) driven by boto3.

  usage: test_fanout.py SLUICED

Consumers: Register/Describe/List (paginated)/Deregister with their status changes,
the 20-per-stream limit, duplicates, ARNs; DeleteStream's EnforceConsumerDeletion.
SubscribeToShard through boto3's EventStream reader (HTTP/1.1 chunked): while
PutRecords run and the shard is split, every acknowledged record arrives exactly once
and in order on the parent, then (after the event carrying ChildShards) on the
children; a second subscription of the same consumer and shard is
ResourceInUseException. Uses its own temp dir and free port; stops only its own PID.
"""
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import Sluiced, check, client, expect_error, wait_active  # noqa: E402

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


def main():
    binary = sys.argv[1]
    data_dir = tempfile.mkdtemp(prefix="fanout-api-")
    srv = Sluiced(binary, data_dir)
    try:
        srv.start()
        kc = client(srv, validate=True)
        kc.create_stream(StreamName=STREAM, ShardCount=1)
        wait_active(kc, STREAM)
        stream_arn = kc.describe_stream_summary(
            StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
        consumer_arn = consumers(kc, stream_arn)
        subscribe_during_split(srv, kc, consumer_arn)
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
