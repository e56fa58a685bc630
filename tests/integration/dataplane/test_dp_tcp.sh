#!/bin/sh
# The dataplane's TCP receiver (dataplane/dp_tcp.h) against Linux's own TCP stack, in a
# network namespace this test creates (198.18.0.0/15 only), sluiced on net_tap:
#   1. interop: DP_TCP_RECORDS records (default 1,000,000) over 50 connections at once:
#      40 dp_sender -T (the C codec, 80%), 5 `sluice produce --transport tcp`
#      (libsluice, 15%), 4 Python sockets (tests/protocol's independent codec, 4%) and
#      one `nc` piping pre-built frames (1%);
#   2. the same clients (fewer records) under nftables numgen drop and duplicate rules
#      on the namespace side;
#   3. 5,000 connections open at once, each sending a frame and getting its ACK;
#   4. connections cut mid-stream: dp_sender resets its own connection after reading
#      (and dropping) the ACKs of a full window, reconnects with the same producer id and
#      resends; every resend must come back DUPLICATE (stored once). First from the same
#      port (2 workers), then after a restart with one worker from new ports, and
#      libsluice cut by `ss -K` while it sends.
# Every record dp_sender, Python and nc had acknowledged is then read back through the
# Kinesis API exactly once, at its acknowledged position, in per-key order
# (dp_readback.py; libsluice's from the positions `sluice produce` printed per line);
# the 5,000 connections' stream by count.
#
# Reconnects from a new port land on either worker (tap spreads flows over queues); the
# workers share the producers' dedup windows, so exactly-once holds across them (4b).
#
# The 5th argument picks [dataplane] backend: dpdk (net_tap, our TCP receiver; the
# default) or kernel (the kernel's TCP through io_uring, 198.18.0.1 on the namespace's
# loopback). With kernel the chaos drops and duplicates on the way in (prerouting) and
# on the clients' side on the way back, and the checks of our own receiver's counters
# (duplicate bytes, out of order, retransmissions, resets) are the kernel's to keep.
set -u
sluiced=$1
sluice=$2
sender=$3
src=$4
backend=${5:-dpdk}
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace, tap)"; exit 77; }
for tool in nc nft ss; do
	command -v $tool >/dev/null || fail "$tool missing (scripts/setup installs it)"
done

here=$src/tests/integration/dataplane
clients="/usr/bin/python3 $here/dp_tcp_clients.py"
telemetry="/usr/bin/python3 $here/dp_telemetry.py"
tmp=$(mktemp -d)
ns=tcptest-dpt-$$
cns=$ns                 # where run_clients runs
ns2=tcptest-dpc-$$      # clients behind a router (ns): the chaos is in its forward path
tap=tcptest$$
port=$(free_port)
endpoint=http://127.0.0.1:$port
records=${DP_TCP_RECORDS:-1000000}
chaos_records=${DP_TCP_CHAOS_RECORDS:-60000}
conns=${DP_TCP_CONNS:-5000}
pid=""
bg=""
cleanup() {
	for p in $bg; do kill -9 "$p" 2>/dev/null; done
	if [ -n "$pid" ]; then
		kill -9 "$pid" 2>/dev/null
		rm -rf "/var/run/dpdk/sluice-$pid" # a killed sluiced cannot remove its own
	fi
	ip netns del "$ns" 2>/dev/null
	ip netns del "$ns2" 2>/dev/null
	[ -n "${DP_TCP_KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
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
		--set dataplane.workers=2 --set dataplane.producers_max=4096 "$@" >"$log" 2>&1 &
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

counter() { $telemetry "$pid" "$1"; }

# run_clients TAG(1, 2: seeds) DP_SENDERS PER_SENDER PRODUCES PER_PRODUCE PYTHONS PER_PYTHON
# NC_RECORDS, in namespace $cns:
# every client at once, each on its own connection; ledgers $tmp/ledger.TAG.*.
run_clients() {
	tag=$1
	pids=""
	t0=$(date +%s)
	i=0
	while [ $i -lt "$2" ]; do
		ip netns exec "$cns" "$sender" -T -S orders -n "$3" -k 64 -s $((tag * 1000 + i)) -t 240 \
			-l "$tmp/ledger.$tag.s$i" >"$tmp/out.$tag.s$i" 2>&1 &
		pids="$pids $!"
		i=$((i + 1))
	done
	i=0
	while [ $i -lt "$4" ]; do
		$clients lines "$tmp/lines.$tag.$i" "$5" $((tag * 1000 + 500 + i)) || fail "lines"
		# 100 per frame: an ACK's runs over 2 shards fit one answer (NO_DETAIL otherwise).
		ip netns exec "$cns" "$sluice" produce events --transport tcp --target 198.18.0.1:4570 \
			--lines --key-field 1 --batch 100 <"$tmp/lines.$tag.$i" \
			>"$tmp/produced.$tag.$i" 2>"$tmp/produce.$tag.$i" &
		pids="$pids $!"
		i=$((i + 1))
	done
	ip netns exec "$cns" $clients python 198.18.0.1 orders "$tmp/ledger.$tag.py" "$6" "$7" \
		"$tag" >"$tmp/out.$tag.py" 2>&1 &
	pids="$pids $!"
	$clients nc-frames orders "$tmp/nc.$tag.frames" "$tmp/nc.$tag.manifest" "$8" "$tag" ||
		fail "nc frames"
	# -N: shut down our side at the end of the input, then read until the appliance closes.
	ip netns exec "$cns" nc -N 198.18.0.1 4570 <"$tmp/nc.$tag.frames" >"$tmp/nc.$tag.answers" &
	pids="$pids $!"
	bg=$pids
	failed=0
	for p in $pids; do wait "$p" || failed=$((failed + 1)); done
	bg=""
	[ $failed = 0 ] ||
		fail "$tag: $failed clients failed: $(cat "$tmp"/out.$tag.* "$tmp"/produce.$tag.*)"
	$clients nc-ledger "$tmp/nc.$tag.manifest" "$tmp/nc.$tag.answers" "$tmp/ledger.$tag.nc" ||
		fail "$tag: nc"
	i=0
	while [ $i -lt "$4" ]; do
		# Every line stored (exit 0), each with its position (the ledger).
		$clients produce-ledger "$tmp/lines.$tag.$i" "$tmp/produced.$tag.$i" \
			"$tmp/evledger.$tag.$i" || fail "$tag: sluice produce ledger"
		i=$((i + 1))
	done
	echo "$tag: $(($(date +%s) - t0)) s: $(($2 * $3 + $4 * $5 + $6 * $7 + $8)) records" \
		"over $(($2 + $4 + $6 + 1)) connections acknowledged"
}

ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link set lo up
# The kernel backend binds its sockets to the address: it exists first.
[ "$backend" = kernel ] && { ip -n "$ns" addr add 198.18.0.1/15 dev lo || fail "address"; }
start_sluiced "$tmp/sluiced.1"
for s in orders:4 events:2 conns:2; do
	ip netns exec "$ns" "$sluice" stream create "${s%:*}" --shards "${s#*:}" \
		--endpoint "$endpoint" >/dev/null || fail "stream create $s"
done
wait_for_line "$tmp/sluiced.1" "published 3 streams, 8 open shards" 10 || fail "no route table"

# 1. Interop: 50 connections (40 + 5 + 4 + 1), the records split 80/15/4/1.
run_clients 1 40 $((records * 8 / 10 / 40)) 5 $((records * 15 / 100 / 5)) \
	4 $((records * 4 / 100 / 4)) $((records / 100))

# 3. Connections open at once (before the chaos, which would only slow the handshakes).
ip netns exec "$ns" sh -c "ulimit -n $((conns + 1000)) && \
	sysctl -q -w net.ipv4.ip_local_port_range='10000 65000' && \
	$clients conns 198.18.0.1 conns $conns \
	'test \$($telemetry $pid tcp_conns_opened) -ge \
		\$(( \$($telemetry $pid tcp_conns_closed) + $conns ))'" \
	|| fail "$conns concurrent connections"

# 2. The same under loss and duplication of segments both ways. The clients sit in a
# second namespace routed through the first, whose forward path drops and duplicates:
# a rule on a sender's own output hook would not lose a TCP segment (the kernel sees the
# drop and sends it again later, without a hole).
ip netns add "$ns2" || fail "ip netns add"
ip -n "$ns2" link set lo up
ip -n "$ns" link add tcptestr$$ type veth peer name tcptestc$$ netns "$ns2" || fail "veth"
ip -n "$ns" addr add 198.19.0.1/24 dev tcptestr$$
ip -n "$ns" link set tcptestr$$ up
ip -n "$ns2" addr add 198.19.0.2/24 dev tcptestc$$
ip -n "$ns2" link set tcptestc$$ up
ip -n "$ns2" route add default via 198.19.0.1 || fail "route"
ip netns exec "$ns" sysctl -q -w net.ipv4.ip_forward=1 || fail "forwarding"
if [ "$backend" = dpdk ]; then
	ip netns exec "$ns" nft -f - <<EOF2 || fail "nft rules"
table ip tcptest_chaos {
	chain chaos {
		type filter hook forward priority 0; policy accept;
		tcp dport 4570 numgen random mod 100 < 5 drop
		tcp dport 4570 numgen random mod 100 < 5 dup to 198.18.0.1 device "$tap"
		tcp sport 4570 numgen random mod 100 < 5 drop
	}
}
EOF2
else
	# 198.18.0.1 is local: segments to it are not forwarded but received (prerouting);
	# answers are lost where the clients receive them, not where the kernel sends them.
	ip netns exec "$ns" nft -f - <<EOF2 || fail "nft rules"
table ip tcptest_chaos {
	chain chaos {
		type filter hook prerouting priority 0; policy accept;
		iifname "tcptestr$$" tcp dport 4570 numgen random mod 100 < 5 counter drop
		iifname "tcptestr$$" tcp dport 4570 numgen random mod 100 < 5 counter dup to 198.18.0.1 device "lo"
	}
}
EOF2
	ip netns exec "$ns2" nft -f - <<EOF2 || fail "nft rules (clients)"
table ip tcptest_chaos {
	chain chaos {
		type filter hook prerouting priority 0; policy accept;
		tcp sport 4570 numgen random mod 100 < 5 counter drop
	}
}
EOF2
fi
cns=$ns2
dup_before=$(counter tcp_dup_bytes)
ooo_before=$(counter tcp_ooo_segments)
rtx_before=$(($(counter tcp_retransmits) + $(counter tcp_fast_retransmits)))
run_clients 2 8 $((chaos_records * 8 / 10 / 8)) 1 $((chaos_records * 15 / 100)) \
	2 $((chaos_records * 4 / 100 / 2)) $((chaos_records / 100))
if [ "$backend" = kernel ]; then
	# Every rule (drop in, duplicate in, drop back) took packets: the chaos happened.
	hits=$( (ip netns exec "$ns" nft list table ip tcptest_chaos
		ip netns exec "$ns2" nft list table ip tcptest_chaos) | grep -c 'packets [1-9]')
	[ "$hits" = 3 ] || fail "chaos: $hits of 3 rules took packets"
fi
ip netns exec "$ns" nft delete table ip tcptest_chaos
cns=$ns
# The rules reached the receiver: duplicates trimmed, holes filled, our answers resent.
if [ "$backend" = dpdk ]; then
	[ "$(counter tcp_dup_bytes)" -gt "$dup_before" ] || fail "chaos: no duplicate bytes seen"
	[ "$(counter tcp_ooo_segments)" -gt "$ooo_before" ] || fail "chaos: no segment out of order"
	[ $(($(counter tcp_retransmits) + $(counter tcp_fast_retransmits))) -gt "$rtx_before" ] ||
		fail "chaos: no retransmission of ours"
fi

# 4a. Cuts, reconnecting from the same port (the same 4-tuple: the same worker).
ip netns exec "$ns" "$sender" -T -R -C 25 -S orders -n 6000 -k 12 -s 41 -t 120 \
	-l "$tmp/ledger.cut.r" >"$tmp/out.cut.r" 2>&1 || fail "cut (same port): $(cat "$tmp/out.cut.r")"
grep -Eq " [1-9][0-9]* cuts" "$tmp/out.cut.r" || fail "cut (same port): $(cat "$tmp/out.cut.r")"
# 4b. Cuts, reconnecting from new ports on two workers: a resend may reach the other
# worker, which shares the producer's dedup window (dp_internal.h), so it is answered as
# a duplicate, never stored again.
ip netns exec "$ns" "$sender" -T -C 25 -S orders -n 6000 -k 12 -s 42 -t 120 \
	-l "$tmp/ledger.cut.x" >"$tmp/out.cut.x" 2>&1 ||
	fail "cut (new ports, two workers): $(cat "$tmp/out.cut.x")"
grep -Eq " [1-9][0-9]* cuts" "$tmp/out.cut.x" || fail "cut (new ports): $(cat "$tmp/out.cut.x")"

# 4c. A restart (everything acknowledged must survive it), one worker, new ports.
stop_sluiced
start_sluiced "$tmp/sluiced.2" --set dataplane.workers=1
wait_for_line "$tmp/sluiced.2" "published 3 streams, 8 open shards" 10 || fail "no route table"
ip netns exec "$ns" "$sender" -T -C 25 -S orders -n 6000 -k 12 -s 43 -t 120 \
	-l "$tmp/ledger.cut.n" >"$tmp/out.cut.n" 2>&1 || fail "cut (new port): $(cat "$tmp/out.cut.n")"
grep -Eq " [1-9][0-9]* cuts" "$tmp/out.cut.n" || fail "cut (new port): $(cat "$tmp/out.cut.n")"
# libsluice cut from outside (ss -K: the kernel resets its socket) while it sends.
cut_records=${DP_TCP_CUT_RECORDS:-300000}
$clients lines "$tmp/lines.cut" "$cut_records" 77 || fail "lines"
# 12 per frame: a replayed ACK keeps its runs (up to 16) and so the positions.
ip netns exec "$ns" "$sluice" produce events --transport tcp --target 198.18.0.1:4570 \
	--lines --key-field 1 --batch 12 <"$tmp/lines.cut" >"$tmp/produced.cut" \
	2>"$tmp/produce.cut" &
bg=$!
durable=$(counter records_durable)
# A batch resent on the new connection that meets its first copy still being stored is
# NACKed THROTTLED there (its ACK went to the old connection) and answered from the dedup
# window on its next resend (docs/PROTOCOL.md section 6). The deadline only bounds a
# hang; it stays past libsluice's silence bound (30 s), which a loaded machine can reach.
cut_deadline_s=${DP_TCP_CUT_DEADLINE_S:-120}
for cut in 1 2 3; do
	# Mid-stream: once this connection has had records stored, and while it is open.
	t0=$(date +%s)
	until [ "$(counter records_durable)" -gt "$durable" ] &&
		ip netns exec "$ns" ss -K dst 198.18.0.1 dport = 4570 2>/dev/null | grep -q ESTAB; do
		[ $(($(date +%s) - t0)) -lt "$cut_deadline_s" ] ||
			fail "libsluice cut $cut: no connection with progress to cut"
		kill -0 "$bg" 2>/dev/null ||
			fail "libsluice cut $cut: it finished first (raise DP_TCP_CUT_RECORDS)"
		sleep 0.05
	done
	durable=$(counter records_durable)
done
wait "$bg" || fail "sluice produce (cut): $(cat "$tmp/produce.cut")"
bg=""
$clients produce-ledger "$tmp/lines.cut" "$tmp/produced.cut" "$tmp/evledger.cut" ||
	fail "sluice produce (cut) ledger"
if [ "$backend" = dpdk ]; then
	[ "$(counter tcp_resets_received)" -ge 3 ] || fail "ss -K: no resets received"
fi

# Read back.
ip netns exec "$ns" "$sluice" consume orders --format json --max 100000000 \
	--endpoint "$endpoint" >"$tmp/consumed" || fail "consume orders"
/usr/bin/python3 "$here/dp_readback.py" 4 "$tmp/consumed" "$tmp"/ledger.* || fail "read-back check"
ip netns exec "$ns" "$sluice" consume events --format json --max 100000000 \
	--endpoint "$endpoint" >"$tmp/consumed.events" || fail "consume events"
/usr/bin/python3 "$here/dp_readback.py" 2 "$tmp/consumed.events" "$tmp"/evledger.* ||
	fail "read-back check (libsluice)"
n=$(ip netns exec "$ns" "$sluice" consume conns --max 100000000 --endpoint "$endpoint" | wc -l)
[ "$n" = "$conns" ] || fail "conns: read back $n of $conns"
echo "telemetry: $($telemetry "$pid" | grep -E 'tcp_(conns|resets|dup|ooo|retrans|challenge)' |
	tr '\n' ' ')"
last=$pid
stop_sluiced
[ -d "/var/run/dpdk/sluice-$last" ] && fail "DPDK runtime directory left behind"
echo PASS
