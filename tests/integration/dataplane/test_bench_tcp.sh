#!/bin/sh
# `sluice bench tcp --quick` (root; skipped otherwise): it makes its own
# namespace, net_tap device and sluiced, prints the tcp-bench line with every
# field a number (never judged: this machine is shared), and removes all it
# made. Then a second run is interrupted (SIGTERM) once sluiced is up: it
# must still remove the namespace, stop sluiced and leave no files behind.
set -u
sluiced=$1
sluice=$2
src=$3
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace, tap)"; exit 77; }

tmp=$(mktemp -d)
bench=""
cleanup() {
	[ -n "$bench" ] && kill -TERM "$bench" 2>/dev/null && wait_for_exit "$bench" 30
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' HUP INT TERM

# made_by FILE: "NS PID DIR" from the bench's "namespace ..., sluiced pid ..., dir ..." line.
made_by() {
	sed -n 's/^sluice bench tcp: namespace \([^,]*\), device [^,]*, /\1 /p' "$1" |
		sed -n 's/^\([^ ]*\) sluiced pid \([0-9]*\), dir \(.*\)$/\1 \2 \3/p'
}

# check_gone NS PID DIR: nothing the bench made is left.
check_gone() {
	ip netns list | grep -qw "$1" && fail "namespace $1 left behind"
	kill -0 "$2" 2>/dev/null && fail "sluiced $2 still running"
	[ -e "/var/run/dpdk/sluice-$2" ] && fail "DPDK runtime dir of $2 left behind"
	[ -e "$3" ] && fail "temp dir $3 left behind"
	return 0
}

SLUICED=$sluiced "$sluice" bench tcp --quick --dir "$tmp" >"$tmp/out" 2>"$tmp/err" ||
	fail "bench tcp: $(cat "$tmp/out" "$tmp/err")"
line=$(grep '^tcp-bench: ' "$tmp/out") || fail "no tcp-bench line: $(cat "$tmp/out")"
echo "$line"
num='[0-9][0-9.]*'
shape="^tcp-bench: rec_per_cpu_s_tcp=$num rec_per_cpu_s_udp=$num ratio=$num"
shape="$shape p99_ratio=$num conns=$num bytes_per_conn=$num\$"
echo "$line" | grep -Eq "$shape" || fail "malformed line: $line"
# Sane, not judged: every run stored records, and the connections were held.
for field in rec_per_cpu_s_tcp rec_per_cpu_s_udp ratio p99_ratio conns bytes_per_conn; do
	value=$(echo "$line" | sed "s/.* $field=\([0-9.]*\).*/\1/")
	awk -v v="$value" 'BEGIN { exit !(v > 0) }' || fail "$field=$value is not positive"
done
[ "$(echo "$line" | sed 's/.* conns=\([0-9]*\).*/\1/')" = 500 ] || fail "conns is not 500: $line"
set -- $(made_by "$tmp/err")
[ $# = 3 ] || fail "no 'namespace ..., sluiced pid ...' line: $(cat "$tmp/err")"
check_gone "$1" "$2" "$3"

# Interrupted once sluiced is up: everything it made is still removed.
SLUICED=$sluiced "$sluice" bench tcp --quick --dir "$tmp" >"$tmp/out2" 2>"$tmp/err2" &
bench=$!
wait_for_line "$tmp/err2" "sluiced pid" 60 || fail "second run: $(cat "$tmp/err2")"
set -- $(made_by "$tmp/err2")
kill -TERM "$bench"
wait_for_exit "$bench" 60 || fail "bench tcp did not stop on SIGTERM"
wait "$bench" && fail "an interrupted bench tcp exited 0"
bench=""
check_gone "$1" "$2" "$3"
grep -q '^tcp-bench: ' "$tmp/out2" && fail "an interrupted run printed a result"
echo PASS
