#!/bin/sh
# disk_full: sluiced's data directory on a small loop-mounted ext4 (96 MiB; a real filesystem, not a
# simulation) is filled until writes are refused; then DeleteStream must free the space
# through the API, and the appliance must take records again. Needs root (mount); skipped
# otherwise. Stops only the sluiced it started; unmounts and removes what it made.
#   test_disk_full.sh SLUICED SOURCE_ROOT
set -u
sluiced=$1
. "$2/tests/integration/lib.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for a loop mount"; exit 77; }
command -v mkfs.ext4 >/dev/null || { echo "SKIP: no mkfs.ext4"; exit 77; }

tmp=$(mktemp -d /tmp/sluice-diskfull-XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait_for_exit "$pid" 20
	mountpoint -q "$tmp/mnt" && umount "$tmp/mnt"
	rm -rf "$tmp"
}
trap cleanup EXIT

truncate -s 96M "$tmp/disk.img" || fail "truncate"
mkfs.ext4 -q -F "$tmp/disk.img" || fail "mkfs.ext4"
mkdir "$tmp/mnt"
mount -o loop "$tmp/disk.img" "$tmp/mnt" || fail "mount -o loop"
port=$(free_port)
"$sluiced" --data-dir "$tmp/mnt/data" --api-listen "127.0.0.1:$port" --no-dataplane \
	--set log.segment_size_mb=8 --set server.stream_status_delay_ms=0 \
	--set log.retention_check_s=1 \
	>"$tmp/sluiced.log" 2>&1 &
pid=$!
wait_for_line "$tmp/sluiced.log" "sluiced: ready" 60 || { cat "$tmp/sluiced.log"; fail "not ready"; }

/usr/bin/python3 - "$port" "$tmp/mnt" <<'PY' || { tail -n 30 "$tmp/sluiced.log"; fail "scenario"; }
import base64, http.client, json, os, sys, time

port, mnt = int(sys.argv[1]), sys.argv[2]
DEADLINE_S = 120  # Bounds a hang only.

def call(action, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/", body=json.dumps(body), headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "Kinesis_20131202." + action})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, (json.loads(data) if data else {})

def ok(action, body):
    status, out = call(action, body)
    if status != 200:
        sys.exit("%s: %d %s" % (action, status, out))
    return out

def free_mib():
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize / 1048576

ok("CreateStream", {"StreamName": "fill", "ShardCount": 1})
blob = base64.b64encode(os.urandom(1 << 20)).decode()
stored = refused = 0
end = time.time() + DEADLINE_S
# Fill: 1 MiB records until the log refuses them several times in a row.
while refused < 5:
    if time.time() > end:
        sys.exit("the disk never filled (%d stored, %.1f MiB free)" % (stored, free_mib()))
    status, out = call("PutRecords", {"StreamName": "fill", "Records": [
        {"Data": blob, "PartitionKey": "k%d" % i} for i in range(4)]})
    if status == 200:
        failed = out["FailedRecordCount"]
        stored += 4 - failed
        refused = refused + 1 if failed == 4 else 0
    else:
        refused += 1
print("log filled: %d MiB stored, %.1f MiB free" % (stored, free_mib()))
# Someone else takes the rest (the log stops short of it): the disk is 100% full now.
with open(os.path.join(mnt, "filler"), "wb") as f:
    try:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass
print("filler written: %.1f MiB free" % free_mib())
# The disk is full: deleting a stream must still work, and free its space.
status, out = call("DeleteStream", {"StreamName": "fill"})
if status != 200:
    sys.exit("DeleteStream on a full disk: %d %s" % (status, out))
while call("DescribeStreamSummary", {"StreamName": "fill"})[0] == 200:
    if time.time() > end:
        sys.exit("the deleted stream never went away")
    time.sleep(0.1)
# Retention reclaims the deleted stream's segments; then a new stream takes records.
while True:
    status, out = call("CreateStream", {"StreamName": "after", "ShardCount": 1})
    if status == 200:
        break
    if time.time() > end:
        sys.exit("CreateStream after the delete: %d %s (%.1f MiB free)" %
                 (status, out, free_mib()))
    time.sleep(0.2)
while True:
    out = ok("PutRecords", {"StreamName": "after", "Records": [
        {"Data": blob, "PartitionKey": "k%d" % i} for i in range(4)]})
    if out["FailedRecordCount"] == 0:
        break
    if time.time() > end:
        sys.exit("records refused after the delete: %s (%.1f MiB free)" % (out, free_mib()))
    time.sleep(0.2)
print("after the delete: 4 MiB stored again, %.1f MiB free" % free_mib())
PY
kill "$pid"
wait_for_exit "$pid" 30 || fail "sluiced did not stop"
wait "$pid"; rc=$?
pid=""
[ "$rc" = 0 ] || { tail -n 20 "$tmp/sluiced.log"; fail "sluiced exit status $rc"; }
echo "disk_full: ok"
