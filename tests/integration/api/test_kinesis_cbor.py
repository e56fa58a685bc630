#!/usr/bin/python3
"""
CBOR (application/x-amz-cbor-1.1) end to end: every operation of the model (all 39), with the
bodies the AWS Java SDK writes (Jackson's CBORGenerator: indefinite maps and arrays,
blobs as byte strings, timestamps as tag 1 over epoch milliseconds), signed with
botocore's SigV4 signer ([auth] mode sigv4). Each operation runs twice, on twin
streams: once in CBOR, once in JSON; the CBOR answer, decoded (byte strings back to
base64, tag 1 back to seconds), must equal the JSON answer with the stream names
swapped and the values that differ between any two calls masked (sequence numbers,
iterators, timestamps). Errors too: status, x-amzn-ErrorType, __type and message.
Then what only CBOR has: bad CBOR, a byte string where a string belongs, chunked text,
unsigned and wrongly signed CBOR requests, an unknown operation: each answered in CBOR;
and one signed CBOR request over h2c (nghttp). SubscribeToShard in CBOR, signed, through
curl over HTTP/1.1 (chunked) and h2c at once while PutRecords run, ended by a SplitShard:
the EventStream decoded here (prelude, both CRCs), every event's :content-type and payload
CBOR (Data a byte string, timestamps tag 1), every acknowledged record once, in order, byte
for byte, then ChildShards; AT_TIMESTAMP with a tag-1 Timestamp; its errors (unknown shard
or consumer, bad position) in CBOR.

  usage: test_kinesis_cbor.py SLUICED

Uses its own temp dir and a free port; stops only its own sluiced.
"""
import base64
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import cbor2
import cbor2.decoder
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import Sluiced, check  # noqa: E402

CBOR = "application/x-amz-cbor-1.1"
JSON = "application/x-amz-json-1.1"


class Ts:
    """A timestamp in epoch milliseconds: tag 1 in CBOR, seconds in JSON."""

    def __init__(self, ms):
        self.ms = ms

    def __repr__(self):
        return "Ts(%d)" % self.ms


def java_cbor(value):
    """value as the Java SDK's Jackson CBORGenerator writes it."""
    if isinstance(value, dict):
        out = b"\xbf"  # writeStartObject(): indefinite length
        for k, v in value.items():
            out += cbor2.dumps(k) + java_cbor(v)
        return out + b"\xff"
    if isinstance(value, list):
        return b"\x9f" + b"".join(java_cbor(v) for v in value) + b"\xff"
    if isinstance(value, Ts):
        return b"\xc1" + cbor2.dumps(value.ms)  # SdkCborGenerator: tag 1, getTime()
    if isinstance(value, str) and len(value) > 1000:
        # Long text goes out in chunks (CBORGenerator._writeChunkedString).
        raw = value.encode()
        return b"\x7f" + b"".join(cbor2.dumps(raw[i:i + 1000].decode())
                                  for i in range(0, len(raw), 1000)) + b"\xff"
    return cbor2.dumps(value)  # definite text / bytes, minimal integers, booleans


def as_json(value):
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Ts):
        return value.ms / 1000.0
    return value


# Tag 1 carries milliseconds here (AWS's use), not RFC 8949's seconds: keep it raw.
cbor2.decoder.semantic_decoders.pop(1, None)


def cbor_tag(decoder, tag):
    check(tag.tag == 1 and isinstance(tag.value, int), "unexpected CBOR tag %r" % (tag,))
    return Ts(tag.value)


def cbor_answer(data):
    return cbor2.decoder.CBORDecoder(io.BytesIO(data), tag_hook=cbor_tag).decode()


class Api:
    def __init__(self, srv, key="AKID", secret="SECRET"):
        self.srv = srv
        self.creds = Credentials(key, secret)

    def raw(self, op, body, ctype, sign=True, target=None):
        headers = {"Content-Type": ctype,
                   "X-Amz-Target": target or "Kinesis_20131202." + op}
        req = AWSRequest(method="POST", url=self.srv.url + "/", data=body, headers=headers)
        if sign:
            SigV4Auth(self.creds, "kinesis", "us-east-1").add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
        try:
            conn.request("POST", "/", body=body, headers=dict(req.headers.items()))
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.getheader("x-amzn-ErrorType"), \
                r.read()
        finally:
            conn.close()

    def cbor(self, op, args, **kw):
        status, ctype, etype, data = self.raw(op, java_cbor(args), CBOR, **kw)
        check(ctype == CBOR, "%s: CBOR request answered in %r" % (op, ctype))
        return status, etype, cbor_answer(data) if data else {}

    def json(self, op, args):
        status, ctype, etype, data = self.raw(op, json.dumps(as_json(args)).encode(), JSON)
        check(ctype == JSON, "%s: JSON request answered in %r" % (op, ctype))
        return status, etype, json.loads(data) if data else {}


VOLATILE = ("SequenceNumber", "ShardIterator", "Timestamp", "MillisBehindLatest", "NextToken")


def normal(value, names, key=""):
    """The CBOR answer in JSON's terms, with call-to-call differences masked."""
    if isinstance(value, dict):
        return {k: normal(v, names, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normal(v, names, key) for v in value]
    if any(word in key for word in VOLATILE) and value is not None:
        return "<%s>" % type(value if not isinstance(value, Ts) else 0.0).__name__
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Ts):
        return value.ms / 1000.0
    if isinstance(value, str):
        for a, b in names:
            value = value.replace(a, b)
    return value


def twin(api, op, make_args, swap=True, expect=200, mask_numbers=False):
    """
    op on the CBOR twin in CBOR and on the JSON twin in JSON; answers must agree
    (with mask_numbers, but for the digits in them: a text quoting the clock).
    """
    c_status, c_type, c_body = api.cbor(op, make_args("cbtwin"))
    j_status, j_type, j_body = api.json(op, make_args("jstwin"))
    names = [("cbtwin", "jstwin")] if swap else []
    got = normal(c_body, names)
    want = normal(j_body, [])
    if mask_numbers:
        got = re.sub(r"[0-9]+", "N", repr(got))
        want = re.sub(r"[0-9]+", "N", repr(want))
    check(c_status == j_status and expect in (None, c_status),
          "%s: status CBOR %d JSON %d, want %s (%r / %r)" % (op, c_status, j_status, expect,
                                                            c_body, j_body))
    check(c_type == j_type, "%s: x-amzn-ErrorType %r vs %r" % (op, c_type, j_type))
    check(got == want, "%s: CBOR answer\n  %r\ndiffers from the JSON one\n  %r" % (
        op, got, want))
    return c_body, j_body


def wait_active(api, name):
    deadline = time.time() + 60
    while time.time() < deadline:
        status, _, body = api.cbor("DescribeStreamSummary", {"StreamName": name})
        check(status == 200, "DescribeStreamSummary %s: %r" % (name, body))
        if body["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return body["StreamDescriptionSummary"]
        time.sleep(0.05)
    raise SystemExit("FAIL: %s not ACTIVE within 60 s" % name)


def wait_both(api):
    return wait_active(api, "cbtwin"), wait_active(api, "jstwin")


def records_round_trip(api):
    rng = random.Random(12)
    batch = [{"Data": bytes(rng.getrandbits(8) for _ in range(100)),
              "PartitionKey": "pk-%d" % i} for i in range(500)]
    start_ms = int(time.time() * 1000) - 1000
    twin(api, "PutRecord", lambda s: {"StreamName": s, "PartitionKey": "k1",
                                      "Data": b"\x00\xff\x80binary"})
    twin(api, "PutRecord", lambda s: {"StreamName": s, "PartitionKey": "k2", "Data": b"",
                                      "ExplicitHashKey": "1"})
    c, _ = twin(api, "PutRecords", lambda s: {"StreamName": s, "Records": batch})
    check(c["FailedRecordCount"] == 0 and len(c["Records"]) == 500, "PutRecords in CBOR")
    iters = {}
    for kind, extra in (("TRIM_HORIZON", {}), ("AT_TIMESTAMP", {"Timestamp": Ts(start_ms)})):
        c, j = twin(api, "GetShardIterator",
                    lambda s: dict({"StreamName": s, "ShardId": "shardId-000000000000",
                                    "ShardIteratorType": kind}, **extra))
        iters = {"cbtwin": c["ShardIterator"], "jstwin": j["ShardIterator"]}
        c, j = twin(api, "GetRecords", lambda s: {"ShardIterator": iters[s], "Limit": 10000})
        check(len(c["Records"]) > 200, "GetRecords %s read %d" % (kind, len(c["Records"])))
        check(all(isinstance(r["Data"], bytes) and isinstance(r["ApproximateArrivalTimestamp"],
                                                               Ts) for r in c["Records"]),
              "GetRecords in CBOR: Data a byte string, the timestamp tag 1")
        ts = c["Records"][0]["ApproximateArrivalTimestamp"].ms
        check(abs(ts - time.time() * 1000) < 600000, "arrival timestamp %d is not ms" % ts)
    sent = {r["PartitionKey"]: r["Data"] for r in batch}
    for r in c["Records"]:
        check(r["PartitionKey"] not in sent or sent[r["PartitionKey"]] == r["Data"],
              "record %s read back changed" % r["PartitionKey"])


def streams_and_shards(api):
    twin(api, "CreateStream", lambda s: {"StreamName": s, "ShardCount": 2,
                                         "StreamModeDetails": {"StreamMode": "PROVISIONED"}})
    c_summary, j_summary = wait_both(api)
    check(isinstance(c_summary["StreamCreationTimestamp"], Ts),
          "StreamCreationTimestamp is tag 1 in CBOR")
    created = {"cbtwin": c_summary["StreamCreationTimestamp"].ms,
               "jstwin": j_summary["StreamCreationTimestamp"].ms}
    twin(api, "DescribeStreamSummary", lambda s: {"StreamName": s})
    twin(api, "DescribeStream", lambda s: {"StreamName": s, "Limit": 10})
    twin(api, "ListShards", lambda s: {"StreamName": s})
    twin(api, "ListShards", lambda s: {"StreamName": s, "StreamCreationTimestamp":
                                       Ts(created[s])})
    twin(api, "ListShards", lambda s: {"StreamName": s, "MaxResults": 1})
    twin(api, "ListShards", lambda s: {"StreamName": s, "ShardFilter": {
        "Type": "AT_TIMESTAMP", "Timestamp": Ts(int(time.time() * 1000))}})
    twin(api, "ListStreams", lambda s: {"Limit": 10}, swap=False)
    twin(api, "DescribeLimits", lambda s: {}, swap=False)
    records_round_trip(api)
    twin(api, "AddTagsToStream", lambda s: {"StreamName": s, "Tags": {"team": "a", "env": "b"}})
    twin(api, "ListTagsForStream", lambda s: {"StreamName": s})
    twin(api, "RemoveTagsFromStream", lambda s: {"StreamName": s, "TagKeys": ["env"]})
    twin(api, "ListTagsForStream", lambda s: {"StreamName": s, "Limit": 1})
    twin(api, "IncreaseStreamRetentionPeriod", lambda s: {"StreamName": s,
                                                          "RetentionPeriodHours": 48})
    twin(api, "DecreaseStreamRetentionPeriod", lambda s: {"StreamName": s,
                                                          "RetentionPeriodHours": 24})
    twin(api, "SplitShard", lambda s: {"StreamName": s, "ShardToSplit": "shardId-000000000000",
                                       "NewStartingHashKey": "85070591730234615865843651857942"
                                       "052864"})
    wait_both(api)
    twin(api, "MergeShards", lambda s: {"StreamName": s, "ShardToMerge": "shardId-000000000002",
                                        "AdjacentShardToMerge": "shardId-000000000003"})
    wait_both(api)
    twin(api, "DescribeStream", lambda s: {"StreamName": s})
    twin(api, "UpdateShardCount", lambda s: {"StreamName": s, "TargetShardCount": 4,
                                             "ScalingType": "UNIFORM_SCALING"})
    wait_both(api)
    twin(api, "ListShards", lambda s: {"StreamName": s})
    twin(api, "UpdateStreamMode", lambda s: {
        "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/" + s,
        "StreamModeDetails": {"StreamMode": "ON_DEMAND"}})
    wait_both(api)


def stream_arn(name):
    return "arn:aws:kinesis:us-east-1:000000000000:stream/" + name


def newer_operations(api):
    """The operations added since CBOR came (the model's other 15), each in both protocols."""
    twin(api, "EnableEnhancedMonitoring", lambda s: {"StreamName": s,
                                                     "ShardLevelMetrics": ["IncomingBytes"]})
    twin(api, "DisableEnhancedMonitoring", lambda s: {"StreamName": s,
                                                      "ShardLevelMetrics": ["ALL"]})
    twin(api, "TagResource", lambda s: {"ResourceARN": stream_arn(s), "Tags": {"a": "1"}})
    twin(api, "UntagResource", lambda s: {"ResourceARN": stream_arn(s), "TagKeys": ["team"]})
    c, _ = twin(api, "ListTagsForResource", lambda s: {"ResourceARN": stream_arn(s)})
    check(c["Tags"] == [{"Key": "a", "Value": "1"}], "ListTagsForResource in CBOR: %r" % c)
    twin(api, "TagResource", lambda s: {"ResourceARN": stream_arn(s), "Tags": {"a;": "1"}},
         expect=400)
    # The default log batch holds 1 MiB records: larger is refused, naming batch_size_kb.
    twin(api, "UpdateMaxRecordSize", lambda s: {"StreamARN": stream_arn(s),
                                                "MaxRecordSizeInKiB": 2048}, expect=400)
    twin(api, "UpdateStreamWarmThroughput", lambda s: {"StreamName": s,
                                                       "WarmThroughputMiBps": 10}, expect=400)
    twin(api, "DescribeAccountSettings", lambda s: {}, swap=False)
    twin(api, "UpdateAccountSettings", lambda s: {
        "MinimumThroughputBillingCommitment": {"Status": "ENABLED"}}, swap=False)
    c, _ = twin(api, "DescribeAccountSettings", lambda s: {}, swap=False)
    commitment = c["MinimumThroughputBillingCommitment"]
    check(isinstance(commitment["StartedAt"], Ts) and
          isinstance(commitment["EarliestAllowedEndAt"], Ts) and
          commitment["EarliestAllowedEndAt"].ms - commitment["StartedAt"].ms == 86400000,
          "the billing commitment's times in CBOR: tag 1 over ms: %r" % commitment)
    twin(api, "UpdateStreamWarmThroughput", lambda s: {"StreamName": s,
                                                       "WarmThroughputMiBps": 10})
    policy = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":'
              '"arn:aws:iam::111122223333:root"},"Action":"kinesis:GetRecords","Resource":"%s"}]}')
    twin(api, "PutResourcePolicy", lambda s: {"ResourceARN": stream_arn(s),
                                              "Policy": policy % stream_arn(s)})
    twin(api, "GetResourcePolicy", lambda s: {"ResourceARN": stream_arn(s)})
    twin(api, "DeleteResourcePolicy", lambda s: {"ResourceARN": stream_arn(s)})
    twin(api, "DeleteResourcePolicy", lambda s: {"ResourceARN": stream_arn(s)}, expect=400)
    # No keyring is configured: the key is not found, in CBOR as in JSON.
    twin(api, "StartStreamEncryption", lambda s: {"StreamName": s, "EncryptionType": "KMS",
                                                  "KeyId": "alias/aws/kinesis"}, expect=400)
    twin(api, "StopStreamEncryption", lambda s: {"StreamName": s, "EncryptionType": "KMS",
                                                 "KeyId": "alias/aws/kinesis"}, expect=None)
    # Consumers: their ARNs end in their creation second, which may differ between twins.
    c, j = twin(api, "RegisterStreamConsumer", lambda s: {
        "StreamARN": stream_arn(s), "ConsumerName": "twin", "Tags": {"k": "v"}},
        mask_numbers=True)
    arns = {"cbtwin": c["Consumer"]["ConsumerARN"], "jstwin": j["Consumer"]["ConsumerARN"]}
    twin(api, "DescribeStreamConsumer", lambda s: {"ConsumerARN": arns[s]}, mask_numbers=True)
    c, _ = twin(api, "ListTagsForResource", lambda s: {"ResourceARN": arns[s]})
    check(c["Tags"] == [{"Key": "k", "Value": "v"}], "a consumer's tags in CBOR: %r" % c)
    twin(api, "DeregisterStreamConsumer", lambda s: {"ConsumerARN": arns[s]})
    twin(api, "DeregisterStreamConsumer", lambda s: {"ConsumerARN": arns[s] + "9"},
         expect=400, mask_numbers=True)


def action_errors(api):
    """The actions' own errors, in CBOR as in JSON."""
    twin(api, "DescribeStream", lambda s: {"StreamName": "nosuch-" + s}, expect=400)
    twin(api, "CreateStream", lambda s: {"StreamName": s, "ShardCount": 1}, expect=400)
    twin(api, "CreateStream", lambda s: {"StreamName": s + "-x", "ShardCount": 0}, expect=400)
    twin(api, "PutRecord", lambda s: {"StreamName": s, "PartitionKey": "", "Data": b"x"},
         expect=400)
    twin(api, "PutRecord", lambda s: {"StreamName": 5, "PartitionKey": "k", "Data": b"x"},
         expect=400)
    twin(api, "PutRecords", lambda s: {"StreamName": s, "Records": []}, expect=400)
    twin(api, "GetShardIterator", lambda s: {"StreamName": s, "ShardId": "shardId-000000000000",
                                             "ShardIteratorType": "AT_TIMESTAMP"}, expect=400)
    future = Ts(int(time.time() * 1000) + 3600000)
    twin(api, "GetShardIterator", lambda s: {
        "StreamName": s, "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": future}, expect=400, mask_numbers=True)
    twin(api, "GetRecords", lambda s: {"ShardIterator": "bogus"}, expect=400)
    twin(api, "ListShards", lambda s: {"StreamName": s, "NextToken": "x"}, expect=400)
    twin(api, "IncreaseStreamRetentionPeriod", lambda s: {"StreamName": s,
                                                          "RetentionPeriodHours": 9000},
         expect=400)
    twin(api, "MergeShards", lambda s: {"StreamName": s, "ShardToMerge": "shardId-000000000099",
                                        "AdjacentShardToMerge": "shardId-000000000098"},
         expect=400)
    # Whatever the server answers for an operation of the model (served or not), CBOR
    # gets the same answer as JSON.
    twin(api, "ListStreamConsumers", lambda s: {
        "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/" + s}, expect=None)
    # The last operation: DeleteStream, then the stream is going.
    twin(api, "DeleteStream", lambda s: {"StreamName": s})


def expect_cbor_error(what, answer, status, type_, message_part=None):
    got_status, got_type, body = answer
    check(got_status == status and got_type == type_ and body.get("__type") == type_,
          "%s: %d %r %r, want %d %s" % (what, got_status, got_type, body, status, type_))
    if message_part is not None:
        text = body.get("message") or body.get("Message") or ""
        check(message_part in text, "%s: message %r lacks %r" % (what, text, message_part))


def cbor_only(api, srv):
    """Requests only CBOR can make, each answered in CBOR."""
    def raw_cbor(op, body, **kw):
        status, ctype, etype, data = api.raw(op, body, CBOR, **kw)
        check(ctype == CBOR, "%s: answered in %r" % (op, ctype))
        return status, etype, cbor_answer(data) if data else {}

    expect_cbor_error("bad CBOR", raw_cbor("ListStreams", b"\xbf\x61"), 400,
                      "SerializationException", "ends inside")
    expect_cbor_error("CBOR not a map", raw_cbor("ListStreams", b"\x9f\xff"), 400,
                      "SerializationException", "not a map")
    expect_cbor_error("byte string StreamName",
                      raw_cbor("DescribeStream", java_cbor({"StreamName": b"cbtwin"})), 400,
                      "SerializationException", "no Blob member")
    deep = b"\xbf\x61x" + b"\x81" * 40 + b"\x80\xff"
    expect_cbor_error("deep CBOR", raw_cbor("ListStreams", deep), 400,
                      "SerializationException", "deeper")
    expect_cbor_error("unknown operation", raw_cbor("Bogus", java_cbor({})), 400,
                      "UnknownOperationException")
    expect_cbor_error("unsigned", raw_cbor("ListStreams", java_cbor({}), sign=False), 400,
                      "MissingAuthenticationTokenException")
    # The body is parsed before the signature is checked, as AWS does (issue 12).
    expect_cbor_error("unsigned bad CBOR", raw_cbor("ListStreams", b"\xbf\x61", sign=False),
                      400, "SerializationException", "ends inside")
    wrong = Api(srv, secret="WRONG")
    status, ctype, etype, data = wrong.raw("ListStreams", java_cbor({}), CBOR)
    check(ctype == CBOR, "wrong secret answered in %r" % ctype)
    expect_cbor_error("wrong secret", (status, etype, cbor_answer(data)), 400,
                      "InvalidSignatureException")
    # Long names arrive as chunked text (Jackson); a 2,000-character one is still a name.
    long_name = "c" * 2000
    expect_cbor_error("chunked text", raw_cbor("DescribeStream",
                                               java_cbor({"StreamName": long_name})), 400,
                      "ValidationException", "c" * 100)
    # A definite-length map (cbor2's own encoding) works as well as Jackson's.
    status, _, body = raw_cbor("DescribeStreamSummary", cbor2.dumps({"StreamName": "cbtwin"}))
    check(status == 200 and body["StreamDescriptionSummary"]["StreamName"] == "cbtwin",
          "definite-length CBOR map: %d %r" % (status, body))


def h2c(api, srv):
    """The same over h2c (nghttp, prior knowledge), signed: an answer in CBOR."""
    body = java_cbor({"StreamName": "cbtwin"})
    headers = {"Content-Type": CBOR,
               "X-Amz-Target": "Kinesis_20131202.DescribeStreamSummary"}
    req = AWSRequest(method="POST", url=srv.url + "/", data=body, headers=headers)
    SigV4Auth(api.creds, "kinesis", "us-east-1").add_auth(req)
    with tempfile.NamedTemporaryFile() as f:
        f.write(body)
        f.flush()
        args = ["nghttp", "-H", ":method: POST", "-d", f.name]
        for name, value in req.headers.items():
            if name.lower() != "host":
                args += ["-H", "%s: %s" % (name.lower(), value)]
        out = subprocess.run(args + [srv.url + "/"], capture_output=True, timeout=60)
    check(out.returncode == 0, "nghttp: %r" % out.stderr)
    answer = cbor_answer(out.stdout)
    check(answer["StreamDescriptionSummary"]["StreamName"] == "cbtwin" and
          isinstance(answer["StreamDescriptionSummary"]["StreamCreationTimestamp"], Ts),
          "h2c CBOR answer: %r" % answer)


# -- SubscribeToShard in CBOR: the events' payloads are CBOR (the Java SDK v2's default).

ES_TYPES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # fixed-size header values


def eventstream_messages(data):
    """(headers, payload) of each EventStream message in data, both CRCs checked."""
    out = []
    at = 0
    while at < len(data):
        check(len(data) - at >= 16, "a truncated EventStream prelude at %d" % at)
        total, head_size, prelude_crc = struct.unpack(">III", data[at:at + 12])
        check(zlib.crc32(data[at:at + 8]) == prelude_crc, "prelude CRC at %d" % at)
        check(16 + head_size <= total and at + total <= len(data),
              "EventStream lengths at %d: %d, %d of %d" % (at, total, head_size, len(data) - at))
        msg = data[at:at + total]
        check(zlib.crc32(msg[:-4]) == struct.unpack(">I", msg[-4:])[0],
              "message CRC at %d" % at)
        headers = {}
        h = 12
        while h < 12 + head_size:
            n = msg[h]
            name = msg[h + 1:h + 1 + n].decode()
            kind = msg[h + 1 + n]
            h += 2 + n
            if kind in (6, 7):  # byte array, string: 2-byte length
                size = struct.unpack(">H", msg[h:h + 2])[0]
                value = msg[h + 2:h + 2 + size]
                headers[name] = value.decode() if kind == 7 else value
                h += 2 + size
            else:
                check(kind in ES_TYPES, "EventStream header type %d" % kind)
                h += ES_TYPES[kind]
        out.append((headers, msg[12 + head_size:-4]))
        at += total
    return out


def subscribe_curl(api, srv, arn, http, body_path, position=None):
    """A signed CBOR SubscribeToShard through curl (HTTP/1.1 chunked or h2c): its Popen."""
    body = java_cbor({"ConsumerARN": arn, "ShardId": "shardId-000000000000",
                      "StartingPosition": position or {"Type": "TRIM_HORIZON"}})
    headers = {"Content-Type": CBOR, "X-Amz-Target": "Kinesis_20131202.SubscribeToShard"}
    req = AWSRequest(method="POST", url=srv.url + "/", data=body, headers=headers)
    SigV4Auth(api.creds, "kinesis", "us-east-1").add_auth(req)
    args = ["curl", "-sS", "-N", "--max-time", "120", "-D", "/dev/stderr",
            "--http2-prior-knowledge" if http == "h2c" else "--http1.1"]
    for name, value in req.headers.items():
        if name.lower() != "host":
            args += ["-H", "%s: %s" % (name, value)]
    with open(body_path, "wb") as f:
        f.write(body)
    return subprocess.Popen(args + ["--data-binary", "@" + body_path, srv.url + "/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def subscription_records(what, proc, arrivals=None):
    """
    The (sequence number, data) of a subscription that ends by itself (ChildShards), its
    events checked; their arrival times (ms) appended to `arrivals` if given.
    """
    try:
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check(proc.returncode == 0, "%s: curl %d: %r" % (what, proc.returncode, err[-500:]))
    check(b"application/vnd.amazon.eventstream" in err, "%s: head %r" % (what, err[:300]))
    messages = eventstream_messages(out)
    check(messages and messages[0][0].get(":event-type") == "initial-response",
          "%s: no initial-response first" % what)
    records = []
    children = None
    for headers, payload in messages:
        check(headers.get(":message-type") == "event" and headers.get(":content-type") == CBOR,
              "%s: event headers %r" % (what, headers))
        event = cbor_answer(payload)
        if headers[":event-type"] == "initial-response":
            check(event == {}, "%s: initial-response %r" % (what, event))
            continue
        check(headers[":event-type"] == "SubscribeToShardEvent", "%s: %r" % (what, headers))
        check(children is None, "%s: an event after ChildShards" % what)
        check(isinstance(event["MillisBehindLatest"], int) and
              isinstance(event["ContinuationSequenceNumber"], str), "%s: %r" % (what, event))
        for r in event["Records"]:
            check(isinstance(r["Data"], bytes) and isinstance(r["ApproximateArrivalTimestamp"],
                                                                Ts),
                  "%s: a record's Data or timestamp not CBOR-typed: %r" % (what, r))
        records += [(r["SequenceNumber"], r["Data"]) for r in event["Records"]]
        if arrivals is not None:
            arrivals += [r["ApproximateArrivalTimestamp"].ms for r in event["Records"]]
        if event.get("ChildShards"):
            children = sorted(c["ShardId"] for c in event["ChildShards"])
    check(children == ["shardId-000000000001", "shardId-000000000002"],
          "%s: ChildShards %r" % (what, children))
    return records


def cbor_put(api, name, first, count):
    rng = random.Random(first)
    recs = [{"Data": bytes([i % 256]) + bytes(rng.getrandbits(8) for _ in range(rng.randrange(
        0, 300))), "PartitionKey": "p%d" % i} for i in range(first, first + count)]
    status, _, body = api.cbor("PutRecords", {"StreamName": name, "Records": recs})
    check(status == 200 and body["FailedRecordCount"] == 0, "PutRecords: %r" % body)
    return [(r["SequenceNumber"], recs[i]["Data"]) for i, r in enumerate(body["Records"])]


def subscribe_cbor(api, srv, tmp):
    """CBOR subscriptions over HTTP/1.1 and h2c while records are put, ended by a split."""
    name = "cbsub"
    status, _, body = api.cbor("CreateStream", {"StreamName": name, "ShardCount": 1})
    check(status == 200, "CreateStream: %r" % body)
    arn = wait_active(api, name)["StreamARN"]
    consumers = {}
    for http in ("http1.1", "h2c"):
        status, _, body = api.cbor("RegisterStreamConsumer", {"StreamARN": arn,
                                                              "ConsumerName": http})
        check(status == 200 and isinstance(body["Consumer"]["ConsumerCreationTimestamp"], Ts),
              "RegisterStreamConsumer in CBOR: %r" % body)
        consumers[http] = body["Consumer"]["ConsumerARN"]
    for c in consumers.values():
        deadline = time.time() + 60
        while True:
            status, _, body = api.cbor("DescribeStreamConsumer", {"ConsumerARN": c})
            check(status == 200 and time.time() < deadline, "consumer %s: %r" % (c, body))
            if body["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE":
                break
            time.sleep(0.05)
    # Errors before the stream starts are CBOR answers like any other.
    expect_cbor_error("unknown shard", api.cbor("SubscribeToShard", {
        "ConsumerARN": consumers["h2c"], "ShardId": "shardId-000000000007",
        "StartingPosition": {"Type": "LATEST"}}), 400, "ResourceNotFoundException",
        "shardId-000000000007")
    expect_cbor_error("unknown consumer", api.cbor("SubscribeToShard", {
        "ConsumerARN": consumers["h2c"] + "0", "ShardId": "shardId-000000000000",
        "StartingPosition": {"Type": "LATEST"}}), 400, "ResourceNotFoundException")
    expect_cbor_error("bad position", api.cbor("SubscribeToShard", {
        "ConsumerARN": consumers["h2c"], "ShardId": "shardId-000000000000",
        "StartingPosition": {"Type": "SOMEWHERE"}}), 400, "ValidationException")
    acked = cbor_put(api, name, 0, 200)
    subs = {http: subscribe_curl(api, srv, c, http, os.path.join(tmp, http + ".cbor"))
            for http, c in consumers.items()}
    for first in range(200, 600, 100):  # while both read
        acked += cbor_put(api, name, first, 100)
    status, _, body = api.cbor("SplitShard", {"StreamName": name,
                                              "ShardToSplit": "shardId-000000000000",
                                              "NewStartingHashKey": str(2 ** 127)})
    check(status == 200, "SplitShard: %r" % body)
    arrivals = []
    for http, proc in subs.items():
        got = subscription_records(http, proc, arrivals if http == "h2c" else None)
        check(got == acked, "%s: %d records received, %d acknowledged; first difference at %s" % (
            http, len(got), len(acked), next((i for i, (a, b) in enumerate(zip(got, acked))
                                              if a != b), None)))
    # AT_TIMESTAMP with the Timestamp as the Java SDK sends it (tag 1 + ms): from the first
    # record that arrived at or after it, to the parent's end.
    at = arrivals[len(arrivals) // 2]
    want = [r for r, ms in zip(acked, arrivals) if ms >= at]
    status, _, body = api.cbor("RegisterStreamConsumer", {"StreamARN": arn,
                                                          "ConsumerName": "at-ts"})
    check(status == 200, "RegisterStreamConsumer: %r" % body)
    deadline = time.time() + 60
    while api.cbor("DescribeStreamConsumer", {"ConsumerARN": body["Consumer"]["ConsumerARN"]})[
            2]["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        check(time.time() < deadline, "consumer at-ts never ACTIVE")
        time.sleep(0.05)
    got = subscription_records("AT_TIMESTAMP", subscribe_curl(
        api, srv, body["Consumer"]["ConsumerARN"], "h2c", os.path.join(tmp, "at.cbor"),
        {"Type": "AT_TIMESTAMP", "Timestamp": Ts(at)}))
    check(got == want and 0 < len(want) < len(acked),
          "AT_TIMESTAMP %d: %d records, want the %d that arrived since" % (at, len(got),
                                                                       len(want)))
    print("SubscribeToShard in CBOR: %d records each over HTTP/1.1 and h2c, once, in order, "
          "byte for byte" % len(acked))


def main():
    data_dir = tempfile.mkdtemp(prefix="cbor-itest-")
    srv = Sluiced(sys.argv[1], data_dir)
    t0 = time.time()
    try:
        srv.start("--set", "auth.mode=sigv4", "--set", "auth.access_keys=AKID:SECRET")
        api = Api(srv)
        streams_and_shards(api)
        cbor_only(api, srv)
        h2c(api, srv)
        newer_operations(api)
        subscribe_cbor(api, srv, data_dir)
        action_errors(api)
        srv.stop()
        print("PASS in %.1fs" % (time.time() - t0))
    finally:
        srv.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
