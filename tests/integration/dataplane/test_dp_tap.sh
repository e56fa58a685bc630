#!/bin/sh
# Dataplane end to end over net_tap, in a network namespace this test creates
# (addresses only in 198.18.0.0/15): dp_ingestd (the dataplane over a real
# io_uring log) owns 198.18.0.1 on the DPDK side of the tap; dp_sender, a
# UDP producer in the namespace (198.18.0.2), pings it (kernel ARP -> our ARP
# responder, ICMP echo), then sends records and waits for durable ACKs: once
# clean, once through nftables rules that drop and duplicate datagrams in both
# directions (numgen random; this kernel has no netem). dp_ingestd then checks
# every acknowledged record in the log: content, MD5 shard, exactly once.
# Cleans up the namespace, its process, the log and DPDK runtime files.
set -u
ingestd=$1
sender=$2
src=$3
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace, tap)"; exit 77; }
command -v nft >/dev/null || { echo "SKIP: no nft"; exit 77; }

tmp=$(mktemp -d)
ns=sluice-dpt-$$
tap=sdpt$$
records=${DP_TAP_RECORDS:-100000}
chaos_records=${DP_TAP_CHAOS_RECORDS:-30000}
workers=${DP_TAP_WORKERS:-2}
pid=""
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp" "/var/run/dpdk/sluice-$pid"
}
trap cleanup EXIT
# dash runs no EXIT trap on a signal: meson's timeout TERM must still clean up.
trap 'exit 143' HUP INT TERM

ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$ingestd" --dir "$tmp/log" --vdev "net_tap0,iface=$tap" --shards 4 --workers "$workers" \
	--ledger "$tmp/ledger" >"$tmp/out" 2>&1 &
pid=$!
wait_for_line "$tmp/out" "dp_ingestd: ready" 30 || fail "dp_ingestd not ready: $(cat "$tmp/out")"
ip -n "$ns" addr add 198.18.0.2/15 dev "$tap" || fail "address"
ip -n "$ns" link set "$tap" up

ip netns exec "$ns" "$sender" -P 3 -n 12 -s 1 -l "$tmp/ledger.0" || fail "ping or first batch"

start=$(date +%s.%N)
ip netns exec "$ns" "$sender" -n "$records" -k 12 -s 2 -l "$tmp/ledger.1" -t 90 ||
	fail "clean run"
end=$(date +%s.%N)
echo "clean: $records records in $(echo "$end - $start" | bc) s"

ip netns exec "$ns" nft -f - <<EOF2 || fail "nft rules"
table ip sluice_chaos {
	chain out {
		type filter hook output priority 0; policy accept;
		udp dport 4570 numgen random mod 100 < 10 drop
		udp dport 4570 numgen random mod 100 < 10 dup to 198.18.0.1 device "$tap"
	}
	chain in {
		type filter hook input priority 0; policy accept;
		udp sport 4570 numgen random mod 100 < 10 drop
	}
}
EOF2
ip netns exec "$ns" "$sender" -n "$chaos_records" -k 12 -s 3 -l "$tmp/ledger.2" -t 200 >"$tmp/chaos" 2>&1 ||
	fail "run under drop/dup: $(cat "$tmp/chaos")"
cat "$tmp/chaos"
grep -q ' 0 retransmits' "$tmp/chaos" && fail "the drop rule did not drop anything"

cat "$tmp/ledger.0" "$tmp/ledger.1" "$tmp/ledger.2" >"$tmp/ledger"
kill -TERM "$pid"
wait_for_exit "$pid" 30 || fail "dp_ingestd did not stop"
wait "$pid"; rc=$?
pid=""
cat "$tmp/out"
[ $rc = 0 ] || fail "dp_ingestd exit $rc"
grep -q "verified $((records + chaos_records + 12)) ledger records, 0 problems" "$tmp/out" ||
	fail "verification"
grep -q "dp-stat arp_replies" "$tmp/out" || fail "no ARP reply counted"
grep -q "dp-stat icmp_echo_replies 3" "$tmp/out" || fail "no ICMP echo replies counted"
grep -q "dp-stat frames_duplicate" "$tmp/out" || fail "no duplicate frame seen under dup"
echo "PASS"
