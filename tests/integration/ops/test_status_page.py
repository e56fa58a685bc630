#!/usr/bin/python3
"""The status page (GET / on the admin listener) in headless Chromium, against a
running sluiced with traffic: the rendered DOM shows the stream this test created,
with its shards and a rate chart of at least two points from sluiced's history, and
the reshard history: the test's SplitShard (by the API) and an auto-scaling split of
an ON_DEMAND stream (thresholds lowered so its traffic triggers one);
the page references nothing outside sluiced. A screenshot is saved for people
to look at (docs/OPERATIONS.md links the committed copy).

usage: test_status_page.py SLUICED CHROMIUM SCREENSHOT_PATH
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import Sluiced, check, wait_active  # noqa: E402

SLUICED, CHROMIUM, SCREENSHOT = sys.argv[1], sys.argv[2], sys.argv[3]
STREAM = "ops-page-orders"
OTHER = "ops-page-clicks"
AUTO = "ops-page-auto"
HISTORY_STEP_S = 5       # admin_status.c's ADMIN_HISTORY_STEP_NS


def traffic(srv, stop):
    kinesis = srv.client()
    i = 0
    while not stop.is_set():
        kinesis.put_records(StreamName=STREAM, Records=[
            {"Data": b"o" * 300, "PartitionKey": "k%d" % (i * 50 + j)} for j in range(50)])
        if i % 4 == 0:
            kinesis.put_record(StreamName=OTHER, Data=b"c" * 80, PartitionKey="c%d" % i)
        if i % 4 == 2:  # Enough to split (over 5 records/s a shard), little beside STREAM's.
            kinesis.put_records(StreamName=AUTO, Records=[
                {"Data": b"a" * 50, "PartitionKey": "a%d" % (i * 20 + j)} for j in range(20)])
        i += 1


def shard_rates(dom):
    """The rates the heat map gives STREAM's shards (the rows before OTHER's)."""
    return [float(r) for r in re.findall(r'<div class="seg" data-rate="([0-9.]+)"',
                                         dom.split('data-stream="%s"' % OTHER)[0])]


def chromium(*args):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--window-size=1280,1240",
                           "--virtual-time-budget=4000", *args],
                          capture_output=True, text=True, timeout=120)


def main():
    with tempfile.TemporaryDirectory(prefix="ops-page-") as tmp:
        # Auto-scaling looks every 2 s and splits a shard writing over 5 records/s, once.
        srv = Sluiced(SLUICED, os.path.join(tmp, "data")).start(
            "--set", "server.autoscale_window_s=2", "--set", "server.autoscale_split_records_s=5",
            "--set", "server.autoscale_cooldown_s=3600")
        stop = threading.Event()
        worker = None
        try:
            status, page = srv.get("/")
            check(status == 200 and "<canvas" in page, "GET / status %d" % status)
            check(not re.search(r'(src|href)\s*=\s*"(https?:)?//', page),
                  "the page fetches something from outside sluiced")
            kinesis = srv.client()
            kinesis.create_stream(StreamName=STREAM, ShardCount=3)
            kinesis.create_stream(StreamName=OTHER, ShardCount=2)
            wait_active(kinesis, STREAM)
            wait_active(kinesis, OTHER)
            kinesis.create_stream(StreamName=AUTO, StreamModeDetails={"StreamMode": "ON_DEMAND"})
            wait_active(kinesis, AUTO)
            kinesis.split_shard(StreamName=OTHER, ShardToSplit="shardId-000000000000",
                                NewStartingHashKey=str(2 ** 125))
            worker = threading.Thread(target=traffic, args=(srv, stop))
            worker.start()
            # Three history samples with traffic between them: two chart points.
            time.sleep(3 * HISTORY_STEP_S + 1)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                    e["autoscale"] for e in json.loads(srv.get("/status.json")[1])["reshards"]):
                time.sleep(0.2)
            # Under virtual time the page's two polls are only milliseconds apart in real
            # time, so a busy shard may show no new record between them: load it again
            # until one does (the rate itself is what is checked below).
            for _ in range(10):
                dom = chromium("--dump-dom", srv.admin_url + "/").stdout
                if max(shard_rates(dom), default=0) > 0:
                    break
            shot = chromium("--screenshot=" + SCREENSHOT, srv.admin_url + "/")
        finally:
            stop.set()
            if worker is not None:
                worker.join()
            srv.stop()
        check('class="stream" data-stream="%s"' % STREAM in dom,
              "the DOM has no row for %s: %s" % (STREAM, dom[-2000:]))
        check(">%s<" % STREAM in dom, "the stream's name is not shown")
        check(dom.count('class="seg"') >= 3 + 3, "open shards are not drawn as bars")
        # The heat map: the busy stream's shards show a rate (shards of the other stream may
        # be idle between two polls).
        rates = shard_rates(dom)
        check(rates and max(rates) > 0, "no shard of %s shows a rate: %r" % (STREAM, rates))
        tag = re.search(r'<canvas[^>]*data-stream="%s"[^>]*>' % STREAM, dom)
        points = re.search(r'data-points="(\d+)"', tag.group(0)) if tag else None
        check(points is not None and int(points.group(1)) >= 2,
              "the rate chart is empty: %s" % (tag.group(0) if tag else "no canvas"))
        check('class="badge ok">ready<' in dom, "the page does not say ready")
        events = re.findall(r'<tr class="reshard">(.*?)</tr>', dom)
        cells = [re.findall(r"<td>(.*?)</td>", e) for e in events]
        check(any(c[1] == OTHER and c[2] == "API" and c[3] == "SplitShard" and
                  c[4] == "2 → 4" and c[5] == "3" for c in cells),
              "no API SplitShard row (2 shards -> 4, 3 open): %r" % cells)
        check(any(c[1] == AUTO and c[2] == "auto-scaling" and c[3].startswith("split ")
                  for c in cells), "no auto-scaling row: %r" % cells)
        check(os.path.getsize(SCREENSHOT) > 10000, "no screenshot: %s" % shot.stderr[-500:])
    print("status page ok; screenshot", SCREENSHOT)


main()
