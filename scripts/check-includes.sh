#!/bin/sh
# scripts/check-includes.sh [ROOT] - enforces the module dependency direction
# (docs/ARCHITECTURE.md) and where vendor headers may appear. Exits 1 on any
# violation, listing each as FILE:LINE: reason.
#
#   common <- nvme-log <- protocol <- dataplane <- control ;  tools -> public headers
#   common <- cluster <- control ;  tools -> cluster (sluice cluster)
#   common, nvme-log <- firehose <- control
#   common, nvme-log <- replica <- control
#
# A folder may include its own headers, and only the ONE public header of each
# folder it depends on. tests/ may include anything.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2

# folder: folders it may depend on
allowed() {
	case "$1" in
	common) echo "" ;;
	cluster) echo "common" ;;
	nvme-log) echo "common" ;;
	protocol) echo "common" ;;
	dataplane) echo "common nvme-log protocol" ;;
	firehose) echo "common nvme-log" ;;
	replica) echo "common nvme-log" ;;
	control) echo "common nvme-log protocol dataplane cluster firehose replica" ;;
	tools) echo "common nvme-log protocol firehose cluster" ;;
	esac
}

# The public header of a folder, as other folders must spell it. common/ is a
# set of small independent headers, all public.
public_ok() {
	case "$1" in
	common/*.h) return 0 ;;
	nvme-log/log.h|protocol/frame.h|dataplane/dataplane.h|cluster/cluster.h) return 0 ;;
	firehose/firehose.h|replica/replica.h) return 0 ;;
	esac
	return 1
}

bad=0
fail() { echo "$1: $2"; bad=1; }

for dir in common cluster nvme-log protocol firehose replica dataplane control tools; do
	[ -d "$dir" ] || continue
	for f in $(find "$dir" -name '*.[ch]' | sort); do
		grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r hit; do
			line=${hit%%:*}
			inc=$(echo "$hit" | sed 's/.*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/')
			top=${inc%%/*}
			[ "$top" = "$inc" ] && { echo "$f:$line: include \"$inc\" must name its folder"; continue; }
			[ "$top" = "$dir" ] && continue
			# tools/producer is the library inside tools; tools/ may use it.
			case " $(allowed "$dir") " in
			*" $top "*) public_ok "$inc" ||
				echo "$f:$line: \"$inc\" is private to $top/ (use its public header)" ;;
			*) echo "$f:$line: $dir/ may not depend on $top/ (\"$inc\")" ;;
			esac
		done
	done
done > /tmp/check-includes.$$

# Vendor headers stay in the fewest files.
for f in $(find common cluster nvme-log protocol firehose replica control tools -name '*.[ch]' 2>/dev/null | sort); do
	grep -n '#[[:space:]]*include[[:space:]]*<rte_' "$f" | sed "s|^\([0-9]*\):.*|$f:\1: DPDK header outside dataplane/|"
done >> /tmp/check-includes.$$
for f in $(find common cluster nvme-log protocol firehose replica dataplane control tools -name '*.[ch]' 2>/dev/null | sort); do
	# io_uring: the log's backend, and the dataplane's kernel-socket backend.
	case "$f" in
	nvme-log/log_io_uring.c|dataplane/dp_kernel.c) ;;
	*) grep -n '#[[:space:]]*include[[:space:]]*<liburing' "$f" | sed "s|^\([0-9]*\):.*|$f:\1: liburing.h outside nvme-log/log_io_uring.c and dataplane/dp_kernel.c|" ;;
	esac
	grep -n '#[[:space:]]*include[[:space:]]*<criterion' "$f" | sed "s|^\([0-9]*\):.*|$f:\1: Criterion outside tests/|"
done >> /tmp/check-includes.$$
# A DPDK type or header in the public header (comments may name rte_* freely).
rte_use='struct rte_|union rte_|#[[:space:]]*include[[:space:]]*<rte_|rte_[a-z0-9_]*_t[^a-z0-9_]'
if [ -f dataplane/dataplane.h ] && grep -En "$rte_use" dataplane/dataplane.h >/dev/null; then
	grep -En "$rte_use" dataplane/dataplane.h | sed 's|^\([0-9]*\):.*|dataplane/dataplane.h:\1: DPDK type in the public header|' >> /tmp/check-includes.$$
fi

if [ -s /tmp/check-includes.$$ ]; then
	cat /tmp/check-includes.$$
	rm -f /tmp/check-includes.$$
	echo "check-includes: FAILED"
	exit 1
fi
rm -f /tmp/check-includes.$$

# Every public header compiles alone (it includes what it uses).
if [ "${CHECK_INCLUDES_COMPILE:-1}" = 1 ] && command -v cc >/dev/null; then
	for h in common/*.h cluster/etcd.h nvme-log/log.h protocol/frame.h dataplane/dataplane.h \
		 firehose/firehose.h replica/replica.h \
		 tools/producer/sluice_producer.h; do
		[ -f "$h" ] || continue
		if ! echo "#include \"$h\"" | cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
			-fsyntax-only -I. -x c - 2>/tmp/check-includes.err.$$; then
			echo "$h: does not compile on its own:"; head -5 /tmp/check-includes.err.$$
			bad=1
		fi
	done
	rm -f /tmp/check-includes.err.$$
fi
[ $bad = 0 ] || { echo "check-includes: FAILED"; exit 1; }
echo "check-includes: ok"
