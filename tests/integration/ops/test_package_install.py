#!/usr/bin/python3
"""The Debian package really installed and purged with dpkg, its maintainer
scripts run, without touching this machine: root only (skipped otherwise).

Where: a private mount namespace (unshare -m) holding an overlay whose lower
layer is / and whose upper layer is a tmpfs, entered with chroot. dpkg there
sees the host's package database (so Depends are checked against what is really
installed), runs postinst/prerm/postrm for real (adduser, deluser), and every
write lands in the tmpfs, which vanishes with the namespace. Chosen over
`dpkg --root` (which runs maintainer scripts chrooted into an empty root, or
with --force-script-chrootless against the real /etc) and over installing on
this shared machine (a purge keeps /var/lib/sluice by design, and concurrent
runs would contend for the host's dpkg lock); debootstrap would fetch a whole
system on every run.

Checked: dpkg -i succeeds; dpkg -s says installed; the unit file, binaries,
library, headers and the conffile are in place (dpkg lists the conffile as one,
and sluiced --check-config accepts it); `sluiced --help` and `sluice --help`
run from /usr; the sluice system user and /var/lib/sluice (owned by it) exist;
the installed sluiced, run as that user on the installed conffile (ports and
nothing else overridden), stores a record that boto3 reads back. Then dpkg
--purge: every file dpkg listed is gone, /etc/sluice and the user are gone, and
/var/lib/sluice stays with the record's log (an appliance's data is not the
package manager's to delete).

usage: test_package_install.py SOURCE_ROOT BUILD_DIR
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import check, free_port, put_and_read  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]

# Runs inside `unshare -m`; $1 the .deb, $2 the API port, $3 the admin port, $4 an empty
# directory of the test's own for the tmpfs. It speaks
# in lines: "STEP name" then output; "SERVING" once sluiced is ready, then it waits for
# one line on stdin before stopping it and purging.
INSIDE = r'''
set -eu
deb=$1; port=$2; admin=$3; top=$4
mount -t tmpfs ops-pkg "$top"
mkdir "$top/upper" "$top/work" "$top/root"
mount -t overlay ops-pkg -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
r=$top/root
mount --rbind /proc "$r/proc"
mount --rbind /dev "$r/dev"
mount --rbind /sys "$r/sys"
mount -t tmpfs ops-pkg-run "$r/run"
mount -t tmpfs ops-pkg-tmp "$r/tmp"
cp "$deb" "$r/tmp/sluice.deb"
inroot() { chroot "$r" "$@"; }

echo "STEP preinstalled"
if inroot dpkg -s sluice >/dev/null 2>&1; then echo "already installed"; exit 1; fi
if inroot getent passwd sluice >/dev/null; then echo "user sluice exists"; exit 1; fi

echo "STEP install"
inroot dpkg -i /tmp/sluice.deb
echo "STEP status"
inroot dpkg-query -W -f='${Status} ${Version}\n' sluice
echo "STEP conffiles"
inroot dpkg-query -W -f='${Conffiles}\n' sluice
echo "STEP files"
inroot dpkg-query -L sluice
echo "STEP help"
inroot /usr/sbin/sluiced --help | head -n 1
inroot /usr/bin/sluice --help 2>&1 | head -n 1
echo "STEP check-config"
inroot /usr/sbin/sluiced --check-config /etc/sluice/sluiced.ini
echo "STEP user"
inroot getent passwd sluice
inroot stat -c '%U:%G %a' /var/lib/sluice
echo "STEP unit"
inroot cat /lib/systemd/system/sluiced.service

echo "STEP serve"
# chroot and setpriv exec: $! is sluiced itself, which the TERM below reaches.
chroot "$r" setpriv --reuid=sluice --regid=sluice --init-groups /usr/sbin/sluiced --config /etc/sluice/sluiced.ini \
	--api-listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
	>"$top/sluiced.out" 2>"$top/sluiced.err" &
pid=$!
i=0
until grep -q 'sluiced: ready' "$top/sluiced.out" 2>/dev/null; do
	if ! kill -0 "$pid" 2>/dev/null || [ "$i" -ge 600 ]; then
		echo "sluiced did not start:"; cat "$top/sluiced.out" "$top/sluiced.err"; exit 1
	fi
	i=$((i + 1)); sleep 0.1
done
echo "SERVING"
read -r _
kill -TERM "$pid"
wait "$pid" || { echo "sluiced exit code $?"; cat "$top/sluiced.err"; exit 1; }

echo "STEP purge"
inroot dpkg -L sluice >"$top/files"
inroot dpkg --purge sluice
echo "STEP after"
inroot dpkg-query -W -f='${Status}\n' sluice 2>&1 || true
while read -r f; do
	[ "$f" = /. ] && continue
	if [ -e "$r$f" ] && [ ! -d "$r$f" ]; then echo "left: $f"; fi
done <"$top/files"
for d in /etc/sluice /usr/include/sluice /usr/share/doc/sluice; do
	if [ -e "$r$d" ]; then echo "left: $d"; fi
done
if inroot getent passwd sluice >/dev/null; then echo "left: user sluice"; fi
if inroot getent group sluice >/dev/null; then echo "left: group sluice"; fi
echo "kept: $(ls "$r/var/lib/sluice" | tr '\n' ' ')"
echo "STEP done"
'''


def sections(text):
    """{step: [lines]} of the inside script's output."""
    out, step = {}, None
    for line in text.splitlines():
        m = re.match(r"STEP (\S+)$", line)
        if m:
            step = m.group(1)
            out[step] = []
        elif step is not None:
            out[step].append(line)
    return out


def install_and_purge(deb, tmp):
    script = os.path.join(tmp, "inside.sh")
    with open(script, "w") as f:
        f.write(INSIDE)
    port, admin = free_port(), free_port()
    top = os.path.join(tmp, "ns")
    os.mkdir(top)
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", script, deb,
                             str(port), str(admin), top], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    before = []
    try:
        for line in proc.stdout:
            before.append(line)
            if line.strip() == "SERVING":
                break
        check(before and before[-1].strip() == "SERVING",
              "the installed sluiced did not serve:\n" + "".join(before))
        put_and_read(port, "ops-pkg-install", b"installed")
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        rest = proc.stdout.read()
        rc = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(before) + rest
    check(rc == 0, "inside the namespace: exit %d:\n%s" % (rc, text))
    return sections(text), text


def main():
    with tempfile.TemporaryDirectory(prefix="ops-pkg-install-") as tmp:
        subprocess.run([os.path.join(SRC, "scripts/package"), BUILD, tmp], check=True,
                       capture_output=True)
        debs = [f for f in os.listdir(tmp) if f.endswith("_amd64.deb")]
        check(len(debs) == 1, "scripts/package made %r" % debs)
        s, text = install_and_purge(os.path.join(tmp, debs[0]), tmp)
    check("done" in s, "the script stopped early:\n" + text)
    check(s["status"][0].startswith("install ok installed"), "dpkg -s: %r" % s["status"])
    check(any(l.strip().startswith("/etc/sluice/sluiced.ini ") for l in s["conffiles"]),
          "the conffile is not dpkg's conffile: %r" % s["conffiles"])
    files = set(s["files"])
    for path in ("/usr/sbin/sluiced", "/usr/bin/sluice", "/lib/systemd/system/sluiced.service",
                 "/etc/sluice/sluiced.ini", "/usr/lib/x86_64-linux-gnu/libsluice.a",
                 "/usr/include/sluice/sluice_producer.h", "/usr/bin/sluice-dp-gen",
                 "/usr/bin/sluice-dp-bench", "/usr/bin/sluice-bench-compare"):
        check(path in files, "dpkg -L lacks %s" % path)
    check(s["help"][0].startswith("usage: sluiced") and "sluice" in s["help"][1],
          "--help: %r" % s["help"])
    check(s["check-config"] == ["/etc/sluice/sluiced.ini: ok"], "check-config %r" % s["check-config"])
    check(s["user"][0].startswith("sluice:") and s["user"][1].startswith("sluice:sluice 750"),
          "user and data dir: %r" % s["user"])
    unit = "\n".join(s["unit"])
    check("Type=notify" in unit and "ExecStart=/usr/sbin/sluiced" in unit and
          "User=sluice" in unit, "unit file: %s" % unit)
    left = [l for l in s["after"] if l.startswith("left:")]
    check(left == [], "left after purge: %r" % left)
    check(any("not-installed" in l or "no packages found" in l.lower() for l in s["after"]),
          "dpkg still knows sluice: %r" % s["after"])
    kept = [l for l in s["after"] if l.startswith("kept:")]
    check(kept and "log" in kept[0] and "metadata" in kept[0],
          "/var/lib/sluice should keep the data: %r" % kept)
    print("package installed, served, purged:", debs[0])


if os.geteuid() != 0:
    print("package install skipped: not root (unshare, mount, chroot)")
    sys.exit(77)
main()
