#!/bin/sh
# sluiced with its dataplane on net_tap in a network namespace this test
# creates (198.18.0.0/15 only): a stream is created through the Kinesis API,
# dp_sender (a codec-built UDP producer in the namespace) sends records and
# waits for durable ACKs, sluiced is restarted in the middle, more records
# follow under nftables drop/dup, and then every acknowledged record is read
# back through the Kinesis API (sluice consume): content, the shard its ACK
# named (MD5 routing), per-shard order by sequence, exactly once. `sluice produce
# --transport udp` (libsluice) also sends through the dataplane to a second stream;
# then with [dataplane] auth_keys only HMAC-signed frames are stored. With --shard-map
# libsluice sends shard-grouped frames into a third stream while one of its shards
# splits: whatever the map's moves cost, every record is read back exactly once.
# The 5th argument picks the backend ([dataplane] backend): dpdk (net_tap, the
# default) or kernel (kernel sockets on 198.18.0.1, an address of the
# namespace's loopback); everything else is the same test.
set -u
sluiced=$1
sluice=$2
sender=$3
src=$4
backend=${5:-dpdk}
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace, tap)"; exit 77; }

tmp=$(mktemp -d)
ns=sluice-dps-$$
tap=sdps$$
port=$(free_port)
admin_port=$(free_port)
endpoint=http://127.0.0.1:$port
records=${DP_SLUICED_RECORDS:-20000}
produce_records=${DP_SLUICED_PRODUCE_RECORDS:-100000}
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill -9 "$pid" 2>/dev/null
		rm -rf "/var/run/dpdk/sluice-$pid" # a killed sluiced cannot remove its own
	fi
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
# dash runs no EXIT trap on a signal: meson's timeout TERM must still clean up.
trap 'exit 143' HUP INT TERM

start_sluiced() { # log file, extra sluiced arguments
	log=$1
	shift
	ip netns exec "$ns" "$sluiced" --data-dir "$tmp/data" --api-listen "127.0.0.1:$port" \
		--set "dataplane.backend=$backend" \
		--set "dataplane.vdev=net_tap0,iface=$tap" --set dataplane.no_huge=true \
		--set dataplane.workers=2 --set "admin.listen=127.0.0.1:$admin_port" "$@" >"$log" 2>&1 &
	pid=$!
	wait_for_line "$log" "sluiced: ready" 30 || fail "sluiced not ready: $(cat "$log")"
	[ "$backend" = kernel ] && return 0
	ip -n "$ns" addr replace 198.18.0.2/15 dev "$tap" || fail "address"
	ip -n "$ns" link set "$tap" up
}

stop_sluiced() {
	kill -TERM "$pid"
	wait_for_exit "$pid" 30 || fail "sluiced did not stop"
	wait "$pid" || fail "sluiced exit status $?"
	pid=""
}

ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link set lo up
# The kernel backend binds its sockets to the address, so it exists first; its
# datagrams travel over loopback, where the chaos rules below duplicate them.
dev=$tap
if [ "$backend" = kernel ]; then
	ip -n "$ns" addr add 198.18.0.1/15 dev lo || fail "address"
	dev=lo
fi
start_sluiced "$tmp/sluiced.1"
ip netns exec "$ns" "$sluice" stream create orders --shards 4 --endpoint "$endpoint" >/dev/null ||
	fail "stream create"
wait_for_line "$tmp/sluiced.1" "published 1 streams, 4 open shards" 10 || fail "no route table"
ip netns exec "$ns" "$sender" -S orders -n "$records" -k 12 -s 21 -l "$tmp/ledger.1" -t 90 ||
	fail "first run"

# The CLI's UDP transport (libsluice) into a second stream, read back by count.
ip netns exec "$ns" "$sluice" stream create events --shards 2 --endpoint "$endpoint" >/dev/null ||
	fail "stream create events"
wait_for_line "$tmp/sluiced.1" "published 2 streams, 6 open shards" 10 || fail "no route for events"
ip netns exec "$ns" "$sluice" produce events --transport udp --target 198.18.0.1:4570 \
	--count "$produce_records" --batch 12 --quiet >"$tmp/produce" 2>&1 || fail "sluice produce udp: $(cat "$tmp/produce")"
grep -q "stored $produce_records failed 0" "$tmp/produce" || fail "sluice produce udp: $(cat "$tmp/produce")"
n=$(ip netns exec "$ns" "$sluice" consume events --max "$produce_records" --endpoint "$endpoint" | wc -l)
[ "$n" = "$produce_records" ] || fail "events: read back $n of $produce_records"

# Shard-grouped frames (--shard-map: the map from ListShards) with a split midway.
grouped_records=$((produce_records / 2))
ip netns exec "$ns" "$sluice" stream create grouped --shards 2 --endpoint "$endpoint" >/dev/null ||
	fail "stream create grouped"
wait_for_line "$tmp/sluiced.1" "published 3 streams, 8 open shards" 10 || fail "no route for grouped"
ip netns exec "$ns" "$sluice" produce grouped --transport udp --target 198.18.0.1:4570 \
	--shard-map --endpoint "$endpoint" --count "$grouped_records" --batch 12 --quiet \
	>"$tmp/grouped" 2>&1 &
gpid=$!
ip netns exec "$ns" /usr/bin/python3 - "$endpoint" <<'EOF3' || fail "split grouped"
import sys, boto3
k = boto3.client("kinesis", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="x")
k.split_shard(StreamName="grouped", ShardToSplit="shardId-000000000000",
              NewStartingHashKey=str(2**126))
EOF3
wait "$gpid" || fail "sluice produce --shard-map: $(cat "$tmp/grouped")"
grep -q "stored $grouped_records failed 0" "$tmp/grouped" || fail "grouped: $(cat "$tmp/grouped")"
n=$(ip netns exec "$ns" "$sluice" consume grouped --format json --max "$grouped_records" \
	--endpoint "$endpoint" | /usr/bin/python3 -c '
import json, sys
seen = [json.loads(line)["Data"] for line in sys.stdin]
print(len(set(seen)) if len(seen) == len(set(seen)) else "duplicates")')
[ "$n" = "$grouped_records" ] || fail "grouped: read back $n of $grouped_records"
ip netns exec "$ns" curl -sf "http://127.0.0.1:$admin_port/status.json" >"$tmp/status" ||
	fail "status.json"
/usr/bin/python3 -c '
import json, sys
dp = json.load(open(sys.argv[1]))["dataplane"]
sys.exit(0 if dp["frames_shard_grouped"] > 0 else "no shard-grouped frame was taken")' \
	"$tmp/status" || fail "grouped frames: $(cat "$tmp/status")"

# Restart: everything acknowledged so far must still be there afterwards.
stop_sluiced
start_sluiced "$tmp/sluiced.2"
wait_for_line "$tmp/sluiced.2" "published 3 streams, 9 open shards" 10 || fail "no route table"
ip netns exec "$ns" nft -f - <<EOF2 || fail "nft rules"
table ip sluice_chaos {
	chain out {
		type filter hook output priority 0; policy accept;
		udp dport 4570 numgen random mod 100 < 5 drop
		udp dport 4570 numgen random mod 100 < 5 dup to 198.18.0.1 device "$dev"
	}
	chain in {
		type filter hook input priority 0; policy accept;
		udp sport 4570 numgen random mod 100 < 5 drop
	}
}
EOF2
ip netns exec "$ns" "$sender" -S orders -n "$records" -k 12 -s 22 -l "$tmp/ledger.2" -t 90 ||
	fail "second run (drop/dup)"
ip netns exec "$ns" nft delete table ip sluice_chaos

total=$((records * 2))
ip netns exec "$ns" "$sluice" consume orders --format json --max "$total" --endpoint "$endpoint" \
	>"$tmp/consumed" || fail "consume"
cat "$tmp/ledger.1" "$tmp/ledger.2" >"$tmp/ledger"
/usr/bin/python3 "$src/tests/integration/dataplane/check_ledger.py" "$tmp/ledger" "$tmp/consumed" \
	4 || fail "read-back check"
# [dataplane] auth_keys: signed frames are stored, unsigned ones refused (AUTH_FAILED).
key=7:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
stop_sluiced
start_sluiced "$tmp/sluiced.3" --set "dataplane.auth_keys=$key"
wait_for_line "$tmp/sluiced.3" "published 3 streams, 9 open shards" 10 || fail "no route table"
ip netns exec "$ns" "$sender" -S orders -K "$key" -n 1200 -s 23 -l "$tmp/ledger.3" -t 30 ||
	fail "signed frames refused"
ip netns exec "$ns" "$sender" -S orders -n 12 -s 24 -l "$tmp/ledger.4" -t 10 >"$tmp/unsigned" 2>&1 &&
	fail "unsigned frames accepted"
grep -q "NACK auth_failed" "$tmp/unsigned" || fail "unsigned: $(cat "$tmp/unsigned")"

# Counters through DPDK telemetry (the socket of sluiced's EAL file prefix).
/usr/bin/python3 - "/var/run/dpdk/sluice-$pid/dpdk_telemetry.v2" <<'EOF4' || fail "telemetry"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
json.loads(s.recv(16384))
s.send(b"/sluice/dp/stats")
stats = json.loads(s.recv(65536))["/sluice/dp/stats"]
workers = []
for w in (0, 1):
    s.send(b"/sluice/dp/worker,%d" % w)
    workers.append(json.loads(s.recv(65536))["/sluice/dp/worker"])
print("telemetry: frames_accepted", stats["frames_accepted"], "records_durable",
      stats["records_durable"], "per worker", [w["frames_accepted"] for w in workers])
ok = stats["frames_accepted"] > 0 and stats["records_durable"] > 0
ok = ok and sum(w["frames_accepted"] for w in workers) == stats["frames_accepted"]
sys.exit(0 if ok else 1)
EOF4
last=$pid
stop_sluiced
[ -d "/var/run/dpdk/sluice-$last" ] && fail "DPDK runtime directory left behind"
echo PASS
