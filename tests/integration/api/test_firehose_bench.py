#!/usr/bin/python3
"""`sluice bench firehose --short` against a sluiced of its own: it runs, prints its summary
line with every figure, delivers what it put, and leaves no stream or delivery stream
behind; `sluice top` shows a line per delivery stream. Behaviour only: the figures depend on the machine (docs/BENCHMARKS.md has them).

Usage: test_firehose_bench.py SLUICED SLUICE
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_kinesis_api import Sluiced, check, free_port  # noqa: E402
from test_kinesis_api import client as kinesis_client  # noqa: E402

SUMMARY = re.compile(r"^firehose-bench: ingest_rps=(\d+) delivered_rps=(\d+) "
                     r"ratio=(\d+\.\d\d) freshness_p99_s=(\d+\.\d\d)$", re.M)


def check_top(sluice, srv, admin, fh):
    """sluice top, piped: a line for a delivery stream with what it delivered meanwhile."""
    fh.create_delivery_stream(DeliveryStreamName="topline", ExtendedS3DestinationConfiguration={
        "RoleARN": "arn:aws:iam::000000000000:role/x", "BucketARN": "arn:aws:s3:::topline",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}})
    top = subprocess.Popen([sluice, "top", "--admin", "127.0.0.1:%d" % admin,
                            "--interval", "1500"], stdout=subprocess.PIPE, text=True)
    while top.poll() is None:
        fh.put_record_batch(DeliveryStreamName="topline",
                            Records=[{"Data": b"t" * 100}] * 20)
    out = top.stdout.read()
    m = re.search(r"^topline\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    check(top.returncode == 0 and "delivery stream" in out and m is not None and
          int(m.group(1)) > 0 and int(m.group(2)) > 0, "sluice top: %r" % out)
    fh.delete_delivery_stream(DeliveryStreamName="topline")


def main():
    sluiced, sluice = sys.argv[1], sys.argv[2]
    base = tempfile.mkdtemp(prefix="firehose-bench-test-")
    srv = Sluiced(sluiced, os.path.join(base, "data"))
    os.makedirs(srv.data_dir)
    admin = free_port()
    try:
        srv.start("--admin-listen", "127.0.0.1:%d" % admin,
                  "--set", "firehose.local_root=" + os.path.join(base, "objects"))
        out = subprocess.run([sluice, "bench", "firehose", "--short", "--endpoint", srv.url,
                              "--admin", "127.0.0.1:%d" % admin, "--connections", "2",
                              "--shards", "2"], capture_output=True, timeout=240)
        text = out.stdout.decode()
        check(out.returncode == 0, "bench exit %d: %s%s" % (out.returncode, text,
                                                            out.stderr.decode()))
        m = SUMMARY.search(text)
        check(m is not None, "no summary line in %r" % text)
        # Exit 0 says every acknowledged record was delivered before phase 2 (else 3).
        check(int(m.group(1)) > 0, "nothing put: %s" % m.group(0))
        check("DataFreshness p99 at half load" in text and "not drained" not in text, text)
        cfg = botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False)
        fh = boto3.client("firehose", endpoint_url=srv.url, region_name="us-east-1",
                          aws_access_key_id="AKID", aws_secret_access_key="SECRET", config=cfg)
        check(fh.list_delivery_streams()["DeliveryStreamNames"] == [], "delivery stream left")
        # DeleteStream answers at once and the stream goes (DELETING, then gone) after.
        kin, deadline = kinesis_client(srv), time.monotonic() + 60
        while kin.list_streams()["StreamNames"] != []:
            check(time.monotonic() < deadline, "stream left")
            time.sleep(0.1)
        check_top(sluice, srv, admin, fh)
        bad = subprocess.run([sluice, "bench", "firehose", "--interval", "901"],
                             capture_output=True, timeout=30)
        check(bad.returncode == 2, "--interval 901: exit %d" % bad.returncode)
        srv.stop()  # An object begun before the delete is finished first (then no .tmp).
        objects = [f for _, _, files in os.walk(os.path.join(base, "objects")) for f in files
                   if f.startswith("bench-fh-")]
        check(objects and all(f.endswith(".gz") for f in objects), "GZIP objects only: %r" %
              [f for f in objects if not f.endswith(".gz")][:3])
    finally:
        srv.kill()
        shutil.rmtree(base, ignore_errors=True)
    print("ok: sluice bench firehose --short: %s" % m.group(0))
    print("PASS")


if __name__ == "__main__":
    main()
