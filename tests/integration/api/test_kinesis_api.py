#!/usr/bin/python3
"""
Kinesis API end to end: sluiced (API + log, no dataplane) driven by the AWS
CLI v2, boto3, raw HTTP/1.1 and one h2c client (nghttp).

  usage: test_kinesis_api.py SLUICED

Covers: a 4-shard stream; 10,000 records with random keys (PutRecords batches
of 500, single PutRecords, CLI puts); every shard read back from TRIM_HORIZON
(content, per-shard order, MD5 routing); every iterator type; expired and
forged iterators; bad input of each kind with its __type; SIGTERM + restart
and everything read again; SIGKILL right after acknowledgements (nothing acknowledged
lost, a deleted stream stays deleted); SigV4 with right and wrong keys; h2c PutRecord +
GetRecords. Uses its own temp dir and free ports; stops only its own PIDs.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config
import botocore.exceptions
from botocore.exceptions import ClientError

AWS = "/usr/bin/aws"
STREAM = "itest"
SHARDS = 4
TOTAL = 10000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def npm_install(src_dir, js_dir, files, installed):
    """Copies `files` of src_dir (package.json first) into js_dir and runs npm install there
    once (until `installed`, a path under js_dir, exists). js_dir, or None without node/npm
    or when npm fails (the caller skips, saying so)."""
    if js_dir is None or shutil.which("node") is None or shutil.which("npm") is None:
        return None
    os.makedirs(js_dir, exist_ok=True)
    for f in files:
        shutil.copy(os.path.join(src_dir, f), js_dir)
    if not os.path.exists(os.path.join(js_dir, installed)):
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=js_dir,
                           capture_output=True, timeout=300)
        if r.returncode != 0:
            print("npm install failed: %s" % r.stderr.decode()[-500:])
            return None
    return js_dir


class Sluiced:
    """One sluiced process on a data dir; start() waits for its ready line."""

    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = data_dir
        self.proc = None
        self.port = None

    def start(self, *extra):
        self.port = free_port()
        if "--admin-listen" not in extra:
            # Off unless asked: the default port (4568) may be another sluiced's.
            extra = ("--admin-listen", "") + extra
        log = open(os.path.join(self.data_dir, "sluiced.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--no-dataplane", "--data-dir", self.data_dir,
             "--api-listen", "127.0.0.1:%d" % self.port,
             "--set", "server.stream_status_delay_ms=100", *extra],
            stdout=subprocess.PIPE, stderr=log)
        line = self.proc.stdout.readline().decode()
        if "ready" not in line:
            log.close()
            with open(os.path.join(self.data_dir, "sluiced.log"), "rb") as f:
                tail = f.read()[-2000:].decode(errors="replace")
            raise SystemExit("FAIL: sluiced did not start: %r; its log ends:\n%s" % (line, tail))
        return self

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise SystemExit("FAIL: sluiced did not stop on SIGTERM")
        self.proc = None
        check(rc == 0, "sluiced exit code %d" % rc)

    def kill(self):
        """Ends our sluiced at once if it still runs (a test's finally block)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


class LostAnswer(Exception):
    """A put went out and its answer did not come back: it may have landed."""


# Issue 16 ("84 records delivered twice" at load 50): botocore's standard retry
# ("max_attempts": 1 is one retry) put test_firehose's test_lambda_keys' first PutRecordBatch again after
# its answer came later than read_timeout, and the records were in the log twice. AWS says
# so of its own Firehose ("Re-invoking the Put API operations (for example, PutRecord and
# PutRecordBatch) can result in data duplicates"): exactly once starts at an acknowledged
# put. So these clients retry a put only when it surely did not land (no connection, a
# 503: sluiced appends nothing then), wait long for a slow durable answer, and fail the
# test, saying so, when an answer is lost (test_firehose's test_lost_answer). The Kinesis client below is guarded the same way..
PUT_READ_TIMEOUT_S = 120
LOST = (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)


def _no_blind_reput(caught_exception=None, operation=None, **_):
    if isinstance(caught_exception, LOST):
        raise LostAnswer("%s: the answer was lost (%s); a retry could put its records twice" %
                         (operation.name, caught_exception))


def guard_puts(c, service, ops):
    """Client c (boto3, service's event name) does not retry ops after a lost answer."""
    for op in ops:
        c.meta.events.register("needs-retry.%s.%s" % (service, op), _no_blind_reput)
    return c


def client(srv, key="AKID", secret="SECRET", validate=False, read_timeout=PUT_READ_TIMEOUT_S):
    cfg = botocore.config.Config(parameter_validation=validate,
                                 retries={"max_attempts": 1, "mode": "standard"},
                                 connect_timeout=5, read_timeout=read_timeout)
    return guard_puts(boto3.client("kinesis", endpoint_url=srv.url, region_name="us-east-1",
                                   aws_access_key_id=key, aws_secret_access_key=secret,
                                   config=cfg), "kinesis", ("PutRecord", "PutRecords"))


def cli(srv, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKID", AWS_SECRET_ACCESS_KEY="SECRET",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_PAGER="")
    out = subprocess.run([AWS, "--endpoint-url", srv.url, "--output", "json", "kinesis",
                          *args], env=env, capture_output=True, timeout=60)
    check(out.returncode == 0, "aws %s: %s" % (" ".join(args), out.stderr.decode()))
    return json.loads(out.stdout) if out.stdout.strip() else None


def expect_error(code, fn, **kwargs):
    try:
        fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, "%s(%s): got %s (%s), want %s" % (
            fn.__name__, kwargs, got, e.response["Error"].get("Message"), code))
        return e.response["Error"].get("Message", "")
    raise SystemExit("FAIL: %s(%s) succeeded, want %s" % (fn.__name__, kwargs, code))


def wait_active(kc, name):
    for _ in range(100):
        s = kc.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if s["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    raise SystemExit("FAIL: stream never became ACTIVE")


def shard_of(shards, key):
    h = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
    for s in shards:
        r = s["HashKeyRange"]
        if int(r["StartingHashKey"]) <= h <= int(r["EndingHashKey"]):
            return s["ShardId"]
    raise SystemExit("FAIL: no shard for " + key)


def put_everything(srv, kc, shards):
    """Puts TOTAL records; returns the expected per-shard lists in put order."""
    rng = random.Random(int(os.environ.get("TEST_SEED", "0")) or time.time_ns())
    expected = {s["ShardId"]: [] for s in shards}
    sent = 0

    def note(key, data, result):
        sid = result["ShardId"]
        check(sid == shard_of(shards, key), "routing of %s: %s" % (key, sid))
        expected[sid].append((key, data, result["SequenceNumber"]))

    while sent < TOTAL - 520:
        batch = [("k%d-%x" % (sent + i, rng.getrandbits(64)), os.urandom(rng.randint(0, 200)))
                 for i in range(500)]
        r = kc.put_records(StreamName=STREAM, Records=[
            {"PartitionKey": k, "Data": d} for k, d in batch])
        check(r["FailedRecordCount"] == 0, "PutRecords failures: %s" % r["Records"][:3])
        check(len(r["Records"]) == 500, "PutRecords answer size")
        for (k, d), res in zip(batch, r["Records"]):
            note(k, d, res)
        sent += 500
    while sent < TOTAL - 3:
        k, d = "single-%d-%x" % (sent, rng.getrandbits(32)), os.urandom(rng.randint(1, 64))
        note(k, d, kc.put_record(StreamName=STREAM, PartitionKey=k, Data=d))
        sent += 1
    for i in range(3):
        k, d = "cli-%d" % i, b"from the aws cli %d" % i
        note(k, d, cli(srv, "put-record", "--stream-name", STREAM, "--partition-key", k,
                       "--data", base64.b64encode(d).decode()))
        sent += 1
    check(sum(len(v) for v in expected.values()) == TOTAL, "put count")
    return expected


def read_shard(kc, shard_id, limit=None):
    it = kc.get_shard_iterator(StreamName=STREAM, ShardId=shard_id,
                               ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = []
    seen_iterators = set()
    while True:
        args = {"ShardIterator": it}
        if limit:
            args["Limit"] = limit
        r = kc.get_records(**args)
        got += [(x["PartitionKey"], x["Data"], x["SequenceNumber"]) for x in r["Records"]]
        nxt = r["NextShardIterator"]
        check(nxt not in seen_iterators and nxt != it, "NextShardIterator must be new")
        seen_iterators.add(nxt)
        it = nxt
        if not r["Records"] and r["MillisBehindLatest"] == 0:
            return got


def read_all_and_compare(kc, expected, what):
    for shard_id, want in expected.items():
        got = read_shard(kc, shard_id, limit=3000 if shard_id.endswith("1") else None)
        check(len(got) == len(want), "%s: %s has %d records, want %d" % (
            what, shard_id, len(got), len(want)))
        check(got == want, "%s: %s content or order differs" % (what, shard_id))
        seqs = [int(s) for _, _, s in got]
        check(seqs == sorted(seqs) and len(set(seqs)) == len(seqs),
              "%s: %s sequence numbers not increasing" % (what, shard_id))


def iterator_types(kc, expected):
    sid = "shardId-000000000002"
    recs = expected[sid]
    mid = recs[len(recs) // 2]

    def first(**kw):
        it = kc.get_shard_iterator(StreamName=STREAM, ShardId=sid, **kw)["ShardIterator"]
        return kc.get_records(ShardIterator=it, Limit=1)["Records"]

    r = first(ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=mid[2])
    check(r[0]["SequenceNumber"] == mid[2], "AT_SEQUENCE_NUMBER")
    r = first(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=mid[2])
    nxt = recs[len(recs) // 2 + 1]
    check(r[0]["SequenceNumber"] == nxt[2], "AFTER_SEQUENCE_NUMBER")
    check(first(ShardIteratorType="TRIM_HORIZON")[0]["SequenceNumber"] == recs[0][2],
          "TRIM_HORIZON")
    latest = kc.get_shard_iterator(StreamName=STREAM, ShardId=sid,
                                   ShardIteratorType="LATEST")["ShardIterator"]
    check(kc.get_records(ShardIterator=latest)["Records"] == [], "LATEST starts at the end")
    r = first(ShardIteratorType="AT_TIMESTAMP", Timestamp=time.time() - 3600)
    check(r[0]["SequenceNumber"] == recs[0][2], "AT_TIMESTAMP in the past")
    cli_it = cli(srv_global, "get-shard-iterator", "--stream-name", STREAM, "--shard-id", sid,
                 "--shard-iterator-type", "AT_TIMESTAMP", "--timestamp",
                 "%.3f" % (time.time() - 3600))["ShardIterator"]
    check(kc.get_records(ShardIterator=cli_it, Limit=1)["Records"][0]["SequenceNumber"] ==
          recs[0][2], "AT_TIMESTAMP from the CLI")
    expect_error("InvalidArgumentException", kc.get_shard_iterator, StreamName=STREAM,
                 ShardId=sid, ShardIteratorType="AT_TIMESTAMP", Timestamp=time.time() + 3600)
    # LATEST then a put: the put is seen.
    k = "latest-probe"
    put = kc.put_record(StreamName=STREAM, PartitionKey=k, Data=b"x",
                        ExplicitHashKey=str(2 ** 127 + 1))
    check(put["ShardId"] == sid, "ExplicitHashKey routes to shard 2")
    got = kc.get_records(ShardIterator=latest)["Records"]
    check([x["PartitionKey"] for x in got] == [k], "LATEST sees the next put")
    expected[sid].append((k, b"x", put["SequenceNumber"]))


def forged_and_expired(srv, kc):
    it = kc.get_shard_iterator(StreamName=STREAM, ShardId="shardId-000000000000",
                               ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    raw = bytearray(base64.b64decode(it))
    raw[45] ^= 1  # The position: a forged iterator must not read elsewhere.
    expect_error("InvalidArgumentException", kc.get_records,
                 ShardIterator=base64.b64encode(raw).decode())
    expect_error("InvalidArgumentException", kc.get_records, ShardIterator="AAAAAAAAAAE=")
    # An authentic but old iterator, made with the server's secret (docs/API.md layout).
    db = sqlite3.connect(os.path.join(srv.data_dir, "metadata.db"))
    secret = db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0]
    db.close()
    body = bytes(raw[:49 + raw[48]])
    body = body[:8] + struct.pack(">Q", int(time.time() * 1000) - 301000) + body[16:]
    body = bytearray(body)
    body[45] ^= 1  # Undo the forgery above.
    old = bytes(body) + hmac.new(secret, bytes(body), hashlib.sha256).digest()
    msg = expect_error("ExpiredIteratorException", kc.get_records,
                       ShardIterator=base64.b64encode(old).decode())
    check("Iterator expired" in msg, "expired iterator text: " + msg)
    fresh = bytes(body[:8]) + struct.pack(">Q", int(time.time() * 1000)) + bytes(body[16:])
    fresh += hmac.new(secret, fresh, hashlib.sha256).digest()
    kc.get_records(ShardIterator=base64.b64encode(fresh).decode(), Limit=1)


def raw_post(srv, target, body, content_type="application/x-amz-json-1.1"):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    headers = {"Content-Type": content_type}
    if target:
        headers["X-Amz-Target"] = target
    conn.request("POST", "/", body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def bad_input(srv, kc):
    def raw_type(target, body):
        status, data = raw_post(srv, "Kinesis_20131202." + target, body)
        check(status == 400, "%s %r: status %d" % (target, body, status))
        return json.loads(data)["__type"]

    check(raw_type("PutRecord", b"{") == "SerializationException", "broken JSON")
    check(raw_type("CreateStream", b'{"StreamName":true}') == "SerializationException",
          "wrong member type")
    check(raw_type("PutRecord", b'{"StreamName":"itest","PartitionKey":"a","Data":"abc"}') ==
          "SerializationException", "bad base64")
    check(raw_type("Nonsense", b"{}") == "UnknownOperationException", "unknown action")
    msg = expect_error("ValidationException", kc.create_stream, StreamName="bad name!",
                       ShardCount=0)
    check(msg.startswith("2 validation errors detected: "), "validation text: " + msg)
    expect_error("ValidationException", kc.put_records, StreamName=STREAM, Records=[])
    expect_error("ValidationException", kc.put_record, StreamName=STREAM, PartitionKey="",
                 Data=b"x")
    expect_error("ValidationException", kc.get_records, ShardIterator="x", Limit=0)
    expect_error("ValidationException", kc.put_record, StreamName=STREAM, PartitionKey="a",
                 Data=b"x" * (1024 * 1024 + 1))
    expect_error("ResourceNotFoundException", kc.describe_stream, StreamName="nope")
    expect_error("ResourceNotFoundException", kc.put_record, StreamName="nope",
                 PartitionKey="a", Data=b"x")
    expect_error("ResourceInUseException", kc.create_stream, StreamName=STREAM, ShardCount=1)
    expect_error("InvalidArgumentException", kc.put_record, StreamName=STREAM,
                 PartitionKey="a", Data=b"x", ExplicitHashKey=str(2 ** 128))
    expect_error("InvalidArgumentException", kc.get_shard_iterator, StreamName=STREAM,
                 ShardId="shardId-000000000000", ShardIteratorType="AT_SEQUENCE_NUMBER")
    expect_error("InvalidArgumentException", kc.decrease_stream_retention_period,
                 StreamName=STREAM, RetentionPeriodHours=1)
    expect_error("ResourceNotFoundException", kc.get_shard_iterator, StreamName=STREAM,
                 ShardId="shardId-000000000009", ShardIteratorType="LATEST")
    expect_error("InvalidArgumentException", kc.list_shards)
    expect_error("LimitExceededException", kc.create_stream, StreamName="huge",
                 ShardCount=100000)


def control_plane(srv, kc):
    names = cli(srv, "list-streams")["StreamNames"]
    check(names == [STREAM], "list-streams: %s" % names)
    kc.create_stream(StreamName="zz-ondemand", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kc, "zz-ondemand")
    pages = list(kc.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1}))
    check([p["StreamNames"] for p in pages] == [[STREAM], ["zz-ondemand"]], "ListStreams pages")
    # Paged by hand: botocore's list_shards paginator resends StreamName with NextToken,
    # which AWS refuses (and so do we).
    page = kc.list_shards(StreamName=STREAM, MaxResults=3)
    shards = page["Shards"]
    expect_error("InvalidArgumentException", kc.list_shards, StreamName=STREAM,
                 NextToken=page["NextToken"])
    page = kc.list_shards(NextToken=page["NextToken"])
    shards += page["Shards"]
    check("NextToken" not in page, "ListShards last page")
    check([s["ShardId"] for s in shards] == ["shardId-%012d" % i for i in range(SHARDS)],
          "ListShards pages")
    d = cli(srv, "describe-stream", "--stream-name", STREAM)["StreamDescription"]
    check(len(d["Shards"]) == SHARDS and d["StreamStatus"] == "ACTIVE", "describe-stream")
    kc.add_tags_to_stream(StreamName=STREAM, Tags={"team": "ingest", "env": "test"})
    tags = kc.list_tags_for_stream(StreamName=STREAM)["Tags"]
    check(tags == [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "ingest"}], "tags")
    kc.remove_tags_from_stream(StreamName=STREAM, TagKeys=["env"])
    kc.increase_stream_retention_period(StreamName=STREAM, RetentionPeriodHours=48)
    check(kc.describe_limits()["OpenShardCount"] == SHARDS + 4, "DescribeLimits")
    arn = d["StreamARN"]
    # Debian's botocore predates StreamARN in the model: sent raw.
    status, data = raw_post(srv, "Kinesis_20131202.DescribeStreamSummary",
                            json.dumps({"StreamARN": arn}).encode())
    check(status == 200 and json.loads(data)["StreamDescriptionSummary"]["StreamName"] == STREAM,
          "StreamARN accepted: %d %r" % (status, data))
    kc.delete_stream(StreamName="zz-ondemand")
    for _ in range(100):
        try:
            kc.describe_stream_summary(StreamName="zz-ondemand")
        except ClientError as e:
            check(e.response["Error"]["Code"] == "ResourceNotFoundException", "deleted")
            break
        time.sleep(0.05)
    else:
        raise SystemExit("FAIL: DeleteStream never finished")


def h2c(srv):
    """nghttp with prior knowledge: PutRecord then GetRecords over HTTP/2."""
    if shutil.which("nghttp") is None:
        print("SKIP: nghttp not installed")
        return

    def call(action, body):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(json.dumps(body))
        out = subprocess.run(["nghttp", "-H", ":method: POST", "-H",
                              "x-amz-target: Kinesis_20131202." + action, "-H",
                              "content-type: application/x-amz-json-1.1", "-d", f.name,
                              srv.url + "/"], capture_output=True, timeout=20)
        os.unlink(f.name)
        check(out.returncode == 0, "nghttp %s: %s" % (action, out.stderr.decode()))
        return json.loads(out.stdout)

    put = call("PutRecord", {"StreamName": STREAM, "PartitionKey": "h2c",
                             "Data": base64.b64encode(b"over h2c").decode()})
    it = call("GetShardIterator", {"StreamName": STREAM, "ShardId": put["ShardId"],
                                   "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                                   "StartingSequenceNumber": put["SequenceNumber"]})
    got = call("GetRecords", {"ShardIterator": it["ShardIterator"], "Limit": 1})
    check(base64.b64decode(got["Records"][0]["Data"]) == b"over h2c", "h2c round trip")
    return put


def crash(srv):
    """SIGKILL right after acknowledgements: every acknowledged record survives, and a
    deleted stream stays deleted (SQLite first, then the log)."""
    kc = client(srv)
    kc.create_stream(StreamName="crashy", ShardCount=2)
    wait_active(kc, "crashy")
    acked = {}
    for i in range(5):
        batch = [("c%d-%d" % (i, j), b"crash %d %d" % (i, j)) for j in range(200)]
        r = kc.put_records(StreamName=STREAM, Records=[
            {"PartitionKey": k, "Data": d} for k, d in batch])
        for (k, d), res in zip(batch, r["Records"]):
            if "SequenceNumber" in res:
                acked[res["SequenceNumber"]] = (res["ShardId"], k, d)
    kc.delete_stream(StreamName="crashy")
    srv.proc.kill()
    srv.proc.wait()
    srv.proc = None
    srv.start()
    kc = client(srv)
    expect_error("ResourceNotFoundException", kc.describe_stream, StreamName="crashy")
    found = {}
    for shard in ["shardId-%012d" % i for i in range(SHARDS)]:
        for k, d, seq in read_shard(kc, shard):
            found[seq] = (shard, k, d)
    missing = [seq for seq in acked if found.get(seq) != acked[seq]]
    check(not missing, "%d acknowledged records lost after SIGKILL" % len(missing))
    return {seq: v for seq, v in acked.items()}


def sigv4(srv):
    kc = client(srv)
    kc.list_streams()
    check(len(kc.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"]) == SHARDS,
          "sigv4 right key")
    expect_error("InvalidSignatureException", client(srv, secret="WRONG").list_streams)
    expect_error("UnrecognizedClientException", client(srv, key="NOPE").list_streams)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKID", AWS_SECRET_ACCESS_KEY="WRONG",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    out = subprocess.run([AWS, "--endpoint-url", srv.url, "kinesis", "list-streams"],
                         env=env, capture_output=True, timeout=60)
    check(out.returncode != 0 and b"InvalidSignatureException" in out.stderr,
          "aws cli with a wrong secret: %r" % out.stderr)


srv_global = None


def main():
    global srv_global
    binary = sys.argv[1]
    data_dir = tempfile.mkdtemp(prefix="sluice-api-it-")
    srv = Sluiced(binary, data_dir)
    srv_global = srv
    t0 = time.time()
    try:
        srv.start()
        kc = client(srv)
        cli(srv, "create-stream", "--stream-name", STREAM, "--shard-count", str(SHARDS))
        wait_active(kc, STREAM)
        shards = kc.list_shards(StreamName=STREAM)["Shards"]
        expected = put_everything(srv, kc, shards)
        print("put %d records in %.1fs" % (TOTAL, time.time() - t0))
        read_all_and_compare(kc, expected, "first read")
        iterator_types(kc, expected)
        forged_and_expired(srv, kc)
        bad_input(srv, kc)
        control_plane(srv, kc)
        put = h2c(srv)
        if put:
            expected[put["ShardId"]].append(("h2c", b"over h2c", put["SequenceNumber"]))
        print("checks done in %.1fs; restarting" % (time.time() - t0))
        srv.stop()
        srv.start()
        kc = client(srv)
        read_all_and_compare(kc, expected, "after restart")
        crash(srv)
        srv.stop()
        srv.start("--set", "auth.mode=sigv4", "--set", "auth.access_keys=AKID:SECRET")
        sigv4(srv)
        srv.stop()
        print("PASS in %.1fs" % (time.time() - t0))
    finally:
        srv.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    # meson's timeout sends SIGTERM: exit through the finally blocks, which stop
    # our sluiced and remove the temp dirs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
