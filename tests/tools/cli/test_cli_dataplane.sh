#!/bin/sh
# The CLI end to end through sluiced's DPDK dataplane: in a network namespace
# this test creates (addresses only in 198.18.0.0/15), sluiced runs with the
# dataplane on net_tap; `sluice stream create` goes through the Kinesis API,
# `sluice produce --transport udp` and `sluice bench ingest --transport udp`
# send record frames to the dataplane and wait for durable ACKs, and
# `sluice consume` reads every record back through the API, on the shard
# produce reported. Needs root (skips otherwise). Stops only its own sluiced.
set -u
sluice=$1
sluiced=$2
src=$3
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace, tap)"; exit 77; }

tmp=$(mktemp -d)
ns=sluice-cli-$$
tap=scli$$
pid=""
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
	[ -n "$pid" ] && rm -rf "/var/run/dpdk/sluice-$pid"
}
trap cleanup EXIT
# dash runs no EXIT trap on a signal: meson's timeout TERM must still clean up.
trap 'exit 143' HUP INT TERM
inside() { ip netns exec "$ns" env SLUICE_ENDPOINT=http://127.0.0.1:4567 "$@"; }

ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$sluiced" --data-dir "$tmp/data" --api-listen 127.0.0.1:4567 \
	--set "dataplane.vdev=net_tap0,iface=$tap" --set dataplane.no_huge=true \
	>"$tmp/out" 2>"$tmp/log" &
pid=$!
wait_for_line "$tmp/out" "sluiced: ready" 30 || fail "sluiced not ready: $(tail -5 "$tmp/log")"
ip -n "$ns" addr add 198.18.0.2/15 dev "$tap" || fail "address"
ip -n "$ns" link set "$tap" up

inside "$sluice" stream create e2e --shards 4 || fail "stream create"
seq 0 1999 | sed 's/^/rec-/' |
	inside "$sluice" produce e2e --transport udp --target 198.18.0.1:4570 --key-field 1 \
	>"$tmp/produced" 2>"$tmp/produce.err" || fail "produce: $(cat "$tmp/produce.err")"
inside "$sluice" bench ingest e2e --transport udp --target 198.18.0.1:4570 --rate 5000 \
	--records-per-frame 10 --duration 2s --data index --json >"$tmp/bench" ||
	fail "bench: $(cat "$tmp/bench")"
inside "$sluice" consume e2e --format json >"$tmp/consumed" || fail "consume"

/usr/bin/python3 - "$tmp" <<'EOF2' || fail "records differ"
import base64, json, sys
tmp = sys.argv[1]
produced = {}
for line in open(tmp + '/produced'):
    index, shard, seq = line.rstrip('\n').split('\t')
    assert shard.startswith('shardId-'), line
    produced['rec-' + index] = shard
bench = json.load(open(tmp + '/bench'))
assert bench['records_acked'] == bench['records_sent'] == 10000, bench
seen = {}
for line in open(tmp + '/consumed'):
    record = json.loads(line)
    data = base64.b64decode(record['Data']).decode()
    seen[data] = seen.get(data, 0) + 1
    if record['PartitionKey'].startswith('rec-'):
        assert produced[data] == record['ShardId'], (data, record['ShardId'])
assert all(seen.get(key) == 1 for key in produced), 'a produced line is missing or doubled'
bench_data = [d for d in seen if d.endswith(' ') or ' ' in d]
assert len(bench_data) == 10000 and all(seen[d] == 1 for d in bench_data), len(bench_data)
print('cli dataplane: 2000 produced + 10000 benched, each read back once; bench p50 %.0f us'
      % bench['latency_us']['p50'])
EOF2

kill -TERM "$pid"
wait_for_exit "$pid" 30 || fail "sluiced did not stop"
wait "$pid"; rc=$?
[ $rc = 0 ] || fail "sluiced exit $rc: $(tail -5 "$tmp/log")"
pid=""
echo "PASS"
