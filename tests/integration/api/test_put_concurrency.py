#!/usr/bin/python3
"""Issue 14, finding 6: the API's write path is sized for the connection cap, and queues
within its memory budget instead of refusing early. Against one idle sluiced:

- a PutRecords of 500 records, each to a different one of a 500-shard stream, has 0
  records throttled (it needs 500 of the log's batches at once; the pool held 256, and
  244 records came back throttled every time);
- CLIENTS (512) clients on their own connections, each holding one PutRecords of 500 x 100 B
  (a 4-shard stream) in flight, all sent at once, ROUNDS times: every answer is a 200
  with FailedRecordCount 0 (no 503 for want of a buffer, no throttling for want of a
  batch or a pending slot: calls beyond those wait), and sluiced's resident memory,
  sampled throughout, stays under RSS_BUDGET_MB (the budget below);
- every record acknowledged is read back.

usage: test_put_concurrency.py SLUICED
"""
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

SLUICED = sys.argv[1]
CLIENTS = 512  # Half the connection cap (1,024): twice the old pools' 256.
ROUNDS = 3
RECORDS = 500
# What sluiced may hold here: the buffers of CLIENTS requests and responses (2 x 256 KiB
# each, SERVER_POOL_MEDIUM_PER_CONN: 256 MiB), the waiting calls' bodies (already in those
# buffers; put_queue_mb bounds them), the log's read cache (64 MiB), the batches records
# fill, SQLite and the tables. Measured: about 100 MiB.
RSS_BUDGET_MB = 512


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, action, body, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/", body=json.dumps(body).encode(), headers={
        "X-Amz-Target": "Kinesis_20131202." + action,
        "Content-Type": "application/x-amz-json-1.1"})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, json.loads(data) if data else {}


def wait_active(port, name):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st, r = call(port, "DescribeStreamSummary", {"StreamName": name})
        if st == 200 and r["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    check(False, "stream %s never became ACTIVE" % name)


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def wide_put(port):
    """500 records, one per shard of a 500-shard stream (ExplicitHashKey = its start)."""
    check(call(port, "CreateStream", {"StreamName": "wide", "ShardCount": 500})[0] == 200,
          "CreateStream wide")
    wait_active(port, "wide")
    shards, token = [], None
    while True:
        body = {"NextToken": token} if token else {"StreamName": "wide"}
        st, r = call(port, "ListShards", body)
        check(st == 200, "ListShards: %r" % r)
        shards += r["Shards"]
        token = r.get("NextToken")
        if not token:
            break
    check(len(shards) == 500, "%d shards" % len(shards))
    acked = 0
    for attempt in range(3):
        st, r = call(port, "PutRecords", {"StreamName": "wide", "Records": [
            {"PartitionKey": "w%d" % i, "ExplicitHashKey": s["HashKeyRange"]["StartingHashKey"],
             "Data": base64.b64encode(b"wide %d %d" % (attempt, i)).decode()}
            for i, s in enumerate(shards)]})
        check(st == 200, "wide PutRecords: %d %r" % (st, r))
        check(r["FailedRecordCount"] == 0, "wide PutRecords: %d of 500 records failed (%r)" % (
            r["FailedRecordCount"], [x for x in r["Records"] if "ErrorCode" in x][:2]))
        check(len({x["ShardId"] for x in r["Records"]}) == 500, "not 500 shards")
        acked += 500
    print("wide: 3 PutRecords of 500 records to 500 shards, 0 throttled")
    return acked


def crowd(port, pid):
    check(call(port, "CreateStream", {"StreamName": "crowd", "ShardCount": 4})[0] == 200,
          "CreateStream crowd")
    wait_active(port, "crowd")
    data = base64.b64encode(b"x" * 100).decode()
    results, rss = [], [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss[0] = max(rss[0], rss_mb(pid))
            time.sleep(0.01)

    def client(i, go, conn):
        body = {"StreamName": "crowd", "Records": [
            {"PartitionKey": "c%d-%d" % (i, n), "Data": data} for n in range(RECORDS)]}
        go.wait()
        try:
            results.append(call(port, "PutRecords", body, conn))
        except OSError as e:
            results.append((0, {"error": repr(e)}))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(ROUNDS):
        go = threading.Barrier(CLIENTS + 1)
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                 for _ in range(CLIENTS)]
        for c in conns:
            c.connect()  # Every connection open before any request: CLIENTS at once.
        threads = [threading.Thread(target=client, args=(i, go, conns[i]))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        go.wait()
        for t in threads:
            t.join(timeout=300)
            check(not t.is_alive(), "a client never got its answer")
        for c in conns:
            c.close()
    done.set()
    sampler.join()
    refused = [(st, r) for st, r in results if st != 200 or r.get("FailedRecordCount") != 0]
    check(len(results) == CLIENTS * ROUNDS, "%d answers" % len(results))
    check(not refused, "%d of %d calls refused or partly failed, e.g. HTTP %s, %s" % (
        len(refused), len(results), refused[0][0] if refused else None,
        (refused[0][1].get("FailedRecordCount", refused[0][1].get("__type"))
         if refused else None)))
    check(rss[0] <= RSS_BUDGET_MB, "RSS %.0f MiB over the %d MiB budget" % (rss[0],
                                                                         RSS_BUDGET_MB))
    print("crowd: %d rounds of %d clients x 1 PutRecords of %d records in flight: 0 "
          "refused; max RSS %.0f MiB (budget %d)" % (ROUNDS, CLIENTS, RECORDS, rss[0],
                                                      RSS_BUDGET_MB))
    return CLIENTS * ROUNDS * RECORDS


def read_count(port, name):
    st, r = call(port, "ListShards", {"StreamName": name})
    total = 0
    for s in r["Shards"]:
        st, it = call(port, "GetShardIterator", {"StreamName": name, "ShardId": s["ShardId"],
                                                "ShardIteratorType": "TRIM_HORIZON"})
        it = it["ShardIterator"]
        while it:
            st, g = call(port, "GetRecords", {"ShardIterator": it, "Limit": 10000})
            check(st == 200, "GetRecords: %r" % g)
            total += len(g["Records"])
            if not g["Records"] and g.get("MillisBehindLatest", 0) == 0:
                break
            it = g.get("NextShardIterator")
    return total


def main():
    tmp = tempfile.mkdtemp(prefix="put-concurrency-")
    port = free_port()
    log = open(os.path.join(tmp, "sluiced.log"), "w+")
    proc = subprocess.Popen([SLUICED, "--no-dataplane", "--data-dir", os.path.join(tmp, "data"),
                             "--api-listen", "127.0.0.1:%d" % port,
                             "--set", "server.stream_status_delay_ms=0"],
                            stdout=subprocess.PIPE, stderr=log)
    try:
        line = proc.stdout.readline().decode()
        check("ready" in line, "sluiced did not start: %r" % line)
        wide = wide_put(port)
        crowded = crowd(port, proc.pid)
        check(read_count(port, "wide") == wide, "wide: records missing on read-back")
        check(read_count(port, "crowd") == crowded, "crowd: records missing on read-back")
        print("PASS")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.seek(0)
        tail = log.read()[-2000:]
        if tail.strip():
            print("sluiced log (tail):", tail)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
