#!/bin/sh
# The dataplane's TCP receiver under attack, in a network namespace this test creates
# (198.18.0.0/15 only), sluiced on net_tap:
#   1. scapy-crafted segments (dp_tcp_attack.py): bad checksums, RST and SYN storms
#      inside and outside the window (RFC 5961), overlapping retransmissions with
#      different bytes; what it had acknowledged is read back through the Kinesis API
#      and must be exactly what was first sent (no forged byte stored);
#   2. an hping3 SYN flood from random sources while 20 legitimate connections
#      (libsluice) keep sending: their records stored over the same number of seconds,
#      measured without and then with the flood, must keep at least half the rate; SYN
#      cookies are counted; sluiced's resident memory stays flat during the flood.
# DP_TCP_FLOOD_INTERVAL is hping3's gap between SYNs (default u50: 20,000 SYN/s, far
# beyond the half-open budget; "flood" sends as fast as one core can, which on a small
# machine measures the CPU hping3 takes from everyone, not the receiver).
set -u
sluiced=$1
sluice=$2
src=$3
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace, tap)"; exit 77; }
command -v hping3 >/dev/null || fail "hping3 missing (scripts/setup installs it)"
/usr/bin/python3 -c 'import scapy' 2>/dev/null ||
	fail "python3-scapy missing (scripts/setup installs it)"

here=$src/tests/integration/dataplane
telemetry="/usr/bin/python3 $here/dp_telemetry.py"
tmp=$(mktemp -d)
ns=tcptest-dpa-$$
tap=tcptest$$
port=$(free_port)
endpoint=http://127.0.0.1:$port
window_s=${DP_TCP_FLOOD_WINDOW_S:-4}
interval=${DP_TCP_FLOOD_INTERVAL:-u50}
rss_growth_max_kb=${DP_TCP_FLOOD_RSS_KB:-4096}
pid=""
bg=""
cleanup() {
	for p in $bg; do kill -9 "$p" 2>/dev/null; done
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

counter() { $telemetry "$pid" "$1"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }

# Records made durable per second over window_s seconds (the same window both times).
rate() {
	/usr/bin/python3 - "$here" "$pid" "$window_s" <<'EOF'
import sys, time
sys.path.insert(0, sys.argv[1])
import dp_telemetry
pid, window = sys.argv[2], float(sys.argv[3])
t0, d0 = time.monotonic(), dp_telemetry.stats(pid)["records_durable"]
time.sleep(window)
t1, d1 = time.monotonic(), dp_telemetry.stats(pid)["records_durable"]
print(int((d1 - d0) / (t1 - t0)))
EOF
}

ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$sluiced" --data-dir "$tmp/data" --api-listen "127.0.0.1:$port" \
	--set "dataplane.vdev=net_tap0,iface=$tap" --set dataplane.no_huge=true \
	--set dataplane.workers=2 >"$tmp/sluiced.log" 2>&1 &
pid=$!
wait_for_line "$tmp/sluiced.log" "sluiced: ready" 30 ||
	fail "sluiced not ready: $(cat "$tmp/sluiced.log")"
ip -n "$ns" addr replace 198.18.0.2/15 dev "$tap" || fail "address"
ip -n "$ns" link set "$tap" up
for s in attack:1 flood:2; do
	ip netns exec "$ns" "$sluice" stream create "${s%:*}" --shards "${s#*:}" \
		--endpoint "$endpoint" >/dev/null || fail "stream create $s"
done
wait_for_line "$tmp/sluiced.log" "published 2 streams, 3 open shards" 10 || fail "no route table"

# 1. Crafted segments, then what they stored.
ip netns exec "$ns" /usr/bin/python3 "$here/dp_tcp_attack.py" "$tap" "$pid" attack \
	"$tmp/attack.intent" || fail "crafted segments"
ip netns exec "$ns" "$sluice" consume attack --format json --max 1000 --endpoint "$endpoint" \
	>"$tmp/attack.read" || fail "consume attack"
/usr/bin/python3 - "$tmp/attack.intent" "$tmp/attack.read" <<'EOF' || fail "attack read-back"
import base64, json, sys
want = sorted(tuple(bytes.fromhex(x) for x in l.split()) for l in open(sys.argv[1]))
got = sorted((r["PartitionKey"].encode(), base64.b64decode(r["Data"]))
             for r in map(json.loads, open(sys.argv[2])))
print(f"attack: {len(got)} records read back, {len(want)} acknowledged")
sys.exit(0 if got == want else 1)
EOF

# 2. 20 legitimate connections, first alone, then under a SYN flood.
opened=$(counter tcp_conns_opened)
durable=$(counter records_durable)
i=0
while [ $i -lt 20 ]; do
	ip netns exec "$ns" "$sluice" produce flood --transport tcp --target 198.18.0.1:4570 \
		--count 1000000000 --batch 100 --quiet >"$tmp/produce.$i" 2>&1 &
	bg="$bg $!"
	i=$((i + 1))
done
i=0
until [ "$(counter tcp_conns_opened)" -ge $((opened + 20)) ] &&
	[ "$(counter records_durable)" -gt "$durable" ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || fail "the 20 producers did not connect"
	sleep 0.1
done
quiet=$(rate)
cookies=$(counter tcp_syn_cookies_sent)
ip netns exec "$ns" hping3 -S -p 4570 --rand-source -i "$interval" 198.18.0.1 \
	>"$tmp/hping3" 2>&1 &
flood=$!
producers=$bg
bg="$bg $flood"
i=0
until [ "$(counter tcp_syn_cookies_sent)" -gt "$cookies" ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || fail "no SYN cookie under the flood: $(cat "$tmp/hping3")"
	sleep 0.1
done
rss_before=$(rss_kb)
flooded=$(rate)
rss_after=$(rss_kb)
kill "$flood"
wait "$flood" 2>/dev/null
bg=$producers
cookies=$(($(counter tcp_syn_cookies_sent) - cookies))
for p in $bg; do kill -0 "$p" 2>/dev/null || fail "a producer died: $(cat "$tmp"/produce.*)"; done
for p in $bg; do kill "$p" 2>/dev/null; done
bg=""
echo "flood: $quiet records/s alone, $flooded records/s under the flood; $cookies SYN cookies;" \
	"RSS $rss_before -> $rss_after kB"
[ "$quiet" -gt 0 ] || fail "no throughput without the flood"
[ $((flooded * 2)) -ge "$quiet" ] || fail "under the flood: $flooded < half of $quiet records/s"
[ $((rss_after - rss_before)) -le "$rss_growth_max_kb" ] ||
	fail "RSS grew by $((rss_after - rss_before)) kB under the flood"

kill -TERM "$pid"
wait_for_exit "$pid" 30 || fail "sluiced did not stop"
wait "$pid" || fail "sluiced exit status $?"
[ -d "/var/run/dpdk/sluice-$pid" ] && fail "DPDK runtime directory left behind"
pid=""
echo PASS
