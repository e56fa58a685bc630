#!/usr/bin/python3
"""
soak_resume: the fault campaign (kills profile) with --state, its harness and sluiced
SIGKILLed together (the harness's process group, as a session's end kills it) in the
middle of a round (in its read-back, its records acknowledged, before its checkpoint),
then --resume for RESUMED_S more: it must pass, find every record that round had
acknowledged, and its summary must count both parts' SIGKILLs, the harness kill and
"resumed 1 times". Then the refusals, each with its message and before anything
starts (no sluiced, no mount): a fresh start over a kept run, a corrupt checkpoint, one
of another version, one that is not a checkpoint, a finished run, --resume of a
directory without one.

  usage: test_soak_resume.py SLUICED
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOAK = os.path.join(HERE, "soak.py")
PY = "/usr/bin/python3"
FIRST_S = 60        # The first part's --duration: it is killed before.
RESUMED_S = 20      # The resumed part's: --duration is the whole run's, this much more.
LONG_H = 8760       # soak.py's long retention: the killed round's records cannot expire.
DEADLINE_S = 240    # Bounds a hang only.


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def header(state):
    """The checkpoint's header (JSON), or None while there is none."""
    try:
        with open(os.path.join(state, "checkpoint"), "rb") as f:
            return json.loads(f.readline())
    except (OSError, ValueError):
        return None


def sluiced_pid(state):
    try:
        with open(os.path.join(state, "sluiced.pid")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def alive(pid):
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(cond, what, proc=None):
    deadline = time.time() + DEADLINE_S
    while not cond():
        check(proc is None or proc.poll() is None, "the run ended before %s" % what)
        check(time.time() < deadline, "no %s in %d s" % (what, DEADLINE_S))
        time.sleep(0.02)


def in_flight(state):
    try:
        with open(os.path.join(state, "in-flight")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def first_part(sluiced, state, out):
    """Runs until a round after the checkpoint is in its read-back with records of its
    own acknowledged, in a stream of long retention, then SIGKILLs the harness's process
    group. Returns the checkpoint's header and DIR/in-flight then."""
    def on_cue():
        h, f = header(state), in_flight(state)
        return (h is not None and f is not None and f["round"] == h["rounds"] and
                f["phase"] == "verify" and f["acked"] > 0 and f["retention_h"] == LONG_H)
    with open(out, "wb") as log:
        p = subprocess.Popen([PY, SOAK, sluiced, "--profile", "kills", "--duration",
                              str(FIRST_S), "--state", state], stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(on_cue, "a round's read-back in a stream of long retention", p)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    check(p.returncode == -signal.SIGKILL, "the harness exited %d" % p.returncode)
    pid = sluiced_pid(state)
    wait_for(lambda: not alive(pid), "end of sluiced %d after the group's SIGKILL" % pid)
    return header(state), in_flight(state)


def resume(sluiced, state, *extra):
    return subprocess.run([PY, SOAK, sluiced, "--state", state, "--resume"] + list(extra),
                          capture_output=True, text=True, timeout=DEADLINE_S * 2)


def refused(argv, state, want, what):
    """A run refused with `want` in its message, having started nothing."""
    pid = sluiced_pid(state)
    r = subprocess.run([PY, SOAK] + argv, capture_output=True, text=True,
                       timeout=DEADLINE_S)
    check(r.returncode != 0 and want in r.stderr, "%s: exit %d, %r" % (
        what, r.returncode, r.stderr[-500:]))
    check(sluiced_pid(state) == pid and not os.path.ismount(os.path.join(state, "mnt")),
          "%s: started something before refusing" % what)


def negatives(sluiced, state, empty):
    path = os.path.join(state, "checkpoint")
    with open(path, "rb") as f:
        good = f.read()
    head, _, payload = good.partition(b"\n")
    refused([sluiced, "--profile", "kills", "--state", state], state,
            "refusing to start afresh", "a fresh start over a kept run")
    cases = (
        (payload[:-1] + bytes([payload[-1] ^ 0xff]), "is corrupt", "a flipped byte"),
        (payload[:len(payload) // 2], "is corrupt", "a torn checkpoint"),
        (None, "is checkpoint version", "another version"),
        (b"", "not a soak checkpoint", "an empty file"),
    )
    for body, want, what in cases:
        with open(path, "wb") as f:
            if body is None:
                h = json.loads(head)
                h["version"] += 1
                f.write(json.dumps(h).encode() + b"\n" + payload)
            elif body:
                f.write(head + b"\n" + body)
        refused([sluiced, "--state", state, "--resume"], state, want, what)
    with open(path, "wb") as f:
        f.write(good)
    refused([sluiced, "--state", state, "--resume"], state, "finished", "a finished run")
    refused([sluiced, "--state", empty, "--resume"], empty, "no checkpoint",
            "--resume without a checkpoint")


def cleanup(state):
    mnt = os.path.join(state, "mnt")
    if os.path.ismount(mnt):
        subprocess.run(["umount", mnt], check=False)
    img = os.path.join(state, "disk.img")
    if os.path.exists(img):
        out = subprocess.run(["losetup", "-j", img], capture_output=True, text=True).stdout
        for line in out.splitlines():
            subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)


def main():
    sluiced = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="soakresume-test-")
    state, empty = os.path.join(tmp, "state"), os.path.join(tmp, "empty")
    os.mkdir(empty)
    try:
        before, cue = first_part(sluiced, state, os.path.join(tmp, "first.log"))
        check(before["resumed"] == 0, "checkpoint %r" % before)
        # The killed sluiced's EAL runtime directory (there unless the kill came before
        # its EAL started): the resume removes it.
        eal_dir = "/var/run/dpdk/sluice-%d" % sluiced_pid(state)
        print("soak_resume: %s %s after the kill" % (
            eal_dir, "there" if os.path.isdir(eal_dir) else "not there"))
        r = resume(sluiced, state, "--duration", str(before["elapsed_s"] + RESUMED_S))
        check(r.returncode == 0, "the resumed run failed (%d): %s" % (
            r.returncode, (r.stdout + r.stderr)[-3000:]))
        m = re.search(r"resumed (\d+) times: (\d+) SIGKILLs in all \((\d+) harness killed\)",
                      r.stdout)
        check(m is not None, "no resume in the summary: %r" % r.stdout[-2000:])
        times, kills, harness = (int(x) for x in m.groups())
        check(not os.path.exists(eal_dir), "%s left behind by the resume" % eal_dir)
        check(times == 1 and harness == 1, "resumed %d times, %d harness kills" % (
            times, harness))
        # The first part's kills, the harness's, and the resumed rounds' (one at least).
        check(kills >= before["kills"] + 2, "%d SIGKILLs in all, %d before the resume" % (
            kills, before["kills"]))
        check(" during recovery, +1 harness killed;" in r.stdout,
              "no harness kill among the faults")
        m = re.search(r"(\d+) records of the rounds in flight then found and adopted", r.stdout)
        check(m is not None, "no adoption in the summary")
        adopted = int(m.group(1))
        # Killed in its read-back (not past it: the cue is polled): every record the
        # killed round had acknowledged is durable and of long retention, so found.
        if cue["round"] == before["rounds"] and cue["phase"] == "verify":
            check(adopted >= cue["acked"], "the killed round had %d records acknowledged, "
                  "%d found after the resume" % (cue["acked"], adopted))
        check(not os.path.ismount(os.path.join(state, "mnt")) and header(state) is not None,
              "the state was not kept, unmounted")
        negatives(sluiced, state, empty)
        print("soak_resume: killed after %d rounds (%d SIGKILLs) in round %d's %s (%d "
              "records acknowledged), resumed: %d found, %d SIGKILLs in all; 7 refusals" % (
                  before["rounds"], before["kills"], cue["round"], cue["phase"],
                  cue["acked"], adopted, kills))
        print(r.stdout.strip())
    finally:
        cleanup(state)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
