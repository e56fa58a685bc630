#!/usr/bin/python3
"""Online backup and restore: `sluice backup` copies a running appliance while a
producer keeps putting records (and keeps getting them acknowledged: ingest is
not paused); `sluice restore` puts the copy into a fresh data dir; a sluiced
started there serves every record acknowledged before the backup began, once,
with the data it was put with, and nothing that was never sent.

usage: test_backup.py SLUICED SLUICE
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import Sluiced, check, wait_active  # noqa: E402

SLUICED, SLUICE = sys.argv[1], sys.argv[2]
STREAM = "ops-backup"
SHARDS = 4
BATCH = 50


class Producer(threading.Thread):
    """PutRecords in a loop; remembers when each acknowledged record's call returned."""

    def __init__(self, srv):
        super().__init__()
        self.kinesis = srv.client()
        self.stop = threading.Event()
        self.acked = {}     # data -> time its PutRecords call returned
        self.sent = set()
        self.errors = 0

    def run(self):
        n = 0
        while not self.stop.is_set():
            datas = [b"rec-%08d" % (n + i) for i in range(BATCH)]
            n += BATCH
            self.sent.update(datas)
            try:
                r = self.kinesis.put_records(StreamName=STREAM, Records=[
                    {"Data": d, "PartitionKey": d.decode()} for d in datas])
            except Exception:  # noqa: BLE001 - counted; a stopping server is expected
                self.errors += 1
                continue
            now = time.time()
            for d, rec in zip(datas, r["Records"]):
                if "SequenceNumber" in rec:
                    self.acked[d] = now


def read_all(srv):
    kinesis = srv.client()
    got = []
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = kinesis.get_records(ShardIterator=it, Limit=10000)
            got.extend(rec["Data"] for rec in r["Records"])
            if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                break
            it = r.get("NextShardIterator")
    return got


def main():
    with tempfile.TemporaryDirectory(prefix="ops-backup-") as tmp:
        srv = Sluiced(SLUICED, os.path.join(tmp, "live")).start(
            "--set", "log.segment_size_mb=8")  # Small segments: several sealed, one active.
        producer = Producer(srv)
        try:
            kinesis = srv.client()
            kinesis.create_stream(StreamName=STREAM, ShardCount=SHARDS)
            # A delivery stream with records waiting (interval 900 s): both come back.
            firehose = srv.client("firehose")
            firehose.create_delivery_stream(
                DeliveryStreamName="fh-backup", ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::000000000000:role/r",
                    "BucketARN": "arn:aws:s3:::fh-backup",
                    "BufferingHints": {"SizeInMBs": 128, "IntervalInSeconds": 900}})
            firehose.put_record(DeliveryStreamName="fh-backup", Record={"Data": b"kept\n"})
            wait_active(kinesis, STREAM)
            producer.start()
            while len(producer.acked) < 20000:   # Load first: segments sealed and active.
                time.sleep(0.1)
            started = time.time()
            acked_at_start = len(producer.acked)
            r = subprocess.run([SLUICE, "backup", "--data-dir", os.path.join(tmp, "live"),
                                "--to", os.path.join(tmp, "backup")],
                               capture_output=True, text=True, timeout=300)
            finished = time.time()
            check(r.returncode == 0, "sluice backup: %d %s%s" % (r.returncode, r.stdout,
                                                                  r.stderr))
            print(r.stdout.strip())
            # Ingest went on during the backup: acknowledgements kept coming.
            for _ in range(100):
                if any(started < t < finished for t in producer.acked.values()) or \
                        len(producer.acked) > acked_at_start + BATCH:
                    break
                time.sleep(0.05)
            check(len(producer.acked) > acked_at_start, "ingest paused during the backup")
        finally:
            producer.stop.set()
            producer.join()
            srv.stop()
        before = {d for d, t in producer.acked.items() if t < started}
        check(len(before) >= 20000, "only %d records before the backup" % len(before))

        r = subprocess.run([SLUICE, "restore", "--from", os.path.join(tmp, "backup"),
                            "--data-dir", os.path.join(tmp, "restored")],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "sluice restore: %d %s%s" % (r.returncode, r.stdout, r.stderr))
        r = subprocess.run([SLUICE, "restore", "--from", os.path.join(tmp, "backup"),
                            "--data-dir", os.path.join(tmp, "restored")],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode != 0, "restore over a non-empty data dir must be refused")

        # Another segment size than the log was written with is refused, naming the key,
        # and deletes nothing (it used to drop every segment as a "short spare").
        r = subprocess.run([SLUICED, "--no-dataplane", "--data-dir",
                            os.path.join(tmp, "restored"), "--api-listen", "127.0.0.1:1",
                            "--admin-listen", ""], capture_output=True, text=True, timeout=60)
        check(r.returncode != 0 and "segment_size_mb = 8" in r.stderr,
              "a log of 8 MiB segments opened with 64: %d %s" % (r.returncode, r.stderr))
        # The same configuration as the live appliance (segment size included).
        restored = Sluiced(SLUICED, os.path.join(tmp, "restored")).start(
            "--set", "log.segment_size_mb=8")
        try:
            got = read_all(restored)
            firehose = restored.client("firehose")
            d = firehose.describe_delivery_stream(DeliveryStreamName="fh-backup")
            check(d["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE",
                  "delivery stream after restore: %r" % d)
        finally:
            restored.stop()
        missing = before - set(got)
        check(not missing, "%d records acknowledged before the backup are missing, e.g. %r" % (
            len(missing), sorted(missing)[:3]))
        check(len(got) == len(set(got)), "duplicates after restore")
        check(set(got) <= producer.sent, "records nobody sent")
        print("backup under load: %d acknowledged before it, %d restored, %d acknowledged "
              "in total" % (len(before), len(got), len(producer.acked)))


main()
