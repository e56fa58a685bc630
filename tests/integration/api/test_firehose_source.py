#!/usr/bin/python3
"""KinesisStreamAsSource delivery streams (issue 16) through boto3 and `aws firehose`.

  1. The API: CreateDeliveryStream with KinesisStreamSourceConfiguration and its AWS
     errors (missing/misplaced configuration, a null ARN, a stream that does not exist),
     DescribeDeliveryStream's Source.KinesisStreamSourceDescription, PutRecord(Batch)
     refused on such a stream, ListDeliveryStreams' type filter; the same with the CLI.
  2. Delivery: records put with Kinesis PutRecords land in objects exactly once, read from
     LATEST (what was in the stream before is not delivered), across a SplitShard: every
     record once, and for each partition key in put order (parents before children).
  3. Crashes: sluiced SIGKILLed five times while it delivers (a SplitShard between two of
     them); at the end every acknowledged record is in exactly one object.

Usage: test_firehose_source.py SLUICED
"""
import collections
import os
import random
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import Sluiced, check  # noqa: E402
from test_kinesis_api import client as kinesis_client  # noqa: E402
from test_firehose import (ROLE, client, delivered, expect_error, firehose_cli,  # noqa: E402
                           s3dest)

DEADLINE_S = 120
ACCOUNT = "000000000000"
KEYS = ["key-%02d" % i for i in range(16)]


def producer(srv):
    """The Kinesis client that puts: no retry after a lost answer (test_kinesis_api.py)."""
    return kinesis_client(srv)


def stream_arn(name):
    return "arn:aws:kinesis:us-east-1:%s:stream/%s" % (ACCOUNT, name)


def source(name):
    return {"KinesisStreamARN": stream_arn(name), "RoleARN": ROLE}


def wait_active(kin, name):
    deadline = time.monotonic() + DEADLINE_S
    while kin.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
            "StreamStatus"] != "ACTIVE":
        check(time.monotonic() < deadline, "stream %s not ACTIVE" % name)
        time.sleep(0.05)


def make_stream(kin, name, shards):
    kin.create_stream(StreamName=name, ShardCount=shards)
    wait_active(kin, name)


def put_records(kin, name, tag, count, rng, pad=(0, 300)):
    """PutRecords `count` records (each 'tag key n padding\\n'); returns them in put order."""
    sent = []
    for at in range(0, count, 500):
        batch = []
        for i in range(at, min(count, at + 500)):
            key = rng.choice(KEYS)
            batch.append((key, b"%s %s %06d %s\n" % (tag.encode(), key.encode(), i,
                                                       b"z" * rng.randrange(*pad))))
        while batch:
            r = kin.put_records(StreamName=name, Records=[{"PartitionKey": k, "Data": d}
                                                          for k, d in batch])
            failed = []
            for (k, d), res in zip(batch, r["Records"]):
                if "ErrorCode" in res:
                    failed.append((k, d))
                else:
                    sent.append(d)
            batch = failed  # Throttled ones again (acknowledged ones are durable).
    return sent


def split_first(kin, name):
    shard = kin.list_shards(StreamName=name)["Shards"][0]
    lo = int(shard["HashKeyRange"]["StartingHashKey"])
    hi = int(shard["HashKeyRange"]["EndingHashKey"])
    kin.split_shard(StreamName=name, ShardToSplit=shard["ShardId"],
                    NewStartingHashKey=str((lo + hi) // 2))
    wait_active(kin, name)


def records_of(objs):
    """{path: (mtime_ns, [records])} of every object."""
    out = {}
    for path, data in objs.items():
        recs = data.split(b"\n")
        check(recs[-1] == b"", "%s does not end on a record" % path)
        out[path] = (os.stat(path).st_mtime_ns, [r + b"\n" for r in recs[:-1]])
    return out


def wait_records(root, bucket, compression, want, what):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        objs, temps = delivered(root, bucket, compression)
        got = records_of(objs)
        if sum(len(recs) for _, recs in got.values()) >= want:
            return objs, got, temps
        check(time.monotonic() < deadline, "%s: %d of %d records delivered in %d s" %
              (what, sum(len(recs) for _, recs in got.values()), want, DEADLINE_S))
        time.sleep(0.2)


def check_once_in_order(sent, got, what):
    """
    Every record once; per partition key, in put order inside each object, and objects
    written in put order (a key's shard, then its children): an object holding later
    records of a key has no earlier mtime (equal is allowed: file times are coarse).
    """
    counts = collections.Counter(r for _, recs in got.values() for r in recs)
    dup = [r for r, n in counts.items() if n > 1]
    check(not dup, "%s: %d records delivered twice, e.g. %r" % (what, len(dup), dup[:1]))
    stray = set(counts) - set(sent)
    check(not stray, "%s: %d records never sent, e.g. %r" % (what, len(stray), list(stray)[:1]))
    missing = set(sent) - set(counts)
    check(not missing, "%s: %d records missing, e.g. %r" % (what, len(missing),
                                                         list(missing)[:1]))
    index = {rec: i for i, rec in enumerate(sent)}
    by_key = collections.defaultdict(list)   # key: [(first put index, last, mtime, path)]
    for path, (mtime, recs) in got.items():
        keyed = collections.defaultdict(list)
        for rec in recs:
            keyed[rec.split(b" ")[1]].append(index[rec])
        for key, order in keyed.items():
            check(order == sorted(order), "%s: key %s out of order in %s" %
                  (what, key.decode(), path))
            by_key[key].append((order[0], order[-1], mtime, path))
    for key, spans in by_key.items():
        spans.sort()
        for a, b in zip(spans, spans[1:]):
            check(a[1] < b[0], "%s: key %s interleaved in %s and %s" % (what, key.decode(),
                                                                      a[3], b[3]))
            check(a[2] <= b[2], "%s: key %s: %s (later records) written before %s" %
                  (what, key.decode(), b[3], a[3]))


# ---- 1. The API ----------------------------------------------------------------------


def test_api(srv, kin):
    fh = client(srv)
    create = fh.create_delivery_stream
    make_stream(kin, "src-api", 1)
    expect_error(create, "InvalidArgumentException", "KinesisStreamSourceConfiguration is "
                 "required", DeliveryStreamName="v", DeliveryStreamType="KinesisStreamAsSource",
                 ExtendedS3DestinationConfiguration=s3dest("b"))
    expect_error(create, "InvalidArgumentException", "only allowed for KinesisStreamAsSource",
                 DeliveryStreamName="v", KinesisStreamSourceConfiguration=source("src-api"),
                 ExtendedS3DestinationConfiguration=s3dest("b"))
    expect_error(create, "ValidationException", "at 'kinesisStreamSourceConfiguration."
                 "kinesisStreamARN' failed to satisfy constraint: Member must not be null",
                 DeliveryStreamName="v", DeliveryStreamType="KinesisStreamAsSource",
                 KinesisStreamSourceConfiguration={"RoleARN": ROLE},
                 ExtendedS3DestinationConfiguration=s3dest("b"))
    expect_error(create, "SerializationException", None,
                 DeliveryStreamName="v", DeliveryStreamType="KinesisStreamAsSource",
                 KinesisStreamSourceConfiguration={"KinesisStreamARN": 5, "RoleARN": ROLE},
                 ExtendedS3DestinationConfiguration=s3dest("b"))
    expect_error(create, "InvalidArgumentException", "Kinesis stream %s does not exist" %
                 stream_arn("nope"), DeliveryStreamName="v",
                 DeliveryStreamType="KinesisStreamAsSource",
                 KinesisStreamSourceConfiguration=source("nope"),
                 ExtendedS3DestinationConfiguration=s3dest("b"))
    expect_error(create, "InvalidArgumentException", "DeliveryStreamType MSKAsSource",
                 DeliveryStreamName="v", DeliveryStreamType="MSKAsSource",
                 ExtendedS3DestinationConfiguration=s3dest("b"))
    check("v" not in fh.list_delivery_streams()["DeliveryStreamNames"], "refused yet created")

    arn = create(DeliveryStreamName="from-src", DeliveryStreamType="KinesisStreamAsSource",
                 KinesisStreamSourceConfiguration=source("src-api"),
                 ExtendedS3DestinationConfiguration=s3dest("src-api"))["DeliveryStreamARN"]
    check(arn.endswith(":deliverystream/from-src"), arn)
    fh.create_delivery_stream(DeliveryStreamName="direct",
                              ExtendedS3DestinationConfiguration=s3dest("direct"))
    d = fh.describe_delivery_stream(DeliveryStreamName="from-src")["DeliveryStreamDescription"]
    check(d["DeliveryStreamType"] == "KinesisStreamAsSource", d)
    src = d["Source"]["KinesisStreamSourceDescription"]
    check(src["KinesisStreamARN"] == stream_arn("src-api") and src["RoleARN"] == ROLE, src)
    check(src["DeliveryStartTimestamp"].timestamp() > 0, src)
    d = fh.describe_delivery_stream(DeliveryStreamName="direct")["DeliveryStreamDescription"]
    check("Source" not in d and d["DeliveryStreamType"] == "DirectPut", d)

    text = "This operation is not permitted on KinesisStreamAsSource delivery stream type."
    expect_error(fh.put_record, "InvalidArgumentException", text,
                 DeliveryStreamName="from-src", Record={"Data": b"x"})
    expect_error(fh.put_record_batch, "InvalidArgumentException", text,
                 DeliveryStreamName="from-src", Records=[{"Data": b"x"}])
    expect_error(fh.put_record, "ResourceNotFoundException", "Firehose nope under account",
                 DeliveryStreamName="nope", Record={"Data": b"x"})
    for fn in (fh.start_delivery_stream_encryption, fh.stop_delivery_stream_encryption):
        expect_error(fn, "InvalidArgumentException", text, DeliveryStreamName="from-src")
    # UpdateDestination changes a stream-sourced one's destination as any other.
    fh.update_destination(DeliveryStreamName="from-src", CurrentDeliveryStreamVersionId="1",
                          DestinationId="destinationId-000000000001",
                          ExtendedS3DestinationUpdate={"Prefix": "p/"})
    d = fh.describe_delivery_stream(DeliveryStreamName="from-src")["DeliveryStreamDescription"]
    check(d["VersionId"] == "2" and d["Source"]["KinesisStreamSourceDescription"][
        "KinesisStreamARN"] == stream_arn("src-api"), d)

    names = fh.list_delivery_streams(DeliveryStreamType="KinesisStreamAsSource")
    check(names["DeliveryStreamNames"] == ["from-src"], names)
    names = fh.list_delivery_streams(DeliveryStreamType="DirectPut")
    check(names["DeliveryStreamNames"] == ["direct"], names)
    names = fh.list_delivery_streams(Limit=1)
    check(names["DeliveryStreamNames"] == ["direct"] and names["HasMoreDeliveryStreams"], names)

    # The CLI: create from a stream, describe, a put refused.
    firehose_cli(srv, "create-delivery-stream", "--delivery-stream-name", "cli-src",
                 "--delivery-stream-type", "KinesisStreamAsSource",
                 "--kinesis-stream-source-configuration",
                 "KinesisStreamARN=%s,RoleARN=%s" % (stream_arn("src-api"), ROLE),
                 "--extended-s3-destination-configuration",
                 "RoleARN=%s,BucketARN=arn:aws:s3:::cli-src" % ROLE)
    d = firehose_cli(srv, "describe-delivery-stream", "--delivery-stream-name", "cli-src")
    check(d["DeliveryStreamDescription"]["Source"]["KinesisStreamSourceDescription"][
        "KinesisStreamARN"] == stream_arn("src-api"), d)
    err = firehose_cli(srv, "put-record", "--delivery-stream-name", "cli-src",
                       "--record", "Data=aGVsbG8K", ok=False)
    check("InvalidArgumentException" in err and "not permitted" in err, err)
    for name in ("from-src", "direct", "cli-src"):
        fh.delete_delivery_stream(DeliveryStreamName=name)
    print("ok: KinesisStreamAsSource API and errors (boto3, aws firehose)")


# ---- 2. Delivery across a SplitShard -----------------------------------------------------


def test_split(srv, kin, root):
    fh = client(srv)
    rng = random.Random(1616)
    make_stream(kin, "src-split", 2)
    before = put_records(kin, "src-split", "before", 200, rng)
    # The parents' records wait for the interval (far below SizeInMBs); their children's
    # are over SizeInMBs at once: only the parents-first rule keeps a key in order.
    fh.create_delivery_stream(DeliveryStreamName="split", DeliveryStreamType=
                              "KinesisStreamAsSource",
                              KinesisStreamSourceConfiguration=source("src-split"),
                              ExtendedS3DestinationConfiguration=s3dest(
                                  "split", "GZIP", size_mb=1, interval_s=4))
    sent = put_records(kin, "src-split", "parent", 2000, rng)
    split_first(kin, "src-split")
    sent += put_records(kin, "src-split", "child", 6000, rng, pad=(600, 1400))
    _, got, temps = wait_records(root, "split", "GZIP", len(sent), "split")
    check(not set(before) & {r for _, recs in got.values() for r in recs},
          "records put before the delivery stream were delivered")
    check_once_in_order(sent, got, "across a SplitShard")
    check(temps == [], "temp files left: %r" % temps)
    print("ok: stream-sourced delivery across a SplitShard: %d records exactly once, in key "
          "order" % len(sent))


# ---- 3. Crashes ----------------------------------------------------------------------------


def test_crashes(binary, base):
    data = os.path.join(base, "crash")
    root = os.path.join(base, "crash-objects")
    os.makedirs(data)
    srv = Sluiced(binary, data)
    rng = random.Random(1717)
    sent = []
    try:
        for round_ in range(5):
            srv.start("--set", "firehose.local_root=" + root)
            kin = producer(srv)
            if round_ == 0:
                make_stream(kin, "src-crash", 2)
                client(srv).create_delivery_stream(
                    DeliveryStreamName="crash", DeliveryStreamType="KinesisStreamAsSource",
                    KinesisStreamSourceConfiguration=source("src-crash"),
                    ExtendedS3DestinationConfiguration=s3dest("crash", "GZIP", size_mb=1,
                                                              interval_s=0))
            if round_ == 2:
                split_first(kin, "src-crash")
            sent += put_records(kin, "src-crash", "r%d" % round_, 2000, rng)
            # A random moment while it delivers: whatever it hits must come out once.
            time.sleep(rng.uniform(0.0, 0.4))
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            srv.proc = None
        srv.start("--set", "firehose.local_root=" + root)
        _, got, _ = wait_records(root, "crash", "GZIP", len(sent), "after crashes")
        check_once_in_order(sent, got, "after 5 SIGKILLs")
        _, temps = delivered(root, "crash", "GZIP")
        check(temps == [], "temp files left: %r" % temps)
        srv.stop()
    finally:
        srv.kill()
    print("ok: stream-sourced, SIGKILLed 5 times while delivering: %d records exactly once" %
          len(sent))


def main():
    binary = sys.argv[1]
    base = tempfile.mkdtemp(prefix="firehose-source-test-")
    try:
        data = os.path.join(base, "data")
        root = os.path.join(base, "objects")
        os.makedirs(data)
        srv = Sluiced(binary, data)
        srv.start("--set", "firehose.local_root=" + root)
        try:
            kin = producer(srv)
            test_api(srv, kin)
            test_split(srv, kin, root)
            srv.stop()
        finally:
            srv.kill()
        test_crashes(binary, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
