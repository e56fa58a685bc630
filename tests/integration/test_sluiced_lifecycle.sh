#!/bin/sh
# sluiced: --help, --check-config (good and bad files, line numbers, exit codes),
# the ready line, a clean stop on SIGTERM and on SIGINT, data kept across restarts,
# and the refusal to serve a non-loopback address without SigV4.
set -u
sluiced=$1
src=$2
. "$src/tests/integration/lib.sh"
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
# dash runs no EXIT trap on a signal: meson's timeout TERM must still clean up.
trap 'exit 143' HUP INT TERM

"$sluiced" --help | grep -q -- '--check-config' || fail "--help does not list --check-config"
"$sluiced" --print-config-doc | cmp -s - "$src/docs/CONFIG.md" ||
	fail "docs/CONFIG.md is stale: regenerate with sluiced --print-config-doc > docs/CONFIG.md"
"$sluiced" --bogus >/dev/null 2>&1; [ $? = 2 ] || fail "unknown option must exit 2"

printf '[server]\ndata_dir = %s/data\n[log]\ncommit_window_us = 100\n' "$tmp" > "$tmp/good.ini"
"$sluiced" --check-config "$tmp/good.ini" >/dev/null || fail "good config refused"

printf '[server]\nconnections_max = zero\n[log]\nbogus = 1\n' > "$tmp/bad.ini"
"$sluiced" --check-config "$tmp/bad.ini" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] || fail "bad config: exit $rc, want 2"
grep -q "bad.ini:2: .*connections_max" "$tmp/err" || fail "no line 2 error: $(cat "$tmp/err")"
grep -q "bad.ini:4: .*bogus" "$tmp/err" || fail "no line 4 error: $(cat "$tmp/err")"
"$sluiced" --check-config "$tmp/missing.ini" 2>/dev/null && fail "missing config accepted"

"$sluiced" --no-dataplane --data-dir "$tmp/data" --api-listen 0.0.0.0:1 2>"$tmp/err" >/dev/null
[ $? = 2 ] || fail "non-loopback without sigv4 must be refused"
grep -q sigv4 "$tmp/err" || fail "refusal does not say why: $(cat "$tmp/err")"

start() {
	port=$(free_port)
	# The background job truncates out in its own process, maybe after wait_for_line has
	# read the last start's ready line: a signal sent then reached a shell child whose
	# SIGINT is ignored (asynchronous commands of a non-interactive sh), and was lost.
	rm -f "$tmp/out"
	"$sluiced" --no-dataplane --data-dir "$tmp/data" --api-listen "127.0.0.1:$port" \
		>"$tmp/out" 2>"$tmp/log" &
	pid=$!
	wait_for_line "$tmp/out" "sluiced: ready" 20 || fail "no ready line: $(cat "$tmp/log")"
}
# What a sluiced that does not stop is doing: its log's tail and each thread's state.
stuck() { # pid
	tail -5 "$tmp/log"
	for t in /proc/"$1"/task/*; do
		echo "$(cat "$t/comm"): $(cut -d' ' -f3 "$t/stat") $(cat "$t/wchan" 2>/dev/null)"
	done
}
stop() { # signal
	kill "-$1" "$pid"
	wait_for_exit "$pid" 20 || fail "did not stop on SIG$1: $(stuck "$pid")"
	wait "$pid"; rc=$?
	[ $rc = 0 ] || fail "exit $rc after SIG$1: $(tail -5 "$tmp/log")"
	grep -q "stopped cleanly" "$tmp/log" || fail "no clean-stop line after SIG$1"
	pid=""
}

start; stop TERM
start; stop INT
[ -d "$tmp/data/log" ] || fail "no log directory under data_dir"
echo "sluiced lifecycle ok"
