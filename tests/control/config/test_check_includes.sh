#!/bin/sh
# The include-direction check must pass on the tree and fail on each kind of violation.
set -eu
src=$1
check="$src/scripts/check-includes.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# dash runs no EXIT trap on a signal: meson's timeout TERM must still clean up.
trap 'exit 143' HUP INT TERM

CHECK_INCLUDES_COMPILE=0 "$check" "$src" >/dev/null || { echo "tree fails its own check"; exit 1; }

mk() { # make a minimal tree with one offending file: path, content
	rm -rf "$tmp/t"; mkdir -p "$tmp/t/common" "$tmp/t/nvme-log" "$tmp/t/dataplane" "$tmp/t/control" \
		"$tmp/t/replica"
	printf '%s\n' "$2" > "$tmp/t/$1"
}
expect_fail() {
	if CHECK_INCLUDES_COMPILE=0 "$check" "$tmp/t" >/dev/null; then
		echo "not caught: $1"; exit 1
	fi
}
mk nvme-log/x.c '#include "control/api.h"';        expect_fail "nvme-log -> control (upward)"
mk nvme-log/x.c '#include "dataplane/dataplane.h"'; expect_fail "nvme-log -> dataplane (upward)"
mk control/x.c '#include "nvme-log/log_format.h"';  expect_fail "private header of another folder"
mk control/x.c '#include <rte_mbuf.h>';            expect_fail "DPDK outside dataplane"
mk control/x.c '#include <liburing.h>';            expect_fail "liburing outside log_io_uring.c"
mk common/x.c '#include "x.h"';                    expect_fail "include without its folder"
mk dataplane/dataplane.h 'struct rte_mbuf *dp_x(void);'; expect_fail "DPDK type in dataplane.h"
mk replica/x.c '#include "control/api.h"';         expect_fail "replica -> control (upward)"
mk nvme-log/x.c '#include "replica/replica.h"';    expect_fail "nvme-log -> replica (upward)"
mk replica/x.c '#include "nvme-log/log_internal.h"'; expect_fail "replica -> a private log header"
mk control/x.c '#include "nvme-log/log.h"'
CHECK_INCLUDES_COMPILE=0 "$check" "$tmp/t" >/dev/null || { echo "false alarm on a legal include"; exit 1; }
echo "check-includes catches every violation kind"
