#!/usr/bin/python3
"""
Principals, resource policies, presigned SigV4 and CORS, end to end: sluiced
(no dataplane) with [auth] mode = sigv4 and three keys, driven by boto3 and by
raw HTTP signed with botocore.

  usage: test_policy_api.py SLUICED

Covers: --check-config refusing bad [auth] principals; a CORS preflight and
the Access-Control-* headers on answers (also on errors); a request presigned
with botocore's SigV4QueryAuth accepted, and refused once expired or altered;
a table of allow/deny cases across two accounts' principals (boto3 with each
key) under policies set with Put/Get/DeleteResourcePolicy (botocore-signed
raw requests: Debian's botocore 1.29 model predates these operations), their
validation and texts, a deny-all policy the root can still remove,
persistence across a restart, and a policy deleted with its stream.
Uses its own temp dir and free ports; stops only its own PIDs.
"""
import contextlib
import datetime
import http.client
import json
import os
import shutil
import subprocess
import signal
import sys
import tempfile
import time
import types
import urllib.parse

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import Sluiced, check, client, expect_error, wait_active  # noqa: E402

OWNER_ACCOUNT = "111122223333"
ALICE = "arn:aws:iam::111122223333:user/alice"
BOB = "arn:aws:iam::444455556666:user/bob"
KEYS = {"AKIDROOT": "secret-root", "AKIDALICE": "secret-alice", "AKIDBOB": "secret-bob"}
AUTH = ["--set", "auth.mode=sigv4",
        "--set", "auth.access_keys=" + ",".join("%s:%s" % kv for kv in KEYS.items()),
        "--set", "auth.principals=AKIDALICE=%s,AKIDBOB=%s" % (ALICE, BOB),
        "--set", "server.account_id=" + OWNER_ACCOUNT]
TARGET = "Kinesis_20131202."
JSON_TYPE = "application/x-amz-json-1.1"


@contextlib.contextmanager
def clock_at(when):
    """botocore signs at `when` (its clock is read through one of two names by version)."""
    if hasattr(botocore.auth, "get_current_datetime"):
        saved = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: when
        try:
            yield
        finally:
            botocore.auth.get_current_datetime = saved
        return

    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when
    saved = botocore.auth.datetime
    botocore.auth.datetime = types.SimpleNamespace(datetime=Fixed)
    try:
        yield
    finally:
        botocore.auth.datetime = saved


class KeepBody(botocore.auth.SigV4QueryAuth):
    """SigV4QueryAuth moves a JSON body into the query; Kinesis reads its input from the body."""

    def _modify_request_before_signing(self, request):
        data = request.data
        request.data = b""
        super()._modify_request_before_signing(request)
        request.data = data


def signed(srv, key, op, body, presign_expires=None, extra_headers=None):
    """A request for `op` signed by botocore (header form, or presigned), as (path, headers)."""
    req = AWSRequest(method="POST", url=srv.url + "/", data=body,
                     headers={"X-Amz-Target": TARGET + op, "Content-Type": JSON_TYPE,
                              **(extra_headers or {})})
    creds = Credentials(key, KEYS[key])
    if presign_expires is None:
        botocore.auth.SigV4Auth(creds, "kinesis", "us-east-1").add_auth(req)
    else:
        KeepBody(creds, "kinesis", "us-east-1", expires=presign_expires).add_auth(req)
    parts = urllib.parse.urlsplit(req.url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return path, dict(req.headers.items())


def send(srv, method, path, headers, body=b""):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    conn.close()
    return out


def call(srv, key, op, params, **kw):
    body = json.dumps(params).encode()
    path, headers = signed(srv, key, op, body, **kw)
    status, head, data = send(srv, "POST", path, headers, body)
    return status, head, json.loads(data) if data else {}


def test_check_config(binary, tmp):
    cases = [
        ("AKIDNOPE=" + BOB, "'AKIDNOPE' is not one of [auth] access_keys"),
        ("AKIDBOB=arn:aws:iam::4444:user/bob", "expected arn:aws:iam::ACCOUNT:root"),
        ("AKIDBOB", "expected ACCESS_KEY_ID=ARN"),
    ]
    for principals, text in cases:
        path = os.path.join(tmp, "bad.ini")
        with open(path, "w") as f:
            f.write("[server]\ndata_dir = %s\n[auth]\nmode = sigv4\naccess_keys = "
                    "AKIDBOB:x\nprincipals = %s\n" % (tmp, principals))
        r = subprocess.run([binary, "--check-config", path], capture_output=True, text=True)
        check(r.returncode != 0, "--check-config accepted principals %r" % principals)
        check("[auth] principals" in r.stderr and text in r.stderr,
              "--check-config on %r said: %s" % (principals, r.stderr))


def test_cors(srv):
    # The preflight needs no signature: browsers send none.
    status, head, body = send(srv, "OPTIONS", "/", {
        "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-amz-date,x-amz-target"})
    check(status == 200 and body == b"", "preflight: %d %r" % (status, body))
    check(head.get("access-control-allow-origin") == "*", "preflight origin: %s" % head)
    check(head.get("access-control-allow-methods") == "POST", "preflight methods: %s" % head)
    check(head.get("access-control-allow-headers") ==
          "authorization,content-type,x-amz-date,x-amz-target", "preflight headers: %s" % head)
    check(head.get("access-control-max-age") == "172800", "preflight max-age: %s" % head)
    # A signed answer and an unsigned refusal both carry the headers a browser needs.
    body = b"{}"
    path, headers = signed(srv, "AKIDROOT", "ListStreams", body,
                           extra_headers={"Origin": "http://app.example"})
    status, head, _ = send(srv, "POST", path, headers, body)
    check(status == 200, "signed ListStreams with Origin: %d" % status)
    for h in (head, send(srv, "POST", "/", {"Origin": "http://app.example",
                                            "X-Amz-Target": TARGET + "ListStreams",
                                            "Content-Type": JSON_TYPE}, b"{}")[1]):
        check(h.get("access-control-allow-origin") == "*", "answer origin: %s" % h)
        expose = h.get("access-control-expose-headers", "")
        check("x-amzn-RequestId" in expose and "x-amz-id-2" in expose, "expose: %s" % h)
    # No Origin, no CORS headers.
    status, head, _ = send(srv, "POST", path, {k: v for k, v in headers.items()
                                               if k != "Origin"}, body)
    check("access-control-allow-origin" not in head, "CORS headers without Origin: %s" % head)


def test_presign(srv, kc):
    kc.create_stream(StreamName="presigned", ShardCount=1)
    wait_active(kc, "presigned")
    put = {"StreamName": "presigned", "Data": "aGVsbG8=", "PartitionKey": "k"}
    status, _, out = call(srv, "AKIDROOT", "PutRecord", put, presign_expires=300)
    check(status == 200 and "SequenceNumber" in out, "presigned PutRecord: %d %s" % (status,
                                                                                  out))
    it = kc.get_shard_iterator(StreamName="presigned", ShardId="shardId-000000000000",
                               ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    recs = kc.get_records(ShardIterator=it)["Records"]
    check([r["Data"] for r in recs] == [b"hello"], "presigned record read back: %s" % recs)
    # Signed an hour ago for ten minutes: expired, whatever this machine's clock says.
    then = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
    with clock_at(then):
        status, _, out = call(srv, "AKIDROOT", "PutRecord", put, presign_expires=600)
    check(status == 400 and out.get("__type") == "InvalidSignatureException" and
          out.get("message", "").startswith("Signature expired"), "expired: %s" % out)
    # Signed for longer than a week: refused before the signature is checked.
    status, _, out = call(srv, "AKIDROOT", "PutRecord", put, presign_expires=604801)
    check(out.get("__type") == "IncompleteSignatureException", "8-day presign: %s" % out)
    # Another body under the same presigned URL: the body's hash is signed.
    body = json.dumps(put).encode()
    path, headers = signed(srv, "AKIDROOT", "PutRecord", body, presign_expires=300)
    status, _, data = send(srv, "POST", path, headers, body.replace(b"aGVsbG8=", b"aGk="))
    check(json.loads(data).get("__type") == "InvalidSignatureException",
          "presigned body swap: %s" % data)
    # The wrong secret.
    KEYS["AKIDROOT"], saved = "not-the-secret", KEYS["AKIDROOT"]
    try:
        status, _, out = call(srv, "AKIDROOT", "PutRecord", put, presign_expires=300)
    finally:
        KEYS["AKIDROOT"] = saved
    check(out.get("__type") == "InvalidSignatureException", "presign, wrong secret: %s" % out)


REGION_ACCOUNT = "arn:aws:kinesis:us-east-1:%s:stream/" % OWNER_ACCOUNT
ORDERS = REGION_ACCOUNT + "orders"
LOGS = REGION_ACCOUNT + "logs"


def ok(srv, key, op, params):
    status, _, out = call(srv, key, op, params)
    check(status == 200, "%s %s by %s: %d %s" % (op, params.get("ResourceARN", ""), key, status,
                                                 out))
    return out


def refused(srv, key, op, params, code, text=None):
    status, _, out = call(srv, key, op, params)
    check(status == 400 and out.get("__type") == code,
          "%s by %s: %d %s, want %s" % (op, key, status, out, code))
    if text is not None:
        check(out.get("message") == text, "%s by %s: message %r, want %r" % (
            op, key, out.get("message"), text))
    return out.get("message", "")


def denied_text(user, action, resource, explicit=False):
    head = "User: %s is not authorized to perform: kinesis:%s on resource: %s " % (
        user, action, resource)
    if explicit:
        return head + "with an explicit deny in a resource-based policy"
    return head + "because no resource-based policy allows the kinesis:%s action" % action


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def stmt(effect, principal, actions, resource="*"):
    return {"Effect": effect, "Principal": principal, "Action": actions, "Resource": resource}


def read_all(kc, name):
    it = kc.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                               ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [r["Data"] for r in kc.get_records(ShardIterator=it)["Records"]]


def test_no_policy(srv, bob, alice):
    """Without a policy: the owner's principals may, another account's may not."""
    alice.put_record(StreamName="orders", Data=b"a1", PartitionKey="k")
    msg = expect_error("AccessDeniedException", bob.put_record, StreamName="orders",
                       Data=b"b1", PartitionKey="k")
    check(msg == denied_text(BOB, "PutRecord", ORDERS), "no-policy text: %s" % msg)
    expect_error("AccessDeniedException", bob.describe_stream_summary, StreamName="orders")
    expect_error("AccessDeniedException", bob.put_records, StreamName="orders",
                 Records=[{"Data": b"x", "PartitionKey": "k"}])
    # Account-level operations: no resource policy can allow them.
    msg = expect_error("AccessDeniedException", bob.list_streams)
    check(msg == "User: %s is not authorized to perform: kinesis:ListStreams because no "
          "identity-based policy allows the kinesis:ListStreams action" % BOB, msg)
    expect_error("AccessDeniedException", bob.create_stream, StreamName="bobs", ShardCount=1)
    # A stream that does not exist: denied to bob (nothing confirmed), not found for alice.
    msg = expect_error("AccessDeniedException", bob.describe_stream_summary,
                       StreamName="nosuch")
    check(msg == denied_text(BOB, "DescribeStreamSummary", REGION_ACCOUNT + "nosuch"), msg)
    expect_error("ResourceNotFoundException", alice.describe_stream_summary,
                 StreamName="nosuch")
    # Only the owner account manages policies.
    refused(srv, "AKIDBOB", "PutResourcePolicy", {"ResourceARN": ORDERS, "Policy": policy(
        stmt("Allow", "*", "kinesis:*"))}, "AccessDeniedException")
    out = ok(srv, "AKIDALICE", "GetResourcePolicy", {"ResourceARN": ORDERS})
    check(out == {"Policy": "{}"}, "no policy: %s" % out)


def test_policy_table(srv, root, alice, bob):
    """A policy on orders: bob writes and reads it, nothing else; alice may not delete it."""
    text = policy(
        stmt("Allow", {"AWS": BOB}, ["kinesis:Put*", "kinesis:GetShardIterator",
                                     "kinesis:GetRecords", "kinesis:DescribeStreamSummary",
                                     "kinesis:ListShards"], ORDERS),
        stmt("Deny", {"AWS": ALICE}, "kinesis:DeleteStream", ORDERS))
    ok(srv, "AKIDROOT", "PutResourcePolicy", {"ResourceARN": ORDERS, "Policy": text})
    out = ok(srv, "AKIDALICE", "GetResourcePolicy", {"ResourceARN": ORDERS})
    check(out == {"Policy": text}, "policy read back: %s" % out)
    cases = [  # (client, call, kwargs, expected error or None)
        (bob, bob.put_record, dict(StreamName="orders", Data=b"b1", PartitionKey="k"), None),
        (bob, bob.put_records, dict(StreamName="orders", Records=[
            {"Data": b"b2", "PartitionKey": "k"}]), None),
        (bob, bob.describe_stream_summary, dict(StreamName="orders"), None),
        (bob, bob.list_shards, dict(StreamName="orders"), None),
        (bob, bob.describe_stream, dict(StreamName="orders"), "AccessDeniedException"),
        (bob, bob.delete_stream, dict(StreamName="orders"), "AccessDeniedException"),
        (bob, bob.increase_stream_retention_period, dict(
            StreamName="orders", RetentionPeriodHours=48), "AccessDeniedException"),
        (bob, bob.put_record, dict(StreamName="logs", Data=b"x", PartitionKey="k"),
         "AccessDeniedException"),
        (alice, alice.delete_stream, dict(StreamName="orders"), "AccessDeniedException"),
        (alice, alice.describe_stream, dict(StreamName="orders"), None),
    ]
    for client_, fn, kwargs, error in cases:
        if error is None:
            fn(**kwargs)
        else:
            expect_error(error, fn, **kwargs)
    check(read_all(bob, "orders") == [b"a1", b"b1", b"b2"], "bob reads orders")
    msg = expect_error("AccessDeniedException", alice.delete_stream, StreamName="orders")
    check(msg == denied_text(ALICE, "DeleteStream", ORDERS, explicit=True), msg)
    # An iterator or a NextToken obtained by another principal does not carry access.
    it = root.get_shard_iterator(StreamName="logs", ShardId="shardId-000000000000",
                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    msg = expect_error("AccessDeniedException", bob.get_records, ShardIterator=it)
    check(msg == denied_text(BOB, "GetRecords", LOGS), msg)
    token = root.list_shards(StreamName="logs", MaxResults=1)["NextToken"]
    expect_error("AccessDeniedException", bob.list_shards, NextToken=token)


def test_policy_operations(srv, root, bob):
    """AWS's validation and texts, deny-all recovery, delete, persistence, stream deletion."""
    for bad, reason in [
            ("not json", "Syntax errors in policy."),
            (policy(stmt("Allow", {"AWS": BOB}, "s3:GetObject")), "is not a kinesis action"),
            (json.dumps({"Statement": [dict(stmt("Allow", "*", "*"),
                                            Condition={"Bool": {"aws:SecureTransport": "true"}})]}),
             "Condition is not supported"),
            (policy(stmt("Allow", {"Service": "lambda.amazonaws.com"}, "*")),
             "Principal type 'Service' is not supported"),
            ("{" + " " * 20480 + "}", "larger than 20480 bytes")]:
        msg = refused(srv, "AKIDROOT", "PutResourcePolicy", {"ResourceARN": LOGS,
                                                             "Policy": bad},
                      "InvalidArgumentException")
        check(reason in msg, "bad policy %r: %s" % (bad[:40], msg))
    refused(srv, "AKIDROOT", "GetResourcePolicy", {"ResourceARN": "logs"}, "ValidationException")
    refused(srv, "AKIDROOT", "GetResourcePolicy", {}, "ValidationException")
    refused(srv, "AKIDROOT", "GetResourcePolicy", {
        "ResourceARN": "arn:aws:kinesis:us-east-1:999999999999:stream/logs"},
        "ResourceNotFoundException")
    refused(srv, "AKIDROOT", "GetResourcePolicy", {"ResourceARN": LOGS + "/consumer/c:1"},
            "ResourceNotFoundException")
    refused(srv, "AKIDROOT", "DeleteResourcePolicy", {"ResourceARN": LOGS},
            "ResourceNotFoundException",
            "No resource policy found for resource ARN %s." % LOGS)
    # Deny everything to everyone: alice is locked out of the policy too, the root is not.
    ok(srv, "AKIDROOT", "PutResourcePolicy", {"ResourceARN": LOGS, "Policy": policy(
        stmt("Deny", "*", "kinesis:*"))})
    refused(srv, "AKIDALICE", "DeleteResourcePolicy", {"ResourceARN": LOGS},
            "AccessDeniedException", denied_text(ALICE, "DeleteResourcePolicy", LOGS, True))
    expect_error("AccessDeniedException", root.describe_stream_summary, StreamName="logs")
    ok(srv, "AKIDROOT", "DeleteResourcePolicy", {"ResourceARN": LOGS})
    root.describe_stream_summary(StreamName="logs")


def test_persistence(srv, bob_key):
    """A policy survives a restart; deleting its stream deletes it."""
    text = policy(stmt("Allow", {"AWS": "444455556666"}, "kinesis:DescribeStreamSummary"))
    ok(srv, "AKIDROOT", "PutResourcePolicy", {"ResourceARN": LOGS, "Policy": text})
    srv.stop()
    srv.start(*AUTH)
    bob = client(srv, *bob_key)
    root = client(srv, "AKIDROOT", KEYS["AKIDROOT"])
    bob.describe_stream_summary(StreamName="logs")
    root.delete_stream(StreamName="logs")
    for _ in range(200):
        if "logs" not in root.list_streams()["StreamNames"]:
            break
        time.sleep(0.05)
    root.create_stream(StreamName="logs", ShardCount=1)
    wait_active(root, "logs")
    out = ok(srv, "AKIDROOT", "GetResourcePolicy", {"ResourceARN": LOGS})
    check(out == {"Policy": "{}"}, "a recreated stream has no policy: %s" % out)
    expect_error("AccessDeniedException", bob.describe_stream_summary, StreamName="logs")


def test_reload_keeps_principals(srv, tmp, bob):
    """A SIGHUP re-reads the keys: each must keep its principal (bob stays another account)."""
    log = os.path.join(tmp, "sluiced.log")
    srv.proc.send_signal(signal.SIGHUP)
    for _ in range(400):
        if "the API thread took its keys and settings" in open(log, errors="replace").read():
            break
        time.sleep(0.05)
    else:
        raise SystemExit("FAIL: no reload line in %s" % log)
    # "logs" was made again without a policy: still closed to another account.
    expect_error("AccessDeniedException", bob.describe_stream_summary, StreamName="logs")


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="sluice-policy-")
    srv = Sluiced(binary, tmp)
    try:
        test_check_config(binary, tmp)
        srv.start(*AUTH)
        root = client(srv, "AKIDROOT", KEYS["AKIDROOT"])
        test_cors(srv)
        test_presign(srv, root)
        alice = client(srv, "AKIDALICE", KEYS["AKIDALICE"])
        bob = client(srv, "AKIDBOB", KEYS["AKIDBOB"])
        for name, shards in (("orders", 1), ("logs", 2)):
            root.create_stream(StreamName=name, ShardCount=shards)
            wait_active(root, name)
        test_no_policy(srv, bob, alice)
        test_policy_table(srv, root, alice, bob)
        test_policy_operations(srv, root, bob)
        test_persistence(srv, ("AKIDBOB", KEYS["AKIDBOB"]))
        test_reload_keeps_principals(srv, tmp, client(srv, "AKIDBOB", KEYS["AKIDBOB"]))
        srv.stop()
    finally:
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("policy_api: ok")


if __name__ == "__main__":
    main()
