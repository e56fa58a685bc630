#!/usr/bin/python3
"""UpdateDestination, tags and encryption of delivery streams (issue 16), boto3 and the CLI.

  1. UpdateDestination: VersionId grows, the update merges into the destination, ranges cut
     afterwards use it (their names carry the new version); a stale version is
     ConcurrentModificationException; AWS's other errors.
  2. Tags: Tag/Untag/ListTagsForDeliveryStream and CreateDeliveryStream's Tags, pages, the
     50-tag limit, AWS's validation.
  3. Encryption: Start/StopDeliveryStreamEncryption. With the keyring, a DirectPut stream's
     records are stored encrypted in the log (a marker is not on disk) and still delivered
     in plain text; puts answer Encrypted; it survives a restart. Without a key for
     AWS_OWNED_CMK the status is recorded and the records are stored as they come.

Usage: test_firehose_manage.py SLUICED
"""
import glob
import gzip
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import Sluiced, check  # noqa: E402
from test_firehose import (ROLE, client, delivered, expect_error, firehose_cli,  # noqa: E402
                           objects, s3dest)

DEADLINE_S = 60
DEST = "destinationId-000000000001"
KMS = "arn:aws:kms:us-east-1:000000000000:key/"


def by_extension(root, bucket):
    """{path: decoded bytes} of a bucket whose objects have several formats (an update)."""
    out = {}
    for path in objects(root, bucket):
        if not path.endswith(".tmp"):
            with open(path, "rb") as f:
                out[path] = gzip.decompress(f.read()) if path.endswith(".gz") else f.read()
    return out


def wait_objects(root, bucket, test, what):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        objs = by_extension(root, bucket)
        hit = {p: d for p, d in objs.items() if test(p, d)}
        if hit:
            return hit
        check(time.monotonic() < deadline, "%s: no such object in %d s" % (what, DEADLINE_S))
        time.sleep(0.1)


def describe(fh, name):
    return fh.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]


# ---- 1. UpdateDestination --------------------------------------------------------------


def test_update(srv, root):
    fh = client(srv)
    fh.create_delivery_stream(DeliveryStreamName="upd", ExtendedS3DestinationConfiguration=
                              s3dest("upd", "UNCOMPRESSED", size_mb=1, interval_s=0))
    fh.put_record(DeliveryStreamName="upd", Record={"Data": b"first\n"})
    wait_objects(root, "upd", lambda p, d: d == b"first\n", "version 1")
    update = fh.update_destination
    base = dict(DeliveryStreamName="upd", DestinationId=DEST)
    expect_error(update, "ResourceNotFoundException", "Firehose nope under account",
                 DeliveryStreamName="nope", CurrentDeliveryStreamVersionId="1",
                 DestinationId=DEST, ExtendedS3DestinationUpdate={})
    expect_error(update, "ValidationException", "Member must not be null",
                 DeliveryStreamName="upd", DestinationId=DEST)
    expect_error(update, "ValidationException", "'extendedS3DestinationUpdate.bufferingHints."
                 "sizeInMBs' failed to satisfy constraint", CurrentDeliveryStreamVersionId="1",
                 ExtendedS3DestinationUpdate={"BufferingHints": {"SizeInMBs": 0,
                                                                 "IntervalInSeconds": 0}},
                 **base)
    expect_error(update, "InvalidArgumentException", "Destination Id destinationId-2",
                 DeliveryStreamName="upd", DestinationId="destinationId-2",
                 CurrentDeliveryStreamVersionId="1", ExtendedS3DestinationUpdate={})
    expect_error(update, "ConcurrentModificationException", "Cannot update firehose: upd since "
                 "the current version id: 1 and specified version id: 7 do not match",
                 CurrentDeliveryStreamVersionId="7", ExtendedS3DestinationUpdate={}, **base)
    expect_error(update, "InvalidArgumentException", "Exactly one destination update",
                 CurrentDeliveryStreamVersionId="1", ExtendedS3DestinationUpdate={},
                 S3DestinationUpdate={}, **base)
    expect_error(update, "InvalidArgumentException", "an update cannot switch it to an "
                 "HttpEndpoint destination", CurrentDeliveryStreamVersionId="1",
                 HttpEndpointDestinationUpdate={"EndpointConfiguration": {"Url": "https://x"}},
                 **base)
    expect_error(update, "InvalidArgumentException", "Only S3, ExtendedS3 and HttpEndpoint",
                 CurrentDeliveryStreamVersionId="1",
                 SplunkDestinationUpdate={"HECEndpoint": "https://x"}, **base)
    expect_error(update, "InvalidArgumentException", "is not an S3 bucket ARN",
                 CurrentDeliveryStreamVersionId="1",
                 ExtendedS3DestinationUpdate={"BucketARN": "arn:aws:s3:::a/b"}, **base)
    check(describe(fh, "upd")["VersionId"] == "1", "refused updates changed the version")
    # A partitioned stream is updated too (the merge keeps its partitioning and query):
    # test_firehose_features.py covers every kind of stream.
    dp = dict(s3dest("updp", "GZIP", size_mb=1, interval_s=60),
              Prefix="c=!{partitionKeyFromQuery:c}/",
              ErrorOutputPrefix="e/!{firehose:error-output-type}/",
              DynamicPartitioningConfiguration={"Enabled": True},
              ProcessingConfiguration={"Enabled": True, "Processors": [{
                  "Type": "MetadataExtraction", "Parameters": [
                      {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{c:.c}"},
                      {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]})
    fh.create_delivery_stream(DeliveryStreamName="updp", ExtendedS3DestinationConfiguration=dp)
    update(DeliveryStreamName="updp", DestinationId=DEST, CurrentDeliveryStreamVersionId="1",
           ExtendedS3DestinationUpdate={"CompressionFormat": "ZIP"})
    pd = describe(fh, "updp")["Destinations"][0]["ExtendedS3DestinationDescription"]
    check(pd["DynamicPartitioningConfiguration"] == {"Enabled": True} and
          pd["CompressionFormat"] == "ZIP" and
          pd["ProcessingConfiguration"]["Processors"][0]["Type"] == "MetadataExtraction", pd)
    fh.delete_delivery_stream(DeliveryStreamName="updp")

    update(CurrentDeliveryStreamVersionId="1", ExtendedS3DestinationUpdate={
        "CompressionFormat": "GZIP", "Prefix": "v2/"}, **base)
    d = describe(fh, "upd")
    dest = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    check(d["VersionId"] == "2" and "LastUpdateTimestamp" in d, d)
    check(dest["CompressionFormat"] == "GZIP" and dest["Prefix"] == "v2/" and
          dest["BucketARN"] == "arn:aws:s3:::upd" and dest["RoleARN"] == ROLE and
          dest["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 0}, dest)
    expect_error(update, "ConcurrentModificationException", "specified version id: 1",
                 CurrentDeliveryStreamVersionId="1", ExtendedS3DestinationUpdate={}, **base)
    fh.put_record(DeliveryStreamName="upd", Record={"Data": b"second\n"})
    hit = wait_objects(root, "upd", lambda p, d: d == b"second\n", "version 2")
    path = list(hit)[0]
    rel = os.path.relpath(path, os.path.join(root, "upd"))
    check(rel.startswith("v2/") and os.path.basename(path).startswith("upd-2-") and
          path.endswith(".gz"), rel)
    old = [d for p, d in by_extension(root, "upd").items() if "/v2/" not in p]
    check(old == [b"first\n"], "the version 1 object stays as it was: %r" % old)

    # The CLI, and an S3DestinationUpdate (the legacy shape) merges the same way.
    firehose_cli(srv, "update-destination", "--delivery-stream-name", "upd",
                 "--current-delivery-stream-version-id", "2", "--destination-id", DEST,
                 "--s3-destination-update",
                 "BufferingHints={SizeInMBs=2,IntervalInSeconds=60}")
    d = firehose_cli(srv, "describe-delivery-stream", "--delivery-stream-name", "upd")
    dest = d["DeliveryStreamDescription"]["Destinations"][0]["S3DestinationDescription"]
    check(d["DeliveryStreamDescription"]["VersionId"] == "3" and
          dest["BufferingHints"] == {"SizeInMBs": 2, "IntervalInSeconds": 60} and
          dest["Prefix"] == "v2/", d)
    err = firehose_cli(srv, "update-destination", "--delivery-stream-name", "upd",
                       "--current-delivery-stream-version-id", "2", "--destination-id", DEST,
                       "--s3-destination-update", "Prefix=x/", ok=False)
    check("ConcurrentModificationException" in err, err)
    fh.delete_delivery_stream(DeliveryStreamName="upd")
    print("ok: UpdateDestination (versions, merge, new ranges use it, errors; boto3 and CLI)")


# ---- 2. Tags ----------------------------------------------------------------------------


def tags_of(fh, name, **kw):
    r = fh.list_tags_for_delivery_stream(DeliveryStreamName=name, **kw)
    return [(t["Key"], t["Value"]) for t in r["Tags"]], r["HasMoreTags"]


def test_tags(srv):
    fh = client(srv)
    expect_error(fh.create_delivery_stream, "ValidationException", "'tags.1.member.key'",
                 DeliveryStreamName="t0", ExtendedS3DestinationConfiguration=s3dest("t"),
                 Tags=[{"Key": "aws:x", "Value": "1"}])
    fh.create_delivery_stream(DeliveryStreamName="tags", ExtendedS3DestinationConfiguration=
                              s3dest("tags"), Tags=[{"Key": "a", "Value": "1"}])
    fh.tag_delivery_stream(DeliveryStreamName="tags", Tags=[{"Key": "c", "Value": "3"},
                                                            {"Key": "b", "Value": ""}])
    check(tags_of(fh, "tags") == ([("a", "1"), ("b", ""), ("c", "3")], False),
          tags_of(fh, "tags"))
    check(tags_of(fh, "tags", Limit=2) == ([("a", "1"), ("b", "")], True), "Limit")
    check(tags_of(fh, "tags", ExclusiveStartTagKey="b") == ([("c", "3")], False), "start key")
    fh.tag_delivery_stream(DeliveryStreamName="tags", Tags=[{"Key": "a", "Value": "new"}])
    fh.untag_delivery_stream(DeliveryStreamName="tags", TagKeys=["c", "nope"])
    check(tags_of(fh, "tags") == ([("a", "new"), ("b", "")], False), tags_of(fh, "tags"))

    # 50 tags at most: 48 more fit, one more does not (and nothing of that call is kept).
    fh.tag_delivery_stream(DeliveryStreamName="tags", Tags=[
        {"Key": "k%02d" % i, "Value": "v"} for i in range(48)])
    expect_error(fh.tag_delivery_stream, "LimitExceededException", "more than 50 tags",
                 DeliveryStreamName="tags", Tags=[{"Key": "z1", "Value": "v"}])
    fh.tag_delivery_stream(DeliveryStreamName="tags", Tags=[{"Key": "k00", "Value": "w"}])
    check(len(tags_of(fh, "tags")[0]) == 50, "50 tags")
    expect_error(fh.tag_delivery_stream, "ValidationException", "length less than or equal "
                 "to 128", DeliveryStreamName="tags", Tags=[{"Key": "x" * 129, "Value": ""}])
    expect_error(fh.tag_delivery_stream, "ValidationException", "regular expression pattern",
                 DeliveryStreamName="tags", Tags=[{"Key": "ok", "Value": "bad\u0001"}])
    expect_error(fh.tag_delivery_stream, "ValidationException", "greater than or equal to 1",
                 DeliveryStreamName="tags", Tags=[])
    expect_error(fh.tag_delivery_stream, "ValidationException", "Member must not be null",
                 DeliveryStreamName="tags", Tags=[{"Value": "v"}])
    expect_error(fh.tag_delivery_stream, "SerializationException", None,
                 DeliveryStreamName="tags", Tags=[{"Key": 5, "Value": "v"}])
    expect_error(fh.untag_delivery_stream, "ValidationException", "greater than or equal to 1",
                 DeliveryStreamName="tags", TagKeys=[])
    expect_error(fh.list_tags_for_delivery_stream, "ValidationException", "less than or equal "
                 "to 50", DeliveryStreamName="tags", Limit=51)
    for fn, kw in ((fh.tag_delivery_stream, {"Tags": [{"Key": "a", "Value": "b"}]}),
                   (fh.untag_delivery_stream, {"TagKeys": ["a"]}),
                   (fh.list_tags_for_delivery_stream, {})):
        expect_error(fn, "ResourceNotFoundException", "Firehose nope under account",
                     DeliveryStreamName="nope", **kw)

    firehose_cli(srv, "untag-delivery-stream", "--delivery-stream-name", "tags",
                 "--tag-keys", *["k%02d" % i for i in range(48)])
    firehose_cli(srv, "tag-delivery-stream", "--delivery-stream-name", "tags",
                 "--tags", "Key=team,Value=ingest")
    r = firehose_cli(srv, "list-tags-for-delivery-stream", "--delivery-stream-name", "tags")
    check(r["Tags"] == [{"Key": "a", "Value": "new"}, {"Key": "b", "Value": ""},
                        {"Key": "team", "Value": "ingest"}] and not r["HasMoreTags"], r)
    fh.delete_delivery_stream(DeliveryStreamName="tags")
    fh.create_delivery_stream(DeliveryStreamName="tags", ExtendedS3DestinationConfiguration=
                              s3dest("tags"))
    check(tags_of(fh, "tags") == ([], False), "a new stream of an old name has no tags")
    fh.delete_delivery_stream(DeliveryStreamName="tags")
    print("ok: tags (limits, pages, validation; boto3 and CLI)")


# ---- 3. Encryption ------------------------------------------------------------------------


def disk_has(data_dir, needle):
    for path in glob.glob(os.path.join(data_dir, "log", "seg-*.log")):
        with open(path, "rb") as f:
            if needle in f.read():
                return True
    return False


def put(fh, name, data):
    r = fh.put_record(DeliveryStreamName=name, Record={"Data": data})
    b = fh.put_record_batch(DeliveryStreamName=name, Records=[{"Data": data.upper()}])
    check(r["Encrypted"] == b["Encrypted"], (r, b))
    return r["Encrypted"]


def enc_status(fh, name):
    return describe(fh, name)["DeliveryStreamEncryptionConfiguration"]


def test_encryption_errors(fh):
    start = fh.start_delivery_stream_encryption
    expect_error(start, "ResourceNotFoundException", "Firehose nope under account",
                 DeliveryStreamName="nope")
    expect_error(start, "ValidationException", "Member must satisfy enum value set: "
                 "[AWS_OWNED_CMK, CUSTOMER_MANAGED_CMK]", DeliveryStreamName="enc",
                 DeliveryStreamEncryptionConfigurationInput={"KeyType": "KMS"})
    expect_error(start, "ValidationException", "keyType' failed to satisfy constraint: Member "
                 "must not be null", DeliveryStreamName="enc",
                 DeliveryStreamEncryptionConfigurationInput={"KeyARN": KMS + "ckey"})
    expect_error(start, "InvalidArgumentException", "KeyARN is required",
                 DeliveryStreamName="enc",
                 DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK"})
    expect_error(start, "InvalidArgumentException", "KeyARN must not be given",
                 DeliveryStreamName="enc", DeliveryStreamEncryptionConfigurationInput={
                     "KeyType": "AWS_OWNED_CMK", "KeyARN": KMS + "ckey"})
    for key in ("nokey", "dkey"):
        expect_error(start, "InvalidKMSResourceException", KMS + key, DeliveryStreamName="enc",
                     DeliveryStreamEncryptionConfigurationInput={
                         "KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": KMS + key})
    check(enc_status(fh, "enc") == {"Status": "DISABLED"}, "refused starts changed nothing")


def test_encryption(binary, base):
    data = os.path.join(base, "enc-data")
    root = os.path.join(base, "enc-objects")
    keyring = os.path.join(base, "keyring")
    with open(keyring, "w") as f:
        f.write("fkey 1 %s alias/aws/firehose\nckey 1 %s\ndkey 1 %s disabled\n" %
                ("44" * 32, "55" * 32, "66" * 32))
    os.chmod(keyring, 0o600)
    os.makedirs(data)
    srv = Sluiced(binary, data)
    args = ("--set", "firehose.local_root=" + root, "--set", "encryption.keyring=" + keyring)
    try:
        srv.start(*args)
        fh = client(srv)
        fh.create_delivery_stream(DeliveryStreamName="enc", ExtendedS3DestinationConfiguration=
                                  s3dest("enc", size_mb=1, interval_s=0))
        check(put(fh, "enc", b"plain-one\n") is False, "Encrypted before Start")
        test_encryption_errors(fh)

        fh.start_delivery_stream_encryption(DeliveryStreamName="enc")
        check(enc_status(fh, "enc") == {"KeyType": "AWS_OWNED_CMK", "Status": "ENABLED"},
              enc_status(fh, "enc"))
        check(put(fh, "enc", b"secret-one\n") is True, "Encrypted after Start")
        fh.start_delivery_stream_encryption(DeliveryStreamName="enc",
                                            DeliveryStreamEncryptionConfigurationInput={
                                                "KeyType": "CUSTOMER_MANAGED_CMK",
                                                "KeyARN": KMS + "ckey"})
        check(enc_status(fh, "enc") == {"KeyARN": KMS + "ckey", "KeyType": "CUSTOMER_MANAGED_CMK",
                                        "Status": "ENABLED"}, enc_status(fh, "enc"))
        srv.stop()
        srv.start(*args)  # The log's keys are in memory only: set again at start.
        fh = client(srv)
        check(enc_status(fh, "enc")["Status"] == "ENABLED", "after a restart")
        check(put(fh, "enc", b"secret-two\n") is True, "Encrypted after a restart")
        fh.stop_delivery_stream_encryption(DeliveryStreamName="enc")
        check(enc_status(fh, "enc") == {"Status": "DISABLED"}, enc_status(fh, "enc"))
        check(put(fh, "enc", b"plain-two\n") is False, "Encrypted after Stop")
        want = [b"plain-one\n", b"PLAIN-ONE\n", b"secret-one\n", b"SECRET-ONE\n",
                b"secret-two\n", b"SECRET-TWO\n", b"plain-two\n", b"PLAIN-TWO\n"]
        deadline = time.monotonic() + DEADLINE_S
        while True:
            objs, _ = delivered(root, "enc", "UNCOMPRESSED")
            got = b"".join(objs.values())
            if all(w in got for w in want):
                break
            check(time.monotonic() < deadline, "delivered %r" % got)
            time.sleep(0.1)
        check(len(got) == sum(map(len, want)), "each record once: %r" % got)
        srv.stop()
        for marker in (b"plain-one", b"PLAIN-TWO"):
            check(disk_has(data, marker), "%r not found on disk: the test cannot see" % marker)
        for marker in (b"secret-one", b"SECRET-ONE", b"secret-two", b"SECRET-TWO"):
            check(not disk_has(data, marker), "%r stored in plain text" % marker)
    finally:
        srv.kill()
    print("ok: encryption with the keyring (records encrypted in the log, delivered in plain "
          "text, kept across a restart, errors)")


def test_encryption_without_key(srv, root, data):
    fh = client(srv)
    fh.create_delivery_stream(DeliveryStreamName="nokey", ExtendedS3DestinationConfiguration=
                              s3dest("nokey", size_mb=1, interval_s=0))
    fh.start_delivery_stream_encryption(DeliveryStreamName="nokey")
    check(enc_status(fh, "nokey") == {"KeyType": "AWS_OWNED_CMK", "Status": "ENABLED"},
          enc_status(fh, "nokey"))
    check(put(fh, "nokey", b"status-only\n") is True, "Encrypted as the status says")
    expect_error(fh.start_delivery_stream_encryption, "InvalidKMSResourceException", "keyring",
                 DeliveryStreamName="nokey", DeliveryStreamEncryptionConfigurationInput={
                     "KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": KMS + "x"})
    wait_objects(root, "nokey", lambda p, d: b"status-only" in d, "nokey")
    check(disk_has(data, b"status-only"), "no key: the records are stored as they come")
    fh.delete_delivery_stream(DeliveryStreamName="nokey")
    print("ok: AWS_OWNED_CMK without a key: the status only")


def main():
    binary = sys.argv[1]
    base = tempfile.mkdtemp(prefix="firehose-manage-test-")
    try:
        data = os.path.join(base, "data")
        root = os.path.join(base, "objects")
        os.makedirs(data)
        srv = Sluiced(binary, data)
        srv.start("--set", "firehose.local_root=" + root)
        try:
            test_update(srv, root)
            test_tags(srv)
            test_encryption_without_key(srv, root, data)
            srv.stop()
        finally:
            srv.kill()
        test_encryption(binary, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
