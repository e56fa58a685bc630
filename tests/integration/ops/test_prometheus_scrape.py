#!/usr/bin/python3
"""A real Prometheus (Debian's) scrapes sluiced's admin /metrics: after records are put,
its query API returns the stream's IncomingRecords as sluiced counted them, and the target
is up. Uses its own temp dir and free ports; stops only the processes it started.

usage: test_prometheus_scrape.py SLUICED PROMETHEUS
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import Sluiced, check, free_port, wait_active  # noqa: E402

SLUICED, PROMETHEUS = sys.argv[1], sys.argv[2]
DEADLINE_S = 90   # Bounds a hang only.
RECORDS = 30


def query(port, expr):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())["data"]["result"]


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-prom-")
    srv = Sluiced(SLUICED, os.path.join(tmp, "sluiced"))
    prom = None
    try:
        srv.start()
        kinesis = srv.client()
        kinesis.create_stream(StreamName="scraped", ShardCount=1)
        wait_active(kinesis, "scraped")
        for i in range(RECORDS):
            kinesis.put_record(StreamName="scraped", Data=b"x", PartitionKey="k%d" % i)
        web = free_port()
        conf = os.path.join(tmp, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                    "  - job_name: sluiced\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % srv.admin_port)
        prom = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + conf, "--storage.tsdb.path=" + tmp + "/tsdb",
             "--web.listen-address=127.0.0.1:%d" % web],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prom.log"), "w"))
        end = time.time() + DEADLINE_S
        got = None
        while time.time() < end:
            try:
                up = query(web, 'up{job="sluiced"}')
                got = query(web, 'sluice_stream_incoming_records_total{stream="scraped"}')
                if up and up[0]["value"][1] == "1" and got and \
                        float(got[0]["value"][1]) >= RECORDS:
                    break
            except OSError:
                pass   # Prometheus is still starting.
            time.sleep(0.5)
        check(got and float(got[0]["value"][1]) == RECORDS,
              "Prometheus saw IncomingRecords %r, want %d (log: %s)" %
              (got, RECORDS, open(os.path.join(tmp, "prom.log")).read()[-600:]))
        srv.stop()
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=30)
        srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("prometheus_scrape: ok")


if __name__ == "__main__":
    main()
