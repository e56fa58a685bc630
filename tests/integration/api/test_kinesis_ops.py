#!/usr/bin/python3
"""
Every operation of the Kinesis API model, and the simpler operations end to end.

  usage: test_kinesis_ops.py SLUICED

1. The model (model/README.md: botocore's 39 operations; Debian's older model must be
   a subset) against the server: every operation is sent, and the ones answered
   UnknownOperationException must be exactly NOT_YET below. Serving one more, or
   losing one, fails until the list is updated.
2. boto3 (Debian's, given the full model through AWS_DATA_PATH) for the operations
   served since: each one's answer, its errors and limits, what it changes in
   DescribeStream/DescribeStreamSummary, and that it survives a restart. Consumer tags
   (RegisterStreamConsumer's Tags, Tag/Untag/ListTagsForResource on a consumer ARN):
   AWS's limits, removed with the consumer and with its stream (read in SQLite).
Uses its own temp dir and a free port; stops only its own sluiced.
"""
import base64
import glob
import json
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "model")
# Before boto3 makes a session: botocore looks for models on this path first.
os.environ["AWS_DATA_PATH"] = MODEL_DIR
sys.path.insert(0, HERE)

import test_kinesis_api as base  # noqa: E402 (the path above first)
from test_kinesis_api import check, expect_error  # noqa: E402

MODEL = os.path.join(MODEL_DIR, "kinesis", "2013-12-02", "service-2.json")
DEBIAN_MODELS = "/usr/lib/python3/dist-packages/botocore/data/kinesis/*/service-2.json"

# Operations of the model not served yet (docs/API.md says who brings each).
NOT_YET = set()
ALL_METRICS = ["IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
               "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
               "IteratorAgeMilliseconds"]
ACCOUNT = "000000000000"
# A log whose batches hold a 10 MiB record (the default, 1088 KiB, holds 1 MiB ones).
# 10 MiB batches: the pool reserves batches_per_producer of them (512, the minimum: 5 GiB of
# address space; the default 1,024 would ask for 10 GiB).
BIG_LOG = ["--set", "log.batch_size_kb=10304", "--set", "log.segment_size_mb=64",
           "--set", "log.batches_per_producer=512"]
# meson sets MALLOC_PERTURB_ (glibc then writes every byte malloc hands out): the test keeps
# it, since the log maps its batch pool itself and BIG_LOG's pool must stay out of RSS.
MIB = 1024 * 1024
DAY_S = 24 * 3600


def model_operations():
    with open(MODEL) as f:
        ops = set(json.load(f)["operations"])
    check(len(ops) == 39, "the model lists %d operations, want 39" % len(ops))
    for path in glob.glob(DEBIAN_MODELS):
        with open(path) as f:
            older = set(json.load(f)["operations"])
        check(older <= ops, "Debian's model has operations ours lacks: %s" % (older - ops))
    return ops


def every_operation_is_known(srv):
    ops = model_operations()
    check(NOT_YET <= ops, "NOT_YET names operations outside the model: %s" % (NOT_YET - ops))
    unknown = set()
    for op in sorted(ops):
        status, body = base.raw_post(srv, "Kinesis_20131202." + op, "{}")
        answer = json.loads(body) if body else {}
        if answer.get("__type") == "UnknownOperationException":
            check(status == 400, "%s: status %d" % (op, status))
            unknown.add(op)
    check(unknown == NOT_YET, "served now but listed as not yet: %s; not served but not "
          "listed: %s" % (sorted(NOT_YET - unknown), sorted(unknown - NOT_YET)))
    # A name outside the model stays unknown, with AWS's bare answer.
    status, body = base.raw_post(srv, "Kinesis_20131202.NoSuchOperation", "{}")
    check(status == 400 and json.loads(body) == {"__type": "UnknownOperationException"},
          "NoSuchOperation: %d %r" % (status, body))
    print("model: %d operations, %d served, not yet: %s" % (
        len(ops), len(ops) - len(unknown), ", ".join(sorted(unknown))))


def summary(kc, name):
    return kc.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]


def wait_status(kc, name, status):
    for _ in range(400):
        if summary(kc, name)["StreamStatus"] == status:
            return
        time.sleep(0.01)
    raise SystemExit("FAIL: %s never became %s" % (name, status))


def validation(fn, rule, **kwargs):
    msg = expect_error("ValidationException", fn, **kwargs)
    check(rule in msg, "%s: %r lacks %r" % (fn.__name__, msg, rule))


def tags_by_arn(kc, name, arn):
    kc.tag_resource(ResourceARN=arn, Tags={"team": "ingest", "env": "test"})
    got = kc.list_tags_for_resource(ResourceARN=arn)["Tags"]
    check(got == [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "ingest"}],
          "ListTagsForResource: %r" % got)
    check(kc.list_tags_for_stream(StreamName=name)["Tags"] == got, "the same tags by name")
    kc.untag_resource(ResourceARN=arn, TagKeys=["team", "never-set"])
    got = kc.list_tags_for_resource(ResourceARN=arn)["Tags"]
    check(got == [{"Key": "env", "Value": "test"}], "after UntagResource: %r" % got)
    # The stream ARN pattern with anything before "stream/" (consumers), nothing else.
    validation(kc.list_tags_for_resource, "Member must satisfy regular expression pattern: "
               "arn:aws.*:kinesis:.*:\\d{12}:.*stream/\\S+", ResourceARN="arn:aws:s3:::bucket")
    validation(kc.tag_resource, "Member must not be null", ResourceARN=arn)
    validation(kc.untag_resource, "Member must have length greater than or equal to 1",
               ResourceARN=arn, TagKeys=[])
    other = arn.replace(":stream/" + name, ":stream/nosuch")
    msg = expect_error("ResourceNotFoundException", kc.tag_resource, ResourceARN=other,
                       Tags={"a": "b"})
    check(msg == "Stream nosuch under account %s not found." % ACCOUNT, msg)
    consumer = arn + "/consumer/c1:1700000000"
    expect_error("ResourceNotFoundException", kc.list_tags_for_resource, ResourceARN=consumer)
    msg = expect_error("InvalidArgumentException", kc.tag_resource, ResourceARN=arn,
                       Tags={"semi;colon": "x"})
    check(msg.startswith("Some tags contain invalid characters"), msg)
    many = {"k%02d" % i: "v" for i in range(50)}
    msg = expect_error("InvalidArgumentException", kc.tag_resource, ResourceARN=arn, Tags=many)
    check("cannot have more than 50 tags" in msg, msg)
    print("TagResource, UntagResource, ListTagsForResource: ok")


def wait_consumer(kc, arn, status):
    """Polls DescribeStreamConsumer (boto3 has no consumer waiter) until `status` or gone."""
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            got = kc.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]
        except kc.exceptions.ResourceNotFoundException:
            if status is None:
                return
            raise
        if got["ConsumerStatus"] == status:
            return
        time.sleep(0.02)
    raise SystemExit("FAIL: consumer %s never %s" % (arn, status))


INVALID_TAG_CHARS = ("Some tags contain invalid characters. Valid characters: Unicode letters, "
                     "digits, white space, _ . / = + - % @.")


def consumer_tags(kc, name, arn):
    """Tags on a consumer: RegisterStreamConsumer's Tags, then by its ARN; AWS's limits."""
    reg = kc.register_stream_consumer(StreamARN=arn, ConsumerName="tagged",
                                      Tags={"owner": "fan-out", "tier": "gold"})
    carn = reg["Consumer"]["ConsumerARN"]
    wait_consumer(kc, carn, "ACTIVE")
    got = kc.list_tags_for_resource(ResourceARN=carn)["Tags"]
    check(got == [{"Key": "owner", "Value": "fan-out"}, {"Key": "tier", "Value": "gold"}],
          "RegisterStreamConsumer's Tags: %r" % got)
    kc.tag_resource(ResourceARN=carn, Tags={"tier": "silver", "cost centre": "42",
                                            "ünï": "@/=+-%_."})
    kc.untag_resource(ResourceARN=carn, TagKeys=["owner", "never-set"])
    got = kc.list_tags_for_resource(ResourceARN=carn)["Tags"]
    check(got == [{"Key": "cost centre", "Value": "42"}, {"Key": "tier", "Value": "silver"},
                  {"Key": "ünï", "Value": "@/=+-%_."}], "consumer tags: %r" % got)
    # StreamCreationTimestamp names the incarnation, as in ListShards.
    created = summary(kc, name)["StreamCreationTimestamp"]
    listed = kc.list_stream_consumers(StreamARN=arn, StreamCreationTimestamp=created)
    check([c["ConsumerARN"] for c in listed["Consumers"]] == [carn], "ListStreamConsumers: %r"
          % listed["Consumers"])
    expect_error("ResourceNotFoundException", kc.list_stream_consumers, StreamARN=arn,
                 StreamCreationTimestamp=created.timestamp() + 5)
    # The stream's tags and its consumer's are apart.
    stream_tags = kc.list_tags_for_resource(ResourceARN=arn)["Tags"]
    check(all(t["Key"] not in ("tier", "cost centre") for t in stream_tags),
          "a consumer's tags show on its stream: %r" % stream_tags)
    # AWS's limits: 50 a consumer (three are set), characters, lengths.
    many = {"k%02d" % i: "v" for i in range(47)}
    kc.tag_resource(ResourceARN=carn, Tags=many)
    msg = expect_error("InvalidArgumentException", kc.tag_resource, ResourceARN=carn,
                       Tags={"one-more": "x"})
    check(msg == "Failed to add tags to consumer tagged under account %s because a given "
          "consumer cannot have more than 50 tags." % ACCOUNT, msg)
    check(len(kc.list_tags_for_resource(ResourceARN=carn)["Tags"]) == 50,
          "a refused TagResource changed nothing")
    kc.untag_resource(ResourceARN=carn, TagKeys=list(many))
    for tags in ({"tab\there": "x"}, {"k": "semi;colon"}):
        msg = expect_error("InvalidArgumentException", kc.tag_resource, ResourceARN=carn,
                           Tags=tags)
        check(msg == INVALID_TAG_CHARS, msg)
    msg = expect_error("InvalidArgumentException", kc.untag_resource, ResourceARN=carn,
                       TagKeys=["new\nline"])
    check(msg == INVALID_TAG_CHARS, msg)
    validation(kc.tag_resource, "Map keys must satisfy constraint: [Member must have length "
               "less than or equal to 128", ResourceARN=carn, Tags={"k" * 129: "v"})
    validation(kc.tag_resource, "Map value must satisfy constraint: [Member must have length "
               "less than or equal to 256", ResourceARN=carn, Tags={"k": "v" * 257})
    validation(kc.register_stream_consumer, "Member must have length less than or equal to "
               "200", StreamARN=arn, ConsumerName="x", Tags={"k%03d" % i: "" for i in range(201)})
    msg = expect_error("InvalidArgumentException", kc.register_stream_consumer, StreamARN=arn,
                       ConsumerName="x", Tags={"k%02d" % i: "" for i in range(51)})
    check("a given consumer cannot have more than 50 tags" in msg, msg)
    msg = expect_error("InvalidArgumentException", kc.register_stream_consumer, StreamARN=arn,
                       ConsumerName="x", Tags={"a,b": "1"})
    check(msg == INVALID_TAG_CHARS, msg)
    expect_error("ResourceNotFoundException", kc.describe_stream_consumer, StreamARN=arn,
                 ConsumerName="x")  # the refused registrations left nothing
    expect_error("ResourceNotFoundException", kc.tag_resource, ResourceARN=carn + "0",
                 Tags={"a": "b"})
    # Removed with the consumer: registered again under its name, it has none.
    gone = kc.register_stream_consumer(StreamARN=arn, ConsumerName="gone",
                                       Tags={"old": "tag"})["Consumer"]["ConsumerARN"]
    wait_consumer(kc, gone, "ACTIVE")
    kc.deregister_stream_consumer(ConsumerARN=gone)
    wait_consumer(kc, gone, None)
    again = kc.register_stream_consumer(StreamARN=arn, ConsumerName="gone")["Consumer"]
    wait_consumer(kc, again["ConsumerARN"], "ACTIVE")
    check(kc.list_tags_for_resource(ResourceARN=again["ConsumerARN"])["Tags"] == [],
          "a consumer registered again inherited tags")
    kc.deregister_stream_consumer(ConsumerARN=again["ConsumerARN"])
    # Removed with the stream: checked in SQLite once sluiced stops (consumer_tags_rows).
    kc.create_stream(StreamName="ctags-gone", ShardCount=1)
    base.wait_active(kc, "ctags-gone")
    doomed = summary(kc, "ctags-gone")["StreamARN"]
    kc.register_stream_consumer(StreamARN=doomed, ConsumerName="c", Tags={"doomed": "yes"})
    kc.delete_stream(StreamName="ctags-gone", EnforceConsumerDeletion=True)
    deadline = time.time() + 60
    while "ctags-gone" in kc.list_streams()["StreamNames"]:
        check(time.time() < deadline, "ctags-gone never went")
        time.sleep(0.02)
    print("consumer tags (RegisterStreamConsumer, Tag/Untag/ListTagsForResource): ok")
    return carn


def consumer_tags_rows(data_dir):
    """consumer_tags in the stopped sluiced's SQLite: only the consumer that still exists."""
    import sqlite3
    db = sqlite3.connect(os.path.join(data_dir, "metadata.db"))
    try:
        rows = db.execute("SELECT consumer, key FROM consumer_tags ORDER BY key").fetchall()
    finally:
        db.close()
    check(rows == [("tagged", "cost centre"), ("tagged", "tier"), ("tagged", "ünï")],
          "consumer_tags rows after the deletions: %r" % rows)


def monitoring(kc, name, arn):
    got = kc.enable_enhanced_monitoring(StreamName=name,
                                        ShardLevelMetrics=["OutgoingRecords", "IncomingBytes"])
    check(got["CurrentShardLevelMetrics"] == [] and
          got["DesiredShardLevelMetrics"] == ["IncomingBytes", "OutgoingRecords"] and
          got["StreamName"] == name and got["StreamARN"] == arn, "enable: %r" % got)
    shown = kc.describe_stream(StreamName=name)["StreamDescription"]["EnhancedMonitoring"]
    check(shown == [{"ShardLevelMetrics": ["IncomingBytes", "OutgoingRecords"]}],
          "DescribeStream EnhancedMonitoring: %r" % shown)
    got = kc.enable_enhanced_monitoring(StreamARN=arn, ShardLevelMetrics=["ALL"])
    check(got["CurrentShardLevelMetrics"] == ["IncomingBytes", "OutgoingRecords"] and
          got["DesiredShardLevelMetrics"] == ALL_METRICS, "enable ALL: %r" % got)
    got = kc.disable_enhanced_monitoring(StreamName=name,
                                         ShardLevelMetrics=["IncomingBytes", "OutgoingBytes"])
    want = [m for m in ALL_METRICS if m not in ("IncomingBytes", "OutgoingBytes")]
    check(got["DesiredShardLevelMetrics"] == want, "disable: %r" % got)
    shown = summary(kc, name)["EnhancedMonitoring"]
    check(shown == [{"ShardLevelMetrics": want}], "Summary EnhancedMonitoring: %r" % shown)
    validation(kc.enable_enhanced_monitoring, "Member must satisfy enum value set",
               StreamName=name, ShardLevelMetrics=["Bogus"])
    validation(kc.disable_enhanced_monitoring, "Member must not be null", StreamName=name)
    validation(kc.enable_enhanced_monitoring, "Member must have length less than or equal "
               "to 7", StreamName=name, ShardLevelMetrics=ALL_METRICS + ["ALL"])
    msg = expect_error("ResourceNotFoundException", kc.enable_enhanced_monitoring,
                       StreamName="nosuch", ShardLevelMetrics=["ALL"])
    check(msg == "Stream nosuch under account %s not found." % ACCOUNT, msg)
    expect_error("InvalidArgumentException", kc.enable_enhanced_monitoring,
                 ShardLevelMetrics=["ALL"])
    print("Enable/DisableEnhancedMonitoring: ok")
    return want


def batch_too_small(kc, name, arn):
    """With the default log batch, no stream may take records its batches cannot hold."""
    for fn, kwargs in ((kc.update_max_record_size, dict(StreamARN=arn, MaxRecordSizeInKiB=4096)),
                       (kc.create_stream, dict(StreamName="big", ShardCount=1,
                                               MaxRecordSizeInKiB=2048))):
        msg = expect_error("InvalidArgumentException", fn, **kwargs)
        want = kwargs["MaxRecordSizeInKiB"]
        check(msg.startswith("MaxRecordSizeInKiB %d does not fit this endpoint's log batches: "
                             "set [log] batch_size_kb to at least %d (it is 1088)." % (
                                 want, want + 1)), msg)
    check(summary(kc, name)["MaxRecordSizeInKiB"] == 1024, "refused: unchanged")
    check("big" not in kc.list_streams()["StreamNames"], "refused: no stream made")
    print("MaxRecordSizeInKiB above what [log] batch_size_kb holds: refused: ok")


def read_shard(kc, name):
    it = kc.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                               ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = []
    for _ in range(20):
        out = kc.get_records(ShardIterator=it)
        got += [r["Data"] for r in out["Records"]]
        it = out["NextShardIterator"]
        if not out["Records"] and out["MillisBehindLatest"] == 0:
            break
    return got


def subscribed(kc, arn, want):
    """The records a SubscribeToShard (TRIM_HORIZON) delivers, until `want` of them."""
    consumer = kc.register_stream_consumer(StreamARN=arn, ConsumerName="large")[
        "Consumer"]["ConsumerARN"]
    for _ in range(400):
        if kc.describe_stream_consumer(ConsumerARN=consumer)[
                "ConsumerDescription"]["ConsumerStatus"] == "ACTIVE":
            break
        time.sleep(0.05)
    got = []
    r = kc.subscribe_to_shard(ConsumerARN=consumer, ShardId="shardId-000000000000",
                              StartingPosition={"Type": "TRIM_HORIZON"})
    for event in r["EventStream"]:
        got += [rec["Data"] for rec in event["SubscribeToShardEvent"]["Records"]]
        if len(got) >= want:
            break
    r["EventStream"].close()
    kc.deregister_stream_consumer(ConsumerARN=consumer)
    return got


def large_records(kc):
    """Records up to the stream's MaxRecordSizeInKiB, written and read back whole."""
    kc.create_stream(StreamName="large", ShardCount=1)
    base.wait_active(kc, "large")
    arn = summary(kc, "large")["StreamARN"]
    one = os.urandom(MIB)
    validation(kc.put_record, "Value 'java.nio.HeapByteBuffer[pos=0 lim=1048577 cap=1048577]' "
               "at 'data' failed to satisfy constraint: Member must have length less than or "
               "equal to 1048576", StreamName="large", PartitionKey="k", Data=one + b"+")
    validation(kc.put_records, "at 'records.2.member.data' failed to satisfy constraint: Member "
               "must have length less than or equal to 1048576", StreamName="large",
               Records=[{"PartitionKey": "k", "Data": b"a"},
                        {"PartitionKey": "k", "Data": one + b"+"}])
    kc.put_record(StreamName="large", PartitionKey="k", Data=one)
    kc.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=10240)
    wait_status(kc, "large", "ACTIVE")
    two = os.urandom(2 * MIB + 1)
    ten = os.urandom(10 * MIB)
    kc.put_records(StreamName="large", Records=[{"PartitionKey": "k", "Data": two}])
    kc.put_record(StreamName="large", PartitionKey="k", Data=ten)
    validation(kc.put_record, "lim=10485761 cap=10485761]' at 'data' failed to satisfy "
               "constraint: Member must have length less than or equal to 10485760",
               StreamName="large", PartitionKey="k", Data=ten + b"+")
    got = read_shard(kc, "large")
    check([len(d) for d in got] == [MIB, 2 * MIB + 1, 10 * MIB] and got == [one, two, ten],
          "GetRecords read back %r" % [len(d) for d in got])
    got = subscribed(kc, arn, 3)
    check([len(d) for d in got] == [MIB, 2 * MIB + 1, 10 * MIB] and got == [one, two, ten],
          "SubscribeToShard delivered %r" % [len(d) for d in got])
    kc.delete_stream(StreamName="large", EnforceConsumerDeletion=True)
    print("records up to 10 MiB through PutRecord(s), GetRecords, SubscribeToShard: ok")


def max_record_size(kc, name, arn):
    check(summary(kc, name)["MaxRecordSizeInKiB"] == 1024, "default MaxRecordSizeInKiB")
    kc.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=4096)
    s = summary(kc, name)
    check(s["MaxRecordSizeInKiB"] == 4096 and s["StreamStatus"] == "UPDATING", "after: %r" % s)
    msg = expect_error("ResourceInUseException", kc.update_max_record_size, StreamARN=arn,
                       MaxRecordSizeInKiB=2048)
    check(msg == "Stream %s under account %s not ACTIVE, instead in state UPDATING" % (
        name, ACCOUNT), msg)
    wait_status(kc, name, "ACTIVE")
    validation(kc.update_max_record_size, "Member must have value greater than or equal to "
               "1024", StreamARN=arn, MaxRecordSizeInKiB=1023)
    validation(kc.update_max_record_size, "Member must have value less than or equal to "
               "10240", StreamARN=arn, MaxRecordSizeInKiB=10241)
    expect_error("InvalidArgumentException", kc.update_max_record_size, MaxRecordSizeInKiB=2048)
    # CreateStream takes it too (the newer model's member), in the same transaction.
    kc.create_stream(StreamName="big", ShardCount=1, MaxRecordSizeInKiB=2048)
    check(summary(kc, "big")["MaxRecordSizeInKiB"] == 2048, "CreateStream MaxRecordSizeInKiB")
    validation(kc.create_stream, "Member must have value greater than or equal to 1024",
               StreamName="small", ShardCount=1, MaxRecordSizeInKiB=1000)
    print("UpdateMaxRecordSize, CreateStream's MaxRecordSizeInKiB: ok")


def account_settings(kc):
    got = kc.describe_account_settings()["MinimumThroughputBillingCommitment"]
    check(got == {"Status": "DISABLED"}, "fresh account: %r" % got)
    before = time.time()
    got = kc.update_account_settings(
        MinimumThroughputBillingCommitment={"Status": "ENABLED"})["MinimumThroughputBillingCommitment"]
    started = got["StartedAt"].timestamp()
    check(got["Status"] == "ENABLED" and before - 1 <= started <= time.time() + 1 and
          abs(got["EarliestAllowedEndAt"].timestamp() - started - DAY_S) < 0.01,
          "enabled: %r" % got)
    # Ending before the 24 h are up only schedules the end; enabling again cancels it.
    got = kc.update_account_settings(
        MinimumThroughputBillingCommitment={"Status": "DISABLED"})["MinimumThroughputBillingCommitment"]
    check(got["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END" and "EndedAt" not in got,
          "disabled early: %r" % got)
    got = kc.update_account_settings(
        MinimumThroughputBillingCommitment={"Status": "ENABLED"})["MinimumThroughputBillingCommitment"]
    check(got["Status"] == "ENABLED" and got["StartedAt"].timestamp() == started,
          "enabled again: %r" % got)
    validation(kc.update_account_settings, "Member must satisfy enum value set: [ENABLED, "
               "DISABLED]", MinimumThroughputBillingCommitment={"Status": "SOMETIMES"})
    validation(kc.update_account_settings, "Member must not be null")
    print("Describe/UpdateAccountSettings: ok")
    return started


def warm_throughput(kc, name, od, od_arn):
    # No commitment yet, then a provisioned stream: both refused.
    expect_error("ValidationException", kc.update_stream_warm_throughput, StreamARN=od_arn,
                 WarmThroughputMiBps=100)
    on_demand = {"StreamMode": "ON_DEMAND"}
    expect_error("ValidationException", kc.create_stream, StreamName="warm-od",
                 StreamModeDetails=on_demand, WarmThroughputMiBps=50)
    account_settings_started = account_settings(kc)
    # CreateStream's WarmThroughputMiBps: the same rules, then kept from the start.
    msg = expect_error("ValidationException", kc.create_stream, StreamName="warm-pr",
                       ShardCount=1, WarmThroughputMiBps=50)
    check("PROVISIONED capacity mode" in msg, msg)
    expect_error("LimitExceededException", kc.create_stream, StreamName="warm-od",
                 StreamModeDetails=on_demand, WarmThroughputMiBps=10241)
    check(not {"warm-od", "warm-pr"} & set(kc.list_streams()["StreamNames"]),
          "a refused CreateStream made a stream")
    kc.create_stream(StreamName="warm-od", StreamModeDetails=on_demand, WarmThroughputMiBps=50)
    base.wait_active(kc, "warm-od")
    check(summary(kc, "warm-od")["WarmThroughput"] == {"TargetMiBps": 50, "CurrentMiBps": 50},
          "CreateStream's warm throughput: %r" % summary(kc, "warm-od"))
    expect_error("ValidationException", kc.update_stream_warm_throughput, StreamName=name,
                 WarmThroughputMiBps=100)
    got = kc.update_stream_warm_throughput(StreamARN=od_arn, WarmThroughputMiBps=100)
    check(got["StreamName"] == od and got["StreamARN"] == od_arn and
          got["WarmThroughput"]["TargetMiBps"] == 100, "warm: %r" % got)
    wait_status(kc, od, "ACTIVE")
    check(summary(kc, od)["WarmThroughput"] == {"TargetMiBps": 100, "CurrentMiBps": 100},
          "summary: %r" % summary(kc, od))
    expect_error("LimitExceededException", kc.update_stream_warm_throughput, StreamName=od,
                 WarmThroughputMiBps=10241)
    validation(kc.update_stream_warm_throughput, "Member must have value greater than or "
               "equal to 0", StreamName=od, WarmThroughputMiBps=-1)
    print("UpdateStreamWarmThroughput: ok")
    return account_settings_started


def after_restart(kc, name, od, metrics, started, carn):
    check([t["Key"] for t in kc.list_tags_for_resource(ResourceARN=carn)["Tags"]] ==
          ["cost centre", "tier", "ünï"], "consumer tags after restart")
    s = summary(kc, name)
    check(s["EnhancedMonitoring"] == [{"ShardLevelMetrics": metrics}] and
          s["MaxRecordSizeInKiB"] == 4096, "after restart: %r" % s)
    check(kc.list_tags_for_resource(ResourceARN=s["StreamARN"])["Tags"] ==
          [{"Key": "env", "Value": "test"}], "tags after restart")
    check(summary(kc, od)["WarmThroughput"]["TargetMiBps"] == 100, "warm after restart")
    check(summary(kc, "warm-od")["WarmThroughput"]["TargetMiBps"] == 50,
          "CreateStream's warm throughput after restart")
    check(summary(kc, "big")["MaxRecordSizeInKiB"] == 2048, "created setting after restart")
    got = kc.describe_account_settings()["MinimumThroughputBillingCommitment"]
    check(got["Status"] == "ENABLED" and got["StartedAt"].timestamp() == started,
          "account after restart: %r" % got)
    print("settings survive a restart: ok")


def smaller_batch(kc, name):
    """Restarted with batches of 1088 KiB, a stream set to 4096 KiB takes 1 MiB records."""
    check(summary(kc, name)["MaxRecordSizeInKiB"] == 4096, "the setting is kept")
    validation(kc.put_record, "Member must have length less than or equal to 1048576",
               StreamName=name, PartitionKey="k", Data=b"x" * (MIB + 1))
    kc.put_record(StreamName=name, PartitionKey="k", Data=b"x" * MIB)
    print("a stream's MaxRecordSizeInKiB above a smaller [log] batch_size_kb: 1 MiB: ok")


def parity(kc, name):
    """Issue 12's differences from AWS's answers, end to end (the rest are unit-tested)."""
    put = kc.put_record(StreamName=name, PartitionKey="k", Data=b"x")
    check("EncryptionType" not in put, "PutRecord on an unencrypted stream: %r" % put)
    puts = kc.put_records(StreamName=name, Records=[{"PartitionKey": "k", "Data": b"y"}])
    check("EncryptionType" not in puts, "PutRecords on an unencrypted stream: %r" % puts)
    id2 = put["ResponseMetadata"]["HTTPHeaders"].get("x-amz-id-2", "")
    check(64 <= len(base64.b64decode(id2, validate=True)) <= 80, "x-amz-id-2: %r" % id2)
    # Tag characters: a TAB is not white space to AWS; removals are checked too.
    for call, kwargs in ((kc.add_tags_to_stream, {"StreamName": name, "Tags": {"a\tb": "1"}}),
                         (kc.remove_tags_from_stream, {"StreamName": name, "TagKeys": ["a;b"]}),
                         (kc.remove_tags_from_stream, {"StreamName": name, "TagKeys": ["a\nb"]}),
                         (kc.untag_resource, {"ResourceARN": summary(kc, name)["StreamARN"],
                                              "TagKeys": ["a,b"]})):
        msg = expect_error("InvalidArgumentException", call, **kwargs)
        check(msg == "Some tags contain invalid characters. Valid characters: Unicode letters, "
              "digits, white space, _ . / = + - % @.", msg)
    msg = expect_error("ResourceNotFoundException", kc.get_shard_iterator, StreamName="nosuch",
                       ShardId="shardId-7", ShardIteratorType="LATEST")
    check(msg == "Shard shardId-000000000007 in stream nosuch under account %s does not "
          "exist" % ACCOUNT, msg)
    print("parity with AWS's answers: ok")


def main():
    binary = sys.argv[1]
    data_dir = tempfile.mkdtemp(prefix="sluice-ops-it-")
    srv = base.Sluiced(binary, data_dir)
    t0 = time.time()
    try:
        srv.start()
        every_operation_is_known(srv)
        kc = base.client(srv)
        name, od = "ops", "ops-od"
        kc.create_stream(StreamName=name, ShardCount=2)
        kc.create_stream(StreamName=od, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        base.wait_active(kc, name)
        base.wait_active(kc, od)
        arn = summary(kc, name)["StreamARN"]
        tags_by_arn(kc, name, arn)
        carn = consumer_tags(kc, name, arn)
        metrics = monitoring(kc, name, arn)
        batch_too_small(kc, name, arn)
        srv.stop()
        consumer_tags_rows(data_dir)
        srv.start(*BIG_LOG)
        kc = base.client(srv)
        max_record_size(kc, name, arn)
        large_records(kc)
        parity(kc, name)
        started = warm_throughput(kc, name, od, summary(kc, od)["StreamARN"])
        srv.stop()
        srv.start(*BIG_LOG)
        after_restart(base.client(srv), name, od, metrics, started, carn)
        srv.stop()
        srv.start()
        smaller_batch(base.client(srv), name)
        srv.stop()
        print("PASS in %.1fs" % (time.time() - t0))
    finally:
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    # meson's timeout sends SIGTERM: exit through the finally block (our sluiced, temp dir).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
