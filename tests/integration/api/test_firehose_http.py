#!/usr/bin/python3
"""HTTP endpoint destinations (issue 16) through boto3's firehose client, against an
endpoint served here (http.server on 127.0.0.1, port 0) that checks Firehose's
documented request format (AWS "Understand HTTP endpoint delivery request and response
specifications") on every request it gets:

  1. The API: AWS's validation of HttpEndpointDestinationConfiguration, Describe's
     HttpEndpointDestinationDescription (no AccessKey), kept across a restart.
  2. Delivery: every record reaches the endpoint once, in order, base64 in the body,
     gzip when ContentEncoding=GZIP, the headers (request id = body's requestId, source
     ARN, access key, common attributes); at most 10,000 records a request.
  3. Failures: an endpoint answering 500 for a while gets the same request id again and
     then everything; one that never takes anything (and one with RetryOptions 0) gets
     the range backed up under <ErrorOutputPrefix>http-endpoint-failed/ as Firehose's
     error records (rawData = the records); S3BackupMode AllData also writes the objects.

Usage: test_firehose_http.py SLUICED
"""
import base64
import gzip
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import check  # noqa: E402
from test_firehose import (ROLE, client, expect_error,  # noqa: E402
                           firehose_figures, objects, s3dest, start_sluiced, wait_for)

ACCESS_KEY = "k3y-for-the-endpoint"
ATTRIBUTES = [{"AttributeName": "team", "AttributeValue": "ingest"},
              {"AttributeName": "env", "AttributeValue": "test \"quoted\""}]


class Endpoint:
    """The receiving side: path /ok takes everything, /flaky answers 500 to its first
    FLAKY requests, /down answers 503 always. Every request is checked and kept."""
    FLAKY = 3

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []      # (path, request id, [record bytes], headers)
        self.problems = []
        self.flaky_left = self.FLAKY
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                endpoint.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def problem(self, text):
        with self.lock:
            self.problems.append(text)

    def handle(self, h):
        body = h.rfile.read(int(h.headers["Content-Length"]))
        if h.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        rid = h.headers.get("X-Amz-Firehose-Request-Id", "")
        try:
            doc = json.loads(body)
        except ValueError:
            self.problem("body is not JSON")
            doc = {}
        for name, want in (("Content-Type", "application/json"),
                           ("X-Amz-Firehose-Protocol-Version", "1.0")):
            if h.headers.get(name) != want:
                self.problem("%s: %r" % (name, h.headers.get(name)))
        if sorted(doc) != ["records", "requestId", "timestamp"]:
            self.problem("body members %r" % sorted(doc))
        if doc.get("requestId") != rid or len(rid) != 36:
            self.problem("request id header %r, body %r" % (rid, doc.get("requestId")))
        if not isinstance(doc.get("timestamp"), int):
            self.problem("timestamp %r" % doc.get("timestamp"))
        recs = doc.get("records", [])
        if not 1 <= len(recs) <= 10000 or any(sorted(r) != ["data"] for r in recs):
            self.problem("records: %d, members %r" % (len(recs), recs[:1]))
        data = [base64.b64decode(r.get("data", ""), validate=True) for r in recs]
        with self.lock:
            self.requests.append((h.path, rid, data, dict(h.headers)))
            route = h.path.split("?")[0]
            fail = route == "/down" or (route == "/flaky" and self.flaky_left > 0)
            if h.path == "/flaky" and self.flaky_left > 0:
                self.flaky_left -= 1
        answer = {"requestId": rid, "timestamp": int(time.time() * 1000)}
        if fail:
            answer["errorMessage"] = "not now, \"please\""
        out = json.dumps(answer).encode()
        h.send_response(503 if route == "/down" else 500 if fail else 200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(out)))
        h.end_headers()
        h.wfile.write(out)

    def taken(self, path):
        """Records the endpoint took (200) at `path`, by distinct request id, in order."""
        with self.lock:
            reqs = [r for r in self.requests if r[0] == path]
        ok, seen, fails = [], set(), self.FLAKY if path == "/flaky" else 0
        for i, (_, rid, data, headers) in enumerate(reqs):
            if i >= fails and rid not in seen:
                seen.add(rid)
                ok.append((rid, data, headers))
        return ok, reqs


def http_dest(url, bucket, size_mb=1, interval_s=1, retry_s=60, **extra):
    d = {"EndpointConfiguration": {"Url": url, "Name": "test endpoint",
                                   "AccessKey": ACCESS_KEY},
         "BufferingHints": {"SizeInMBs": size_mb, "IntervalInSeconds": interval_s},
         "RetryOptions": {"DurationInSeconds": retry_s},
         "S3Configuration": dict(s3dest(bucket, "GZIP"), ErrorOutputPrefix="errors/"),
         "RoleARN": ROLE}
    d.update(extra)
    return d


def put_all(fh, name, records, per_batch=500):
    for i in range(0, len(records), per_batch):
        r = fh.put_record_batch(DeliveryStreamName=name,
                                Records=[{"Data": d} for d in records[i:i + per_batch]])
        check(r["FailedPutCount"] == 0, "put_record_batch: %d failed" % r["FailedPutCount"])


# ---- 1. The API ---------------------------------------------------------------------


def test_api(fh, ep):
    create = fh.create_delivery_stream

    def bad(text, code="ValidationException", **dest):
        expect_error(create, code, text, DeliveryStreamName="v",
                     HttpEndpointDestinationConfiguration=dest)

    base = http_dest(ep.url + "/ok", "b")
    bad("endpointConfiguration.url' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: https://.*",
        **dict(base, EndpointConfiguration={"Url": "ftp://x"}))
    bad("endpointConfiguration.url' failed to satisfy constraint: Member must not be null",
        **dict(base, EndpointConfiguration={"Name": "n"}))
    bad("endpointConfiguration' failed to satisfy constraint: Member must not be null",
        **{k: v for k, v in base.items() if k != "EndpointConfiguration"})
    bad("bufferingHints.sizeInMBs' failed to satisfy constraint: Member must have value less "
        "than or equal to 64", **dict(base, BufferingHints={"SizeInMBs": 65,
                                                            "IntervalInSeconds": 0}))
    bad("contentEncoding' failed to satisfy constraint: Member must satisfy enum value set: "
        "[NONE, GZIP]", **dict(base, RequestConfiguration={"ContentEncoding": "BROTLI"}))
    bad("retryOptions.durationInSeconds' failed to satisfy constraint: Member must have value "
        "less than or equal to 7200", **dict(base, RetryOptions={"DurationInSeconds": 7201}))
    bad("s3BackupMode' failed to satisfy constraint: Member must satisfy enum value set: "
        "[FailedDataOnly, AllData]", **dict(base, S3BackupMode="Sometimes"))
    bad("s3Configuration' failed to satisfy constraint: Member must not be null",
        **{k: v for k, v in base.items() if k != "S3Configuration"})
    bad("commonAttributes' failed to satisfy constraint: Member must have length less than or "
        "equal to 50", **dict(base, RequestConfiguration={"CommonAttributes": [
            {"AttributeName": "a%d" % i, "AttributeValue": "v"} for i in range(51)]}))
    bad("commonAttributes.1.member.attributeName' failed to satisfy constraint: Member must "
        "have length greater than or equal to 1", **dict(base, RequestConfiguration={
            "CommonAttributes": [{"AttributeName": "", "AttributeValue": "v"}]}))
    bad(None, "SerializationException", **dict(base, RetryOptions={"DurationInSeconds": "x"}))
    bad("not an S3 bucket ARN", "InvalidArgumentException",
        **dict(base, S3Configuration=dict(s3dest("b"), BucketARN="arn:aws:s3:::a/b")))
    bad("at most 8191 bytes", "InvalidArgumentException",
        **dict(base, RequestConfiguration={"CommonAttributes": [
            {"AttributeName": "a%d" % i, "AttributeValue": "v" * 1000} for i in range(10)]}))
    expect_error(create, "InvalidArgumentException", "Exactly one destination",
                 DeliveryStreamName="v", HttpEndpointDestinationConfiguration=base,
                 ExtendedS3DestinationConfiguration=s3dest("b"))
    check(fh.list_delivery_streams()["DeliveryStreamNames"] == [], "a refused create stayed")

    fh.create_delivery_stream(DeliveryStreamName="http-api", HttpEndpointDestinationConfiguration=
                              http_dest(ep.url + "/ok", "api", RequestConfiguration={
                                  "ContentEncoding": "GZIP", "CommonAttributes": ATTRIBUTES}))
    check_described(fh, ep)
    print("ok: HttpEndpointDestinationConfiguration validated and described")


def check_described(fh, ep):
    d = fh.describe_delivery_stream(DeliveryStreamName="http-api")["DeliveryStreamDescription"]
    dest = d["Destinations"][0]
    check("ExtendedS3DestinationDescription" not in dest, "an HTTP stream shows no S3 dest")
    h = dest["HttpEndpointDestinationDescription"]
    check(h["EndpointConfiguration"] == {"Url": ep.url + "/ok", "Name": "test endpoint"},
          "EndpointConfiguration (never the AccessKey): %r" % h["EndpointConfiguration"])
    check(h["RequestConfiguration"] == {"ContentEncoding": "GZIP",
                                        "CommonAttributes": ATTRIBUTES},
          "RequestConfiguration %r" % h["RequestConfiguration"])
    check(h["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 1}, "BufferingHints")
    check(h["RetryOptions"] == {"DurationInSeconds": 60}, "RetryOptions")
    check(h["S3BackupMode"] == "FailedDataOnly", "S3BackupMode default")
    s3 = h["S3DestinationDescription"]
    check(s3["BucketARN"] == "arn:aws:s3:::api" and s3["ErrorOutputPrefix"] == "errors/" and
          s3["CompressionFormat"] == "GZIP", "the backup's S3DestinationDescription %r" % s3)


# ---- 2. Delivery ----------------------------------------------------------------------


def test_delivery(fh, ep):
    arn = fh.describe_delivery_stream(DeliveryStreamName="http-api")[
        "DeliveryStreamDescription"]["DeliveryStreamARN"]
    sent = [b"api-%06d-%s" % (i, b"z" * (i % 1500)) for i in range(3000)]  # About 2.3 MB.
    put_all(fh, "http-api", sent)
    ok, _ = wait_for("every record at /ok", lambda: (lambda t: t if sum(
        len(d) for _, d, _ in t[0]) >= len(sent) else None)(ep.taken("/ok")))
    got = [rec for _, data, _ in ok for rec in data]
    check(got == sent, "the endpoint got %d records, sent %d, in order once" %
          (len(got), len(sent)))
    check(len(ok) >= 2, "SizeInMBs 1 cuts 2.3 MB into several requests (%d)" % len(ok))
    for rid, data, headers in ok:
        check(headers.get("Content-Encoding") == "gzip", "ContentEncoding GZIP: gzip body")
        check(headers.get("X-Amz-Firehose-Access-Key") == ACCESS_KEY, "access key header")
        check(headers.get("X-Amz-Firehose-Source-Arn") == arn, "source ARN header %r" %
              headers.get("X-Amz-Firehose-Source-Arn"))
        check(json.loads(headers.get("X-Amz-Firehose-Common-Attributes")) == {
            "commonAttributes": {a["AttributeName"]: a["AttributeValue"] for a in ATTRIBUTES}},
            "common attributes header %r" % headers.get("X-Amz-Firehose-Common-Attributes"))
    print("ok: %d records POSTed in %d requests, once each, in order, headers as documented" %
          (len(sent), len(ok)))

    # 10,000 records a request at most: a cut by count (the interval and size are far).
    fh.create_delivery_stream(DeliveryStreamName="http-count", HttpEndpointDestinationConfiguration=
                              http_dest(ep.url + "/ok?count", "count", interval_s=900))
    small = [b"c%05d" % i for i in range(10000)]
    put_all(fh, "http-count", small)
    ok = wait_for("10,000 small records", lambda: ep.taken("/ok?count")[0])
    check([len(d) for _, d, _ in ok] == [10000] and ok[0][1] == small,
          "one request of exactly 10,000 records: %r" % [len(d) for _, d, _ in ok])
    check("X-Amz-Firehose-Common-Attributes" in ok[0][2] and "Content-Encoding" not in ok[0][2],
          "no attributes: an empty object; ContentEncoding NONE: no Content-Encoding")
    print("ok: a request holds at most 10,000 records")


# ---- 3. Failures -----------------------------------------------------------------------


def error_records(root, bucket):
    out = []
    for path in objects(root, bucket):
        rel = os.path.relpath(path, os.path.join(root, bucket))
        if rel.startswith("errors/http-endpoint-failed/") and path.endswith(".gz"):
            out.extend(json.loads(line) for line in
                       gzip.decompress(open(path, "rb").read()).splitlines())
    return out


def test_failures(fh, ep, root):
    # Flaky: 500 three times, then taken; the retries carry the same request id.
    fh.create_delivery_stream(DeliveryStreamName="http-flaky", HttpEndpointDestinationConfiguration=
                              http_dest(ep.url + "/flaky", "flaky"))
    sent = [b"flaky-%d" % i for i in range(50)]
    put_all(fh, "http-flaky", sent)
    ok, reqs = wait_for("the flaky endpoint taking the range", lambda: (
        lambda t: t if t[0] else None)(ep.taken("/flaky")))
    check([rec for _, d, _ in ok for rec in d] == sent, "flaky: every record after retries")
    check(len({r[1] for r in reqs[:Endpoint.FLAKY + 1]}) == 1,
          "a retry sends the same X-Amz-Firehose-Request-Id (receivers may dedupe on it)")
    check(error_records(root, "flaky") == [], "flaky: nothing backed up")
    print("ok: 500 x%d, then taken: same request id on every retry" % Endpoint.FLAKY)

    # Down for good: after RetryOptions (2 s) the range goes to the backup.
    for name, retry_s in (("http-down", 2), ("http-noretry", 0)):
        fh.create_delivery_stream(DeliveryStreamName=name, HttpEndpointDestinationConfiguration=
                                  http_dest(ep.url + "/down?" + name, name, retry_s=retry_s))
        sent = [b"%s-%d" % (name.encode(), i) for i in range(40)]
        put_all(fh, name, sent)
        errs = wait_for(name + ": error records in the backup",
                        lambda: (lambda e: e if len(e) >= len(sent) else None)(
                            error_records(root, name)))
        check([base64.b64decode(e["rawData"]) for e in errs] == sent,
              "%s: rawData holds every record once, in order" % name)
        tried = len({r[1] for r in ep.requests if r[0] == "/down?" + name})
        posts = len([r for r in ep.requests if r[0] == "/down?" + name])
        for e in errs:
            check(e["errorCode"] == "HttpEndpoint.DestinationException" and
                  e["errorMessage"] == "not now, ?please?" and e["attemptsMade"] == posts and
                  isinstance(e["arrivalTimestamp"], int) and
                  e["attemptEndingTimestamp"] >= e["arrivalTimestamp"],
                  "%s: error record %r" % (name, {k: v for k, v in e.items() if k != "rawData"}))
        check(tried == 1, "%s: one range, one request id" % name)
        if retry_s == 0:
            check(posts == 1, "RetryOptions 0: no retry (%d POSTs)" % posts)
        else:
            check(posts >= 2, "RetryOptions 2 s: retried (%d POSTs)" % posts)
        check(not [p for p in objects(root, name) if "http-endpoint-failed" not in p],
              "%s: FailedDataOnly writes no other object" % name)
        print("ok: %s: %d POSTs, then %d error records under errors/http-endpoint-failed/" %
              (name, posts, len(errs)))

    # AllData: taken by the endpoint and written as objects.
    fh.create_delivery_stream(DeliveryStreamName="http-all", HttpEndpointDestinationConfiguration=
                              http_dest(ep.url + "/ok?all", "all", S3BackupMode="AllData"))
    sent = [b"all-%d\n" % i for i in range(100)]
    put_all(fh, "http-all", sent)
    ok = wait_for("AllData at the endpoint", lambda: ep.taken("/ok?all")[0])
    data = wait_for("AllData objects", lambda: b"".join(
        gzip.decompress(open(p, "rb").read()) for p in objects(root, "all")
        if not p.endswith(".tmp")))
    check([rec for _, d, _ in ok for rec in d] == sent and data == b"".join(sent),
          "AllData: the endpoint and the objects have every record")
    print("ok: S3BackupMode AllData: the endpoint and the bucket")


def test_metrics(admin_port):
    for name, want in (("http-down", 40), ("http-noretry", 40), ("http-flaky", 0),
                       ("http-api", 0)):
        _, values = firehose_figures(admin_port, name)
        got = values.get("sluice_firehose_http_backup_records_total")
        check(got == want, "%s: http_backup_records_total %r, want %d" % (name, got, want))
    _, values = firehose_figures(admin_port, "http-flaky")
    check(values.get("sluice_firehose_delivery_failures_total", 0) >= Endpoint.FLAKY,
          "http-flaky: the failed attempts are counted")
    print("ok: /metrics counts the backed-up records and the failed attempts")


def main():
    binary = sys.argv[1]
    base = tempfile.mkdtemp(prefix="fhhttp-test-")
    ep = Endpoint()
    try:
        srv, root, admin_port = start_sluiced(binary, base)
        try:
            fh = client(srv)
            test_api(fh, ep)
            test_delivery(fh, ep)
            test_failures(fh, ep, root)
            test_metrics(admin_port)
            check(ep.problems == [], "request format problems: %r" % ep.problems[:5])
            srv.stop()
            srv.start("--set", "firehose.local_root=" + root)
            check_described(client(srv), ep)
            print("ok: an HTTP delivery stream comes back from firehose.db after a restart")
            srv.stop()
        finally:
            srv.kill()
    finally:
        ep.server.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
