#!/usr/bin/python3
"""The kernel backend ([dataplane] backend = kernel) against a real sluiced on
127.0.0.1, frames built by the spec-only Python encoder (tests/protocol). TCP:

- a frame cut inside its header and sent in two writes is assembled and ACKed;
- 40 frames in one write, with a 4 KiB send buffer (room for two owed answers), are
  all ACKed, each once: the connection stops receiving while answers are owed
  (back-pressure, counted as tcp_blocked) and resumes, nothing lost;
- a frame whose durable ACK has more runs than the room reserved for an answer is
  ACKed at once without detail;
- a frame sent twice in one write (a resend meeting its first copy being stored) is
  stored once: the copy is NACKed THROTTLED, the first copy ACKed, and the connection
  keeps taking frames;
- a frame larger than the 4 KiB assembly buffer closes its connection
  (tcp_frame_too_large), and so do bytes that are not a frame (tcp_framing_errors);
- other connections are unaffected;
- a frame begun and left unfinished closes its connection after tcp_partial_frame_s;
- with the log stalled (its writer thread stopped by ptrace, the rest of sluiced
  running) a connection blocked on back-pressure does not keep its worker spinning: the
  worker naps (idle_sleeps grows) while nothing is answered, and once the log goes on
  every frame is ACKed once.
UDP: a datagram of the protocol's largest size (65,507 bytes) is ACKed, one that is not
a frame is counted (frames_malformed) and answered by nothing; after a flood every
datagram was received or counted as dropped by the kernel (kernel_rx_dropped). Every
ACKed record reads back through the API. Authentication (docs/PROTOCOL.md section 7), with
two keys configured: producer P signs with key 77 and its ACKs come back signed with key
77 (any byte changed breaks the tag); a frame for P's id under key 78 with a newer epoch
(which would fence P) is NACKed auth_failed, counted as frames_key_mismatch, its NACK
signed with 78; P goes on under its epoch.

usage: test_dp_kernel.py SLUICED SLUICE SOURCE_ROOT
"""
import ctypes
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(sys.argv[3], 'tests', 'protocol'))
from test_spec_independent import records_frame  # noqa: E402

SLUICED, SLUICE = sys.argv[1], sys.argv[2]
PRODUCER = 0x5eed


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def check(cond, what):
    if not cond:
        print('FAIL:', what)
        sys.exit(1)


def wait_for(pred, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    check(False, what)


def frame(seq, data=b'x' * 100, count=1):
    records = [(b'key-%d-%d' % (seq, i), data, 0, b'') for i in range(count)]
    return bytes(records_frame(PRODUCER, seq, 1, 2, b'orders', records))


def read_answer(sock):
    """One ACK/NACK frame: (type, status, batch_seq)."""
    head = recv_exact(sock, 16)
    size = struct.unpack_from('<I', head, 8)[0]
    body = recv_exact(sock, size - 16)
    batch_seq, = struct.unpack_from('<Q', body, 8)
    return head[13], body[20], batch_seq


def recv_exact(sock, n):
    out = b''
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        check(chunk, 'connection closed while an answer was owed')
        out += chunk
    return out


def closed_by_server(sock):
    try:
        return sock.recv(1) == b''
    except ConnectionResetError:
        return True


def telemetry(pid):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(f'/var/run/dpdk/sluice-{pid}/dpdk_telemetry.v2')
    json.loads(s.recv(16384))
    s.send(b'/sluice/dp/stats')
    stats = json.loads(s.recv(65536))['/sluice/dp/stats']
    s.close()
    return stats


def start(tmp, api, ingest, *extra):
    log = open(os.path.join(tmp, 'sluiced.log'), 'w+')
    proc = subprocess.Popen([
        SLUICED, '--data-dir', os.path.join(tmp, 'data'), '--api-listen', f'127.0.0.1:{api}',
        '--set', 'dataplane.backend=kernel', '--set', 'dataplane.ipv4=127.0.0.1',
        '--set', f'dataplane.ingest_port={ingest}', '--set', 'dataplane.no_huge=true',
        '--set', 'dataplane.tcp_rx_buffer_kb=4', '--set', 'dataplane.tcp_tx_buffer_kb=4',
        *extra], stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def main():
    tmp = tempfile.mkdtemp(prefix='kernel-tcp-')
    api, ingest = free_port(), free_port()
    endpoint = f'http://127.0.0.1:{api}'
    procs = []
    try:
        procs.append(start(tmp, api, ingest))
        run(procs[-1][0], procs[-1][1], endpoint, ingest)
        procs.append(start(tmp, api, ingest, '--set', 'dataplane.tcp_partial_frame_s=1'))
        slowloris(procs[-1][0], procs[-1][1], ingest)
        procs[-1][0].send_signal(signal.SIGTERM)
        procs[-1][0].wait(timeout=30)
        procs.append(start(tmp, api, ingest))
        stalled_log(procs[-1][0], procs[-1][1], ingest)
        procs.append(start(tmp, api, ingest, '--set', 'dataplane.auth_keys=' + ','.join(
            '%d:%s' % (kid, key.hex()) for kid, key in KEYS.items())))
        auth(procs[-1][0], procs[-1][1], endpoint, ingest)
        print('PASS')
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            subprocess.run(['rm', '-rf', f'/var/run/dpdk/sluice-{proc.pid}'])
        subprocess.run(['rm', '-rf', tmp])


KEYS = {77: b'0123456789abcdef0123456789abcdef', 78: b'fedcba9876543210fedcba9876543210'}


def signed_by(answer, key_id):
    """Whether an ACK/NACK carries a trailer with key_id and a valid HMAC under its key."""
    if not struct.unpack_from('<H', answer, 14)[0] & 4:
        return False
    kid, = struct.unpack_from('<I', answer, len(answer) - 48)
    tag = hmac.new(KEYS[key_id], answer[8:len(answer) - 32], hashlib.sha256).digest()
    return kid == key_id and hmac.compare_digest(tag, answer[len(answer) - 32:])


def auth(proc, log, endpoint, ingest):
    wait_for(lambda: logged(log, 'sluiced: ready'), 30, 'sluiced ready')
    wait_for(lambda: logged(log, 'published'), 10, 'route table published')
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)

    def send(epoch, seq, key_id):
        now_ms = int(time.time() * 1000)
        f = bytes(records_frame(PRODUCER, seq, epoch, 2, b'orders',
                                [(b'signed-%d' % seq, b'x', 0, b'')],
                                auth=(key_id, KEYS[key_id], now_ms)))
        sock.sendto(f, ('127.0.0.1', ingest))
        answer, _ = sock.recvfrom(2048)
        return answer

    a = send(1, 1000, 77)
    check(a[13] == 2 and signed_by(a, 77), 'P\'s ACK is signed with key 77')
    forged = bytearray(a)
    forged[40] ^= 1  # record_index: a forger's edit
    check(not signed_by(bytes(forged), 77), 'a changed byte breaks the tag')
    n = send(2, 0, 78)
    check(n[13] == 3 and n[36] == 4, 'key 78 for P\'s id: NACK auth_failed (status %d)' % n[36])
    check(signed_by(n, 78) and not signed_by(n, 77), 'that NACK is signed with 78, not 77')
    check(telemetry(proc.pid)['frames_key_mismatch'] == 1, 'frames_key_mismatch counted')
    a = send(1, 1001, 77)
    check(a[13] == 2 and signed_by(a, 77), 'P goes on under epoch 1 (not fenced)')
    sock.close()
    out = subprocess.run([SLUICE, 'consume', 'orders', '--max', '100000', '--format', 'json',
                          '--endpoint', endpoint],
                         check=True, capture_output=True, text=True).stdout
    check(sum(json.loads(line)['PartitionKey'].startswith('signed-')
              for line in out.splitlines()) == 2,
          'the two signed records of P read back, the attacker\'s none')
    print('auth: producer id bound to key 77; signed ACK/NACK verified')


def slowloris(proc, log, ingest):
    """A frame begun and never finished closes its connection after tcp_partial_frame_s
    (it holds an assembly buffer); a connection that sent nothing is left alone."""
    wait_for(lambda: logged(log, 'sluiced: ready'), 30, 'sluiced ready again')
    quiet = socket.create_connection(('127.0.0.1', ingest))
    slow = socket.create_connection(('127.0.0.1', ingest))
    slow.settimeout(20)
    slow.sendall(frame(60)[:10])
    check(closed_by_server(slow), 'a frame left unfinished closes its connection')
    stats = telemetry(proc.pid)
    check(stats['tcp_timeout_partial'] == 1, f"tcp_timeout_partial {stats['tcp_timeout_partial']}")

    def one_open():
        st = telemetry(proc.pid)
        return st['tcp_conns_opened'] == 2 and st['tcp_conns_closed'] == 1
    wait_for(one_open, 10, 'the slow connection closed, the quiet one open')
    quiet.close()
    proc.send_signal(signal.SIGTERM)
    check(proc.wait(timeout=30) == 0, 'sluiced stopped cleanly')


LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT, WALL = 17, 0x4206, 0x4207, 0x40000000


def ptrace(request, tid):
    if LIBC.ptrace(request, tid, None, None) != 0:
        check(False, f'ptrace {request:#x} on thread {tid}: {os.strerror(ctypes.get_errno())}')


def thread_named(pid, name):
    for tid in os.listdir(f'/proc/{pid}/task'):
        with open(f'/proc/{pid}/task/{tid}/comm') as f:
            if f.read().strip() == name:
                return int(tid)
    check(False, f'no thread {name} in {pid}')


def stalled_log(proc, log, ingest):
    """The log writer thread alone stopped: durable ACKs stall, the connection blocks
    (room for two owed answers). Its worker used to spin for the whole stall (the
    blocked connection kept it awake); it naps now, woken by completions."""
    wait_for(lambda: logged(log, 'sluiced: ready'), 30, 'sluiced ready (stalled log)')
    wait_for(lambda: logged(log, 'published 1 streams'), 10, 'route table published')
    writer = thread_named(proc.pid, 'sluice-log')
    ptrace(PTRACE_SEIZE, writer)
    ptrace(PTRACE_INTERRUPT, writer)
    os.waitpid(writer, WALL)  # Stopped: the rest of sluiced runs on.
    sock = socket.create_connection(('127.0.0.1', ingest))
    try:
        sock.sendall(b''.join(frame(seq) for seq in range(500, 540)))
        wait_for(lambda: telemetry(proc.pid)['tcp_blocked'] > 0, 10, 'the connection blocked')
        before = telemetry(proc.pid)['idle_sleeps']
        wait_for(lambda: telemetry(proc.pid)['idle_sleeps'] >= before + 100, 30,
                 'the worker naps while its connection waits for the stalled log')
        sock.setblocking(False)
        try:
            data = sock.recv(1)
            check(False, f'an answer or a close while the log is stopped: {data!r}')
        except BlockingIOError:
            pass  # Nothing came: nothing durable to answer.
        sock.setblocking(True)
    finally:
        ptrace(PTRACE_DETACH, writer)  # The log goes on.
    sock.settimeout(30)
    got = sorted(read_answer(sock) for _ in range(40))
    check(got == [(2, 0, seq) for seq in range(500, 540)], f'40 frames ACKed once: {got}')
    sock.close()
    proc.send_signal(signal.SIGTERM)
    check(proc.wait(timeout=30) == 0, 'sluiced stopped cleanly')
    print('stalled log: the blocked connection\'s worker napped; 40 frames ACKed once')


def udp(proc, ingest):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    sock.sendto(b'not a frame', ('127.0.0.1', ingest))
    wait_for(lambda: telemetry(proc.pid)['frames_malformed'] == 1, 10, 'garbage counted')
    overhead = len(frame(50, data=b''))
    big = frame(50, data=b'z' * (65507 - overhead))
    check(len(big) == 65507, f'a {len(big)}-byte frame')
    sock.sendto(big, ('127.0.0.1', ingest))
    answer, _ = sock.recvfrom(2048)  # The only answer: the garbage got none.
    check(answer[13] == 2 and struct.unpack_from('<Q', answer, 24)[0] == 50,
          'the 65,507-byte datagram ACKed')
    flood(proc, sock, ingest)
    sock.close()


def flood(proc, sock, ingest):
    """Every datagram is received or counted dropped (kernel_rx_dropped): none vanishes.
    A drop is reported on the next datagram received, so probes follow the flood."""
    before = telemetry(proc.pid)
    sent = 0
    junk = b'SLUC' + b'j' * 60000  # Big: the socket buffer fills after a few dozen.
    for _ in range(5000):
        sock.sendto(junk, ('127.0.0.1', ingest))
        sent += 1

    def accounted():
        nonlocal sent
        stats = telemetry(proc.pid)
        seen = sum(stats[k] - before[k] for k in ('rx_packets', 'kernel_rx_dropped'))
        if seen < sent:
            sock.sendto(junk, ('127.0.0.1', ingest))
            sent += 1
        return seen == sent
    wait_for(accounted, 30, 'every datagram received or counted as dropped')
    stats = telemetry(proc.pid)
    print(f"flood: {sent} sent, {stats['rx_packets'] - before['rx_packets']} received, "
          f"{stats['kernel_rx_dropped'] - before['kernel_rx_dropped']} dropped by the kernel")


def logged(log, text):
    log.seek(0)
    return text in log.read()


def run(proc, log, endpoint, ingest):
    wait_for(lambda: logged(log, 'sluiced: ready'), 30, 'sluiced ready')
    subprocess.run([SLUICE, 'stream', 'create', 'orders', '--shards', '2', '--endpoint',
                    endpoint], check=True, stdout=subprocess.DEVNULL)
    wait_for(lambda: logged(log, 'published 1 streams'), 10, 'route table published')
    good = socket.create_connection(('127.0.0.1', ingest))
    good.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    good.settimeout(30)  # Bounds a hang: an answer that never comes fails the test.

    # A frame cut inside its 16-byte header: the rest is sent once the server has
    # received the first 7 bytes alone (rx_bytes), so the frame spans two receives.
    f = frame(1)
    good.sendall(f[:7])
    wait_for(lambda: telemetry(proc.pid)['rx_bytes'] == 7, 10, 'the first 7 bytes received')
    good.sendall(f[7:])
    check(read_answer(good) == (2, 0, 1), 'frame spanning two receives ACKed')

    # 40 frames at once; room for only two owed answers at a time.
    good.sendall(b''.join(frame(seq) for seq in range(2, 42)))
    got = [read_answer(good) for _ in range(40)]
    # Durable ACKs follow their shards' batches, not arrival order: each exactly once.
    check(sorted(got) == [(2, 0, seq) for seq in range(2, 42)], f'40 frames ACKed: {got}')
    stats = telemetry(proc.pid)
    check(stats['tcp_blocked'] > 0, 'the connection stopped while answers were owed')

    big = socket.create_connection(('127.0.0.1', ingest))
    big.sendall(frame(100, data=b'y' * 3000, count=2))  # > 4 KiB
    check(closed_by_server(big), 'a frame larger than the assembly buffer closes')
    junk = socket.create_connection(('127.0.0.1', ingest))
    junk.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    check(closed_by_server(junk), 'bytes that are not a frame close the connection')
    stats = telemetry(proc.pid)
    check(stats['tcp_frame_too_large'] == 1, f"tcp_frame_too_large {stats['tcp_frame_too_large']}")
    check(stats['tcp_framing_errors'] == 1, f"tcp_framing_errors {stats['tcp_framing_errors']}")

    good.sendall(frame(42, count=3))
    check(read_answer(good) == (2, 0, 42), 'the first connection goes on')
    # A producer's resend while its first copy is still being stored (libsluice resends
    # on a live connection only after a NACK, but another producer may on a timeout):
    # both copies in one write, so the copy always meets the first one being stored.
    # The copy is answered THROTTLED (not stored; TCP has no resend timer, so a silent
    # drop left a producer that had reconnected waiting for its silence bound) and the
    # first copy ACKed. Four pairs with room for two owed answers: each copy's room
    # must come back, or the connection's window closes for good.
    for seq in range(44, 48):
        good.sendall(frame(seq) * 2)
        got = sorted([read_answer(good), read_answer(good)])
        check(got == [(2, 0, seq), (3, 5, seq)],
              f'a frame sent twice at once: one ACK, one NACK THROTTLED ({seq}): {got}')
    good.sendall(frame(48))
    check(read_answer(good) == (2, 0, 48), 'answered in order: nothing more for a copy')
    # 200 records over 2 shards: ~100 runs, an ACK larger than the room reserved for an
    # answer (DP_TCP_ANSWER_MAX). It comes at once, without detail (it never came before).
    good.sendall(frame(43, data=b'', count=200))
    check(read_answer(good) == (2, 0, 43), 'a frame whose ACK outgrows its room is ACKed')
    good.close()
    udp(proc, ingest)
    out = subprocess.run([SLUICE, 'consume', 'orders', '--max', '1000', '--endpoint', endpoint],
                         check=True, capture_output=True, text=True).stdout
    check(len(out.splitlines()) == 250, f'250 records read back, got {len(out.splitlines())}')
    proc.send_signal(signal.SIGTERM)
    check(proc.wait(timeout=30) == 0, 'sluiced stopped cleanly')


if __name__ == '__main__':
    main()
