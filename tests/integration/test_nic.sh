#!/bin/sh
# scripts/nic without touching a real NIC: a network namespace this test creates
# holds a veth pair, one end carrying the default route, and a made-up sysfs tree
# (SLUICE_NIC_SYSFS) makes both ends PCI functions (one behind a virtio child
# device, as virtio_net is). bind refuses the default-route interface by name and
# by PCI address, refuses a non-PCI interface, and for the other end prints,
# as a dry run, exactly the commands --yes would run; unbind and status likewise.
set -u
src=$1
. "$src/tests/integration/lib.sh"
nic=$src/scripts/nic
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespace)"; exit 77; }

tmp=$(mktemp -d)
ns=devices-nic-$$
up=devices$$g     # carries the default route: 0000:00:09.0 (behind virtio7)
other=devices$$h  # 0000:00:0a.0
cleanup() {
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' HUP INT TERM

ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link add "$up" type veth peer name "$other" || fail "veth"
ip -n "$ns" addr add 198.18.0.2/15 dev "$up"
ip -n "$ns" link set "$up" up
ip -n "$ns" link set "$other" up
ip -n "$ns" route add default via 198.18.0.1 dev "$up" || fail "default route"

sys=$tmp/sys
mkdir -p "$sys/devices/pci0000:00/0000:00:09.0/virtio7" "$sys/devices/pci0000:00/0000:00:0a.0" \
	"$sys/class/net/$up" "$sys/class/net/$other" "$sys/class/net/lo" "$sys/kernel/iommu_groups/3"
ln -s "$sys/devices/pci0000:00/0000:00:09.0/virtio7" "$sys/class/net/$up/device"
ln -s "$sys/devices/pci0000:00/0000:00:0a.0" "$sys/class/net/$other/device"

nic() { ip netns exec "$ns" env SLUICE_NIC_SYSFS="$sys" SLUICE_NIC_DEVBIND=true "$nic" "$@"; }

# expect STATUS OUTPUT_FILE ARGS...: runs scripts/nic, checks the exit status.
expect() {
	want=$1
	out=$2
	shift 2
	nic "$@" >"$out" 2>&1
	got=$?
	[ "$got" = "$want" ] || fail "nic $*: exit $got, wanted $want: $(cat "$out")"
}

expect 1 "$tmp/by_name" bind "$up"
grep -q "refusing: $up (0000:00:09.0) carries the default route" "$tmp/by_name" ||
	fail "by name: $(cat "$tmp/by_name")"
grep -q "would run" "$tmp/by_name" && fail "refused, yet printed commands"
expect 1 "$tmp/by_pci" bind 0000:00:09.0 --yes
grep -q "carries the default route" "$tmp/by_pci" || fail "by PCI: $(cat "$tmp/by_pci")"
expect 1 "$tmp/virtual" bind lo
grep -q "lo is not a PCI device" "$tmp/virtual" || fail "lo: $(cat "$tmp/virtual")"

expect 0 "$tmp/dry" bind "$other"
cat >"$tmp/dry.want" <<EOF2
nic: dry run: nothing changes without --yes
nic: would run: modprobe vfio-pci
nic: would run: ip link set $other down
nic: would run: true --bind=vfio-pci 0000:00:0a.0
nic: then: [dataplane] eal_args = -a 0000:00:0a.0 (and vdev = ""); see docs/DEPLOY.md
EOF2
diff "$tmp/dry.want" "$tmp/dry" || fail "bind dry run output"
ip -n "$ns" link show "$other" | grep -q "state UP\|LOWER_UP" || fail "the dry run changed the link"
expect 0 "$tmp/dry_pci" bind 0000:00:0a.0
grep -q "would run: ip link set $other down" "$tmp/dry_pci" || fail "PCI -> interface: $(cat "$tmp/dry_pci")"

expect 0 "$tmp/unbind" unbind 0000:00:0a.0 --driver virtio-pci
grep -qx "nic: would run: true --bind=virtio-pci 0000:00:0a.0" "$tmp/unbind" ||
	fail "unbind: $(cat "$tmp/unbind")"
expect 2 "$tmp/unbind_name" unbind "$other"
expect 2 "$tmp/usage" frobnicate
expect 0 "$tmp/status" status
grep -q "IOMMU: on (1 groups)" "$tmp/status" || fail "status: $(cat "$tmp/status")"
echo PASS
