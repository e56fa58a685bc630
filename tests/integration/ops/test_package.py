#!/usr/bin/python3
"""scripts/package builds sluice_<version>_amd64.deb; dpkg-deb -I and -c show what an
operator gets (control fields, the conffile, binaries, unit, library, headers); lintian
reports no error;
`systemd-analyze verify` finds nothing to say about the unit; the extracted
sluiced accepts its own conffile, speaks the notify protocol (READY=1, STATUS=,
WATCHDOG=1, STOPPING=1) to a socket standing in for systemd, and stores and
reads a record; a C program links against the packaged libsluice.a.

usage: test_package.py SOURCE_ROOT BUILD_DIR
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import check, free_port, put_and_read  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]
MULTIARCH = "x86_64-linux-gnu"


def run(*args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    check(r.returncode == 0, "%s: exit %d: %s%s" % (args[0], r.returncode, r.stdout, r.stderr))
    return r.stdout


def inspect(deb):
    info = run("dpkg-deb", "-I", deb)
    for field in ("Package: sluice", "Architecture: amd64", "Depends:", "libsqlite3-0",
                  "conffiles"):
        check(field in info, "dpkg-deb -I lacks %r" % field)
    check(run("dpkg-deb", "-f", deb, "Package").strip() == "sluice", "package name")
    listing = run("dpkg-deb", "-c", deb)
    for path in ("./usr/sbin/sluiced", "./usr/bin/sluice", "./lib/systemd/system/sluiced.service",
                 "./etc/sluice/sluiced.ini", "./usr/lib/%s/libsluice.a" % MULTIARCH,
                 "./usr/lib/%s/pkgconfig/sluice.pc" % MULTIARCH,
                 "./usr/include/sluice/sluice_producer.h",
                 "./usr/include/sluice/protocol/frame.h",
                 "./usr/share/doc/sluice/OPERATIONS.md"):
        check(re.search(r"\s%s$" % re.escape(path), listing, re.M) is not None,
              "dpkg-deb -c lacks %s" % path)
    with tempfile.TemporaryDirectory() as ctl:
        run("dpkg-deb", "-e", deb, ctl)
        with open(os.path.join(ctl, "conffiles")) as f:
            check(f.read().split() == ["/etc/sluice/sluiced.ini"], "conffiles")


def verify_unit(root):
    unit = open(os.path.join(root, "lib/systemd/system/sluiced.service")).read()
    check("Type=notify" in unit and "WatchdogSec=" in unit, "the unit is not Type=notify")
    # ExecStart must exist for verify: point it at the extracted binary.
    local = os.path.join(root, "sluiced-local.service")
    with open(local, "w") as f:
        f.write(unit.replace("/usr/sbin/sluiced", os.path.join(root, "usr/sbin/sluiced")))
    r = subprocess.run(["systemd-analyze", "verify", local], capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "",
          "systemd-analyze verify: %d %s%s" % (r.returncode, r.stdout, r.stderr))


def notify_socket(tmp):
    path = os.path.join(tmp, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(1)
    return s, path


def receive_until(sock, key):
    got = []
    deadline = time.time() + 120  # Only bounds a hang: a loaded CI machine starts slowly.
    while time.time() < deadline:
        try:
            text = sock.recv(4096).decode()
        except TimeoutError:
            continue
        got.append(text)
        if key in text:
            return got
    raise SystemExit("FAIL: no %s from sluiced; got %r" % (key, got))


def run_service(root, tmp):
    """The extracted sluiced as systemd would run it, with a local data dir and ports."""
    sock, path = notify_socket(tmp)
    port, admin = free_port(), free_port()
    conf = os.path.join(tmp, "sluiced.ini")
    text = open(os.path.join(root, "etc/sluice/sluiced.ini")).read()
    check(re.search(r"^\[dataplane\][^\[]*^enabled = false$", text, re.M | re.S) is not None,
          "the conffile does not turn the dataplane off")
    run(os.path.join(root, "usr/sbin/sluiced"), "--check-config",
        os.path.join(root, "etc/sluice/sluiced.ini"))
    text = text.replace(";data_dir = /var/lib/sluice", "data_dir = " + os.path.join(tmp, "data"))
    text = text.replace(";api_listen = 127.0.0.1:4567", "api_listen = 127.0.0.1:%d" % port)
    text = text.replace(";listen = 127.0.0.1:4568", "listen = 127.0.0.1:%d" % admin)
    with open(conf, "w") as f:
        f.write(text)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    proc = subprocess.Popen([os.path.join(root, "usr/sbin/sluiced"), "--config", conf],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        got = receive_until(sock, "READY=1")
        check(any("STATUS=recovering the log" in g for g in got), "no STATUS while starting")
        receive_until(sock, "WATCHDOG=1")
        put_and_read(port, "ops-pkg", b"from the package")
        proc.send_signal(signal.SIGTERM)
        receive_until(sock, "STOPPING=1")
        check(proc.wait(timeout=30) == 0, "sluiced exit code")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def link_library(root, tmp):
    prog = os.path.join(tmp, "uses_libsluice.c")
    with open(prog, "w") as f:
        f.write('#include "sluice_producer.h"\n'
                "int main(void) { return sluice_producer_open != 0 ? 0 : 1; }\n")
    exe = os.path.join(tmp, "uses_libsluice")
    run("cc", "-std=c11", "-o", exe, prog, "-I", os.path.join(root, "usr/include/sluice"),
        os.path.join(root, "usr/lib", MULTIARCH, "libsluice.a"), "-lcrypto", "-lpthread")
    run(exe)


def main():
    with tempfile.TemporaryDirectory(prefix="ops-package-") as tmp:
        out = run(os.path.join(SRC, "scripts/package"), BUILD, tmp)
        debs = [f for f in os.listdir(tmp) if re.match(r"sluice_[0-9.]+_amd64\.deb$", f)]
        check(len(debs) == 1, "scripts/package made %r (%s)" % (debs, out))
        deb = os.path.join(tmp, debs[0])
        inspect(deb)
        # lintian (scripts/setup installs it): no errors; warnings are listed in OPERATIONS.md.
        r = subprocess.run(["lintian", "--no-tag-display-limit", deb], capture_output=True,
                           text=True)
        errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
        check(not errors, "lintian errors: %s" % errors)
        root = os.path.join(tmp, "root")
        run("dpkg-deb", "-x", deb, root)
        verify_unit(root)
        link_library(root, tmp)
        run_service(root, tmp)
    print("package ok:", debs[0])


if shutil.which("dpkg-deb") is None:
    print("dpkg-deb missing")
    sys.exit(77)
main()
