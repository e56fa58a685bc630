#!/usr/bin/python3
"""Checks what sluice consume read back (--format json lines) against producers' ledgers
("shard seq key data" per acknowledged record, each ledger in one producer's send order):
every acknowledged record exactly once, at the shard and sequence its ACK named, with
its key and data, the shard's positions 0, 1, 2 ... all acknowledged (a fresh
stream), in the shard MD5 routing picks (SHARDS shards, even split), per-shard
order by sequence, per-key order as each producer sent, and nothing else read back.

  dp_readback.py SHARDS CONSUMED LEDGER...
"""
import base64
import collections
import hashlib
import json
import sys


def main():
    shards, consumed, ledgers = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    want = {}
    bad = 0
    total = 0
    for path in ledgers:
        last_seq = {}
        for line in open(path):
            shard, seq, key, data = line.rstrip("\n").split(" ", 3)  # data may hold spaces
            shard, seq = int(shard), int(seq)
            total += 1
            if (shard, seq) in want:
                print(f"{path}: ({shard}, {seq}) acknowledged twice"); bad += 1
            want[(shard, seq)] = (key, data)
            if last_seq.get(key, -1) >= seq:
                print(f"{path}: key {key} out of order at seq {seq}"); bad += 1
            last_seq[key] = seq
            h = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
            if h * shards >> 128 != shard:
                print(f"key {key} acknowledged in shard {shard}, MD5 says {h * shards >> 128}")
                bad += 1
    # Match by content in per-shard order: the Kinesis sequence number is an opaque rendering.
    got = 0
    by_shard = collections.defaultdict(list)
    for line in open(consumed):
        got += 1
        r = json.loads(line)
        by_shard[int(r["ShardId"].split("-")[1])].append(
            (r["PartitionKey"], base64.b64decode(r["Data"]).decode()))
    per_shard = collections.defaultdict(list)
    for (shard, seq), rec in want.items():
        per_shard[shard].append((seq, rec))
    for shard in set(per_shard) | set(by_shard):
        acked = sorted(per_shard[shard])
        recs = [rec for _, rec in acked]
        if [seq for seq, _ in acked] != list(range(len(acked))):
            print(f"shard {shard}: acknowledged positions are not 0 .. {len(acked) - 1}"); bad += 1
        have = by_shard.get(shard, [])
        if len(have) != len(recs):
            print(f"shard {shard}: {len(have)} records read, {len(recs)} acknowledged"); bad += 1
        for i, (a, b) in enumerate(zip(recs, have)):
            if a != b:
                print(f"shard {shard} record {i}: read {b}, acknowledged {a}"); bad += 1
                break
    print(f"read back {got} records, {total} acknowledged, {bad} problems")
    return 1 if bad or got != total else 0


if __name__ == "__main__":
    sys.exit(main())
