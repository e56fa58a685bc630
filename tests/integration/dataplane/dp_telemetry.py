#!/usr/bin/python3
"""Reads sluiced's dataplane counters through DPDK telemetry (the socket of its EAL file
prefix: /var/run/dpdk/sluice-PID/dpdk_telemetry.v2), the same path dpdk-telemetry.py uses.

  dp_telemetry.py PID                 every counter of /sluice/dp/stats, "name value" lines
  dp_telemetry.py PID NAME...         those counters' values, one a line
  dp_telemetry.py PID --workers N     per worker: "worker name value" lines
"""
import json
import socket
import sys


def connect(pid):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(f"/var/run/dpdk/sluice-{pid}/dpdk_telemetry.v2")
    json.loads(s.recv(16384))  # the greeting
    return s


def query(s, command):
    s.send(command.encode())
    return json.loads(s.recv(1 << 20))[command.split(",")[0]]


def stats(pid):
    s = connect(pid)
    try:
        return query(s, "/sluice/dp/stats")
    finally:
        s.close()


def worker_stats(pid, workers):
    s = connect(pid)
    try:
        return [query(s, f"/sluice/dp/worker,{w}") for w in range(workers)]
    finally:
        s.close()


def main():
    pid = sys.argv[1]
    if len(sys.argv) > 3 and sys.argv[2] == "--workers":
        for w, st in enumerate(worker_stats(pid, int(sys.argv[3]))):
            for k, v in st.items():
                print(w, k, v)
        return 0
    st = stats(pid)
    for name in sys.argv[2:] or st.keys():
        print(st[name] if len(sys.argv) > 2 else f"{name} {st[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
