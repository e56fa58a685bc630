#!/usr/bin/python3
"""The Firehose features of issue 16 built last, through boto3 and /usr/bin/aws, into npm
s3rver (started here, behind [firehose] s3_endpoint) and read back with boto3's s3 client:

  1. AppendDelimiterToRecord (ProcessingConfiguration): the delimiter (a newline by
     default, or the Delimiter parameter) follows every record; alone, with dynamic
     partitioning and after a Lambda processor; its refusals; Describe and the CLI.
     RecordDeAggregation: JSON sub-records before partitioning, DELIMITED pieces.
  2. !{partitionKeyFromLambda:KEY}: the Lambda function's metadata.partitionKeys picks
     each record's partition (beside a MetadataExtraction query's keys); a record whose
     keys are missing goes to ErrorOutputPrefix as Firehose's error JSON
     (partitioning-failed); the refusals.
  3. UpdateDestination of every kind of stream: a partitioned one (a new query, prefix,
     compression, delimiter), one with a Lambda processor (another function), an HTTP
     endpoint (HttpEndpointDestinationUpdate: URL, request configuration, its backup's
     S3Update; the access key kept), and what AWS refuses (switching partitioning or the
     destination type).
  4. Exactly once across updates: sluiced SIGKILLed right after each of three updates
     while records flow; every acknowledged record is in exactly one object, and the
     records put after an update in objects of the new version under the new prefix.

Usage: test_firehose_features.py SLUICED S3RVER_DIR (skipped without node/npm, saying so).
Lambda functions are Python scripts written into the test's temp dir.
"""
import base64
import json
import os
import random
import shutil
import signal
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_firehose import (DECODERS, check_exactly_once, client,  # noqa: E402
                           expect_error, firehose_cli, s3dest)
from test_firehose_http import Endpoint, http_dest, put_all, wait_for  # noqa: E402
from test_firehose_s3 import s3rver_store, sluiced_args  # noqa: E402
from test_kinesis_api import Sluiced, check  # noqa: E402

DEADLINE_S = 120
DEST = "destinationId-000000000001"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:%s"

FUNCTIONS = {
    # Upper-cases every record. Partition key "k": a JSON record's member "k", else the
    # record's first letter; none when the member is absent or the record starts with "x"
    # (such records go to the error prefix).
    "keys": r'''
out = []
for r in json.load(sys.stdin)["records"]:
    d = base64.b64decode(r["data"])
    a = {"recordId": r["recordId"], "result": "Ok", "data": base64.b64encode(d.upper()).decode()}
    try:
        k = json.loads(d).get("k")
    except ValueError:
        k = None if d.startswith(b"x") else d[:1].decode()
    if k is not None:
        a["metadata"] = {"partitionKeys": {"k": k}}
    out.append(a)
json.dump({"records": out}, sys.stdout)
''',
    # Reverses every record (another function for UpdateDestination).
    "reverse": r'''
json.dump({"records": [{"recordId": r["recordId"], "result": "Ok",
                        "data": base64.b64encode(base64.b64decode(r["data"])[::-1]).decode()}
                       for r in json.load(sys.stdin)["records"]]}, sys.stdout)
''',
}


def write_functions(base):
    paths = {}
    for name, body in FUNCTIONS.items():
        path = os.path.join(base, name + ".py")
        with open(path, "w") as f:
            f.write("#!/usr/bin/python3\nimport base64, json, sys\n" + body)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        paths[name] = path
    return ",".join("%s=%s" % (ARN % n, p) for n, p in paths.items())


def processors(*procs):
    return {"Enabled": True, "Processors": [
        {"Type": t, "Parameters": [{"ParameterName": k, "ParameterValue": v}
                                   for k, v in params.items()]} for t, params in procs]}


def delimiter(value=None):
    return ("AppendDelimiterToRecord", {} if value is None else {"Delimiter": value})


def lambda_proc(name):
    return ("Lambda", {"LambdaArn": ARN % name, "NumberOfRetries": "0"})


def query(q):
    return ("MetadataExtraction", {"MetadataExtractionQuery": q, "JsonParsingEngine": "JQ-1.6"})


def ext(bucket, *procs, compression="GZIP", prefix=None, error_prefix="err/",
        partitioning=False, interval_s=1):
    d = dict(s3dest(bucket, compression, size_mb=1, interval_s=interval_s, prefix=prefix),
             ErrorOutputPrefix=error_prefix)
    if procs:
        d["ProcessingConfiguration"] = processors(*procs)
    if partitioning:
        d["DynamicPartitioningConfiguration"] = {"Enabled": True}
    return d


def described(fh, name):
    d = fh.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    dest = d["Destinations"][0]
    return d, dest.get("ExtendedS3DestinationDescription",
                       dest.get("HttpEndpointDestinationDescription"))


def wait_store(store, bucket, compression, test, what):
    """The bucket's objects {key: decoded bytes} once test(objects) holds."""
    decode = DECODERS[compression][1]
    deadline = time.monotonic() + DEADLINE_S
    while True:
        objs = store.objects(bucket, decode)
        if test(objs):
            return objs
        check(time.monotonic() < deadline, "%s: not there in %d s: %r" %
              (what, DEADLINE_S, sorted(objs)[:6]))
        time.sleep(0.3)


def total(objs, start=""):
    return sum(len(d) for k, d in objs.items() if k.startswith(start))


def error_lines(objs, start):
    return [json.loads(line) for k, d in objs.items() if k.startswith(start)
            for line in d.splitlines()]


# ---- 1. AppendDelimiterToRecord --------------------------------------------------------


def test_delimiter_api(fh, ep):
    create, bad = fh.create_delivery_stream, "InvalidArgumentException"
    cases = [
        (ext("b", ("AppendDelimiterToRecord", {"LambdaArn": ARN % "keys"})),
         "Processor parameter LambdaArn is not valid for an AppendDelimiterToRecord processor."),
        (ext("b", delimiter("x" * 17)), "must have 1 to 16 bytes here"),
        (ext("b", delimiter(), delimiter()), "Only one processor of type AppendDelimiterToRecord"),
        (ext("b", query("{c:.c}"), query("{c:.c}"), prefix="c=!{partitionKeyFromQuery:c}/",
             error_prefix="e/!{firehose:error-output-type}/", partitioning=True),
         "Only one processor of type MetadataExtraction is supported."),
        (ext("b", ("Decompression", {"CompressionFormat": "GZIP"})),
         "Processor type Decompression is not supported by this endpoint yet"),
        (ext("b", ("RecordDeAggregation", {"SubRecordType": "DELIMITED"})),
         "takes SubRecordType JSON, or DELIMITED with a Delimiter"),
        (ext("b", ("RecordDeAggregation", {"SubRecordType": "JSON", "Delimiter": "IyMjIw=="})),
         "takes SubRecordType JSON, or DELIMITED with a Delimiter"),
        (ext("b", ("RecordDeAggregation", {"SubRecordType": "DELIMITED", "Delimiter": "#*!"})),
         "must be base64 of 1 to 16 bytes"),
        (ext("b", ("RecordDeAggregation", {"SubRecordType": "JSON", "LambdaArn": "x"})),
         "Processor parameter LambdaArn is not valid for a RecordDeAggregation processor."),
    ]
    for dest, text in cases:
        expect_error(create, bad, text, DeliveryStreamName="v",
                     ExtendedS3DestinationConfiguration=dest)
    expect_error(create, "ValidationException", "Member must have length greater than or "
                 "equal to 1", DeliveryStreamName="v",
                 ExtendedS3DestinationConfiguration=ext("b", delimiter("")))
    expect_error(create, bad, "Processor type AppendDelimiterToRecord is not supported for an "
                 "HTTP endpoint destination", DeliveryStreamName="v",
                 HttpEndpointDestinationConfiguration=http_dest(
                     ep.url + "/ok", "b", ProcessingConfiguration=processors(delimiter())))
    check(fh.list_delivery_streams()["DeliveryStreamNames"] == [], "a refused create stayed")
    print("ok: AppendDelimiterToRecord and RecordDeAggregation refusals")


def test_delimiter(srv, fh, store):
    rng = random.Random(161)
    sent = [b"rec-%05d-%s" % (i, b"z" * rng.randrange(0, 300)) for i in range(3000)]
    for name, procs, sep, transform in (
            ("delim-default", [delimiter()], b"\n", lambda r: r),
            ("delim-hash", [delimiter("##")], b"##", lambda r: r),
            ("delim-escaped", [delimiter("\\r\\n")], b"\r\n", lambda r: r),
            ("delim-lambda", [lambda_proc("reverse"), delimiter()], b"\n", lambda r: r[::-1])):
        want = [transform(r) + sep for r in sent]
        store.client().create_bucket(Bucket=name)
        fh.create_delivery_stream(DeliveryStreamName=name,
                                  ExtendedS3DestinationConfiguration=ext(name, *procs))
        put_all(fh, name, sent)
        objs = wait_store(store, name, "GZIP", lambda o: total(o) >= sum(map(len, want)), name)
        check_exactly_once(want, objs, "%s: every record once, each followed by %r" %
                           (name, sep), sep=sep)
    _, dest = described(fh, "delim-escaped")
    procs = dest["ProcessingConfiguration"]["Processors"]
    check(procs == [{"Type": "AppendDelimiterToRecord", "Parameters": [
        {"ParameterName": "Delimiter", "ParameterValue": "\\r\\n"}]}], "describe: %r" % procs)
    _, dest = described(fh, "delim-lambda")
    check([p["Type"] for p in dest["ProcessingConfiguration"]["Processors"]] ==
          ["Lambda", "AppendDelimiterToRecord"], "describe: %r" % dest)
    # The CLI: a newline delimiter on a partitioned stream, each partition's lines whole
    # (the CLI's model wants IntervalInSeconds >= 60: an update brings it to 1).
    name = "delim-cli"
    store.client().create_bucket(Bucket=name)
    firehose_cli(srv, "create-delivery-stream", "--delivery-stream-name", name,
                 "--extended-s3-destination-configuration", json.dumps(ext(
                     name, query("{c:.c}"), delimiter(), prefix="c=!{partitionKeyFromQuery:c}/",
                     error_prefix="err/!{firehose:error-output-type}/", partitioning=True,
                     interval_s=60)))
    d = firehose_cli(srv, "describe-delivery-stream", "--delivery-stream-name", name)
    procs = d["DeliveryStreamDescription"]["Destinations"][0][
        "ExtendedS3DestinationDescription"]["ProcessingConfiguration"]["Processors"]
    check([p["Type"] for p in procs] == ["MetadataExtraction", "AppendDelimiterToRecord"] and
          procs[1]["Parameters"] == [{"ParameterName": "Delimiter", "ParameterValue": "\\n"}],
          procs)
    update(fh, name, 1, ExtendedS3DestinationUpdate={"BufferingHints": {"IntervalInSeconds": 1}})
    recs = [json.dumps({"c": "abc"[i % 3], "n": i}).encode() for i in range(600)]
    put_all(fh, name, recs)
    objs = wait_store(store, name, "GZIP", lambda o: total(o) >= sum(len(r) + 1 for r in recs),
                      name)
    for c in "abc":
        mine = {k: d for k, d in objs.items() if k.startswith("c=%s/" % c)}
        check(mine, "no object for partition %s" % c)
        check_exactly_once([r + b"\n" for r in recs if json.loads(r)["c"] == c], mine,
                           "partition %s with a newline delimiter" % c)
    print("ok: AppendDelimiterToRecord: default, ##, \\r\\n, after a Lambda, with partitioning "
          "(boto3 and aws firehose)")


def test_deaggregation(fh, store):
    """RecordDeAggregation: JSON (concatenated objects, JSON lines) before partitioning, and
    DELIMITED ("####", base64 IyMjIw== as AWS's example) with a newline after each piece."""
    name = "deagg-json"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=ext(
        name, ("RecordDeAggregation", {"SubRecordType": "JSON"}), query("{c:.c}"), delimiter(),
        prefix="c=!{partitionKeyFromQuery:c}/", error_prefix="err/!{firehose:error-output-type}/",
        partitioning=True))
    subs, recs = [], []
    for i in range(300):
        objs = [json.dumps({"c": "xyz"[(i + j) % 3], "n": i, "j": j}).encode()
                for j in range(1 + i % 4)]
        subs += objs
        recs.append((b"\n" if i % 2 else b"").join(objs))  # Concatenated, or JSON lines.
    recs.append(b"[1, 2]")  # Not objects: kept whole, and then no partition (not an object).
    put_all(fh, name, recs)
    objs = wait_store(store, name, "GZIP", lambda o: total(o, "c=") >= sum(
        len(r) + 1 for r in subs) and error_lines(o, "err/"), name)
    for c in "xyz":
        check_exactly_once([r + b"\n" for r in subs if json.loads(r)["c"] == c],
                           {k: d for k, d in objs.items() if k.startswith("c=%s/" % c)},
                           "deaggregated partition %s" % c)
    check([base64.b64decode(e["rawData"]) for e in error_lines(objs, "err/")] == [b"[1, 2]"],
          "the record that does not split is kept whole (and fails partitioning)")
    _, dest = described(fh, name)
    check([p["Type"] for p in dest["ProcessingConfiguration"]["Processors"]] ==
          ["RecordDeAggregation", "MetadataExtraction", "AppendDelimiterToRecord"], dest)
    name = "deagg-delimited"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=ext(
        name, ("RecordDeAggregation", {"SubRecordType": "DELIMITED", "Delimiter": "IyMjIw=="}),
        delimiter()))
    pieces = [[b"p%d-%d" % (i, j) for j in range(1 + i % 5)] for i in range(400)]
    put_all(fh, name, [b"####".join(p) + (b"####" if i % 3 == 0 else b"")
                       for i, p in enumerate(pieces)])
    flat = [x + b"\n" for p in pieces for x in p]
    objs = wait_store(store, name, "GZIP", lambda o: total(o) >= sum(map(len, flat)), name)
    check_exactly_once(flat, objs, "delimited sub-records")
    _, dest = described(fh, name)
    check(dest["ProcessingConfiguration"]["Processors"][0] == {
        "Type": "RecordDeAggregation", "Parameters": [
            {"ParameterName": "SubRecordType", "ParameterValue": "DELIMITED"},
            {"ParameterName": "Delimiter", "ParameterValue": "IyMjIw=="}]}, dest)
    print("ok: RecordDeAggregation: JSON before partitioning (%d sub-records of %d records), "
          "DELIMITED #### with a newline after each piece" % (len(subs), len(recs) - 1))


# ---- 2. !{partitionKeyFromLambda:KEY} ----------------------------------------------------


def say_objects(objs):
    """Every object's key, record count and first and last "N" (records of test_lambda_keys)."""
    for key, data in sorted(objs.items()):
        ns = [json.loads(r).get("N") for r in data.split(b"\n") if r.startswith(b"{")]
        print("object %s: %d records, N %s..%s" % (key, len(ns), ns[0] if ns else "-",
                                                  ns[-1] if ns else "-"))


def test_lambda_keys(fh, store):
    create, bad = fh.create_delivery_stream, "InvalidArgumentException"
    prefix = "k=!{partitionKeyFromLambda:k}/c=!{partitionKeyFromQuery:c}/"
    expect_error(create, bad, "!{partitionKeyFromLambda:...} needs a Lambda processor",
                 DeliveryStreamName="v", ExtendedS3DestinationConfiguration=ext(
                     "b", query("{c:.c}"), prefix=prefix, partitioning=True,
                     error_prefix="err/!{firehose:error-output-type}/"))
    expect_error(create, bad, "Dynamic Partitioning Namespaces can not be part of "
                 "ErrorOutputPrefix", DeliveryStreamName="v",
                 ExtendedS3DestinationConfiguration=ext(
                     "b", lambda_proc("keys"), prefix=prefix, partitioning=True,
                     error_prefix="err/!{partitionKeyFromLambda:k}/"))
    expect_error(create, bad, "Dynamic Partitioning Namespaces can only be part of a prefix "
                 "expression when Dynamic Partitioning is enabled.", DeliveryStreamName="v",
                 ExtendedS3DestinationConfiguration=ext("b", lambda_proc("keys"), prefix=prefix,
                                                        error_prefix="e/"))
    # Beside a query's keys: the query reads the record the function returned
    # (upper-cased: {"C":..}), the Lambda key comes from its answer's metadata.
    name = "lambda-keys"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=ext(
        name, query("{c:.C}"), lambda_proc("keys"), delimiter(), prefix=prefix,
        error_prefix="err/!{firehose:error-output-type}/", partitioning=True))
    recs = [json.dumps({"k": "pq"[i % 2], "c": "uvw"[i % 3], "n": i}).encode()
            for i in range(600)]
    keyless = [json.dumps({"c": "u", "n": i}).encode() for i in range(20)]
    put_all(fh, name, recs + keyless)
    want = sum(len(r) + 1 for r in recs)
    objs = wait_store(store, name, "GZIP", lambda o: total(o, "k=") >= want and
                      len(error_lines(o, "err/")) >= len(keyless), name)
    for k in "pq":
        for c in "UVW":
            mine = {key: d for key, d in objs.items() if key.startswith("k=%s/c=%s/" % (k, c))}
            check(mine, "no object for k=%s c=%s in %r" % (k, c, sorted(objs)[:6]))
            try:
                check_exactly_once([r.upper() + b"\n" for r in recs
                                    if json.loads(r)["k"] == k and json.loads(r)["c"] == c.lower()],
                                   mine, "k=%s c=%s" % (k, c))
            except SystemExit:
                say_objects(objs)  # Issue 16: which cuts overlap, to tell a re-cut from a re-put.
                raise
    errs = error_lines(objs, "err/partitioning-failed/")
    check(sorted(base64.b64decode(e["rawData"]) for e in errs) ==
          sorted(r.upper() for r in keyless), "the keyless records are the error records")
    check(all(e["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed" and
              "metadata.partitionKeys" in e["errorMessage"] for e in errs), errs[:1])
    print("ok: partitionKeyFromLambda beside a query's keys (6 partitions), keyless records "
          "as error records; its refusals")


def test_lambda_keys_only(fh, store):
    """Lambda keys alone (no query): records need not be JSON; a delimiter after each."""
    name = "lambda-keys-only"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=ext(
        name, lambda_proc("keys"), delimiter(), prefix="first=!{partitionKeyFromLambda:k}/",
        error_prefix="err/!{firehose:error-output-type}/", partitioning=True))
    recs = [b"%s plain text %d" % (b"abx"[i % 3:i % 3 + 1], i) for i in range(1200)]
    put_all(fh, name, recs)
    missing = [r for r in recs if r.startswith(b"x")]
    objs = wait_store(store, name, "GZIP", lambda o: len(error_lines(o, "err/")) >= len(missing)
                      and total(o, "first=") >= sum(len(r) + 1 for r in recs
                                                    if not r.startswith(b"x")), name)
    for k in "ab":
        mine = {key: d for key, d in objs.items() if key.startswith("first=%s/" % k)}
        check(mine, "no object for first=%s: %r" % (k, sorted(objs)[:6]))
        check_exactly_once([r.upper() + b"\n" for r in recs if r.startswith(k.encode())],
                           mine, "Lambda partition %s" % k)
    check(not any(k.startswith("first=x") for k in objs), "a record without keys partitioned")
    errs = error_lines(objs, "err/partitioning-failed/")
    check(sorted(base64.b64decode(e["rawData"]) for e in errs) ==
          sorted(r.upper() for r in missing), "the error records are the keyless ones")
    print("ok: partitionKeyFromLambda alone: %d records in 2 partitions, %d without keys as "
          "error records" % (len(recs) - len(missing), len(missing)))


# ---- 3. UpdateDestination of every kind of stream ----------------------------------------


def update(fh, name, version, **kw):
    """UpdateDestination, again while a range is being delivered (ResourceInUse)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            return fh.update_destination(DeliveryStreamName=name, DestinationId=DEST,
                                         CurrentDeliveryStreamVersionId=str(version), **kw)
        except fh.exceptions.ResourceInUseException:
            check(time.monotonic() < deadline, "%s: update refused for %d s" % (name, DEADLINE_S))
            time.sleep(0.05)


def test_update_partitioned(fh, store):
    name = "upd-part"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=ext(
        name, query("{c:.c}"), prefix="c=!{partitionKeyFromQuery:c}/",
        error_prefix="err/!{firehose:error-output-type}/", partitioning=True))
    first = [json.dumps({"c": "p", "d": "q", "n": i}).encode() for i in range(100)]
    put_all(fh, name, first)
    wait_store(store, name, "GZIP", lambda o: total(o, "c=p/") == sum(map(len, first)), "v1")
    expect_error(fh.update_destination, "InvalidArgumentException", "Dynamic partitioning "
                 "cannot be disabled for an existing Firehose stream.", DeliveryStreamName=name,
                 DestinationId=DEST, CurrentDeliveryStreamVersionId="1",
                 ExtendedS3DestinationUpdate={"DynamicPartitioningConfiguration":
                                              {"Enabled": False}})
    expect_error(fh.update_destination, "InvalidArgumentException", "is not one of the keys",
                 DeliveryStreamName=name, DestinationId=DEST,
                 CurrentDeliveryStreamVersionId="1", ExtendedS3DestinationUpdate={
                     "ProcessingConfiguration": processors(query("{e:.d}"))})
    update(fh, name, 1, ExtendedS3DestinationUpdate={
        "Prefix": "d=!{partitionKeyFromQuery:d}/", "CompressionFormat": "UNCOMPRESSED",
        "ProcessingConfiguration": processors(query("{d:.d}"), delimiter())})
    d, dest = described(fh, name)
    check(d["VersionId"] == "2" and dest["Prefix"] == "d=!{partitionKeyFromQuery:d}/" and
          dest["DynamicPartitioningConfiguration"] == {"Enabled": True} and
          [p["Type"] for p in dest["ProcessingConfiguration"]["Processors"]] ==
          ["MetadataExtraction", "AppendDelimiterToRecord"], "described: %r" % dest)
    second = [json.dumps({"c": "p", "d": "q", "n": 100 + i}).encode() for i in range(100)]
    put_all(fh, name, second)
    objs = wait_store(store, name, "UNCOMPRESSED", lambda o: total(o, "d=q/") ==
                      sum(len(r) + 1 for r in second), "v2")
    check(all("/%s-2-" % name in k and not k.endswith(".gz") for k in objs if k.startswith("d=")),
          "version 2 objects: %r" % sorted(objs))
    check_exactly_once([r + b"\n" for r in second],
                       {k: d for k, d in objs.items() if k.startswith("d=")}, "after the update")
    # A stream made without partitioning cannot have it enabled (AWS: CDK's
    # DynamicPartitioningProps).
    store.client().create_bucket(Bucket="upd-plain")
    fh.create_delivery_stream(DeliveryStreamName="upd-plain",
                              ExtendedS3DestinationConfiguration=ext("upd-plain"))
    expect_error(fh.update_destination, "InvalidArgumentException", "Dynamic partitioning "
                 "cannot be enabled for an existing Firehose stream.",
                 DeliveryStreamName="upd-plain", DestinationId=DEST,
                 CurrentDeliveryStreamVersionId="1", ExtendedS3DestinationUpdate={
                     "Prefix": "c=!{partitionKeyFromQuery:c}/",
                     "ErrorOutputPrefix": "e/!{firehose:error-output-type}/",
                     "DynamicPartitioningConfiguration": {"Enabled": True},
                     "ProcessingConfiguration": processors(query("{c:.c}"))})
    expect_error(fh.update_destination, "InvalidArgumentException", "an update cannot switch "
                 "it to an HttpEndpoint destination", DeliveryStreamName="upd-plain",
                 DestinationId=DEST, CurrentDeliveryStreamVersionId="1",
                 HttpEndpointDestinationUpdate={"EndpointConfiguration": {"Url": "https://x"}})
    check(described(fh, "upd-plain")[0]["VersionId"] == "1", "refused updates kept version 1")
    print("ok: UpdateDestination of a partitioned stream (query, prefix, compression, "
          "delimiter); switching partitioning or the destination type refused")


def test_update_lambda(srv, fh, store):
    name = "upd-lambda"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=ext(
        name, lambda_proc("keys"), delimiter()))
    put_all(fh, name, [b"abc-%d" % i for i in range(50)])
    wait_store(store, name, "GZIP", lambda o: total(o) == sum(len(b"ABC-%d\n" % i)
                                                               for i in range(50)), "v1")
    # The CLI: another function, by its ARN (an ARN lambda_map does not name is refused).
    err = firehose_cli(srv, "update-destination", "--delivery-stream-name", name,
                       "--current-delivery-stream-version-id", "1", "--destination-id", DEST,
                       "--extended-s3-destination-update", json.dumps({
                           "ProcessingConfiguration": processors(lambda_proc("nope"))}),
                       ok=False)
    check("has no executable in [firehose] lambda_map" in err, err)
    firehose_cli(srv, "update-destination", "--delivery-stream-name", name,
                 "--current-delivery-stream-version-id", "1", "--destination-id", DEST,
                 "--extended-s3-destination-update", json.dumps({
                     "ProcessingConfiguration": processors(lambda_proc("reverse"))}))
    _, dest = described(fh, name)
    check([p["Type"] for p in dest["ProcessingConfiguration"]["Processors"]] == ["Lambda"] and
          dest["ProcessingConfiguration"]["Processors"][0]["Parameters"][0]["ParameterValue"]
          == ARN % "reverse", "the new processors replace the old: %r" % dest)
    second = [b"xyz-%03d" % i for i in range(50)]  # 7 bytes each: no delimiter now.
    put_all(fh, name, second)
    objs = wait_store(store, name, "GZIP", lambda o: sum(
        len(d) for k, d in o.items() if "/%s-2-" % name in k) >= 7 * 50, "v2")
    chunks = []
    for key, blob in objs.items():
        if "/%s-2-" % name in key:
            check(len(blob) % 7 == 0, "%s: whole records" % key)
            chunks += [blob[i:i + 7] for i in range(0, len(blob), 7)]
    check(sorted(chunks) == sorted(r[::-1] for r in second),
          "version 2 runs the new function, without the old delimiter: %r" % chunks[:3])
    print("ok: UpdateDestination of a stream with a Lambda processor (boto3 and aws firehose)")


def test_update_http(fh, ep, store):
    name = "upd-http"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, HttpEndpointDestinationConfiguration=
                              http_dest(ep.url + "/ok?v1", name))
    put_all(fh, name, [b"one-%d" % i for i in range(10)])
    wait_for("version 1 at the endpoint", lambda: ep.taken("/ok?v1")[0])
    expect_error(fh.update_destination, "InvalidArgumentException", "an update cannot switch "
                 "it to an S3 destination", DeliveryStreamName=name, DestinationId=DEST,
                 CurrentDeliveryStreamVersionId="1", ExtendedS3DestinationUpdate={})
    expect_error(fh.update_destination, "ValidationException", "'httpEndpointDestinationUpdate."
                 "requestConfiguration.contentEncoding' failed to satisfy constraint",
                 DeliveryStreamName=name, DestinationId=DEST,
                 CurrentDeliveryStreamVersionId="1", HttpEndpointDestinationUpdate={
                     "RequestConfiguration": {"ContentEncoding": "BROTLI"}})
    update(fh, name, 1, HttpEndpointDestinationUpdate={
        "EndpointConfiguration": {"Url": ep.url + "/ok?v2"},
        "RequestConfiguration": {"ContentEncoding": "GZIP", "CommonAttributes": [
            {"AttributeName": "v", "AttributeValue": "2"}]},
        "S3Update": {"Prefix": "backup-v2/"}})
    d, dest = described(fh, name)
    check(d["VersionId"] == "2" and dest["EndpointConfiguration"]["Url"] == ep.url + "/ok?v2" and
          dest["EndpointConfiguration"]["Name"] == "test endpoint" and
          dest["RequestConfiguration"]["ContentEncoding"] == "GZIP" and
          dest["S3DestinationDescription"]["Prefix"] == "backup-v2/" and
          dest["S3DestinationDescription"]["ErrorOutputPrefix"] == "errors/" and
          "AccessKey" not in dest["EndpointConfiguration"], "described: %r" % dest)
    put_all(fh, name, [b"two-%d" % i for i in range(10)])
    ok = wait_for("version 2 at the endpoint", lambda: ep.taken("/ok?v2")[0])
    got = [r for _, data, _ in ok for r in data]
    headers = ok[0][2]
    check(got == [b"two-%d" % i for i in range(10)], "version 2's records: %r" % got)
    check(headers.get("Content-Encoding") == "gzip" and
          headers.get("X-Amz-Firehose-Access-Key") == "k3y-for-the-endpoint" and
          json.loads(headers.get("X-Amz-Firehose-Common-Attributes")) ==
          {"commonAttributes": {"v": "2"}}, "version 2's headers (access key kept): %r" % headers)
    print("ok: UpdateDestination of an HTTP endpoint (URL, request configuration, S3Update; "
          "the access key kept)")


# ---- 4. SIGKILL right after an update ------------------------------------------------------


def versioned_records(objs):
    """The records of objects under v<N>/, each split by its version's delimiter."""
    records = []
    for key, blob in objs.items():
        v = int(key.split("/")[0][1:])
        sep = b"\n" if v == 1 else b"#%d#" % v
        check("-%d-" % v in key.split("/")[-1], "%s: prefix and version agree" % key)
        parts = blob.split(sep)
        check(parts[-1] == b"", "%s ends on a delimiter" % key)
        records += parts[:-1]
    return records


def test_kill_after_update(binary, base, store, lambda_map):
    data = os.path.join(base, "kill")
    os.makedirs(data)
    srv = Sluiced(binary, data)
    name, rng = "upd-kill", random.Random(1618)
    store.client().create_bucket(Bucket=name)
    sent, after = [], {}
    args = sluiced_args(store) + ["--set", "firehose.lambda_map=" + lambda_map]
    try:
        for version in range(1, 5):
            srv.start(*args)
            fh = client(srv)
            if version == 1:
                fh.create_delivery_stream(DeliveryStreamName=name,
                                          ExtendedS3DestinationConfiguration=ext(
                                              name, delimiter(), compression="UNCOMPRESSED",
                                              prefix="v1/", interval_s=0))
            check(described(fh, name)[0]["VersionId"] == str(version), "version after restart")
            batch = [b"v%d-%05d-%s" % (version, i, b"k" * rng.randrange(0, 3000))
                     for i in range(600)]
            put_all(fh, name, batch, per_batch=100)  # Acknowledged: it must be delivered.
            after[version] = batch
            sent += batch
            if version == 4:
                break
            # Interval 0 keeps ranges being cut while the update lands; then at once a kill.
            update(fh, name, version, ExtendedS3DestinationUpdate={
                "Prefix": "v%d/" % (version + 1),
                "ProcessingConfiguration": processors(delimiter("#%d#" % (version + 1)))})
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            srv.proc = None
        objs = wait_store(store, name, "UNCOMPRESSED",
                          lambda o: len(versioned_records(o)) >= len(sent), "after the kills")
        records = versioned_records(objs)
        check(sorted(records) == sorted(sent) and len(records) == len(sent),
              "every acknowledged record exactly once (%d of %d)" % (len(records), len(sent)))
        for v in range(2, 5):
            mine = b"".join(d for k, d in objs.items() if k.startswith("v%d/" % v))
            check(all(r + b"#%d#" % v in mine for r in after[v]),
                  "records put after update %d are in version %d objects" % (v - 1, v))
        srv.stop()
    finally:
        srv.kill()
    print("ok: SIGKILLed right after each of 3 updates: %d records exactly once, each "
          "version's records under its prefix with its delimiter" % len(sent))


def main():
    binary = sys.argv[1]
    got = s3rver_store(sys.argv[2], "fhfeat-test-")
    if got is None:
        return
    base, store = got
    ep = Endpoint()
    try:
        lambda_map = write_functions(base)
        os.makedirs(store.directory)
        store.start()
        data = os.path.join(base, "data")
        os.makedirs(data)
        srv = Sluiced(binary, data)
        srv.start(*sluiced_args(store), "--set", "firehose.lambda_map=" + lambda_map)
        try:
            fh = client(srv)
            test_delimiter_api(fh, ep)
            test_delimiter(srv, fh, store)
            test_deaggregation(fh, store)
            test_lambda_keys(fh, store)
            test_lambda_keys_only(fh, store)
            test_update_partitioned(fh, store)
            test_update_lambda(srv, fh, store)
            test_update_http(fh, ep, store)
            check(ep.problems == [], "request format problems: %r" % ep.problems[:5])
            srv.stop()
        finally:
            srv.kill()
        test_kill_after_update(binary, base, store, lambda_map)
    finally:
        ep.server.shutdown()
        store.stop()
        shutil.rmtree(base, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
