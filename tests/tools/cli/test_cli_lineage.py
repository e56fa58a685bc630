#!/usr/bin/python3
"""sluice consume across resharding: parents are read to their end before
their children start (split and merge), children named only in ChildShards
are found, an expired iterator resumes after the last record printed, and
--from latest skips closed shards.

sluiced has no SplitShard/MergeShards yet, so a scripted Kinesis endpoint
plays a stream that was split and merged: this test stands in until
resharding lands (then the same checks belong against sluiced).
Usage: test_cli_lineage.py SLUICE"""
import base64
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLUICE = sys.argv[1]
failures = []

# shard -> (parent, adjacent parent, closed, children, records)
#   0 was split into 1 and 2; 2 and 3 were merged into 4; 5 appears only in ChildShards of 3.
SHARDS = {
    0: (None, None, True, [1, 2], 3),
    1: (0, None, False, [], 4),
    2: (0, None, True, [4], 2),
    3: (None, None, True, [4, 5], 3),
    4: (2, 3, False, [], 3),
    5: (3, None, False, [], 1),
}
LISTED = [4, 2, 1, 0, 3]  # Children first, to tempt a wrong order; 5 is not listed.


def check(condition, what):
    if not condition:
        failures.append(what)
        print('FAIL: ' + what, flush=True)


def shard_id(index):
    return 'shardId-%012d' % index


class Lineage(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    calls = []
    expire_once = {1}  # The first GetRecords on shard 1 answers ExpiredIteratorException.
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        # One write: headers and body in separate segments would meet delayed ACKs.
        self.wfile.write(b'HTTP/1.1 %d X\r\nContent-Type: application/x-amz-json-1.1\r\n'
                         b'Content-Length: %d\r\n\r\n%s' % (status, len(data), data))

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        action = self.headers['X-Amz-Target'].split('.')[1]
        with Lineage.lock:
            Lineage.calls.append((action, request))
            status, body = getattr(self, 'act_' + action)(request)
        self.reply(status, body)

    def act_ListShards(self, request):
        shards = []
        for index in LISTED:
            parent, adjacent, closed, _, _ = SHARDS[index]
            shard = {'ShardId': shard_id(index),
                     'HashKeyRange': {'StartingHashKey': '0', 'EndingHashKey': '1'},
                     'SequenceNumberRange': {'StartingSequenceNumber': '1'}}
            if parent is not None:
                shard['ParentShardId'] = shard_id(parent)
            if adjacent is not None:
                shard['AdjacentParentShardId'] = shard_id(adjacent)
            if closed:
                shard['SequenceNumberRange']['EndingSequenceNumber'] = '99'
            shards.append(shard)
        return 200, {'Shards': shards}

    def act_GetShardIterator(self, request):
        index = int(request['ShardId'].split('-')[1])
        kind = request['ShardIteratorType']
        count = SHARDS[index][4]
        position = {'TRIM_HORIZON': 0, 'LATEST': count}.get(kind)
        if kind == 'AFTER_SEQUENCE_NUMBER':
            position = int(request['StartingSequenceNumber']) % 100 + 1
        return 200, {'ShardIterator': '%d:%d' % (index, position)}

    def act_GetRecords(self, request):
        index, position = map(int, request['ShardIterator'].split(':'))
        parent, adjacent, closed, children, count = SHARDS[index]
        if index in Lineage.expire_once and position > 0:
            Lineage.expire_once.discard(index)
            return 400, {'__type': 'ExpiredIteratorException', 'message': 'Iterator expired.'}
        records = []
        if position < count:  # One record per call: many passes, many chances to misorder.
            records.append({'SequenceNumber': str(index * 100 + position),
                            'PartitionKey': 'k', 'ApproximateArrivalTimestamp': 1.0,
                            'Data': base64.b64encode(b'shard%d-r%d' % (index, position))
                            .decode()})
            position += 1
        body = {'Records': records, 'MillisBehindLatest': 0}
        if closed and position == count and not records:
            body['ChildShards'] = [{'ShardId': shard_id(c), 'HashKeyRange': {},
                                    'ParentShards': [shard_id(p) for p in
                                                     (SHARDS[c][0], SHARDS[c][1])
                                                     if p is not None]}
                                   for c in children]
        else:
            body['NextShardIterator'] = '%d:%d' % (index, position)
        return 200, body


def run(endpoint, *args):
    p = subprocess.run([SLUICE, *args, '--endpoint', endpoint], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout.splitlines(), p.stderr


def started_after_end(calls, child, parents):
    """The child's GetShardIterator comes after each parent's last GetRecords."""
    first = next(i for i, (a, r) in enumerate(calls)
                 if a == 'GetShardIterator' and r['ShardId'] == shard_id(child))
    for parent in parents:
        last = max(i for i, (a, r) in enumerate(calls)
                   if a == 'GetRecords' and r['ShardIterator'].startswith('%d:' % parent))
        if last > first:
            return False
    return True


def main():
    server = ThreadingHTTPServer(('127.0.0.1', 0), Lineage)
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = 'http://127.0.0.1:%d' % server.server_address[1]
    try:
        rc, out, err = run(endpoint, 'consume', 'lineage')
        expected = ['shard%d-r%d' % (s, r) for s in SHARDS for r in range(SHARDS[s][4])]
        check(rc == 0 and sorted(out) == sorted(expected),
              'consume: rc %d, got %r %s' % (rc, out, err))
        order = {line: i for i, line in enumerate(out)}
        for child, (parent, adjacent, _, _, count) in SHARDS.items():
            for p in (parent, adjacent):
                if p is None or count == 0:
                    continue
                last_parent = max(order.get('shard%d-r%d' % (p, r), -1)
                                  for r in range(SHARDS[p][4]))
                first_child = order.get('shard%d-r0' % child, -1)
                check(last_parent < first_child,
                      'shard %d printed before its parent %d finished' % (child, p))
        calls = Lineage.calls
        check(started_after_end(calls, 1, [0]) and started_after_end(calls, 2, [0]) and
              started_after_end(calls, 4, [2, 3]) and started_after_end(calls, 5, [3]),
              'a child was started before its parents ended')
        renewals = [r for a, r in calls if a == 'GetShardIterator' and
                    r.get('ShardIteratorType') == 'AFTER_SEQUENCE_NUMBER']
        check(len(renewals) == 1 and renewals[0]['StartingSequenceNumber'] == '100',
              'expired iterator not renewed after the last record: %r' % renewals)
        Lineage.calls = []
        rc, out, err = run(endpoint, 'consume', 'lineage', '--from', 'latest')
        started = {r['ShardId'] for a, r in Lineage.calls if a == 'GetShardIterator'}
        check(rc == 0 and out == [] and shard_id(0) not in started and shard_id(1) in started,
              'latest: rc %d %r started %r %s' % (rc, out, sorted(started), err))
        rc, out, err = run(endpoint, 'consume', 'lineage', '--shard', shard_id(3))
        check(rc == 0 and sorted(out) == sorted(
              ['shard3-r%d' % r for r in range(3)] + ['shard4-r%d' % r for r in range(3)] +
              ['shard5-r0']), '--shard 3 and its descendants: %r %s' % (out, err))
    finally:
        server.shutdown()
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('sluice consume lineage ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
