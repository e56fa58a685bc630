#!/usr/bin/python3
"""The admin listener: /healthz, /readyz, /metrics on its own port. /metrics
passes `promtool check metrics`, and its values move as records are put and
read: the stream's CloudWatch-named counters, the API's per-operation series,
the log's durable bytes and fdatasync histogram. A token, when set, is
required; a non-loopback listener without one is refused by --check-config.

usage: test_admin_metrics.py SLUICED PROMTOOL SLUICE
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import Sluiced, check, samples, wait_active  # noqa: E402

SLUICED, PROMTOOL, SLUICE = sys.argv[1], sys.argv[2], sys.argv[3]
STREAM = "ops-metrics"
PUTS = 25            # PutRecord calls
BATCH = 40           # records in each of BATCHES PutRecords calls
BATCHES = 5


def promtool_ok(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True)
    check(r.returncode == 0, "promtool check metrics: %s%s" % (r.stdout, r.stderr))


def value(s, name, **labels):
    key = (name, frozenset('%s="%s"' % kv for kv in labels.items()))
    return s.get(key, 0.0)


def traffic(kinesis):
    data = b"x" * 100
    for i in range(PUTS):
        kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey="k%d" % i)
    for b in range(BATCHES):
        kinesis.put_records(StreamName=STREAM, Records=[
            {"Data": data, "PartitionKey": "p%d-%d" % (b, i)} for i in range(BATCH)])
    shard = kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = kinesis.get_records(ShardIterator=it, Limit=10000)["Records"]
    try:
        kinesis.describe_stream(StreamName="no-such-stream")
    except kinesis.exceptions.ResourceNotFoundException:
        pass
    return len(got)


def check_moved(before, after, read):
    stored = PUTS + BATCH * BATCHES
    check(value(after, "sluice_stream_incoming_records_total", stream=STREAM) == stored,
          "incoming records %s, want %d" % (
              value(after, "sluice_stream_incoming_records_total", stream=STREAM), stored))
    check(value(after, "sluice_stream_incoming_bytes_total", stream=STREAM) == stored * 100,
          "incoming bytes")
    check(value(after, "sluice_stream_put_record_requests_total", stream=STREAM,
                result="success") == PUTS, "PutRecord.Success")
    check(value(after, "sluice_stream_put_records_records_total", stream=STREAM,
                result="successful") == BATCH * BATCHES, "PutRecords.SuccessfulRecords")
    check(value(after, "sluice_stream_put_records_latency_seconds_count", stream=STREAM) ==
          BATCHES, "PutRecords.Latency count")
    check(value(after, "sluice_stream_get_records_records_total", stream=STREAM) == read,
          "GetRecords.Records")
    check(value(after, "sluice_api_request_duration_seconds_count", operation="PutRecord") >=
          PUTS, "API PutRecord histogram")
    check(value(after, "sluice_api_errors_total", operation="DescribeStream",
                type="ResourceNotFoundException") == 1, "API errors by type")
    for name in ("sluice_log_durable_bytes_total", "sluice_log_commits_total",
                 "sluice_log_fdatasync_duration_seconds_count",
                 "sluice_log_commit_window_bytes_count"):
        check(value(after, name) > value(before, name), "%s did not move" % name)
    check(value(after, "process_resident_memory_bytes") > 0, "RSS")
    check(value(after, "process_open_fds") > 0, "open fds")
    check(value(after, "sluice_log_disk_free_bytes") > 0, "disk free")


def check_top(srv, kinesis):
    """sluice top, piped: one snapshot of rates over --interval, while records arrive."""
    top = subprocess.Popen([SLUICE, "top", "--admin", "127.0.0.1:%d" % srv.admin_port,
                            "--interval", "1500"], stdout=subprocess.PIPE, text=True)
    while top.poll() is None:
        kinesis.put_records(StreamName=STREAM, Records=[
            {"Data": b"t" * 100, "PartitionKey": "t%d" % i} for i in range(20)])
    out = top.stdout.read()
    m = re.search(r"^%s\s+(\d+)\s+(\d+)\s" % STREAM, out, re.M)
    check(top.returncode == 0 and m is not None and int(m.group(1)) > 0 and
          int(m.group(2)) > 0, "sluice top: %d %r" % (top.returncode, out))


def check_token(tmp):
    srv = Sluiced(SLUICED, os.path.join(tmp, "tok")).start("--set", "admin.token=s3cret")
    try:
        check(srv.get("/metrics")[0] == 401, "no token: want 401")
        check(srv.get("/metrics", {"Authorization": "Bearer wrong"})[0] == 401, "bad token")
        check(srv.get("/metrics", {"Authorization": "Bearer s3cret"})[0] == 200, "token")
        check(srv.get("/healthz?token=s3cret")[0] == 200, "?token=")
    finally:
        srv.stop()
    path = os.path.join(tmp, "open.ini")
    with open(path, "w") as f:
        f.write("[admin]\nlisten = 0.0.0.0:4568\n")
    r = subprocess.run([SLUICED, "--check-config", path], capture_output=True, text=True)
    check(r.returncode == 2 and "[admin] listen" in r.stderr,
          "non-loopback admin without a token: %d %s" % (r.returncode, r.stderr))


def check_dataplane(tmp):
    """With the dataplane on a net_null port (root only): per-worker counters that move."""
    if os.geteuid() != 0:
        print("dataplane part skipped: not root")
        return
    srv = Sluiced(SLUICED, os.path.join(tmp, "dp"))
    srv.start("--set", "dataplane.enabled=true", "--set", "dataplane.vdev=net_null0",
              "--set", "dataplane.no_huge=true", "--set", "dataplane.workers=2",
              "--set", "dataplane.eal_args=--no-pci --file-prefix=ops-admin-%d" % os.getpid())
    try:
        check(srv.get("/readyz") == (200, "ready\n"), "readyz with the dataplane")
        first = samples(srv.get("/metrics")[1])
        for _ in range(100):  # Workers share 2 cores with the builds: wait, do not assume.
            status, text = srv.get("/metrics")
            second = samples(text)
            if all(value(second, "sluice_dataplane_polls_total", worker=w) >
                   value(first, "sluice_dataplane_polls_total", worker=w) for w in ("0", "1")):
                break
            time.sleep(0.1)
        promtool_ok(text)
        for w in ("0", "1"):
            check(value(second, "sluice_dataplane_polls_total", worker=w) >
                  value(first, "sluice_dataplane_polls_total", worker=w),
                  "worker %s polls did not move: %s" % (w, [l for l in text.splitlines()
                                                            if "polls_total{" in l]))
        check(value(second, "sluice_ready", part="dataplane") == 1, "dataplane ready gauge")
    finally:
        srv.stop()


def main():
    with tempfile.TemporaryDirectory(prefix="ops-admin-") as tmp:
        srv = Sluiced(SLUICED, os.path.join(tmp, "data")).start()
        try:
            check(srv.get("/healthz") == (200, "ok\n"), "healthz")
            check(srv.get("/readyz") == (200, "ready\n"), "readyz: %r" % (srv.get("/readyz"),))
            check(srv.get("/nope")[0] == 404, "unknown path: 404")
            kinesis = srv.client()
            kinesis.create_stream(StreamName=STREAM, ShardCount=2)
            wait_active(kinesis, STREAM)
            status, text = srv.get("/metrics")
            check(status == 200, "metrics status %d" % status)
            promtool_ok(text)
            before = samples(text)
            read = traffic(kinesis)
            status, text = srv.get("/metrics")
            promtool_ok(text)
            check_moved(before, samples(text), read)
            with open(os.path.join(tmp, "metrics.txt"), "w") as f:
                f.write(text)
            # sluice status: readiness and the stream's totals, from the same listener.
            r = subprocess.run([SLUICE, "status", "--admin", "127.0.0.1:%d" % srv.admin_port],
                               capture_output=True, text=True, timeout=30)
            stored = PUTS + BATCH * BATCHES
            check(r.returncode == 0 and "ready" in r.stdout and
                  re.search(r"^%s\s+2\s+%d\s" % (STREAM, stored), r.stdout, re.M),
                  "sluice status: %d %s%s" % (r.returncode, r.stdout, r.stderr))
            check_top(srv, kinesis)
        finally:
            srv.stop()
        check_token(tmp)
        check_dataplane(tmp)
    print("admin listener and metrics ok")


main()
