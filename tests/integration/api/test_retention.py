#!/usr/bin/python3
"""
Retention expiry of a live stream, end to end with boto3: sluiced runs with
`[log] retention_hour_ms` = 1000 (one hour of retention lasts a second, so a 24 h
stream keeps its records 24 s) and `[log] retention_check_s` = 1.

  usage: test_retention.py SLUICED

1. RetentionPeriodHours keeps AWS's bounds and texts (23 refused), whatever the hour.
2. A one-shard stream takes ~7 MiB of records (more than a 5 MiB segment, so a sealed
   segment holds only them), is split (the parent is closed), and half a retention
   later its children take more records.
3. Before the records are a retention old, TRIM_HORIZON starts at the first one
   (checked only while that holds: nothing is asserted about time itself).
4. Once retention has trimmed (waited for, with a generous deadline): TRIM_HORIZON on
   the parent starts after a prefix of the old records and reads the rest exactly (a
   suffix: no hole); no record went before it was a retention old (send time is a
   lower bound of arrival); the children's younger records are all there.
   AWS for positions past retention (reference/kinesis-api.md, GetShardIterator):
   AT_TIMESTAMP before the horizon is TRIM_HORIZON; the reference says nothing of an
   expired AT_SEQUENCE_NUMBER: GetShardIterator answers (the number is the shard's)
   and GetRecords starts at the horizon, as Sluice's reads step over what retention
   took. LATEST is after the newest record whatever expired: on the open child it
   reads just what is put next; on the closed parent nothing.
5. ListShards drops the parent once it has been closed a retention (AWS: expired
   shards are not listed); the children stay.
6. SIGKILL and restart: the horizon is where it was, everything above it reads back.
Uses its own temp dir and a free port; stops only its own sluiced.
"""
import datetime
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import test_kinesis_api as base  # noqa: E402
from test_kinesis_api import check, client, expect_error, wait_active  # noqa: E402

HOUR_MS = 1000
RETENTION_S = 24 * HOUR_MS / 1000.0
STREAM = "ret"
OLD_BYTES = 7 << 20
DEADLINE_S = 180  # Only bounds a hang: expiry is due after RETENTION_S + the check interval.
OPTIONS = ("--set", "log.retention_hour_ms=%d" % HOUR_MS, "--set", "log.retention_check_s=1",
           "--set", "log.segment_size_mb=5")


def read_from(kc, shard_id, kind, **extra):
    it = kc.get_shard_iterator(StreamName=STREAM, ShardId=shard_id, ShardIteratorType=kind,
                               **extra)["ShardIterator"]
    got = []
    while it is not None:
        r = kc.get_records(ShardIterator=it)
        got += [(x["PartitionKey"], x["Data"], x["SequenceNumber"]) for x in r["Records"]]
        it = r.get("NextShardIterator")
        if not r["Records"] and r["MillisBehindLatest"] == 0:
            break
    return got


def put_old(kc, rng):
    """~OLD_BYTES in 100 KiB records; returns [(key, data, seq, sent)] in order."""
    out = []
    while sum(len(d) for _, d, _, _ in out) < OLD_BYTES:
        batch = [("old-%d-%x" % (len(out) + i, rng.getrandbits(32)), os.urandom(100 << 10))
                 for i in range(20)]
        sent = time.time()
        r = kc.put_records(StreamName=STREAM, Records=[
            {"PartitionKey": k, "Data": d} for k, d in batch])
        check(r["FailedRecordCount"] == 0, "PutRecords failed: %s" % r["Records"][:2])
        out += [(k, d, res["SequenceNumber"], sent) for (k, d), res in zip(batch, r["Records"])]
    return out


def list_shard_ids(kc):
    return {s["ShardId"] for s in kc.list_shards(StreamName=STREAM)["Shards"]}


def main():
    tmp = tempfile.mkdtemp(prefix="retention-test-")
    srv = base.Sluiced(sys.argv[1], tmp)
    rng = random.Random(int(os.environ.get("TEST_SEED", "0")) or time.time_ns())
    try:
        srv.start(*OPTIONS)
        kc = client(srv)
        kc.create_stream(StreamName=STREAM, ShardCount=1)
        wait_active(kc, STREAM)
        text = expect_error("InvalidArgumentException", kc.decrease_stream_retention_period,
                            StreamName=STREAM, RetentionPeriodHours=23)
        check("Minimum allowed retention period is 24 hours" in text, "text: " + text)
        parent = "shardId-000000000000"
        before_s = time.time() - 1
        old = put_old(kc, rng)
        kc.split_shard(StreamName=STREAM, ShardToSplit=parent,
                       NewStartingHashKey=str(2 ** 127))
        wait_active(kc, STREAM)
        children = sorted(list_shard_ids(kc) - {parent})
        check(len(children) == 2, "split: %s" % children)
        closed_at = time.time()

        # 3. Younger than retention: all there (asserted only if the read began in time).
        began = time.time()
        got = read_from(kc, parent, "TRIM_HORIZON")
        if began - old[0][3] < RETENTION_S - 2:
            check([(k, d, s) for k, d, s, _ in old] == got,
                  "before expiry: %d of %d old records read" % (len(got), len(old)))
        else:
            print("note: the machine was too slow to see the old records unexpired")

        # Half a retention later, younger records on the children.
        while time.time() - old[-1][3] < RETENTION_S / 2:
            time.sleep(0.2)
        young = {c: [] for c in children}
        for i in range(60):
            k, d = "young-%d-%x" % (i, rng.getrandbits(32)), os.urandom(rng.randint(1, 300))
            r = kc.put_record(StreamName=STREAM, PartitionKey=k, Data=d)
            young[r["ShardId"]].append((k, d, r["SequenceNumber"]))
        young_sent = time.time()

        # 4. Wait for the trim (a condition, with a deadline that only bounds a hang).
        deadline = time.time() + DEADLINE_S
        while True:
            began = time.time()
            got = read_from(kc, parent, "TRIM_HORIZON")
            if not got or got[0][2] != old[0][2]:
                break
            check(time.time() < deadline, "retention never trimmed the old records")
            time.sleep(0.5)
        n_gone = len(old) - len(got)
        check(n_gone > 0, "the trim took no record")
        check(n_gone >= 0 and [(k, d, s) for k, d, s, _ in old[n_gone:]] == got,
              "after the trim the parent holds %d records that are not the old ones' "
              "suffix" % len(got))
        # Sent at most this long before the read that found it gone: old enough.
        check(began - old[n_gone - 1][3] > RETENTION_S,
              "record %d went %.1f s after it was sent (retention %.0f s)" % (
                  n_gone - 1, began - old[n_gone - 1][3], RETENTION_S))
        print("trimmed %d of %d old records (%d left in the unsealed segment)" % (
            n_gone, len(old), len(got)))
        if time.time() - young_sent < RETENTION_S - 2:
            for c in children:
                check(read_from(kc, c, "TRIM_HORIZON") == young[c],
                      "%s: the younger records are not all there" % c)

        # AT_SEQUENCE_NUMBER of an expired record: an iterator, reads start at the horizon.
        at_seq = read_from(kc, parent, "AT_SEQUENCE_NUMBER",
                           StartingSequenceNumber=old[0][2])
        check(at_seq == got, "AT_SEQUENCE_NUMBER of an expired record: %d records, want "
              "the %d from the horizon" % (len(at_seq), len(got)))
        at_ts = read_from(kc, parent, "AT_TIMESTAMP",
                          Timestamp=datetime.datetime.fromtimestamp(before_s,
                                                                    datetime.timezone.utc))
        check(at_ts == got, "AT_TIMESTAMP before the horizon: %d records, want %d" % (
            len(at_ts), len(got)))
        check(read_from(kc, parent, "LATEST") == [], "LATEST on the closed parent")
        it = kc.get_shard_iterator(StreamName=STREAM, ShardId=children[0],
                                   ShardIteratorType="LATEST")["ShardIterator"]
        r = kc.put_record(StreamName=STREAM, PartitionKey="latest",
                          Data=b"after LATEST", ExplicitHashKey=str(0 if children[0].endswith("1")
                                                                    else 2 ** 127))
        check(r["ShardId"] == children[0], "routed to %s" % r["ShardId"])
        recs = kc.get_records(ShardIterator=it)["Records"]
        check([x["SequenceNumber"] for x in recs] == [r["SequenceNumber"]],
              "LATEST reads just the record put after it: %s" % recs)
        young[children[0]].append(("latest", b"after LATEST", r["SequenceNumber"]))

        # 5. The parent leaves ListShards a retention after it closed.
        while parent in list_shard_ids(kc):
            check(time.time() < deadline, "the expired parent is still listed")
            time.sleep(0.5)
        check(time.time() - closed_at > RETENTION_S - 1, "the parent left ListShards early")
        check(set(children) <= list_shard_ids(kc), "the children are listed")

        # 6. A SIGKILL: the horizon stays, what is above it reads back.
        srv.proc.kill()
        srv.proc.wait()
        srv.proc = None
        srv.start(*OPTIONS)
        kc = client(srv)
        after = read_from(kc, parent, "TRIM_HORIZON")
        check(len(after) <= len(got), "the horizon moved back after a restart")
        check(after == [(k, d, s) for k, d, s, _ in old[len(old) - len(after):]],
              "after a restart the parent's records are not a suffix of the old ones")
        if time.time() - young_sent < RETENTION_S - 2:
            for c in children:
                check(read_from(kc, c, "TRIM_HORIZON") == young[c],
                      "%s after a restart: the younger records are not all there" % c)
        srv.stop()
        print("retention: ok")
    finally:
        srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
