#!/usr/bin/python3
"""sluice consume and KPL aggregated records, against a real sluiced: aggregates
(built here by a hand-written protobuf encoder with aws-kinesis-agg's field
numbers, not by our .proto) stored through boto3 come out as their user records,
raw and json (partition keys and explicit hash keys from the tables,
SubSequenceNumber); --no-deaggregate prints them whole; an aggregate with a bad MD5
or a key index outside its table is reported on stderr and printed whole; a plain
record, and one that only starts with the magic, pass through. Then, against a
scripted endpoint that sends "EndingSequenceNumber": null for an open shard (as
other Kinesis endpoints do): `sluice stream describe` shows it open and
`sluice consume --from latest` reads it. And against one that lists a split's parent
open beside its children (a reshard whose cut is not recorded yet): `sluice produce
--shard-map` sends SHARD_RECORDS frames for the children only.
Usage: test_cli_kpl.py SLUICE SLUICED"""
import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.config

SLUICE, SLUICED = sys.argv[1], sys.argv[2]
MAGIC = b'\xf3\x89\x9a\xc2'
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print('FAIL: ' + what, flush=True)


# ---- protobuf, by hand: varints and length-delimited fields --------------------------

def varint(n):
    out = b''
    while True:
        low = n & 0x7f
        n >>= 7
        if n:
            out += bytes([low | 0x80])
        else:
            return out + bytes([low])


def field(number, wire_type, payload):
    head = varint(number << 3 | wire_type)
    if wire_type == 0:
        return head + varint(payload)
    return head + varint(len(payload)) + payload


def aggregate(keys, hash_keys, records, corrupt_md5=False):
    """records: (partition_key_index, explicit_hash_key_index or None, data, tags)."""
    body = b''.join(field(1, 2, k.encode()) for k in keys)
    body += b''.join(field(2, 2, h.encode()) for h in hash_keys)
    for pk_index, hk_index, data, tags in records:
        rec = field(1, 0, pk_index)
        if hk_index is not None:
            rec += field(2, 0, hk_index)
        rec += field(3, 2, data)
        rec += b''.join(field(4, 2, field(1, 2, k.encode()) + field(2, 2, v.encode()))
                        for k, v in tags)
        body += field(3, 2, rec)
    digest = hashlib.md5(body).digest()
    if corrupt_md5:
        digest = bytes([digest[0] ^ 1]) + digest[1:]
    return MAGIC + body + digest


# ---- a real sluiced (test_cli_integration's; it reads the same SLUICE SLUICED argv) ----

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli_integration import Sluiced  # noqa: E402


def run(endpoint, *args):
    env = dict(os.environ, SLUICE_ENDPOINT=endpoint)
    p = subprocess.run([SLUICE, *args], capture_output=True, env=env, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors='replace')


USERS = [('alpha', None, b'user record one', []),
         ('beta', 0, b'user record two', [('t', 'v')]),
         ('alpha', None, b'', [])]


def stored_records():
    """(partition key, data) as stored, in order, on one shard."""
    good = aggregate(['alpha', 'beta'], ['12345'],
                     [(0 if k == 'alpha' else 1, h, d, t) for k, h, d, t in USERS])
    bad_md5 = aggregate(['gamma'], [], [(0, None, b'never split', [])], corrupt_md5=True)
    bad_index = aggregate(['delta'], [], [(3, None, b'key index out of range', [])])
    return [('agg', good), ('plain', b'plain record'), ('badmd5', bad_md5),
            ('badidx', bad_index), ('magic', MAGIC + b'only the magic')]


def test_deaggregation(endpoint):
    kc = boto3.client('kinesis', endpoint_url=endpoint, region_name='us-east-1',
                      aws_access_key_id='AKID', aws_secret_access_key='SECRET',
                      config=botocore.config.Config(retries={'max_attempts': 1}))
    rc, _, err = run(endpoint, 'stream', 'create', 'kpl', '--shards', '1')
    check(rc == 0, 'stream create: %s' % err)
    stored = stored_records()
    for key, data in stored:
        kc.put_record(StreamName='kpl', PartitionKey=key, Data=data)

    rc, out, err = run(endpoint, 'consume', 'kpl', '--format', 'json')
    lines = [json.loads(line) for line in out.decode().splitlines()]
    check(rc == 0, 'consume json: rc %d %s' % (rc, err))
    users = lines[:3]
    check([(u['PartitionKey'], base64.b64decode(u['Data']), u.get('SubSequenceNumber'))
           for u in users] == [(k, d, i) for i, (k, _, d, _) in enumerate(USERS)],
          'user records: %r' % users)
    check(users[1].get('ExplicitHashKey') == '12345' and 'ExplicitHashKey' not in users[0],
          'explicit hash keys: %r' % users)
    check(len({u['SequenceNumber'] for u in users}) == 1, 'one stored record: %r' % users)
    whole = [(line['PartitionKey'], base64.b64decode(line['Data'])) for line in lines[3:]]
    check(whole == stored[1:], 'records printed whole: %r' % whole)
    check('SubSequenceNumber' not in lines[3], 'a plain record has no SubSequenceNumber')
    check(err.count('printed whole') == 3 and 'bad MD5 checksum' in err and
          'protobuf that does not parse' in err and '2 KPL aggregate(s)' in err,
          'bad aggregates reported: %r' % err)

    rc, out, err = run(endpoint, 'consume', 'kpl')
    check(rc == 0 and out.split(b'\n')[:3] == [d for _, _, d, _ in USERS] and
          out.split(b'\n')[3] == b'plain record', 'consume raw: %r %s' % (out, err))

    rc, out, err = run(endpoint, 'consume', 'kpl', '--format', 'json', '--no-deaggregate')
    lines = [json.loads(line) for line in out.decode().splitlines()]
    check(rc == 0 and [(x['PartitionKey'], base64.b64decode(x['Data'])) for x in lines] ==
          stored and err == '', '--no-deaggregate: %r %s' % (lines, err))


# ---- an endpoint that sends "EndingSequenceNumber": null --------------------------------

class NullEnding(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    started = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        action = self.headers['X-Amz-Target'].split('.')[1]
        body = getattr(self, 'act_' + action)(request)
        data = json.dumps(body).encode()
        self.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n'
                         b'Content-Length: %d\r\n\r\n%s' % (len(data), data))

    def act_DescribeStreamSummary(self, request):
        return {'StreamDescriptionSummary': {
            'StreamName': 'other', 'StreamARN': 'arn:aws:kinesis:us-east-1:1:stream/other',
            'StreamStatus': 'ACTIVE', 'RetentionPeriodHours': 24,
            'StreamCreationTimestamp': 1.0, 'OpenShardCount': 1}}

    def act_ListShards(self, request):
        def shard(index, ending):
            return {'ShardId': 'shardId-%012d' % index, 'ParentShardId': None,
                    'HashKeyRange': {'StartingHashKey': '0', 'EndingHashKey': '9'},
                    'SequenceNumberRange': {'StartingSequenceNumber': '1',
                                            'EndingSequenceNumber': ending}}
        return {'Shards': [shard(0, '5'), shard(1, None)]}

    def act_GetShardIterator(self, request):
        NullEnding.started.append(request['ShardId'])
        return {'ShardIterator': request['ShardId'] + ':0'}

    def act_GetRecords(self, request):
        shard, position = request['ShardIterator'].split(':')
        records = []
        if position == '0':
            records = [{'SequenceNumber': '7', 'PartitionKey': 'k',
                        'ApproximateArrivalTimestamp': 1.0,
                        'Data': base64.b64encode(b'from ' + shard.encode()).decode()}]
        return {'Records': records, 'MillisBehindLatest': 0,
                'NextShardIterator': shard + ':1'}


def test_null_ending():
    server = ThreadingHTTPServer(('127.0.0.1', 0), NullEnding)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = 'http://127.0.0.1:%d' % server.server_address[1]
    try:
        rc, out, err = run(endpoint, 'stream', 'describe', 'other')
        rows = {line.split()[0]: line.split()[2] for line in out.decode().splitlines()
                if line.startswith('shardId-')}
        check(rc == 0 and rows == {'shardId-000000000000': 'closed',
                                   'shardId-000000000001': 'open'},
              'describe with EndingSequenceNumber null: %r %s' % (out, err))
        rc, out, err = run(endpoint, 'consume', 'other', '--from', 'latest')
        check(rc == 0 and NullEnding.started == ['shardId-000000000001'] and
              out == b'from shardId-000000000001\n',
              'consume --from latest with null: started %r, %r %s' % (
                  NullEnding.started, out, err))
    finally:
        server.shutdown()


# ---- a reshard in progress: the parent listed open beside its children -------------------

class MidSplit(NullEnding):
    """ListShards while a split's cut is not recorded: parent 0 without an ending sequence
    number, children 1 and 2 covering its range (as a cluster node answers until the
    parent's leader records its cut)."""

    def act_ListShards(self, request):
        def shard(index, parent, start, end):
            return {'ShardId': 'shardId-%012d' % index, 'ParentShardId': parent,
                    'HashKeyRange': {'StartingHashKey': str(start), 'EndingHashKey': str(end)},
                    'SequenceNumberRange': {'StartingSequenceNumber': '1'}}
        return {'Shards': [shard(0, None, 0, 2**128 - 1),
                           shard(1, 'shardId-000000000000', 0, 2**127 - 1),
                           shard(2, 'shardId-000000000000', 2**127, 2**128 - 1)]}


def test_shard_map_mid_split():
    """`sluice produce --shard-map` takes the children and leaves the parent out (before,
    the overlapping ranges failed the map: "cannot read the shard map")."""
    server = ThreadingHTTPServer(('127.0.0.1', 0), MidSplit)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    frames = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    frames.bind(('127.0.0.1', 0))
    frames.settimeout(30)
    env = dict(os.environ, SLUICE_ENDPOINT='http://127.0.0.1:%d' % server.server_address[1])
    p = subprocess.Popen([SLUICE, 'produce', 'other', '--transport', 'udp', '--shard-map',
                          '--target', '127.0.0.1:%d' % frames.getsockname()[1],
                          '--count', '40', '--batch', '1', '--quiet'],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = set()
    try:
        while len(shards) < 2:
            data = frames.recv(65536)
            check(data[13] == 4, 'a SHARD_RECORDS frame (type %d)' % data[13])
            if data[13] != 4:
                break
            n = data[38]
            shards.add(struct.unpack_from('<I', data, 40 + n)[0])
    except socket.timeout:
        pass
    finally:
        p.kill()
        _, err = p.communicate()
        frames.close()
        server.shutdown()
    check(shards == {1, 2}, 'frames for the children only, got shards %r: %s' % (
        sorted(shards), err.decode(errors='replace')[-500:]))


def main():
    tmp = tempfile.mkdtemp(prefix='cli-kpl-')
    srv = None
    try:
        srv = Sluiced(tmp, 'kpl', '--set', 'server.stream_status_delay_ms=50')
        test_deaggregation(srv.endpoint)
        test_null_ending()
        test_shard_map_mid_split()
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('sluice consume KPL and null EndingSequenceNumber ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
