#!/usr/bin/python3
"""The admin listener: /healthz, /readyz, /metrics on its own port. /metrics
passes `promtool check metrics`, and its values move as records are put and
read: the stream's CloudWatch-named counters, the API's per-operation series,
the log's durable bytes and fdatasync histogram. Shard-level series exist for a
stream with enhanced monitoring on, only for the metrics enabled, with the
counts put and read (GetRecords and SubscribeToShard), and go when it is
disabled; the fan-out counters move with a boto3 subscription; the connection
counters count connections refused over the cap and closed as timed out. A token, when
set, is required; a non-loopback listener without one is refused by
--check-config.

usage: test_admin_metrics.py SLUICED PROMTOOL SLUICE
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import Sluiced, check, samples, wait_active  # noqa: E402

SLUICED, PROMTOOL, SLUICE = sys.argv[1], sys.argv[2], sys.argv[3]
STREAM = "ops-metrics"
SHARDED = "ops-shards"   # The stream with enhanced monitoring
SHARD_PUTS = (7, 3)      # Records put into its shards 0 and 1
HASH = ("0", str(2 ** 128 - 1))   # An ExplicitHashKey in each of its two shards
DEADLINE_S = 60
PUTS = 25            # PutRecord calls
BATCH = 40           # records in each of BATCHES PutRecords calls
BATCHES = 5
CONN_CAP = 3       # connections_max of check_connections


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


def shard_series(s, stream):
    """{(name, shard): value} of the sluice_shard_* series of `stream`."""
    out = {}
    for (name, labels), v in s.items():
        if name.startswith("sluice_shard_") and 'stream="%s"' % stream in labels:
            shard = [x for x in labels if x.startswith("shard=")][0][7:-1]
            out[(name, shard)] = v
    return out


def scrape(srv):
    status, text = srv.get("/metrics")
    check(status == 200, "metrics status %d" % status)
    promtool_ok(text)
    return samples(text)


def check_shards(srv, kinesis, shards):
    """IncomingRecords and OutgoingRecords on: exactly those, with the counts."""
    on = kinesis.enable_enhanced_monitoring(
        StreamName=SHARDED, ShardLevelMetrics=["IncomingRecords", "OutgoingRecords"])
    check(sorted(on["DesiredShardLevelMetrics"]) == ["IncomingRecords", "OutgoingRecords"],
          "enabled: %s" % on)
    for i, count in enumerate(SHARD_PUTS):
        kinesis.put_records(StreamName=SHARDED, Records=[
            {"Data": b"s" * 10, "PartitionKey": "k", "ExplicitHashKey": HASH[i]}
            for _ in range(count - 1)])
        kinesis.put_record(StreamName=SHARDED, Data=b"s" * 10, PartitionKey="k",
                           ExplicitHashKey=HASH[i])
    it = kinesis.get_shard_iterator(StreamName=SHARDED, ShardId=shards[0],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    read = len(kinesis.get_records(ShardIterator=it, Limit=10000)["Records"])
    check(read == SHARD_PUTS[0], "read back %d of shard 0" % read)
    s = scrape(srv)
    got = shard_series(s, SHARDED)
    want = {("sluice_shard_incoming_records_total", shards[i]): float(n)
            for i, n in enumerate(SHARD_PUTS)}
    want[("sluice_shard_outgoing_records_total", shards[0])] = float(SHARD_PUTS[0])
    want[("sluice_shard_outgoing_records_total", shards[1])] = 0.0
    check(got == want, "shard series of %s: %s, want %s" % (SHARDED, got, want))
    check(shard_series(s, STREAM) == {}, "no shard series without enhanced monitoring: %s" %
          shard_series(s, STREAM))
    check(value(s, "sluice_shard_series_refused_total") == 0, "no series refused")


def check_fanout(srv, kinesis, shards):
    """A boto3 subscription to shard 0: the fan-out counters and the shard's outgoing series."""
    arn = kinesis.describe_stream_summary(StreamName=SHARDED)[
        "StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="metrics")[
        "Consumer"]["ConsumerARN"]
    end = time.time() + DEADLINE_S
    while kinesis.describe_stream_consumer(ConsumerARN=consumer)[
            "ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        check(time.time() < end, "consumer never ACTIVE")
        time.sleep(0.05)
    before = scrape(srv)
    r = srv.client().subscribe_to_shard(ConsumerARN=consumer, ShardId=shards[0],
                                        StartingPosition={"Type": "TRIM_HORIZON"})
    got = 0
    for event in r["EventStream"]:
        got += len(event["SubscribeToShardEvent"]["Records"])
        if got >= SHARD_PUTS[0]:
            break
    check(got == SHARD_PUTS[0], "subscription delivered %d" % got)
    s = scrape(srv)
    moved = {name: value(s, name) - value(before, name) for name in (
        "sluice_fanout_subscriptions_total", "sluice_fanout_records_total",
        "sluice_fanout_bytes_total")}
    check(moved == {"sluice_fanout_subscriptions_total": 1,
                    "sluice_fanout_records_total": SHARD_PUTS[0],
                    "sluice_fanout_bytes_total": SHARD_PUTS[0] * 10}, "fan-out: %s" % moved)
    check(value(s, "sluice_fanout_events_total") > value(before, "sluice_fanout_events_total"),
          "events sent")
    check(value(s, "sluice_fanout_subscriptions_open") == 1, "one subscription open")
    check(value(s, "sluice_api_streams_total", result="started") ==
          value(before, "sluice_api_streams_total", result="started") + 1, "stream started")
    check(value(s, "sluice_api_stream_bytes_total") >
          value(before, "sluice_api_stream_bytes_total"), "stream bytes")
    check(value(s, "sluice_shard_outgoing_records_total", stream=SHARDED, shard=shards[0]) ==
          2 * SHARD_PUTS[0], "GetRecords and SubscribeToShard both count as outgoing")
    r["EventStream"].close()
    end = time.time() + DEADLINE_S
    while True:  # The server learns the client left when its connection closes.
        s = scrape(srv)
        if value(s, "sluice_fanout_subscriptions_open") == 0:
            break
        check(time.time() < end, "the subscription stayed open after the client left")
        time.sleep(0.05)
    check(value(s, "sluice_api_streams_total", result="gone") +
          value(s, "sluice_api_streams_total", result="ended") >=
          value(before, "sluice_api_streams_total", result="gone") +
          value(before, "sluice_api_streams_total", result="ended") + 1, "stream finished")


def check_shards_toggle(srv, kinesis, shards):
    """Disabled: the stream's series go. ALL: every family, from zero."""
    kinesis.disable_enhanced_monitoring(StreamName=SHARDED, ShardLevelMetrics=["ALL"])
    got = shard_series(scrape(srv), SHARDED)
    check(got == {}, "series left after DisableEnhancedMonitoring: %s" % got)
    kinesis.enable_enhanced_monitoring(StreamName=SHARDED, ShardLevelMetrics=["ALL"])
    kinesis.put_record(StreamName=SHARDED, Data=b"a" * 33, PartitionKey="k",
                       ExplicitHashKey=HASH[1])
    it = kinesis.get_shard_iterator(StreamName=SHARDED, ShardId=shards[1],
                                    ShardIteratorType="LATEST")["ShardIterator"]
    kinesis.get_records(ShardIterator=it)
    got = shard_series(scrape(srv), SHARDED)
    want = {("sluice_shard_incoming_records_total", shards[1]): 1.0,
            ("sluice_shard_incoming_bytes_total", shards[1]): 33.0,
            ("sluice_shard_outgoing_records_total", shards[1]): 0.0,
            ("sluice_shard_outgoing_bytes_total", shards[1]): 0.0,
            ("sluice_shard_write_throughput_exceeded_total", shards[1]): 0.0,
            ("sluice_shard_read_throughput_exceeded_total", shards[1]): 0.0,
            ("sluice_shard_iterator_age_seconds", shards[1]): 0.0}
    check(got == want, "ALL: %s, want %s" % (got, want))


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


def check_connections(tmp):
    """sluice_api_connections_total: with a cap of CONN_CAP, CONN_CAP silent connections are
    accepted, one more at once is refused (none is old enough to evict), and the silent
    ones are closed as timed out after idle_timeout_ms."""
    srv = Sluiced(SLUICED, os.path.join(tmp, "conn")).start(
        "--set", "server.connections_max=%d" % CONN_CAP, "--set", "server.idle_timeout_ms=2000")
    socks = []
    try:
        before = scrape(srv)
        for _ in range(CONN_CAP):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S))
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S)
        check(extra.recv(1) == b"", "a connection over the cap is closed")
        extra.close()
        for s in socks:  # Each is closed by the server, none answered.
            check(s.recv(1) == b"", "a silent connection got bytes")
        moved = {}
        deadline = time.time() + DEADLINE_S
        while time.time() < deadline:
            after = scrape(srv)
            moved = {r: value(after, "sluice_api_connections_total", result=r) -
                     value(before, "sluice_api_connections_total", result=r)
                     for r in ("accepted", "refused", "evicted", "shed", "timed_out")}
            if moved["timed_out"] == CONN_CAP:
                break
            time.sleep(0.05)
        check(moved == {"accepted": CONN_CAP, "refused": 1, "evicted": 0, "shed": 0,
                        "timed_out": CONN_CAP}, "connections: %s" % moved)
    finally:
        for s in socks:
            s.close()
        srv.stop()


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
        # The route publisher reads metadata at start, then only when a change is published.
        check(value(second, "sluice_route_reads_total", cause="start") == 1, "route start read")
        check(value(second, "sluice_route_reads_total", cause="event") == 0,
              "route reads with no change: %s" % [l for l in text.splitlines()
                                                  if "route_" in l])
        srv.client().create_stream(StreamName="ops-route", ShardCount=2)
        for _ in range(DEADLINE_S * 10):
            after = samples(srv.get("/metrics")[1])
            if value(after, "sluice_route_publishes_total") == 2:
                break
            time.sleep(0.1)
        check(value(after, "sluice_route_reads_total", cause="event") == 1 and
              value(after, "sluice_route_publishes_total") == 2,
              "CreateStream: one event read, one table published")
        check_thread_names(srv)
    finally:
        srv.stop()


# Named so `top -H`, `ps -L` and perf tell them apart (docs/ARCHITECTURE.md, "Threads").
THREADS_NAMED = ("sluice-api", "sluice-admin", "sluice-log", "sluice-logprep", "sluice-route",
                 "sluice-firehose")


def check_thread_names(srv):
    """Every long-lived thread of a sluiced with the dataplane on carries its name."""
    task = "/proc/%d/task" % srv.proc.pid
    names = set()
    for tid in os.listdir(task):
        with open(os.path.join(task, tid, "comm")) as f:
            names.add(f.read().strip())
    missing = [n for n in THREADS_NAMED if n not in names]
    check(not missing, "threads not named %s: %s" % (missing, sorted(names)))


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
            kinesis.create_stream(StreamName=SHARDED, ShardCount=2)
            wait_active(kinesis, SHARDED)
            shards = [x["ShardId"] for x in kinesis.list_shards(StreamName=SHARDED)["Shards"]]
            check_shards(srv, kinesis, shards)
            check_fanout(srv, kinesis, shards)
            check_shards_toggle(srv, kinesis, shards)
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
        check_connections(tmp)
        check_dataplane(tmp)
    print("admin listener and metrics ok")


main()
