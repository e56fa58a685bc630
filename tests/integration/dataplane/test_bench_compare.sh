#!/bin/sh
# `sluice bench ingest --compare --short` (root; skipped otherwise): it makes its
# own namespace, veth + AF_XDP, memif sockets, a sluiced per device (memif, AF_XDP,
# kernel backend) and a dpdk-testpmd, runs every path briefly and prints the ingest-compare
# line. Behaviour only, never time (this machine is shared): every field is a
# number, lost=0, every path acknowledged records, the stream read back matched,
# and it removed all it made. Refused when not root. Interrupted (SIGTERM) once a
# sluiced is up, it still removes everything and prints no result.
set -u
sluiced=$1
sluice=$2
gen=$3
src=$4
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace, AF_XDP)"; exit 77; }
for pmd in af_xdp memif; do
	ls /usr/lib/*/dpdk/pmds-*/librte_net_$pmd.so* >/dev/null 2>&1 ||
		{ echo "SKIP: DPDK has no net_$pmd driver"; exit 77; }
done
command -v dpdk-testpmd >/dev/null || { echo "SKIP: no dpdk-testpmd (scripts/setup)"; exit 77; }
command -v ethtool >/dev/null || { echo "SKIP: no ethtool (scripts/setup installs it)"; exit 77; }

tmp=$(mktemp -d)
chmod 755 "$tmp"
bench=""
cleanup() {
	[ -n "$bench" ] && kill -TERM "$bench" 2>/dev/null && wait_for_exit "$bench" 60
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' HUP INT TERM

compare() { # OUT ERR: the short comparison, its temp dirs under $tmp
	TMPDIR=$tmp SLUICED=$sluiced SLUICE_DP_GEN=$gen SLUICE_COMPARE_READBACK_API_MAX=50000 \
		"$sluice" bench ingest --compare --short >"$1" 2>"$2"
}

# check_gone ERR: nothing the run logged making is left (namespace, sluiceds, DPDK dirs, dir).
check_gone() {
	ns=$(sed -n 's/.* namespace \([^,]*\), devices .*/\1/p' "$1")
	dir=$(sed -n 's/.*, dir \(.*\)$/\1/p' "$1")
	[ -n "$ns" ] && [ -n "$dir" ] || fail "no 'namespace ..., dir ...' line: $(cat "$1")"
	ip netns list | grep -qw "$ns" && fail "namespace $ns left behind"
	[ -e "$dir" ] && fail "temp dir $dir left behind"
	for pid in $(sed -n 's/.* sluiced [a-z_]* pid \([0-9]*\)$/\1/p' "$1"); do
		kill -0 "$pid" 2>/dev/null && fail "sluiced $pid still running"
		[ -e "/var/run/dpdk/sluice-$pid" ] && fail "DPDK runtime dir of $pid left behind"
	done
	ls /var/run/dpdk 2>/dev/null | grep -q "^$ns-" && fail "a DPDK runtime dir $ns-* left behind"
	return 0
}

# Not root: refused with a reason, nothing made.
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$sluice" bench ingest --compare --short \
	>"$tmp/user.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "not root: exit $rc, want 2: $(cat "$tmp/user.out")"
grep -q "run as root" "$tmp/user.out" || fail "not root: no reason: $(cat "$tmp/user.out")"

compare "$tmp/out" "$tmp/err" || fail "compare --short: $(cat "$tmp/out" "$tmp/err")"
cat "$tmp/out"
line=$(grep '^ingest-compare: ' "$tmp/out") || fail "no ingest-compare line: $(cat "$tmp/out")"
[ "$(grep -c '^ingest-compare: ' "$tmp/out")" = 1 ] || fail "more than one ingest-compare line"
num='[0-9][0-9.]*'
shape="^ingest-compare: dpdk_per_cpu_s=$num http_per_cpu_s=$num kernel_per_cpu_s=$num"
shape="$shape ratio_http=$num ratio_kernel=$num memif_vs_testpmd=$num p99_half_ratio=$num"
shape="$shape p99_overload_ratio=$num lost=0 overload_sent_x=$num p99_overload_sent_ratio=$num\$"
echo "$line" | grep -Eq "$shape" || fail "malformed line, or records lost: $line"
# Every path, and testpmd, took records (not judged: how many).
for path in dpdk_memif dpdk_af_xdp http http_kernel kernel_udp memif_1rec; do
	acked=$(awk -v p="$path" '$1 == p { print $3 }' "$tmp/out")
	[ -n "$acked" ] && [ "${acked%.*}" -gt 0 ] || fail "path $path acknowledged no records"
done
awk '/^testpmd rxonly memif/ { exit !($4 > 0) }' "$tmp/out" || fail "testpmd received nothing"
# Each sluiced's stream held exactly what its runs acknowledged, nothing unanswered.
[ "$(grep -c ' 0 unanswered, 0 unexpected$' "$tmp/out")" = 3 ] || fail "read-back: $(cat "$tmp/out")"
# Past READBACK_API_MAX (lowered: the memif sluiced holds ~68,000) the log counts them.
grep -q '^sluiced memif: .* read back (log verify) ' "$tmp/out" || fail "memif not read by the log"
[ "$(grep -c '^sluiced .* read back (api) ' "$tmp/out")" = 2 ] || fail "read-back not by the API"
sed -En 's/^sluiced .* read back .* ([0-9]+) stored, ([0-9]+) acknowledged.*/\1 \2/p' "$tmp/out" |
	awk '$1 != $2 { bad = 1 } END { exit bad || NR != 3 }' ||
	fail "read-back: stored != acknowledged: $(grep '^sluiced ' "$tmp/out")"
# The unanswered frames' split, by who counted them: none unanswered at this rate.
grep -Eq '^unanswered frames: 0, counted by sluiced [0-9]+, counted by a device [0-9]+, unaccounted 0$' \
	"$tmp/out" || fail "no unanswered split, or frames unanswered: $(grep '^unanswered' "$tmp/out")"
check_gone "$tmp/err"

# Interrupted once a sluiced is up: everything it made is still removed.
TMPDIR=$tmp SLUICED=$sluiced SLUICE_DP_GEN=$gen "$sluice" bench ingest --compare --short \
	>"$tmp/out2" 2>"$tmp/err2" &
bench=$!
wait_for_line "$tmp/err2" "ready, idle at" 90 || fail "second run: $(cat "$tmp/err2")"
kill -TERM "$bench"
wait_for_exit "$bench" 60 || fail "compare did not stop on SIGTERM"
wait "$bench" && fail "an interrupted compare exited 0"
bench=""
check_gone "$tmp/err2"
grep -q '^ingest-compare: ' "$tmp/out2" && fail "an interrupted run printed a result"
echo PASS
