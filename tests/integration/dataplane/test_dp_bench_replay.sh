#!/bin/sh
# sluice-dp-bench's two replays of one pcap (shard-grouped 12 x 100 B frames): through
# net_pcap, and from pre-built mbufs on a net_ring port (--replay ring, no per-packet
# copy). Each must stage records and drop none (the pre-built mbufs are reused for
# good: a worker that wrote into a frame would make later passes malformed, counted
# as drops); a bad --replay is a usage error. Root and free hugepages, else skipped.
# Never judges a rate.
set -u
bench=$1
src=$2
. "$src/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (DPDK)"; exit 77; }
free=$(awk '/HugePages_Free/ { print $2 }' /proc/meminfo)
[ "${free:-0}" -ge 96 ] || { echo "SKIP: needs 96 free 2 MiB hugepages ($free)"; exit 77; }

tmp=$(mktemp -d)
prefix=dpbench-replay-$$
cleanup() { rm -rf "/var/run/dpdk/$prefix" "$tmp"; }
trap cleanup EXIT
trap 'exit 143' HUP INT TERM

"$bench" --write-pcap "$tmp/g.pcap" --scenario grouped12x100 --frames 2000 ||
	fail "--write-pcap"
for replay in pcap ring; do
	"$bench" --pcap "$tmp/g.pcap" --log-dir "$tmp/log-$replay" --seconds 1 --shards 16 \
		--mbufs 8191 --file-prefix "$prefix" --replay "$replay" >"$tmp/out" 2>&1 ||
		fail "--replay $replay: $(cat "$tmp/out")"
	/usr/bin/python3 -c '
import re, sys
line = [l for l in open(sys.argv[1]) if l.startswith("dp-bench:")][-1]
f = dict(re.findall(r"(\w+)=([0-9.]+)", line))
assert float(f["records_per_s"]) > 0 and f["drops"] == "0", line
' "$tmp/out" || fail "--replay $replay: $(cat "$tmp/out")"
done
rc=0
"$bench" --pcap "$tmp/g.pcap" --log-dir "$tmp/log" --replay dma >"$tmp/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--replay dma: exit $rc"
echo PASS
