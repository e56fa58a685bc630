#!/bin/sh
# Resharding under dataplane ingest: sluiced with its dataplane on net_tap in a
# network namespace this test creates (198.18.0.0/15 only); dp_sender sends
# UDP record frames and waits for durable ACKs while boto3 (in the namespace)
# runs SplitShard/MergeShards/UpdateShardCount. Then a consumer following
# lineage reads every shard: each acknowledged record exactly once, at the
# shard and sequence number its ACK named, closed parents ending with
# ChildShards and nothing past their EndingSequenceNumber.
set -u
sluiced=$1
sender=$2
src=$3
ops=${4:-100}
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace, tap)"; exit 77; }

tmp=$(mktemp -d)
ns=sluice-dpr-$$
tap=sdpr$$
port=$(free_port)
endpoint=http://127.0.0.1:$port
records=${DP_RESHARD_RECORDS:-5000}
py="$src/tests/integration/reshard/test_reshard_load.py"
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill -9 "$pid" 2>/dev/null
		rm -rf "/var/run/dpdk/sluice-$pid"
	fi
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
# dash runs no EXIT trap on a signal: meson's timeout TERM must still clean up.
trap 'exit 143' HUP INT TERM

ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$sluiced" --data-dir "$tmp/data" --api-listen "127.0.0.1:$port" \
	--set "dataplane.vdev=net_tap0,iface=$tap" --set dataplane.no_huge=true \
	--set dataplane.workers=2 --set server.stream_status_delay_ms=5 \
	--set server.shard_count_updates_per_day=0 >"$tmp/sluiced.log" 2>&1 &
pid=$!
wait_for_line "$tmp/sluiced.log" "sluiced: ready" 30 || fail "sluiced not ready: $(cat "$tmp/sluiced.log")"
ip -n "$ns" addr replace 198.18.0.2/15 dev "$tap" || fail "address"
ip -n "$ns" link set "$tap" up
ip netns exec "$ns" /usr/bin/python3 - "$endpoint" <<'EOF2' || fail "create stream"
import sys, time, boto3
kc = boto3.client("kinesis", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="A", aws_secret_access_key="S")
kc.create_stream(StreamName="dpr", ShardCount=4)
while kc.describe_stream_summary(StreamName="dpr")["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
    time.sleep(0.01)
EOF2
wait_for_line "$tmp/sluiced.log" "published 1 streams, 4 open shards" 10 || fail "no route table"
# Senders run back to back for as long as the reshards do (each run: its own ledger).
ip netns exec "$ns" /usr/bin/python3 "$py" reshard "$endpoint" dpr "$ops" >"$tmp/reshard.log" 2>&1 &
reshard_pid=$!
run=0
while kill -0 "$reshard_pid" 2>/dev/null || [ "$run" = 0 ]; do
	run=$((run + 1))
	ip netns exec "$ns" "$sender" -S dpr -n "$records" -k 12 -s "$((30 + run))" \
		-l "$tmp/ledger.$run" -t 90 >>"$tmp/sender.log" 2>&1 ||
		fail "dp_sender run $run: $(tail -5 "$tmp/sender.log")"
done
wait "$reshard_pid" || fail "reshard: $(cat "$tmp/reshard.log")"
cat "$tmp/reshard.log"
grep "records in" "$tmp/sender.log" | sed 's/^/  /'
cat "$tmp"/ledger.* >"$tmp/ledger"
ip netns exec "$ns" /usr/bin/python3 "$py" check "$endpoint" dpr "$tmp/ledger" ||
	fail "read-back check"
grep -c "SplitShard\|MergeShards\|UpdateShardCount" "$tmp/sluiced.log" | sed 's/^/reshards logged: /'
kill -TERM "$pid"
wait_for_exit "$pid" 30 || fail "sluiced did not stop"
wait "$pid" || fail "sluiced exit status $?"
pid=""
echo PASS
