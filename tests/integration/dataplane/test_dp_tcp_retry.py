#!/usr/bin/python3
"""libsluice over TCP (`sluice produce --transport tcp`) against sluiced's kernel
backend on 127.0.0.1, when the appliance stalls or dies (issue 14, docs/PROTOCOL.md
section 10):

- stalled: records acknowledged, then sluiced SIGSTOPped for 25 s (longer than the old
  retry budget of 9.5-19 s) with more records in its socket buffer, then SIGCONTed:
  every record is acknowledged, none fails, each reads back exactly once, and the
  appliance counted no copy (frames_duplicate 0) and one connection (tcp_conns_opened
  1): nothing is resent on a live connection;
- restarted: sluiced SIGKILLed while frames sent to it were unread, and started again:
  the producer reconnects, resends (the new appliance counts no copy), and every record
  is acknowledged and reads back exactly once;
- the delivery deadline (--delivery-timeout 3s) fails every record of a producer whose
  appliance stays stopped past it, as TimeoutOutcomeUnknown; those records read back at
  most once.

Waits are for conditions (bounded by generous deadlines); the 25 s stop is the fault's
length, not an assertion.

usage: test_dp_tcp_retry.py SLUICED SLUICE SOURCE_ROOT
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The kernel backend's helpers: same arguments (SLUICED SLUICE SOURCE_ROOT).
from test_dp_kernel import (SLUICE, check, free_port, logged, start,  # noqa: E402
                            telemetry, wait_for)

STOP_S = 25  # Longer than the old budget (10 sends, 9.5-19 s at the TCP defaults).
# The default frame and answer room (test_dp_kernel.start() sets 4 KiB for its cases).
BUFFERS = ('--set', 'dataplane.tcp_rx_buffer_kb=1028', '--set', 'dataplane.tcp_tx_buffer_kb=64')


class Producer:
    """`sluice produce --transport tcp --lines`, fed record by record; its result lines
    (INDEX, then a shard and sequence or ERROR and a code) collected as they come."""

    def __init__(self, ingest, *extra):
        self.proc = subprocess.Popen(
            [SLUICE, 'produce', 'orders', '--transport', 'tcp', '--target',
             f'127.0.0.1:{ingest}', '--lines', '--key-field', '1', '--linger', '1ms', *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        self.results = []
        self.sent = 0
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.proc.stdout:
            self.results.append(line.rstrip('\n').split('\t'))

    def put(self, names):
        for name in names:
            self.proc.stdin.write(f'{name} payload-of-{name}\n')
        self.proc.stdin.flush()
        self.sent += len(names)

    def finish(self, seconds):
        self.proc.stdin.close()
        self.proc.wait(timeout=seconds)
        self.reader.join(timeout=10)

    def stored(self):
        return sum(r[1] != 'ERROR' for r in self.results)

    def check_each_once(self, what):
        indexes = sorted(int(r[0]) for r in self.results)
        check(indexes == list(range(self.sent)), f'{what}: one result per record')


def stopped(pid):
    with open(f'/proc/{pid}/stat') as f:
        return f.read().rsplit(')', 1)[1].split()[0] == 'T'


def unread_bytes(ingest):
    """Bytes waiting in the appliance's receive queues of its ingest connections."""
    out = subprocess.run(['ss', '-Htn', 'state', 'established', f'( sport = :{ingest} )'],
                         check=True, capture_output=True, text=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines())


def stall(proc, ingest, producer, names):
    """SIGSTOPs sluiced, then has `names` sent to it: they wait in its socket buffer."""
    proc.send_signal(signal.SIGSTOP)
    wait_for(lambda: stopped(proc.pid), 10, 'sluiced stopped')
    producer.put(names)
    wait_for(lambda: unread_bytes(ingest) > 0, 20, 'frames waiting for the stopped appliance')


def names(first, count):
    return [f'rec-{i}' for i in range(first, first + count)]


def read_back(endpoint):
    out = subprocess.run([SLUICE, 'consume', 'orders', '--max', '100000', '--format', 'json',
                          '--endpoint', endpoint],
                         check=True, capture_output=True, text=True).stdout
    counts = {}
    for line in out.splitlines():
        key = json.loads(line)['PartitionKey']
        counts[key] = counts.get(key, 0) + 1
    return counts


def ready(proc, log, what):
    wait_for(lambda: logged(log, 'sluiced: ready'), 60, f'sluiced ready ({what})')
    wait_for(lambda: logged(log, 'published 1 streams'), 30, f'route table published ({what})')


def stalled_appliance(proc, ingest):
    p = Producer(ingest)
    p.put(names(0, 100))
    wait_for(lambda: p.stored() == 100, 60, 'the first 100 records acknowledged')
    stall(proc, ingest, p, names(100, 100))
    time.sleep(STOP_S)  # The fault: a stall longer than the old retry budget.
    proc.send_signal(signal.SIGCONT)
    p.finish(180)
    p.check_each_once('stalled')
    errors = [r for r in p.results if r[1] == 'ERROR']
    check(not errors, f'no record failed across the stall: {errors[:3]}')
    stats = telemetry(proc.pid)
    check(stats['frames_duplicate'] == 0,
          f"no copy reached the appliance (frames_duplicate {stats['frames_duplicate']})")
    check(stats['tcp_conns_opened'] == 1,
          f"one connection, never replaced (tcp_conns_opened {stats['tcp_conns_opened']})")
    print(f'stalled {STOP_S} s: 200 records acknowledged once, frames_duplicate 0')


def restarted_appliance(tmp, api, ingest, procs):
    proc = procs[-1][0]
    p = Producer(ingest)
    p.put(names(200, 50))
    wait_for(lambda: p.stored() == 50, 60, '50 records acknowledged before the kill')
    stall(proc, ingest, p, names(250, 50))
    proc.kill()  # Its unread frames die with it: nothing of them was stored.
    proc.wait()
    subprocess.run(['rm', '-rf', f'/var/run/dpdk/sluice-{proc.pid}'])
    procs.append(start(tmp, api, ingest, *BUFFERS))
    ready(procs[-1][0], procs[-1][1], 'restarted')
    p.finish(180)
    p.check_each_once('restarted')
    check(p.stored() == 100, f'every record acknowledged after the restart ({p.stored()})')
    stats = telemetry(procs[-1][0].pid)
    check(stats['tcp_conns_opened'] >= 1, 'the producer reconnected to the new appliance')
    check(stats['frames_duplicate'] == 0,
          f"the resent frames were new to it (frames_duplicate {stats['frames_duplicate']})")
    print('restarted: the 50 frames in flight resent on a new connection and acknowledged')


def deadline(proc, ingest):
    p = Producer(ingest, '--delivery-timeout', '3s')
    stall(proc, ingest, p, names(300, 20))
    p.finish(120)  # Returns once every record met its deadline.
    proc.send_signal(signal.SIGCONT)
    p.check_each_once('deadline')
    codes = {r[2] for r in p.results if r[1] == 'ERROR'}
    check(p.stored() == 0 and codes == {'TimeoutOutcomeUnknown'},
          f'every record failed at its deadline: stored {p.stored()}, codes {codes}')
    print('deadline: 20 records failed as TimeoutOutcomeUnknown while the appliance stood')


def main():
    tmp = tempfile.mkdtemp(prefix='tcpretry-')
    api, ingest = free_port(), free_port()
    endpoint = f'http://127.0.0.1:{api}'
    procs = [start(tmp, api, ingest, *BUFFERS)]
    try:
        proc, log = procs[-1]
        wait_for(lambda: logged(log, 'sluiced: ready'), 60, 'sluiced ready')
        subprocess.run([SLUICE, 'stream', 'create', 'orders', '--shards', '2', '--endpoint',
                        endpoint], check=True, stdout=subprocess.DEVNULL)
        ready(proc, log, 'first start')
        stalled_appliance(proc, ingest)
        restarted_appliance(tmp, api, ingest, procs)
        deadline(procs[-1][0], ingest)
        counts = read_back(endpoint)
        acked = names(0, 300)
        check(all(counts.get(k) == 1 for k in acked),
              'every acknowledged record reads back exactly once: ' +
              str([(k, counts.get(k)) for k in acked if counts.get(k) != 1][:5]))
        check(all(counts.get(k, 0) <= 1 for k in names(300, 20)),
              'the records whose outcome is unknown read back at most once')
        check(len(counts) == sum(counts.values()), 'no record read back twice')
        proc = procs[-1][0]
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=60) == 0, 'sluiced stopped cleanly')
        print('PASS')
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
            subprocess.run(['rm', '-rf', f'/var/run/dpdk/sluice-{proc.pid}'])
        subprocess.run(['rm', '-rf', tmp])


if __name__ == '__main__':
    main()
