#!/usr/bin/python3
"""One source of configuration truth: every numeric key's documented range is
exactly what `sluiced --check-config` accepts (which runs the log's and the
dataplane's own checks): min and max pass, min - 1 and max + 1 are refused
naming the key. Booleans take true/false and refuse anything else. Rules that
join keys are refused naming the key to change. Then sluiced really starts with
every [log] key at its minimum (the module accepts what the table accepts).

usage: test_config_bounds.py SLUICED
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

SLUICED = sys.argv[1]
failures = []


def fail(text):
    failures.append(text)
    print("FAIL:", text)


def keys():
    """(section, key, kind, min, max) from the generated reference."""
    doc = subprocess.run([SLUICED, "--print-config-doc"], check=True, capture_output=True,
                         text=True).stdout
    section = None
    out = []
    for line in doc.splitlines():
        m = re.match(r"## \[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"\| `(\w+)` \| `([^`]*)` \| ([^|]*)\|", line)
        if not m or section is None:
            continue
        rng = re.match(r"\s*(\d+) \.\. (\d+)\s*$", m.group(3))
        if rng:
            out.append((section, m.group(1), "u32", int(rng.group(1)), int(rng.group(2))))
        elif m.group(2) in ("true", "false"):
            out.append((section, m.group(1), "bool", 0, 1))
    return out


def check(tmp, text):
    path = os.path.join(tmp, "c.ini")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([SLUICED, "--check-config", path], capture_output=True, text=True)
    return r.returncode, r.stderr


# A key whose "true" needs others set first (the file before its section).
NEEDS = {
    ("cluster", "enabled"): "[dataplane]\nenabled = false\n[cluster]\nnode_id = 1\n"
                            "replica_listen = 127.0.0.1:7001\n",
}


def accepted(tmp, section, key, value):
    before = NEEDS.get((section, key), "") if value == "true" else ""
    rc, err = check(tmp, "%s[%s]\n%s = %s\n" % (before, section, key, value))
    if rc != 0:
        fail("[%s] %s = %s refused: %s" % (section, key, value, err.strip()))


def refused(tmp, section, key, value, extra=""):
    rc, err = check(tmp, "[%s]\n%s%s = %s\n" % (section, extra, key, value))
    if rc != 2:
        fail("[%s] %s = %s: exit %d, want 2" % (section, key, value, rc))
    elif ("[%s] %s" % (section, key)) not in err:
        fail("[%s] %s = %s: the refusal does not name the key: %s" %
             (section, key, value, err.strip()))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_at_log_minimums(tmp, table):
    """sluiced opens its log with every [log] key at its minimum."""
    args = [SLUICED, "--no-dataplane", "--data-dir", os.path.join(tmp, "data"),
            "--api-listen", "127.0.0.1:%d" % free_port()]
    for section, key, kind, lo, _ in table:
        if section == "log" and kind == "u32":
            args += ["--set", "log.%s=%d" % (key, lo)]
    out = open(os.path.join(tmp, "out"), "w+")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            out.seek(0)
            text = out.read()
            if "sluiced: ready" in text or proc.poll() is not None:
                break
            time.sleep(0.1)
        if "sluiced: ready" not in text:
            fail("sluiced at the [log] minimums did not start: %s" % text.strip())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def wait_text(path, text, seconds=20):
    for _ in range(seconds * 10):
        with open(path) as f:
            if text in f.read():
                return True
        time.sleep(0.1)
    return False


def sighup(tmp):
    """SIGHUP reads the configuration again and names every changed key (test_admin_reload.py
    covers the live ones beyond diagnostics)."""
    conf = os.path.join(tmp, "hup.ini")
    with open(conf, "w") as f:
        f.write("[server]\nconnections_max = 100\n[admin]\nlisten =\n")
    err = os.path.join(tmp, "hup.err")
    proc = subprocess.Popen([SLUICED, "--no-dataplane", "--config", conf, "--data-dir",
                             os.path.join(tmp, "hup"), "--api-listen",
                             "127.0.0.1:%d" % free_port()],
                            stdout=subprocess.PIPE, stderr=open(err, "w"))
    try:
        check_line = proc.stdout.readline().decode()
        if "sluiced: ready" not in check_line:
            fail("SIGHUP: sluiced did not start: %r" % check_line)
            return
        proc.send_signal(signal.SIGHUP)
        if not wait_text(err, "SIGHUP: configuration unchanged"):
            fail("SIGHUP with no change: no report")
        with open(conf, "w") as f:
            f.write("[server]\nconnections_max = 200\n[admin]\nlisten =\n")
        proc.send_signal(signal.SIGHUP)
        if not wait_text(err, "[server] connections_max changed: needs a restart, not applied"):
            fail("SIGHUP did not name the changed key")
        with open(conf, "w") as f:
            f.write("[server]\nconnections_max = 200\ndiag_format = json\n[admin]\nlisten =\n")
        proc.send_signal(signal.SIGHUP)
        if not wait_text(err, '"level":"info","module":"sluiced","msg":"SIGHUP: [server] '
                         'diag_format changed: applied"'):
            fail("SIGHUP did not switch diagnostics to JSON lines")
        with open(conf, "a") as f:
            f.write("bogus = 1\n")
        proc.send_signal(signal.SIGHUP)
        if not wait_text(err, "hup.ini:6: unknown key [admin] bogus"):
            fail("SIGHUP did not report the bad file with its line")
        if proc.poll() is not None:
            fail("SIGHUP stopped sluiced")
    finally:
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=30) != 0:
            fail("exit code after SIGHUPs")


def main():
    table = keys()
    if len(table) < 20:  # the parser still reads the table
        fail("only %d keys parsed from --print-config-doc" % len(table))
    with tempfile.TemporaryDirectory(prefix="ops-config-") as tmp:
        for section, key, kind, lo, hi in table:
            if kind == "bool":
                accepted(tmp, section, key, "true")
                accepted(tmp, section, key, "false")
                refused(tmp, section, key, "maybe")
                continue
            accepted(tmp, section, key, lo)
            accepted(tmp, section, key, hi)
            if lo > 0:
                refused(tmp, section, key, lo - 1)
            refused(tmp, section, key, hi + 1)
        # The drift issue 13 measured, each refused up front, naming the key.
        refused(tmp, "log", "segment_size_mb", 4096)
        refused(tmp, "cluster", "enabled", "true")        # without node_id and replica_listen
        refused(tmp, "cluster", "acks", "most")
        refused(tmp, "dataplane", "ring_size", 65536)
        refused(tmp, "dataplane", "ring_size", 1000)      # the dataplane's power-of-two rule
        refused(tmp, "dataplane", "ipv4", "198.18.0")     # route.c's parse
        refused(tmp, "dataplane", "auth_keys", "k:zz")
        refused(tmp, "log", "batch_size_kb", 4096, "segment_size_mb = 8\n")  # > segment / 4
        refused(tmp, "log", "commit_window_kb", 8192, "segment_size_mb = 8\n")  # > segment / 2
        start_at_log_minimums(tmp, table)
        sighup(tmp)
    print("%d keys walked, %d failures" % (len(table), len(failures)))
    return 1 if failures else 0


sys.exit(main())
