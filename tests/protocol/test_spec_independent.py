#!/usr/bin/python3
"""A second, independent implementation of docs/PROTOCOL.md in Python, written from
the document alone (no C code): it must reproduce the spec's hex vectors byte for byte.
This checks that the document, not just the C codec, is enough to write a producer."""
import hashlib
import hmac
import re
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def seal(frame):
    """frame_size at 8, then the CRC of bytes 8.. at 4."""
    frame[8:12] = struct.pack('<I', len(frame))
    frame[4:8] = struct.pack('<I', crc32c(bytes(frame[8:])))
    return frame


def records_frame(producer_id, batch_seq, epoch, ack_mode, stream, records, auth=None):
    flags = ack_mode | (4 if auth else 0)
    frame = bytearray(b'SLUC' + bytes(8) + struct.pack('<BBH', 1, 1, flags))
    frame += struct.pack('<QQIHBB', producer_id, batch_seq, epoch, len(records), len(stream), 0)
    frame += stream
    for key, data, kind, hash_key in records:
        frame += struct.pack('<BBI', kind, len(key) - 1, len(data))
        frame += hash_key if kind else b''
        frame += key + data
    if auth:
        key_id, key, timestamp_ms = auth
        frame += struct.pack('<IIQ', key_id, 0, timestamp_ms) + bytes(32)
        frame[8:12] = struct.pack('<I', len(frame))
        tag = hmac.new(key, bytes(frame[8:len(frame) - 32]), hashlib.sha256).digest()
        frame[len(frame) - 32:] = tag
    return seal(frame)


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def shard_records_frame(producer_id, batch_seq, epoch, ack_mode, stream, shard, records):
    """records: (key, data, hash_key, explicit) -- section 3.1, the log's record encoding."""
    frame = bytearray(b'SLUC' + bytes(8) + struct.pack('<BBH', 1, 4, ack_mode))
    frame += struct.pack('<QQIHBB', producer_id, batch_seq, epoch, len(records), len(stream), 0)
    frame += stream + struct.pack('<I', shard)
    for key, data, hash_key, explicit in records:
        frame += b'\x00' + bytes([1 if explicit else 0]) + varint(len(key))
        frame += (hash_key if explicit else b'') + key + varint(len(data)) + data
    for _, _, hash_key, _ in records:
        frame += hash_key
    return seal(frame)


def ack_frame(ftype, flags, producer_id, batch_seq, epoch, status, record_count, record_index,
              runs, credit, retry_after, redirect=None):
    frame = bytearray(b'SLUC' + bytes(8) + struct.pack('<BBH', 1, ftype, flags))
    frame += struct.pack('<QQIBBHHHIII', producer_id, batch_seq, epoch, status, 0, record_count,
                         record_index, len(runs), credit, retry_after, 0)
    for seq_first, shard, count in runs:
        frame += struct.pack('<QIHH', seq_first, shard, count, 0)
    if redirect:
        # section 4, not_leader: shard_index, family, reserved, port, 16 address bytes
        shard, family, port, addr = redirect
        frame += struct.pack('<IBBH', shard, family, 0, port) + addr.ljust(16, b'\0')
    return seal(frame)


def spec_vector(doc, name):
    match = re.search(r'vector: ' + name + r'\n```hex\n(.*?)```', doc, re.S)
    return bytes.fromhex(match.group(1).replace('\n', ' '))


def main():
    doc = open(sys.argv[1], encoding='utf-8').read()
    pid = 0x0102030405060708
    want = {
        'records_one': records_frame(pid, 1, 1, 2, b'events', [(b'a', b'hello', 0, b'')]),
        'records_auth': records_frame(
            pid, 2, 1, 1, b'events',
            [(b'a', b'x', 2, hashlib.md5(b'a').digest()), (b'a', b'hello', 0, b'')],
            auth=(1, b'sluice-test-key!', 1764144000000)),
        'ack_durable': ack_frame(2, 2, pid, 3, 1, 0, 3, 0xFFFF, [(41, 0, 1), (7, 3, 2)],
                                 65536, 0),
        'nack_throttled': ack_frame(3, 0, pid, 4, 1, 5, 2, 0xFFFF, [], 0, 100),
        'nack_not_leader': ack_frame(3, 0, pid, 6, 1, 10, 3, 0xFFFF, [], 0xFFFFFFFF, 0,
                                     redirect=(2, 4, 4571, bytes([198, 18, 0, 2]))),
        'shard_records_two': shard_records_frame(
            pid, 5, 1, 2, b'events', 3,
            [(b'a', b'hello', hashlib.md5(b'a').digest(), False),
             (b'b', b'', (2**127 + 1).to_bytes(16, 'big'), True)]),
    }
    assert crc32c(b'123456789') == 0xE3069283
    failed = 0
    for name, frame in want.items():
        got = spec_vector(doc, name)
        if bytes(frame) != got:
            print(f'{name}: spec has {got.hex()}, independent encoder made {bytes(frame).hex()}')
            failed += 1
        else:
            print(f'{name}: ok ({len(got)} bytes)')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
