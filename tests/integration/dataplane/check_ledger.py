"""check_ledger.py LEDGER CONSUMED SHARDS [OTHER]: the exactly-once read-back check of
the dataplane tests. LEDGER holds dp_sender's "<shard> <seq> <key> <data>" lines (what
durable ACKs said), CONSUMED `sluice consume --format json` of the whole stream, SHARDS
the stream's shard count, OTHER how many more records (from other producers) the stream
holds. Every acknowledged record must be read back once, in the shard its ACK named,
which is the shard MD5(key) routes to, in sequence order, with its key and data."""
import base64
import collections
import hashlib
import json
import sys

ledger = [line.split() for line in open(sys.argv[1])]
got = [json.loads(line) for line in open(sys.argv[2])]
shards = int(sys.argv[3])
other = int(sys.argv[4]) if len(sys.argv) > 4 else 0
acked = {(key, data) for _, _, key, data in ledger}
by_shard = collections.defaultdict(list)
for r in got:
    if (r["PartitionKey"], base64.b64decode(r["Data"]).decode(errors="replace")) in acked:
        by_shard[int(r["ShardId"].split("-")[1])].append(r)
want = collections.defaultdict(list)
for shard, seq, key, data in ledger:
    want[int(shard)].append((int(seq), key, data))
bad = 0
for shard, recs in want.items():
    recs.sort()
    have = by_shard.get(shard, [])
    if len(have) != len(recs):
        print(f"shard {shard}: {len(have)} ledger records read, {len(recs)} acknowledged")
        bad += 1
    for (seq, key, data), r in zip(recs, have):
        if r["PartitionKey"] != key or base64.b64decode(r["Data"]).decode() != data:
            print(f"shard {shard} seq {seq}: {r['PartitionKey']} != {key}")
            bad += 1
            break
        h = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
        if h * shards >> 128 != shard:
            print(f"key {key} in shard {shard}, MD5 says {h * shards >> 128}")
            bad += 1
            break
print(f"read back {len(got)} records: {len(ledger)} acknowledged in the ledger, {other} "
      f"from other producers; {bad} problems")
sys.exit(1 if bad or len(got) != len(ledger) + other else 0)
