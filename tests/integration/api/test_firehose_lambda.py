#!/usr/bin/python3
"""Lambda processors (issue 16) as local executables ([firehose] lambda_map), through
boto3's firehose client. The functions are small Python scripts written here:

  transform  answers per record by its data: ok-* Ok (upper-cased), drop-* Dropped,
             fail-* ProcessingFailed, skip-* no answer at all (a missing recordId)
  sleeper    never answers (killed at [firehose] lambda_timeout_s = 1)
  badjson    answers text that is not JSON
  every one logs the event it got, so the test checks Firehose's event format.

  1. The API: ProcessingConfiguration's validation (AWS's enums, then ours: one Lambda
     processor, its parameters' ranges, an ARN lambda_map names), Describe shows it.
  2. Transformation into a directory: the object holds exactly the Ok records,
     transformed, in order; Dropped ones are nowhere; failed ones are Firehose's error
     records under <ErrorOutputPrefix>processing-failed/ (rawData = the source record);
     each invocation holds at most BufferSizeInMBs of input.
  3. Failed invocations: a function killed at the timeout (NumberOfRetries 1: two
     attempts, the same invocationId, no process left) and one answering garbage send
     their records to processing-failed with the invocation's error.
  4. Lambda before an HTTP endpoint: the endpoint gets the transformed records.
  5. A malformed lambda_map stops sluiced at start.

Usage: test_firehose_lambda.py SLUICED
"""
import base64
import json
import os
import shutil
import stat
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import Sluiced, check  # noqa: E402
from test_firehose import (client, expect_error, firehose_figures, objects,  # noqa: E402
                           s3dest, start_sluiced)
from test_firehose_http import Endpoint, http_dest, put_all, wait_for  # noqa: E402

ARN = "arn:aws:lambda:us-east-1:000000000000:function:%s"

FUNCTIONS = {
    "transform": r'''
event = json.load(sys.stdin)
out = []
for r in event["records"]:
    data = base64.b64decode(r["data"])
    kind = data.split(b"-")[0]
    if kind == b"skip":
        continue
    result = {b"ok": "Ok", b"drop": "Dropped", b"fail": "ProcessingFailed"}[kind]
    out.append({"recordId": r["recordId"], "result": result,
                "data": base64.b64encode(data.upper() + b"\n").decode()})
json.dump({"records": out}, sys.stdout)
''',
    "sleeper": r'''
sys.stdin.read()
time.sleep(60)
''',
    "badjson": r'''
sys.stdin.read()
print("this is not json")
''',
    # Asks sluiced's API (ListDeliveryStreams: the engine's lock) before it answers: it
    # answers only if the flusher runs it without the lock and the API thread is free.
    "caller": r'''
import http.client
event = json.load(sys.stdin)
port = int(open(os.path.join(os.path.dirname(sys.argv[0]), "port")).read())
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
conn.request("POST", "/", body="{}", headers={
    "X-Amz-Target": "Firehose_20150804.ListDeliveryStreams",
    "Content-Type": "application/x-amz-json-1.1",
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/firehose/"
                     "aws4_request, SignedHeaders=host, Signature=00"})
names = json.loads(conn.getresponse().read())["DeliveryStreamNames"]
seen = b" seen %d\n" % len(names)
json.dump({"records": [{"recordId": r["recordId"], "result": "Ok",
                        "data": base64.b64encode(base64.b64decode(r["data"]) + seen).decode()}
                       for r in event["records"]]}, sys.stdout)
''',
}


def write_functions(base):
    paths = {}
    for name, body in FUNCTIONS.items():
        path = os.path.join(base, name + ".py")
        log = os.path.join(base, name + ".log")
        with open(path, "w") as f:
            f.write("#!/usr/bin/python3\nimport base64, json, os, sys, time\n")
            # Logged before reading: the event as the function got it, and its pid.
            f.write("raw = sys.stdin.read()\n")
            f.write("with open(%r, 'a') as log:\n" % log)
            f.write("    log.write(json.dumps({'pid': os.getpid(), 'event': json.loads(raw)})"
                    " + '\\n')\n")
            f.write("import io\nsys.stdin = io.StringIO(raw)\n")
            f.write(body)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        paths[name] = (path, log)
    return paths


def calls(paths, name):
    if not os.path.exists(paths[name][1]):
        return []
    with open(paths[name][1]) as f:
        return [json.loads(line) for line in f]


def processing(arn, **params):
    p = [{"ParameterName": "LambdaArn", "ParameterValue": arn}]
    p += [{"ParameterName": k, "ParameterValue": str(v)} for k, v in params.items()]
    return {"Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": p}]}


def ext_dest(bucket, pc, **kw):
    return dict(s3dest(bucket, **kw), ErrorOutputPrefix="err/", ProcessingConfiguration=pc)


def error_records(root, bucket):
    out = []
    for path in objects(root, bucket):
        rel = os.path.relpath(path, os.path.join(root, bucket))
        if rel.startswith("err/processing-failed/") and not path.endswith(".tmp"):
            out.extend(json.loads(line) for line in open(path, "rb").read().splitlines())
    return out


def delivered(root, bucket):
    return b"".join(open(p, "rb").read() for p in objects(root, bucket)
                    if "/err/" not in p and not p.endswith(".tmp"))


# ---- 1. The API ---------------------------------------------------------------------


def test_api(fh):
    create = fh.create_delivery_stream

    def bad(code, text, pc):
        expect_error(create, code, text, DeliveryStreamName="v",
                     ExtendedS3DestinationConfiguration=ext_dest("b", pc))

    bad("ValidationException", "processingConfiguration.processors.1.member.type' failed to "
        "satisfy constraint: Member must satisfy enum value set",
        {"Enabled": True, "Processors": [{"Type": "Transmogrify"}]})
    bad("ValidationException", "processors.1.member.parameters.1.member.parameterName' failed "
        "to satisfy constraint: Member must satisfy enum value set", {"Enabled": True,
        "Processors": [{"Type": "Lambda", "Parameters": [{"ParameterName": "Colour",
                                                          "ParameterValue": "x"}]}]})
    bad("SerializationException", None, {"Enabled": "yes"})
    bad("InvalidArgumentException", "Processor type Decompression is not supported",
        {"Enabled": True, "Processors": [{"Type": "Decompression"}]})
    bad("InvalidArgumentException", "Only one processor of type Lambda",
        {"Enabled": True, "Processors": [processing(ARN % "transform")["Processors"][0]] * 2})
    bad("InvalidArgumentException", "BufferSizeInMBs must be a number from 0.2 to 3",
        processing(ARN % "transform", BufferSizeInMBs=5))
    bad("InvalidArgumentException", "NumberOfRetries must be a number from 0 to 300",
        processing(ARN % "transform", NumberOfRetries=-1))
    bad("InvalidArgumentException", "has no executable in [firehose] lambda_map",
        processing(ARN % "elsewhere"))
    bad("InvalidArgumentException", "needs the parameter LambdaArn",
        {"Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": []}]})
    check(fh.list_delivery_streams()["DeliveryStreamNames"] == [], "a refused create stayed")
    fh.create_delivery_stream(DeliveryStreamName="lambda-api", ExtendedS3DestinationConfiguration=
                              ext_dest("api", processing(ARN % "transform", NumberOfRetries=2,
                                                         BufferSizeInMBs=0.2)))
    pc = fh.describe_delivery_stream(DeliveryStreamName="lambda-api")[
        "DeliveryStreamDescription"]["Destinations"][0]["ExtendedS3DestinationDescription"][
        "ProcessingConfiguration"]
    check(pc == {"Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": [
        {"ParameterName": "LambdaArn", "ParameterValue": ARN % "transform"},
        {"ParameterName": "NumberOfRetries", "ParameterValue": "2"},
        {"ParameterName": "BufferSizeInMBs", "ParameterValue": "0.2"},
        {"ParameterName": "BufferIntervalInSeconds", "ParameterValue": "60"}]}]},
        "described ProcessingConfiguration %r" % pc)
    fh.delete_delivery_stream(DeliveryStreamName="lambda-api")
    print("ok: ProcessingConfiguration validated and described")


# ---- 2. Transformation ------------------------------------------------------------------


def test_transform(fh, root, paths):
    name = "lambda-transform"
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=
                              ext_dest(name, processing(ARN % "transform", BufferSizeInMBs=0.2),
                                       size_mb=8, interval_s=1))
    kinds = ["ok", "drop", "fail", "skip", "ok", "ok"]
    sent = [b"%s-%05d-%s" % (kinds[i % 6].encode(), i, b"p" * (i % 900)) for i in range(1200)]
    put_all(fh, name, sent)
    want = b"".join(r.upper() + b"\n" for r in sent if r.startswith(b"ok-"))
    failed = [r for r in sent if r.startswith((b"fail-", b"skip-"))]
    got = wait_for("the transformed records", lambda: (lambda d: d if len(d) >= len(want)
                                                        else None)(delivered(root, name)))
    check(got == want, "the object holds exactly the Ok records, transformed, in order "
          "(%d bytes, want %d)" % (len(got), len(want)))
    errs = wait_for("processing-failed records", lambda: (lambda e: e if len(e) >= len(failed)
                                                          else None)(error_records(root, name)))
    check(sorted(base64.b64decode(e["rawData"]) for e in errs) == sorted(failed),
          "processing-failed holds the failed and unanswered records once each")
    for e in errs:
        raw = base64.b64decode(e["rawData"])
        want_code = ("Lambda.ProcessingFailed" if raw.startswith(b"fail-") else
                     "Lambda.MissingRecordId")
        check(e["errorCode"] == want_code and e["lambdaArn"] == ARN % "transform" and
              e["attemptsMade"] == 1 and isinstance(e["arrivalTimestamp"], int),
              "error record %r" % {k: v for k, v in e.items() if k != "rawData"})
    events = [c["event"] for c in calls(paths, "transform")]
    total = sum(map(len, sent))
    check(len(events) >= -(-total // 209715), "0.2 MB of input an invocation: %d invocations "
          "for %d bytes" % (len(events), total))
    arn = fh.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
        "DeliveryStreamARN"]
    seen = []
    for ev in events:
        check(sorted(ev) == ["deliveryStreamArn", "invocationId", "records", "region"] and
              ev["deliveryStreamArn"] == arn and ev["region"] == "us-east-1" and
              len(ev["invocationId"]) == 36, "event members %r" % sorted(ev))
        data = [base64.b64decode(r["data"]) for r in ev["records"]]
        check(sum(map(len, data)) <= 209715 or len(data) == 1,
              "an invocation over BufferSizeInMBs: %d bytes" % sum(map(len, data)))
        for r in ev["records"]:
            check(sorted(r) == ["approximateArrivalTimestamp", "data", "recordId"] and
                  isinstance(r["approximateArrivalTimestamp"], int), "event record %r" % r)
        seen += data
    check(seen == sent, "the function saw every record once, in order")
    print("ok: %d records: Ok transformed, Dropped nowhere, %d to processing-failed, in %d "
          "invocations" % (len(sent), len(failed), len(events)))


def test_api_while_processing(fh, root):
    """A Lambda run holds neither the engine lock nor the API thread (the flusher's own)."""
    name = "lambda-caller"
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=
                              ext_dest(name, processing(ARN % "caller", NumberOfRetries=5),
                                       interval_s=0))
    sent = [b"c-%03d" % i for i in range(20)]
    put_all(fh, name, sent)
    got = wait_for("the records the calling function passed", lambda: (
        lambda d: d if d.count(b"\n") >= len(sent) else None)(delivered(root, name)))
    check(error_records(root, name) == [], "an invocation failed: the API did not answer it")
    lines = got.splitlines()
    check(sorted(line.split(b" seen ")[0] for line in lines) == sent and
          all(int(line.split(b" seen ")[1]) >= 1 for line in lines),
          "every record once, passed by a function that listed the streams: %r" % lines[:3])
    fh.delete_delivery_stream(DeliveryStreamName=name)
    print("ok: a Lambda function calls the API while it runs (ListDeliveryStreams answered)")


# ---- 3. Failed invocations ---------------------------------------------------------------


def test_failed_invocations(fh, root, paths):
    for fn, retries, code in (("sleeper", 1, "Lambda.Timeout"),
                              ("badjson", 0, "Lambda.InvalidResponse")):
        name = "lambda-" + fn
        fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=
                                  ext_dest(name, processing(ARN % fn, NumberOfRetries=retries)))
        sent = [b"ok-%s-%d" % (fn.encode(), i) for i in range(20)]
        put_all(fh, name, sent)
        errs = wait_for(name + ": processing-failed", lambda: (
            lambda e: e if len(e) >= len(sent) else None)(error_records(root, name)))
        check([base64.b64decode(e["rawData"]) for e in errs] == sent,
              "%s: every record to processing-failed, in order" % fn)
        check(all(e["errorCode"] == code and e["attemptsMade"] == retries + 1 for e in errs),
              "%s: %r" % (fn, {k: v for k, v in errs[0].items() if k != "rawData"}))
        check(delivered(root, name) == b"", "%s: no object" % fn)
        got = calls(paths, fn)
        check(len(got) == retries + 1 and len({c["event"]["invocationId"] for c in got}) == 1,
              "%s: %d invocations with one invocationId" % (fn, len(got)))
        for c in got:
            check(not os.path.exists("/proc/%d" % c["pid"]),
                  "%s: process %d still there" % (fn, c["pid"]))
        print("ok: %s: %d attempts, then %s for every record" % (fn, retries + 1, code))


# ---- 4. Before an HTTP endpoint -------------------------------------------------------------


def test_http(fh, ep):
    fh.create_delivery_stream(DeliveryStreamName="lambda-http", HttpEndpointDestinationConfiguration=
                              http_dest(ep.url + "/ok?lambda", "lh", ProcessingConfiguration=
                                        processing(ARN % "transform")))
    sent = [b"%s-%d" % (k, i) for i, k in enumerate([b"ok", b"drop", b"ok"] * 30)]
    put_all(fh, "lambda-http", sent)
    ok = wait_for("transformed records at the endpoint", lambda: ep.taken("/ok?lambda")[0])
    got = [rec for _, data, _ in ok for rec in data]
    check(got == [r.upper() + b"\n" for r in sent if r.startswith(b"ok-")],
          "the endpoint got the transformed Ok records: %r" % got[:3])
    print("ok: Lambda before an HTTP endpoint")


def test_metrics(admin_port):
    for name, want in (("lambda-transform", 400), ("lambda-sleeper", 20),
                       ("lambda-badjson", 20), ("lambda-http", 0)):
        _, values = firehose_figures(admin_port, name)
        got = values.get("sluice_firehose_processing_failed_records_total")
        check(got == want, "%s: processing_failed_records_total %r, want %d" % (name, got, want))
    print("ok: /metrics counts the records sent to processing-failed")


def test_bad_map(binary, base):
    """A lambda_map sluiced cannot read stops it at start, with the reason."""
    data = os.path.join(base, "data-bad-map")
    os.makedirs(data)
    for bad in ("no-equals-sign", "=/bin/true", ARN % "x" + "=", ",".join(
            "%s=/bin/true" % (ARN % i) for i in range(17))):
        srv = Sluiced(binary, data)
        try:
            srv.start("--set", "firehose.lambda_map=" + bad)
        except SystemExit:
            srv.proc.wait(timeout=30)
            with open(os.path.join(data, "sluiced.log")) as f:
                check("lambda_map: expected ARN=PATH" in f.read(),
                      "the reason is logged for %r" % bad[:40])
            continue
        finally:
            srv.kill()
        raise SystemExit("FAIL: sluiced started with lambda_map %r" % bad[:40])
    print("ok: a malformed lambda_map stops sluiced at start, saying why")


def main():
    binary = sys.argv[1]
    base = tempfile.mkdtemp(prefix="fhlambda-test-")
    ep = Endpoint()
    try:
        paths = write_functions(base)
        lambda_map = ",".join("%s=%s" % (ARN % n, p) for n, (p, _) in paths.items())
        srv, root, admin_port = start_sluiced(binary, base, "--set",
                                              "firehose.lambda_map=" + lambda_map, "--set",
                                              "firehose.lambda_timeout_s=1")
        with open(os.path.join(base, "port"), "w") as f:
            f.write(str(srv.port))
        try:
            fh = client(srv)
            test_api(fh)
            test_transform(fh, root, paths)
            test_api_while_processing(fh, root)
            test_failed_invocations(fh, root, paths)
            test_http(fh, ep)
            test_metrics(admin_port)
            check(ep.problems == [], "request format problems: %r" % ep.problems[:5])
            srv.stop()
        finally:
            srv.kill()
        test_bad_map(binary, base)
    finally:
        ep.server.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
