#!/usr/bin/python3
"""The admin listener's SigV4 authentication, SIGHUP reloads and the sampled
access log, against a real sluiced:

  sigv4      GETs signed by botocore's SigV4 signer for the service sluice-admin
             with one of the API's access_keys are answered; unsigned, wrongly
             signed, signed for the kinesis service or for another path are 401;
             a non-loopback admin listener with [auth] mode = sigv4 and no token
             passes --check-config.
  reload     a changed reloadable key takes effect after SIGHUP on each thread that
             reads one (admin token: admin thread; access_log_sample and
             shard_count_updates_per_day: the API thread; the TLS certificate,
             read again from the same paths); a changed restart-only key
             (request_body_size_max) is named in the log and not applied; a file
             with errors changes nothing.
  access     JSON access lines carry time, peer, operation, stream, status, error
             type, bytes in and out, latency; 1 in N sampling is exact over N x k
             calls; errors are always logged but at most 100 a second, the rest
             counted in sluice_access_log_suppressed_total.

usage: test_admin_reload.py SLUICED
"""
import hashlib
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import Sluiced, check, free_port, samples, wait_active  # noqa: E402

SLUICED = sys.argv[1]
KEYS = "AKID:SECRET,AK2:SECRET2"
DEADLINE_S = 30
ERRORS_PER_S = 100   # CONFIG_ACCESS_LOG_ERRORS_PER_S


def signed_get(srv, path, key="AKID", secret="SECRET", service="sluice-admin",
               sign_path=None):
    """GET path with botocore's SigV4 signature (over sign_path when given)."""
    url = srv.admin_url + (sign_path or path)
    req = botocore.awsrequest.AWSRequest(method="GET", url=url)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), service,
                            "us-east-1").add_auth(req)
    return srv.get(path, dict(req.headers.items()))


def wait_for(cond, what):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise SystemExit("FAIL: timed out waiting for " + what)


def log_text(srv):
    with open(os.path.join(srv.data_dir, "sluiced.log")) as f:
        return f.read()


def access_lines(srv):
    out = []
    for line in log_text(srv).splitlines():
        if line.startswith("{") and '"module":"access"' in line:
            out.append(json.loads(line))
    return out


def check_sigv4(tmp):
    srv = Sluiced(SLUICED, os.path.join(tmp, "sigv4")).start(
        "--set", "auth.mode=sigv4", "--set", "auth.access_keys=" + KEYS,
        "--set", "admin.token=tok")
    try:
        check(srv.get("/metrics")[0] == 401, "unsigned: 401")
        status, text = signed_get(srv, "/metrics")
        check(status == 200 and "sluice_ready" in text, "signed /metrics: %d" % status)
        check(signed_get(srv, "/readyz", key="AK2", secret="SECRET2")[0] == 200,
              "second key")
        check(signed_get(srv, "/metrics", secret="WRONG")[0] == 401, "wrong secret: 401")
        check(signed_get(srv, "/metrics", key="NOPE")[0] == 401, "unknown key: 401")
        check(signed_get(srv, "/metrics", service="kinesis")[0] == 401,
              "a kinesis-scoped signature: 401")
        check(signed_get(srv, "/healthz", sign_path="/metrics")[0] == 401,
              "signed for another path: 401")
        check(srv.get("/healthz", {"Authorization": "Bearer tok"})[0] == 200,
              "the token still works")
        # The API itself still takes kinesis-scoped signatures with the same keys.
        srv.client().list_streams()
    finally:
        srv.stop()
    # Loopback, SigV4 keys and no token: open as before (sluice status needs no secret).
    # The access log in text format here: "sluice info access: ts=... k=v ...".
    srv = Sluiced(SLUICED, os.path.join(tmp, "sigv4-open")).start(
        "--set", "auth.mode=sigv4", "--set", "auth.access_keys=" + KEYS,
        "--set", "admin.access_log_sample=1")
    try:
        check(srv.get("/healthz")[0] == 200, "loopback without a token: open")
        srv.client().list_streams()
        line = r"^sluice info access: ts=\S+Z peer=127\.0\.0\.1:\d+ op=ListStreams stream=- " \
               r"status=200 error=- bytes_in=\d+ bytes_out=\d+ latency_us=\d+$"
        wait_for(lambda: re.search(line, log_text(srv), re.M), "a text access line")
    finally:
        srv.stop()
    path = os.path.join(tmp, "wide.ini")
    with open(path, "w") as f:
        f.write("[server]\napi_listen = 0.0.0.0:4567\n[auth]\nmode = sigv4\n"
                "access_keys = %s\n[admin]\nlisten = 0.0.0.0:4568\n" % KEYS)
    r = subprocess.run([SLUICED, "--check-config", path], capture_output=True, text=True)
    check(r.returncode == 0, "non-loopback admin with sigv4 keys: %d %s" % (r.returncode,
                                                                             r.stderr))


def make_cert(tmp, name, cn):
    cert, key = os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def served_cert(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.connect()
    der = conn.sock.getpeercert(binary_form=True)
    conn.close()
    return hashlib.sha256(der).hexdigest()


def write_config(path, token, sample, updates, body_max, broken=False):
    with open(path, "w") as f:
        f.write("[server]\nshard_count_updates_per_day = %d\nrequest_body_size_max = %d\n"
                "diag_format = json\n[admin]\ntoken = %s\naccess_log_sample = %d\n"
                % (updates, body_max, token, sample))
        if broken:
            f.write("[log]\nno_such_key = 1\n")


def update_shards(kinesis, stream, count):
    try:
        kinesis.update_shard_count(StreamName=stream, TargetShardCount=count,
                                   ScalingType="UNIFORM_SCALING")
        return "ok"
    except kinesis.exceptions.LimitExceededException:
        return "limit"


def check_reload(tmp):
    conf = os.path.join(tmp, "reload.ini")
    tls_dir = os.path.join(tmp, "tls")
    os.makedirs(tls_dir)
    cert, key = make_cert(tls_dir, "live", "one")
    write_config(conf, "one", 0, 1, 1 << 20)
    tls_port = free_port()
    srv = Sluiced(SLUICED, os.path.join(tmp, "reload")).start(
        "--config", conf, "--set", "server.tls_listen=127.0.0.1:%d" % tls_port,
        "--set", "server.tls_cert=" + cert, "--set", "server.tls_key=" + key)
    try:
        kinesis = srv.client()
        kinesis.create_stream(StreamName="reload", ShardCount=1)
        wait_active(kinesis, "reload")
        check(update_shards(kinesis, "reload", 2) == "ok", "first UpdateShardCount")
        wait_active(kinesis, "reload")
        check(update_shards(kinesis, "reload", 4) == "limit", "a second one is over the limit")
        kinesis.put_record(StreamName="reload", Data=b"before", PartitionKey="k")
        check(access_lines(srv) == [], "access log off: no lines")
        first_cert = served_cert(tls_port)

        # A file with an error: nothing changes.
        write_config(conf, "two", 1, 0, 1024, broken=True)
        srv.proc.send_signal(1)
        wait_for(lambda: "the configuration has errors; nothing changes" in log_text(srv),
                 "the refused reload's line")
        check(srv.get("/healthz?token=one")[0] == 200, "token kept after a refused reload")

        # Reloadable keys change; request_body_size_max (restart only) too.
        write_config(conf, "two", 1, 0, 1024)
        new_cert, new_key = make_cert(tls_dir, "next", "two")
        os.replace(new_cert, cert)
        os.replace(new_key, key)
        srv.proc.send_signal(1)
        wait_for(lambda: "need a restart: [server] request_body_size_max" in log_text(srv),
                 "the reload summary naming the restart-only key")
        text = log_text(srv)
        for k in ("[admin] token changed: applied", "[admin] access_log_sample changed: applied",
                  "[server] shard_count_updates_per_day changed: applied",
                  "[server] request_body_size_max changed: needs a restart, not applied"):
            check(k in text, "log line %r" % k)
        wait_for(lambda: srv.get("/healthz?token=two")[0] == 200, "the new token")
        check(srv.get("/healthz?token=one")[0] == 401, "the old token refused")
        # The API thread takes its keys at its next loop pass: wait for the TLS swap's line.
        wait_for(lambda: "TLS certificate %s loaded" % cert in log_text(srv), "TLS reload")
        check(served_cert(tls_port) != first_cert, "new connections get the new certificate")
        wait_active(kinesis, "reload")
        check(update_shards(kinesis, "reload", 4) == "ok",
              "shard_count_updates_per_day = 0 (no limit) applied")
        wait_active(kinesis, "reload")
        # Restart-only: a 2000-byte body still passes the running 1 MiB limit.
        kinesis.put_record(StreamName="reload", Data=b"x" * 1500, PartitionKey="k")
        wait_for(lambda: any(l["op"] == "PutRecord" and l["stream"] == "reload"
                             for l in access_lines(srv)), "access log on after SIGHUP")
    finally:
        srv.stop()


def bad_requests(srv, count):
    """`count` requests answered 400 UnknownOperationException, on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    for _ in range(count):
        conn.request("POST", "/", body=b"{}", headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Kinesis_20131202.NoSuchThing"})
        r = conn.getresponse()
        r.read()
        check(r.status == 400, "bad request status %d" % r.status)
    conn.close()


def access_sluiced(tmp, name, every):
    """A sluiced logging 1 in `every` requests as JSON, with one stream `name`."""
    srv = Sluiced(SLUICED, os.path.join(tmp, name)).start(
        "--set", "admin.access_log_sample=%d" % every, "--set", "server.diag_format=json")
    kinesis = srv.client()
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    return srv, kinesis


def check_access(tmp):
    srv, kinesis = access_sluiced(tmp, "acc", 1)
    try:
        kinesis.put_record(StreamName="acc", Data=b"y" * 300, PartitionKey="k")
        try:
            kinesis.describe_stream(StreamName="missing-one")
        except kinesis.exceptions.ResourceNotFoundException:
            pass
        wait_for(lambda: any(l["op"] == "DescribeStream" for l in access_lines(srv)),
                 "the error's line")
        lines = access_lines(srv)
        put = [l for l in lines if l["op"] == "PutRecord"]
        check(len(put) == 1, "one PutRecord line: %r" % put)
        p = put[0]
        check(p["stream"] == "acc" and p["status"] == 200 and p["error"] == "" and
              p["bytes_in"] > 400 and p["bytes_out"] > 20 and "latency_us" in p and
              p["peer"].startswith("127.0.0.1:") and p["ts"].endswith("Z") and
              p["level"] == "info", "PutRecord line %r" % p)
        err = [l for l in lines if l["op"] == "DescribeStream"][0]
        check(err["status"] == 400 and err["error"] == "ResourceNotFoundException" and
              err["stream"] == "missing-one", "error line %r" % err)
    finally:
        srv.stop()

    # 1 in 10: exactly 5 lines for 50 consecutive PutRecord calls.
    srv, kinesis = access_sluiced(tmp, "smp", 10)
    try:
        for i in range(50):
            kinesis.put_record(StreamName="smp", Data=b"z", PartitionKey="k%d" % i)
        wait_for(lambda: len([l for l in access_lines(srv) if l["op"] == "PutRecord"]) >= 5,
                 "sampled lines")
        # Nothing else is in flight: the count is final once the calls have returned.
        n = len([l for l in access_lines(srv) if l["op"] == "PutRecord"])
        check(n == 5, "1 in 10 of 50 calls: %d lines" % n)
        # Errors: every one logged up to the per-second limit, the rest counted.
        sent = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            bad_requests(srv, 200)
            sent += 200
            m = samples(srv.get("/metrics")[1])
            if m.get(("sluice_access_log_suppressed_total", frozenset()), 0) > 0:
                break
        m = samples(srv.get("/metrics")[1])
        suppressed = m[("sluice_access_log_suppressed_total", frozenset())]
        errors = [l for l in access_lines(srv) if l["status"] == 400]
        check(suppressed > 0, "suppression never needed: %d errors sent" % sent)
        check(len(errors) + suppressed == sent,
              "%d lines + %d suppressed != %d sent" % (len(errors), suppressed, sent))
        per_second = {}
        for l in errors:
            per_second[l["ts"][:19]] = per_second.get(l["ts"][:19], 0) + 1
        # The limit's seconds are the monotonic clock's: one wall-clock second may hold
        # the end of one and the start of the next.
        check(max(per_second.values()) <= 2 * ERRORS_PER_S,
              "error lines in one second: %d" % max(per_second.values()))
    finally:
        srv.stop()


def main():
    with tempfile.TemporaryDirectory(prefix="ops-reload-") as tmp:
        check_sigv4(tmp)
        check_reload(tmp)
        check_access(tmp)
    print("admin sigv4, SIGHUP reload and access log ok")


main()
