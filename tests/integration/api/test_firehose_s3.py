#!/usr/bin/python3
"""Delivery streams into an S3-compatible store (issue 16): npm s3rver, started
here, behind [firehose] s3_endpoint; objects read back with boto3's s3 client.

  1. DirectPut in every compression format, each object decompressed and compared
     byte for byte: every record exactly once, in order, objects cut at SizeInMBs,
     Firehose's YYYY/MM/DD/HH/ key.
  2. Multipart: one 12 MiB object with s3_part_mb = 5 is sent in three parts (s3rver's
     log shows the upload) and reads back whole.
  3. The store refuses (s3rver stopped): the failures show in /metrics, nothing is
     lost; once s3rver is back every record is delivered exactly once.
  3b. A store that accepts and never answers: the request fails (counted) after the
     stall limit; restarted with a working store, the records are delivered once.
  4. sluiced SIGKILLed ten times while it uploads (single PUTs and multipart): every
     acknowledged record in exactly one object (count and bytes).
  5. Custom prefixes: !{timestamp:...} and !{firehose:random-string}; their refusals
     (AWS's texts where known). Dynamic partitioning with a MetadataExtraction query:
     one object per partition under its evaluated prefix, every record once, and the
     records that cannot be partitioned as Firehose's error JSON under ErrorOutputPrefix
     (!{firehose:error-output-type} = partitioning-failed).

SigV4 itself is checked against AWS's examples and botocore in tests/common/test_sigv4.c
(s3rver's signature checks are not the oracle).

Usage: test_firehose_s3.py SLUICED S3RVER_DIR (npm installs s3rver there on first use;
without node/npm the test is skipped, saying so). Own temp dirs and free ports; stops
only the processes it started, by PID.
"""
import base64
import collections
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import botocore.config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_firehose import (DECODERS, check_exactly_once, client,  # noqa: E402
                           expect_error, firehose_figures, make_records, put_all, s3dest)
from test_firehose_source import make_stream, put_records, source  # noqa: E402
from test_kinesis_api import Sluiced, check, free_port, npm_install  # noqa: E402
from test_kinesis_api import client as kinesis_client  # noqa: E402

DEADLINE_S = 120
S3_KEY = "S3RVER"  # s3rver's only key pair.


def s3rver_install(js_dir):
    """s3rver's main script, npm-installed into js_dir once; None if impossible."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "s3js")
    main = os.path.join("node_modules", "s3rver", "bin", "s3rver.js")
    return None if npm_install(here, js_dir, ["package.json"], main) is None else \
        os.path.join(js_dir, main)


class S3rver:
    """One s3rver on a port and directory; start() waits until it answers."""

    def __init__(self, main, directory, log_path):
        self.main, self.directory, self.log_path = main, directory, log_path
        self.port = free_port()
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["node", self.main, "-d", self.directory, "-a", "127.0.0.1",
                                      "-p", str(self.port)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client().list_buckets()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("FAIL: s3rver did not start")
                time.sleep(0.2)

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def client(self):
        cfg = botocore.config.Config(s3={"addressing_style": "path"},
                                     retries={"max_attempts": 1}, connect_timeout=2)
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=S3_KEY, aws_secret_access_key=S3_KEY, config=cfg)

    def objects(self, bucket, decode=lambda b: b):
        """{key: decoded bytes} of every object in the bucket."""
        s3, out = self.client(), {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                out[o["Key"]] = decode(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        return out


def s3rver_store(js_dir, prefix):
    """(temp base dir, an S3rver in it, not started), or None (said: no node/npm)."""
    main_js = s3rver_install(js_dir)
    if main_js is None:
        print("SKIPPED: no node/npm, or npm could not install s3rver")
        return None
    base = tempfile.mkdtemp(prefix=prefix)
    return base, S3rver(main_js, os.path.join(base, "s3"), os.path.join(base, "s3rver.log"))


def sluiced_args(store, part_mb=5):
    return ["--set", "firehose.s3_endpoint=" + store.url, "--set", "firehose.s3_access_key=" +
            S3_KEY, "--set", "firehose.s3_secret_key=" + S3_KEY, "--set",
            "firehose.s3_part_mb=%d" % part_mb]


def wait_objects(store, bucket, compression, total_bytes, what):
    decode = DECODERS[compression][1]
    deadline = time.monotonic() + DEADLINE_S
    got, last_error = 0, None
    while True:
        # s3rver lists an object while it still writes the file in place, so a GET can
        # return a prefix that does not decode (gzip's EOFError, a short snappy block):
        # read the listing again rather than fail; a decoder that never succeeds still
        # fails at the deadline, with its error.
        try:
            objs = store.objects(bucket, decode)
            got, last_error = sum(len(d) for d in objs.values()), None
            if got >= total_bytes:
                return objs
        except Exception as e:  # noqa: BLE001 - any decoder's error on a partial object
            last_error = e
        if time.monotonic() > deadline:
            raise SystemExit("FAIL: %s: %d of %d bytes in the store in %d s%s" %
                             (what, got, total_bytes, DEADLINE_S,
                              "; last read failed: %r" % last_error if last_error else ""))
        time.sleep(0.3)


def test_formats(srv, store):
    fh, rng = client(srv), random.Random(316)
    for compression in DECODERS:
        name = "s3-" + compression.lower()
        store.client().create_bucket(Bucket=name)
        fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=
                                  s3dest(name, compression, size_mb=1, interval_s=1,
                                         prefix="in/"))
        sent = make_records(name, 3000, rng)
        put_all(fh, name, sent)
        objs = wait_objects(store, name, compression, sum(map(len, sent)), name)
        check_exactly_once(sent, objs, name, size_mb=1)
        check(len(objs) >= 3, "%s: %d objects for 3 MB at SizeInMBs 1" % (name, len(objs)))
        ext = DECODERS[compression][0]
        for key in objs:
            parts = key.split("/")
            check(len(parts) == 6 and parts[0] == "in" and parts[5].startswith(name + "-1-")
                  and key.endswith(ext), "object key %s" % key)
    print("ok: S3 delivery in every format, each record exactly once")


def test_stream_source(srv, store):
    """A KinesisStreamAsSource delivery stream (two shards) into the store, KPL-free."""
    fh, kin, rng, name = client(srv), kinesis_client(srv), random.Random(16), "s3-source"
    store.client().create_bucket(Bucket=name)
    make_stream(kin, name, 2)
    fh.create_delivery_stream(DeliveryStreamName=name, DeliveryStreamType="KinesisStreamAsSource",
                              KinesisStreamSourceConfiguration=source(name),
                              ExtendedS3DestinationConfiguration=s3dest(name, "GZIP", size_mb=1,
                                                                        interval_s=1))
    sent = put_records(kin, name, "src", 3000, rng)
    objs = wait_objects(store, name, "GZIP", sum(map(len, sent)), name)
    got = collections.Counter(r + b"\n" for d in objs.values() for r in d.split(b"\n")[:-1])
    check(got == collections.Counter(sent) and all(n == 1 for n in got.values()),
          "%s: every record exactly once (%d objects)" % (name, len(objs)))
    check(sum(len(d) for d in objs.values()) == sum(map(len, sent)), "%s: bytes" % name)
    print("ok: a Kinesis stream's records (2 shards) in the store, each exactly once")


def test_multipart(srv, store, s3rver_log):
    fh, name = client(srv), "s3-multipart"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=
                              s3dest(name, "UNCOMPRESSED", size_mb=16, interval_s=2))
    rng = random.Random(5)
    sent = [b"mp-%05d-%s\n" % (i, bytes(rng.choice(b"abcdef") for _ in range(1)) * 100000)
            for i in range(120)]  # 12 MiB: one object (SizeInMBs 16), three 5 MiB parts.
    put_all_small(fh, name, sent)
    objs = wait_objects(store, name, "UNCOMPRESSED", sum(map(len, sent)), name)
    check(len(objs) == 1, "%s: %d objects, expected one" % (name, len(objs)))
    check_exactly_once(sent, objs, name)
    with open(s3rver_log, "rb") as f:
        log = f.read().decode(errors="replace")
    check("?uploads" in log and "partNumber=3" in log,
          "s3rver's log shows no multipart upload of three parts")
    print("ok: a 12 MiB object uploaded in three parts, read back whole")


def put_all_small(fh, name, records):
    """PutRecordBatch of at most 4 MiB each (100 KB records: 30 a batch)."""
    for i in range(0, len(records), 30):
        r = fh.put_record_batch(DeliveryStreamName=name,
                                Records=[{"Data": d} for d in records[i:i + 30]])
        check(r["FailedPutCount"] == 0, "put_record_batch failed")


def figure(admin_port, name, family):
    return firehose_figures(admin_port, name)[1].get("sluice_firehose_" + family, 0)


def test_store_down(srv, store, admin_port):
    fh, name = client(srv), "s3-outage"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=
                              s3dest(name, "GZIP", size_mb=1, interval_s=0))
    store.stop()
    sent = make_records("outage", 2000, random.Random(7))
    put_all(fh, name, sent)  # Acknowledged while the store is away.
    deadline = time.monotonic() + DEADLINE_S
    while figure(admin_port, name, "delivery_failures_total") < 2:
        check(time.monotonic() < deadline, "no delivery failure counted with s3rver down")
        time.sleep(0.2)
    check(figure(admin_port, name, "delivered_records_total") == 0,
          "records delivered with the store down")
    store.start()
    objs = wait_objects(store, name, "GZIP", sum(map(len, sent)), "after the outage")
    check_exactly_once(sent, objs, "after the outage", size_mb=1)
    print("ok: s3rver stopped and restarted: failures counted, then every record once")


def big_records(tag, count, rng):
    """Records of 50-150 KB: a round's few MiB make cuts above the 5 MiB part size."""
    return [b"%s-%05d-%s\n" % (tag.encode(), i, b"z" * rng.randrange(50000, 150000))
            for i in range(count)]


def dp_dest(bucket, query, prefix, error_prefix="err/!{firehose:error-output-type}/",
            interval_s=1, compression="GZIP", enabled=True, processor="MetadataExtraction"):
    d = s3dest(bucket, compression, size_mb=1, interval_s=interval_s, prefix=prefix)
    if error_prefix is not None:
        d["ErrorOutputPrefix"] = error_prefix
    d["DynamicPartitioningConfiguration"] = {"Enabled": enabled}
    d["ProcessingConfiguration"] = {"Enabled": True, "Processors": [{
        "Type": processor, "Parameters": [
            {"ParameterName": "MetadataExtractionQuery", "ParameterValue": query},
            {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]}
    return d


def test_prefix_errors(fh):
    create, q = fh.create_delivery_stream, "{customer:.customer}"
    bad = "InvalidArgumentException"
    cases = [
        (s3dest("b", prefix="!{timestamp:yyyy}/"), "Ths supplied prefix(es) do not satisfy "
         "the following constraint: ErrorOutputPrefix cannot be null or empty when Prefix "
         "contains expressions"),
        (dict(s3dest("b", prefix="c=!{partitionKeyFromQuery:customer}/"),
              ErrorOutputPrefix="e/!{firehose:error-output-type}/"),
         "Dynamic Partitioning Namespaces can only be part of a prefix expression when "
         "Dynamic Partitioning is enabled."),
        (dict(s3dest("b", prefix="!{nope:x}/"), ErrorOutputPrefix="e/"),
         "unknown expression namespace"),
        (dict(s3dest("b", prefix="!{firehose:error-output-type}/"), ErrorOutputPrefix="e/"),
         "can only be used in ErrorOutputPrefix"),
        (dict(s3dest("b", prefix="!{timestamp:yyyy-QQ}/"), ErrorOutputPrefix="e/"),
         "not a Java DateTimeFormatter pattern"),
        (dict(s3dest("b", prefix="!{timestamp:yyyy/"), ErrorOutputPrefix="e/"),
         "does not start a !{namespace:value} expression"),
        (dict(s3dest("b", prefix="!{timestamp:yyyy}/"), ErrorOutputPrefix="e/!{timestamp:yyyy}/"),
         "ErrorOutputPrefix must contain !{firehose:error-output-type}"),
        (dp_dest("b", "{customer: .customer | ascii_downcase}",
                 "c=!{partitionKeyFromQuery:customer}/"), "MetadataExtractionQuery must be a JQ "
         "object whose values are field paths"),
        (dp_dest("b", q, "c=!{partitionKeyFromQuery:other}/"), "is not one of the keys"),
        (dp_dest("b", q, "c=!{partitionKeyFromQuery:customer}/", error_prefix=None),
         "ErrorOutputPrefix cannot be null or empty"),
        (dp_dest("b", q, "c=!{partitionKeyFromQuery:customer}/", interval_s=0),
         "zero buffering"),
        (dp_dest("b", q, "static/"), "at least one dynamic partitioning namespace"),
        (dp_dest("b", q, "c=!{partitionKeyFromQuery:customer}/",
                 processor="Decompression"),
         "Processor type Decompression is not supported by this endpoint yet"),
        (dp_dest("b", q, "c=!{partitionKeyFromQuery:customer}/", enabled=False),
         "requires Dynamic Partitioning to be enabled"),
        (dict(s3dest("b", prefix="../up/")), "'..' in prefixes"),
    ]
    for dest, text in cases:
        expect_error(create, bad, text, DeliveryStreamName="v",
                     ExtendedS3DestinationConfiguration=dest)
    expect_error(create, "SerializationException", DeliveryStreamName="v",
                 ExtendedS3DestinationConfiguration=dict(
                     dp_dest("b", q, "c=!{partitionKeyFromQuery:customer}/"),
                     DynamicPartitioningConfiguration={"Enabled": "yes"}))
    check(fh.list_delivery_streams()["DeliveryStreamNames"] == [],
          "a refused create left a stream behind")
    print("ok: prefix expressions and dynamic partitioning refused as AWS does")


def test_config(binary, base):
    """[firehose] s3_* refused by --check-config, naming the key; a good set passes."""
    cases = [("s3_endpoint = ftp://store\n", "[firehose] s3_endpoint: refused"),
             ("s3_endpoint = http://127.0.0.1:9/path\n", "[firehose] s3_endpoint: refused"),
             ("s3_endpoint = http://127.0.0.1:9\n", "[firehose] s3_access_key: refused"),
             ("s3_endpoint = http://127.0.0.1:9\ns3_access_key = a\n",
              "[firehose] s3_secret_key: refused"),
             ("s3_part_mb = 4\n", "out of range (5 .. 128)"),
             ("s3_endpoint = https://store.example:9000/\ns3_access_key = a\n"
              "s3_secret_key = b\ns3_path_style = false\n", None)]
    path = os.path.join(base, "check.ini")
    for body, text in cases:
        with open(path, "w") as f:
            f.write("[firehose]\n" + body)
        r = subprocess.run([binary, "--check-config", path], capture_output=True, timeout=30)
        out = (r.stdout + r.stderr).decode()
        if text is None:
            check(r.returncode == 0, "--check-config refused %r: %s" % (body, out))
        else:
            check(r.returncode != 0 and text in out, "--check-config %r: %s" % (body, out))
    print("ok: [firehose] s3_* checked by --check-config")


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def test_custom_prefix(srv, store):
    fh, name = client(srv), "s3-prefix"
    store.client().create_bucket(Bucket=name)
    before = utc_now()
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=dict(
        s3dest(name, "UNCOMPRESSED", size_mb=1, interval_s=1,
               prefix="t/!{timestamp:yyyy'-y-'MM}/!{firehose:random-string}/d=!{timestamp:dd}/"),
        ErrorOutputPrefix="e/!{firehose:error-output-type}/"))
    sent = make_records(name, 1500, random.Random(8))
    put_all(fh, name, sent)
    objs = wait_objects(store, name, "UNCOMPRESSED", sum(map(len, sent)), name)
    after = utc_now()
    check_exactly_once(sent, objs, name, size_mb=1)
    stamps = {t.strftime("%Y-y-%m/") + "%s" + t.strftime("/d=%d/") for t in (before, after)}
    for key in objs:
        m = re.match(r"t/(\d{4}-y-\d\d/)([0-9a-z]{11})(/d=\d\d/)" + name + r"-1-", key)
        check(m is not None and m.group(1) + "%s" + m.group(3) in stamps,
              "%s: not t/yyyy-y-MM/<random>/d=dd/" % key)
    print("ok: !{timestamp:...} and !{firehose:random-string} evaluated per object")


def partition_records(rng):
    """(good records by (customer, kind), bad records) as JSON lines, mixed."""
    good, bad, out = {}, [], []
    for i in range(3000):
        c, k = rng.choice(["acme", "globex", "42"]), rng.choice(["click", "view"])
        body = {"customer": c if c != "42" else 42, "event": {"kind": k}, "n": i,
                "pad": "p" * rng.randrange(0, 500)}
        rec = (json.dumps(body) + "\n").encode()
        good.setdefault((c, k), []).append(rec)
        out.append(rec)
        if i % 100 == 7:  # Not JSON, a key missing, a value that is no key segment, a
            # value (256 B, the most a value may be) whose key segment would pass 255 bytes.
            for b in (b"not json %d\n" % i, (json.dumps({"customer": "acme", "n": i}) +
                                             "\n").encode(),
                      (json.dumps({"customer": "a/b", "event": {"kind": "x"}, "n": i}) +
                       "\n").encode(),
                      (json.dumps({"customer": "L" * 256, "event": {"kind": "x"}, "n": i}) +
                       "\n").encode()):
                bad.append(b)
                out.append(b)
    return good, bad, out


def test_partitioning(srv, store):
    fh, name = client(srv), "s3-partitioned"
    store.client().create_bucket(Bucket=name)
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=dp_dest(
        name, "{customer:.customer, kind:.event.kind}",
        "cust=!{partitionKeyFromQuery:customer}/kind=!{partitionKeyFromQuery:kind}/"
        "!{timestamp:yyyy}/", error_prefix="err/!{firehose:error-output-type}/!{timestamp:yyyy}/"))
    desc = fh.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    ext = desc["Destinations"][0]["ExtendedS3DestinationDescription"]
    check(ext["DynamicPartitioningConfiguration"] == {"Enabled": True} and
          ext["ProcessingConfiguration"]["Processors"][0]["Parameters"][0]["ParameterValue"] ==
          "{customer:.customer, kind:.event.kind}", "describe: %r" % ext)
    good, bad, sent = partition_records(random.Random(9))
    put_all(fh, name, sent)
    decode = DECODERS["GZIP"][1]
    # Error objects hold JSON lines (larger than the records): wait for every good byte.
    total_good = sum(len(r) for recs in good.values() for r in recs)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        objs = store.objects(name, decode)
        got = sum(len(d) for k, d in objs.items() if k.startswith("cust="))
        errs = sum(d.count(b"\n") for k, d in objs.items() if k.startswith("err/"))
        if got >= total_good and errs >= len(bad):
            break
        check(time.monotonic() < deadline, "partitioned: %d of %d bytes, %d of %d errors" %
              (got, total_good, errs, len(bad)))
        time.sleep(0.3)
    year = utc_now().strftime("%Y")
    for (c, k), recs in good.items():
        mine = {key: d for key, d in objs.items()
                if key.startswith("cust=%s/kind=%s/%s/%s-1-" % (c, k, year, name))}
        check(mine, "no object for customer=%s kind=%s in %r" % (c, k, sorted(objs)[:5]))
        check_exactly_once(recs, mine, "partition %s/%s" % (c, k))
    failed = []
    for key, d in objs.items():
        if not key.startswith("cust="):
            check(key.startswith("err/partitioning-failed/%s/%s-1-" % (year, name)),
                  "unexpected key %s" % key)
            for line in d.splitlines():
                e = json.loads(line)
                check(e["errorCode"].startswith("DynamicPartitioning.") and
                      e["attemptsMade"] == 1, "error record %r" % e)
                failed.append(base64.b64decode(e["rawData"]))
    check(sorted(failed) == sorted(bad), "error records: %d, expected %d" %
          (len(failed), len(bad)))
    print("ok: dynamic partitioning: %d partitions, every record once; %d failures under "
          "ErrorOutputPrefix" % (len(good), len(bad)))


def test_virtual_host(binary, base, store):
    """s3_path_style = false: requests go to <bucket>.localhost:<port>/<key> (curl resolves
    *.localhost to the loopback address). s3rver takes such a Host's whole name as the
    bucket, so only bucket "s3-vhost.localhost" exists: path-style requests (bucket
    "s3-vhost") would fail, and the objects arriving show the virtual-host form."""
    data = os.path.join(base, "vhost")
    os.makedirs(data)
    srv, name = Sluiced(binary, data), "s3-vhost"
    store.client().create_bucket(Bucket=name + ".localhost")
    args = sluiced_args(store)
    args[1] = "firehose.s3_endpoint=http://localhost:%d" % store.port
    try:
        srv.start("--set", "firehose.s3_path_style=false", *args)
        fh = client(srv)
        fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=
                                  s3dest(name, "ZSTD", size_mb=1, interval_s=1))
        sent = make_records(name, 500, random.Random(10))
        put_all(fh, name, sent)
        objs = wait_objects(store, name + ".localhost", "ZSTD", sum(map(len, sent)), name)
        check_exactly_once(sent, objs, name)
        srv.stop()
    finally:
        srv.kill()
    print("ok: virtual-host addressing (<bucket>.localhost)")


class SilentStore:
    """A TCP listener that takes connections and requests and never answers (a hung store)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                conn.setblocking(False)
                self.conns.append(conn)
            except socket.timeout:
                pass
            for conn in self.conns:
                try:
                    conn.recv(1 << 16)  # Read and drop: the request never gets an answer.
                except (BlockingIOError, OSError):
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_store_hangs(binary, base, store):
    """A store that accepts and never answers fails the request (counted), sluiced stays
    up; restarted with a store that works, the same records are delivered once."""
    data = os.path.join(base, "hang")
    os.makedirs(data)
    srv, name, silent = Sluiced(binary, data), "s3-hang", SilentStore()
    admin_port = free_port()
    store.client().create_bucket(Bucket=name)
    args = sluiced_args(store)
    args[1] = "firehose.s3_endpoint=http://127.0.0.1:%d" % silent.port
    sent = make_records(name, 300, random.Random(11))
    try:
        srv.start("--admin-listen", "127.0.0.1:%d" % admin_port, *args)
        fh = client(srv)
        # Interval 1: the puts are in before the first (stalling) attempt. The flusher runs
        # on the API thread (docs/FIREHOSE.md, "Not yet"): a put during a stall waits it out.
        fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=
                                  s3dest(name, "GZIP", size_mb=1, interval_s=1))
        put_all(fh, name, sent)
        deadline = time.monotonic() + DEADLINE_S
        while figure(admin_port, name, "delivery_failures_total") < 1:
            check(time.monotonic() < deadline, "a hung store's request never failed")
            time.sleep(0.5)
        srv.kill()  # It may be in the next stalled attempt: SIGTERM would wait it out.
        srv.start(*sluiced_args(store))
        objs = wait_objects(store, name, "GZIP", sum(map(len, sent)), "after the hung store")
        check_exactly_once(sent, objs, "after the hung store")
        srv.stop()
    finally:
        srv.kill()
        silent.close()
    print("ok: a hung store fails the request; the records go once to the next store")


def test_crashes(binary, base, store):
    data = os.path.join(base, "crash")
    os.makedirs(data)
    srv = Sluiced(binary, data)
    rng = random.Random(1617)
    sent, name, rounds = [], "s3-crash", 10
    store.client().create_bucket(Bucket=name)
    with open(store.log_path, "rb") as f:
        uploads_before = f.read().count(b"?uploads")
    try:
        for round_ in range(rounds):
            srv.start(*sluiced_args(store))
            fh = client(srv)
            if round_ == 0:
                # SizeInMBs 8 over 5 MiB parts: full cuts go up in two parts, the rest in
                # one PUT, so kills land in both.
                fh.create_delivery_stream(DeliveryStreamName=name,
                                          ExtendedS3DestinationConfiguration=s3dest(
                                              name, "UNCOMPRESSED", size_mb=8, interval_s=1))
            batch = big_records("crash-r%d" % round_, 60 + rng.randrange(60), rng)
            put_all_small(fh, name, batch)  # Acknowledged: durable, so it must be delivered.
            sent += batch
            time.sleep(rng.uniform(0.0, 1.5))  # A random moment, not a timing assertion.
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            srv.proc = None
        srv.start(*sluiced_args(store))
        objs = wait_objects(store, name, "UNCOMPRESSED", sum(map(len, sent)), "after crashes")
        check_exactly_once(sent, objs, "after %d SIGKILLs" % rounds, size_mb=8)
        srv.stop()
    finally:
        srv.kill()
    with open(store.log_path, "rb") as f:
        uploads = f.read().count(b"?uploads") - uploads_before
    check(uploads > 0, "no multipart upload while crashing")
    with open(os.path.join(data, "sluiced.log"), "rb") as f:
        redone = f.read().count(b"not aborted")  # s3rver refuses aborts (405).
    print("ok: SIGKILLed %d times while uploading (%d multipart uploads begun, %d left open "
          "by a kill and begun again): %d records (%d MiB) exactly once" %
          (rounds, uploads, redone, len(sent), sum(map(len, sent)) >> 20))


def main():
    binary = sys.argv[1]
    got = s3rver_store(sys.argv[2], "fhs3-test-")
    if got is None:
        return
    base, store = got
    test_config(binary, base)
    try:
        os.makedirs(store.directory)
        store.start()
        data = os.path.join(base, "data")
        os.makedirs(data)
        srv = Sluiced(binary, data)
        admin_port = free_port()
        srv.start("--admin-listen", "127.0.0.1:%d" % admin_port, *sluiced_args(store))
        try:
            test_prefix_errors(client(srv))
            test_partitioning(srv, store)
            test_custom_prefix(srv, store)
            test_formats(srv, store)
            test_stream_source(srv, store)
            test_multipart(srv, store, store.log_path)
            test_store_down(srv, store, admin_port)
            srv.stop()
        finally:
            srv.kill()
        test_virtual_host(binary, base, store)
        test_store_hangs(binary, base, store)
        test_crashes(binary, base, store)
    finally:
        store.stop()
        shutil.rmtree(base, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
