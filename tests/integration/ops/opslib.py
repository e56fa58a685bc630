"""Helpers of the operations tests: a sluiced with its own API and admin ports,
plain HTTP GETs against the admin listener, a boto3 Kinesis client."""
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import boto3
import botocore.config


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


class Sluiced:
    """One sluiced (no dataplane) on `data_dir`; start() waits for the ready line."""

    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = data_dir
        self.proc = None

    def start(self, *extra):
        os.makedirs(self.data_dir, exist_ok=True)
        log_path = os.path.join(self.data_dir, "sluiced.log")
        # A port free when probed may be taken by another test before sluiced binds it:
        # then (only then) sluiced is started again on other ports.
        for attempt in range(3):
            self.port = free_port()
            self.admin_port = free_port()
            offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
            with open(log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "--set", "dataplane.enabled=false",
                     "--data-dir", self.data_dir,
                     "--api-listen", "127.0.0.1:%d" % self.port,
                     "--admin-listen", "127.0.0.1:%d" % self.admin_port,
                     "--set", "server.stream_status_delay_ms=0", *extra],
                    stdout=subprocess.PIPE, stderr=log)
            line = self.proc.stdout.readline().decode()
            if "ready" in line and "admin http://" in line:
                return self
            self.proc.wait(timeout=30)
            self.proc = None
            with open(log_path, "rb") as f:
                f.seek(offset)
                tail = f.read()[-2000:].decode(errors="replace")
            if "Address already in use" not in tail:
                break
        check(False, "sluiced did not start: %r; its log ends:\n%s" % (line, tail))

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self.proc = None
        check(rc == 0, "sluiced exit code %d" % rc)

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def admin_url(self):
        return "http://127.0.0.1:%d" % self.admin_port

    def get(self, path, headers=None):
        """(status, body text) of GET admin_url + path."""
        req = urllib.request.Request(self.admin_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def client(self, service="kinesis"):
        cfg = botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"},
                                     connect_timeout=5, read_timeout=30)
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="AKID", aws_secret_access_key="SECRET",
                            config=cfg)


def wait_active(kinesis, name):
    for _ in range(100):
        if kinesis.describe_stream_summary(StreamName=name)[
                "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    raise SystemExit("FAIL: stream %s never ACTIVE" % name)


def put_and_read(port, stream, data):
    """Through boto3 on 127.0.0.1:port: a one-shard stream, one record put and read back."""
    k = boto3.client("kinesis", endpoint_url="http://127.0.0.1:%d" % port,
                     region_name="us-east-1", aws_access_key_id="A", aws_secret_access_key="S")
    k.create_stream(StreamName=stream, ShardCount=1)
    wait_active(k, stream)
    k.put_record(StreamName=stream, Data=data, PartitionKey="p")
    it = k.get_shard_iterator(StreamName=stream, ShardId="shardId-000000000000",
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = k.get_records(ShardIterator=it)["Records"]
    check([r["Data"] for r in records] == [data], "read back: %r" % records)


def samples(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        if "{" in series:
            name, rest = series.split("{", 1)
            labels = frozenset(p for p in rest.rstrip("}").split(",") if p)
        else:
            name, labels = series, frozenset()
        out[(name, labels)] = float(value)
    return out
