# tests/integration/lib.sh - helpers for shell integration tests (sourced).
# Every test: a temp dir, a free loopback port, and only its own PIDs stopped.

# A free TCP port on 127.0.0.1 (bind to port 0, read it back).
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for_line FILE PATTERN SECONDS: 0 once PATTERN appears in FILE.
wait_for_line() {
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1; i=$((i + 1))
	done
	return 1
}

# wait_for_exit PID SECONDS: 0 once PID has exited.
wait_for_exit() {
	i=0
	while [ $i -lt $(($2 * 10)) ]; do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1; i=$((i + 1))
	done
	return 1
}

fail() { echo "FAIL: $*"; exit 1; }
