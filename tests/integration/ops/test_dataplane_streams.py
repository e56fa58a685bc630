#!/usr/bin/python3
"""Per-stream dataplane counts on the status page: sluiced with the kernel
backend on 127.0.0.1 (no root, no NIC), UDP record frames for two streams, each
ACKed; /status.json's dataplane_streams then holds exactly the ACKed records of
each stream, and the page rendered in headless Chromium shows them in each
stream's row.

usage: test_dataplane_streams.py SLUICED CHROMIUM SOURCE_ROOT
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

SLUICED, CHROMIUM, SRC = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "protocol"))
from opslib import Sluiced, check, wait_active  # noqa: E402
from test_spec_independent import records_frame  # noqa: E402

PRODUCER = 0x0b5
STREAMS = {"dp-orders": (2, 20, 10), "dp-clicks": (1, 5, 4)}  # shards, frames, records each
ACK = 2


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_all(ingest):
    """Every frame sent and its ACK received; returns {stream: records ACKed}."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    acked = {}
    seq = 0
    for name, (_, frames, per_frame) in STREAMS.items():
        for f in range(frames):
            seq += 1
            records = [(b"k-%d-%d" % (seq, i), b"d" * 64, 0, b"") for i in range(per_frame)]
            frame = bytes(records_frame(PRODUCER, seq, 1, 2, name.encode(), records))
            for _ in range(5):  # UDP: a lost datagram or answer is sent again (deduplicated).
                sock.sendto(frame, ("127.0.0.1", ingest))
                try:
                    answer, _ = sock.recvfrom(2048)
                    break
                except socket.timeout:
                    continue
            else:
                raise SystemExit("FAIL: no answer to frame %d of %s" % (f, name))
            check(answer[13] == ACK, "frame %d of %s: answer type %d" % (f, name, answer[13]))
            acked[name] = acked.get(name, 0) + per_frame
    sock.close()
    return acked


def main():
    with tempfile.TemporaryDirectory(prefix="ops-dp-streams-") as tmp:
        ingest = free_udp_port()
        srv = Sluiced(SLUICED, os.path.join(tmp, "data")).start(
            "--set", "dataplane.enabled=true", "--set", "dataplane.backend=kernel",
            "--set", "dataplane.ipv4=127.0.0.1", "--set", "dataplane.ingest_port=%d" % ingest,
            "--set", "dataplane.no_huge=true")
        try:
            kinesis = srv.client()
            for name, (shards, _, _) in STREAMS.items():
                kinesis.create_stream(StreamName=name, ShardCount=shards)
            for name in STREAMS:
                wait_active(kinesis, name)
            # The route table reaches the workers shortly after ACTIVE: until then a frame
            # is NACKed (unknown stream), so wait for the first ACK by sending again.
            deadline = time.monotonic() + 30
            while True:
                try:
                    acked = send_all(ingest)
                    break
                except SystemExit:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            ids = {}
            for _ in range(100):
                st = json.loads(srv.get("/status.json")[1])
                ids = {s["name"]: s["id"] for s in st["streams"]}
                counts = {x["stream_id"]: x["records"] for x in st["dataplane_streams"]}
                if all(counts.get(ids[n]) == acked[n] for n in STREAMS):
                    break
                time.sleep(0.1)
            check(all(counts.get(ids[n]) == acked[n] for n in STREAMS),
                  "dataplane_streams %r, ACKed %r (ids %r)" % (counts, acked, ids))
            check(-1 not in counts, "streams counted as other: %r" % counts)
            dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                  "--virtual-time-budget=4000", "--dump-dom",
                                  srv.admin_url + "/"], capture_output=True, text=True,
                                 timeout=120).stdout
        finally:
            srv.stop()
    for name in STREAMS:
        row = re.search(r'<div class="stream" data-stream="%s">(.*?)</canvas>' % name, dom, re.S)
        check(row is not None, "no row for %s" % name)
        m = re.search(r'data-dp-records="(\d+)"', row.group(1))
        check(m is not None and int(m.group(1)) == acked[name],
              "%s row shows dataplane records %r, want %d" % (
                  name, m.group(1) if m else None, acked[name]))
    print("per-stream dataplane counts ok:", acked)


main()
