#!/usr/bin/python3
"""`sluice bench cluster --short` (tools/bench_cluster.py) as a smoke test of the command:
a single sluiced, then three in cluster mode in the harness's namespaces, about a second
of load per step, a leader SIGKILLed, everything read back. Checks behaviour only: exit 0,
the `cluster-bench:` line printed with every field it promises, each a number, lost=0, the
flag p99_bound_ok a 0 or 1; before it, the usage errors of the command and of the `bench
api` options its load uses (exit 2). Never a threshold on what was measured (the shared machine
decides those figures; docs/BENCHMARKS.md has the full runs).

    test_bench_cluster.py BUILD_DIR
"""
import os
import re
import subprocess
import sys

FIELDS = ("single_per_cpu_s", "cluster_per_cpu_s", "ratio_quorum", "p99_single_ms",
          "p99_cluster_ms", "fdatasync_p99_ms", "p99_bound_ok", "aggregate_ratio",
          "failover_ms", "ttl_ms", "lost", "failover_bound_ok", "put1_p99_single_ms",
          "put1_p99_cluster_ms", "put1_bound_ok")
NUMBER = re.compile(r"^\d+(\.\d+)?$")
# Generous: namespaces, etcd, four sluiceds, five steps and the read-back on a loaded host.
TIMEOUT_S = 400


# Usage errors (exit 2, nothing started), the options the driver's load relies on included.
USAGE = (["bench", "cluster", "--rate", "5"],                  # below its minimum
         ["bench", "cluster", "extra"],                        # no positional argument
         ["bench", "api", "--put-only"],                       # --put-only needs --stream
         ["bench", "api", "--stream", "s"],                    # --stream needs a mode
         ["bench", "api", "--put-only", "--latency-only", "--stream", "s"],
         ["bench", "api", "--put-only", "--stream", "s", "--hash-keys", "12a"],
         ["bench", "api", "--put-only", "--stream", "s", "--hash-keys", "1" * 40],
         ["bench", "api", "--put-only", "--stream", "bad name"])


def main():
    build = sys.argv[1]
    sluice = os.path.join(build, "tools", "sluice")
    for args in USAGE:
        u = subprocess.run([sluice] + args, capture_output=True, text=True, timeout=60)
        assert u.returncode == 2 and u.stderr, "sluice %s: exit %d, stderr %r" % (
            " ".join(args), u.returncode, u.stderr)
    r = subprocess.run([sluice, "bench", "cluster", "--short"],
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("cluster-bench: ")]
    assert r.returncode == 0, "sluice bench cluster --short exited %d" % r.returncode
    assert len(lines) == 1, "one cluster-bench: line, got %d" % len(lines)
    fields = dict(kv.split("=", 1) for kv in lines[0][len("cluster-bench: "):].split())
    missing = [f for f in FIELDS if f not in fields]
    assert not missing, "fields missing from the line: %r" % missing
    bad = {k: v for k, v in fields.items() if not NUMBER.match(v)}
    assert not bad, "fields that are not numbers: %r" % bad
    assert fields["lost"] == "0", "lost=%s" % fields["lost"]
    assert fields["p99_bound_ok"] in ("0", "1"), "p99_bound_ok=%s" % fields["p99_bound_ok"]
    assert float(fields["failover_ms"]) > 0, "no failover measured"
    print("test_bench_cluster: ok")


if __name__ == "__main__":
    main()
