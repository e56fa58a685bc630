#!/usr/bin/python3
"""The sluice CLI against a real sluiced (--no-dataplane, temp data dir, free
loopback port): stream create/list/describe/delete, put, produce over http,
consume (raw and json), exit codes, SigV4 against the server's verifier,
bench ingest piped (no control characters) and under tmux (the progress line
redraws in place), and produce/bench over udp and tcp against libsluice's
test server with seeded drops, duplicates, reordering, throttling and cut
connections. Usage: test_cli_integration.py SLUICE SLUICED [FRAMES_SERVER]"""
import base64
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SLUICE, SLUICED = sys.argv[1], sys.argv[2]
FRAMES_SERVER = sys.argv[3] if len(sys.argv) > 3 else None
CONTROL = re.compile(r'[\x00-\x08\x0b-\x1f\x7f]')  # Anything but \t and \n.
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print('FAIL: ' + what, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Sluiced:
    """One sluiced of ours; stop() ends only this PID."""

    def __init__(self, tmp, name, *extra):
        self.port = free_port()
        self.out = open(os.path.join(tmp, name + '.out'), 'w+')
        self.log = open(os.path.join(tmp, name + '.log'), 'w+')
        self.proc = subprocess.Popen(
            [SLUICED, '--no-dataplane', '--data-dir', os.path.join(tmp, name),
             '--api-listen', '127.0.0.1:%d' % self.port, *extra],
            stdout=self.out, stderr=self.log)
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        deadline = time.time() + 20
        while time.time() < deadline:
            self.out.seek(0)
            if 'sluiced: ready' in self.out.read():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.log.seek(0)
        raise RuntimeError('sluiced did not get ready: ' + self.log.read()[-2000:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run(endpoint, *args, stdin=None, env_extra=None, timeout=30):
    env = dict(os.environ, SLUICE_ENDPOINT=endpoint)
    for name in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'):
        env.pop(name, None)
    env.update(env_extra or {})
    p = subprocess.run([SLUICE, *args], input=stdin, capture_output=True, env=env,
                       timeout=timeout)
    out, err = p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')
    # Piped: nothing but text. Record data is ours and printable here.
    check(not CONTROL.search(out), '%s: control characters on stdout' % ' '.join(args))
    check(not CONTROL.search(err), '%s: control characters on stderr' % ' '.join(args))
    return p.returncode, out, err


def test_streams(ep):
    rc, _, err = run(ep, 'stream', 'create', 'cli1', '--shards', '2')
    check(rc == 0, 'stream create: rc %d %s' % (rc, err))
    rc, _, err = run(ep, 'stream', 'create', 'cli1')
    check(rc == 1 and 'ResourceInUseException' in err, 'create twice: rc %d %s' % (rc, err))
    rc, out, _ = run(ep, 'stream', 'list')
    check(rc == 0 and 'cli1' in out.split('\n'), 'stream list: %r' % out)
    rc, out, _ = run(ep, 'stream', 'describe', 'cli1')
    check(rc == 0 and 'ACTIVE' in out and 'shardId-000000000001' in out,
          'describe: %r' % out)
    rc, out, _ = run(ep, 'stream', 'describe', 'cli1', '--json')
    check(rc == 0 and len(json.loads(out)['Shards']) == 2, 'describe --json: %r' % out)
    rc, _, err = run(ep, 'stream', 'describe', 'nosuch')
    check(rc == 1 and 'ResourceNotFoundException' in err, 'describe missing: %s' % err)


def test_usage(ep):
    for args in (['stream'], ['stream', 'create'], ['stream', 'list', '--bogus'],
                 ['put', 'cli1', 'k'], ['consume', 'cli1', '--from', 'nowhere'],
                 ['consume', 'cli1', '--max', 'x'], ['produce', 'cli1', '--transport', 'smoke'],
                 ['bench', 'ingest', 'cli1', '--keys', 'pareto'],
                 ['bench', 'ingest', 'cli1', '--size', '1m', '--records-per-frame', '5'],
                 ['bench', 'ingest', 'cli1', '--data', 'index'], ['nosuchcommand']):
        rc, _, err = run(ep, *args)
        check(rc == 2 and 'usage' in err, '%s: rc %d, want 2 with usage' % (args, rc))
    for args in (['stream', '--help'], ['put', '--help'], ['consume', '--help'],
                 ['produce', '--help'], ['bench', 'ingest', '--help'], ['--help']):
        rc, out, _ = run(ep, *args)
        check(rc == 0 and 'usage' in out, '%s: rc %d' % (args, rc))
    rc, _, err = run(ep, 'put', 'cli1', 'k', 'v', '--endpoint', 'http://127.0.0.1:1')
    check(rc == 1 and 'refused' in err, 'put to a closed port: rc %d %s' % (rc, err))


def test_records(ep):
    rc, out, err = run(ep, 'put', 'cli1', 'k1', 'hello')
    check(rc == 0 and re.fullmatch(r'shardId-\d{12}\t\d+\n', out), 'put: %r %s' % (out, err))
    put_seq = out.split('\t')[1].strip() if rc == 0 else None
    lines = ['dev%d reading=%d' % (i % 7, i) for i in range(100)]
    rc, out, err = run(ep, 'produce', 'cli1', '--transport', 'http', '--key-field', '1',
                       stdin=('\n'.join(lines) + '\n').encode())
    results = out.splitlines()
    check(rc == 0 and len(results) == 100, 'produce: rc %d, %d lines %s' %
          (rc, len(results), err))
    check(all(re.fullmatch(r'%d\tshardId-\d{12}\t\d+' % i, r) for i, r in enumerate(results)),
          'produce output: %r' % results[:3])
    rc, out, err = run(ep, 'consume', 'cli1')
    got = out.splitlines()
    check(rc == 0 and sorted(got) == sorted(lines + ['hello']),
          'consume: rc %d, %d records %s' % (rc, len(got), err))
    # Per key, consume keeps the produce order (a key lives on one shard).
    dev3 = [g for g in got if g.startswith('dev3 ')]
    check(dev3 == [x for x in lines if x.startswith('dev3 ')], 'per-key order: %r' % dev3)
    rc, out, _ = run(ep, 'consume', 'cli1', '--format', 'json', '--max', '5')
    rows = [json.loads(x) for x in out.splitlines()]
    check(rc == 0 and len(rows) == 5, 'consume --max 5: %d' % len(rows))
    check(all(base64.b64decode(r['Data']).decode() in lines + ['hello'] for r in rows),
          'json Data decodes to the records')
    if put_seq is not None:
        rc, out, _ = run(ep, 'consume', 'cli1', '--from', 'at:' + put_seq, '--max', '1')
        check(rc == 0 and out == 'hello\n', 'consume --from at:SEQ: %r' % out)
    rc, out, _ = run(ep, 'consume', 'cli1', '--from', 'latest')
    check(rc == 0 and out == '', 'consume --from latest: %r' % out)
    rc, out, _ = run(ep, 'consume', 'cli1', '--from', 'ts:2001-02-03T04:05:06.5+01:00')
    check(rc == 0 and len(out.splitlines()) == 101, 'consume --from ts:2001: %d' %
          len(out.splitlines()))
    rc, _, err = run(ep, 'consume', 'cli1', '--from', 'ts:2001-02-30Tnoon')
    check(rc == 2, 'consume --from bad ts: rc %d' % rc)
    test_follow(ep)
    rc, out, err = run(ep, 'produce', 'cli1', '--count', '1200', '--size', '64', '--quiet')
    check(rc == 0 and out.strip() == 'stored 1200 failed 0', 'produce --count: %r %s' %
          (out, err))
    rc, _, err = run(ep, 'put', 'nosuch', 'k', 'v')
    check(rc == 1 and 'ResourceNotFoundException' in err, 'put missing stream: %s' % err)
    # A 1 MiB record through stdin, and back byte for byte.
    big = bytes(range(ord('a'), ord('z') + 1)) * (1024 * 1024 // 26) + b'x' * (1024 * 1024 % 26)
    rc, _, err = run(ep, 'stream', 'create', 'big1')
    rc, out, err = run(ep, 'put', 'big1', 'k', '-', stdin=big)
    check(rc == 0, 'put 1 MiB from stdin: rc %d %s' % (rc, err))
    p = subprocess.run([SLUICE, 'consume', 'big1', '--endpoint', ep], capture_output=True)
    check(p.returncode == 0 and p.stdout == big + b'\n', 'consume 1 MiB: %d bytes' %
          len(p.stdout))
    rc, _, err = run(ep, 'put', 'big1', 'k', '-', stdin=big + b'y')
    check(rc == 1 and 'reading stdin' in err, 'put 1 MiB + 1: rc %d %s' % (rc, err))
    rc, _, err = run(ep, 'stream', 'create', 'od1', '--mode', 'ON_DEMAND')
    rc, out, err = run(ep, 'stream', 'describe', 'od1')
    check(rc == 0 and 'ON_DEMAND' in out, 'on-demand stream: rc %d %r %s' % (rc, out, err))


def test_follow(ep):
    """consume --follow prints records put after it started; we stop our own PID."""
    env = dict(os.environ, SLUICE_ENDPOINT=ep)
    # From "now" rather than latest: the puts may win the race with the iterators.
    follower = subprocess.Popen([SLUICE, 'consume', 'cli1', '--from', 'ts:%.3f' % time.time(),
                                 '--follow', '--poll', '50ms'], stdout=subprocess.PIPE, env=env)
    try:
        time.sleep(0.5)
        for i in range(3):
            run(ep, 'put', 'cli1', 'f%d' % i, 'followed-%d' % i)
        data = b''
        deadline = time.time() + 10
        # Raw reads: one write may carry several lines, which a buffered readline would hide.
        while data.count(b'\n') < 3 and time.time() < deadline:
            if select.select([follower.stdout], [], [], 0.2)[0]:
                data += os.read(follower.stdout.fileno(), 65536)
        got = data.decode().split()
        check(sorted(got) == ['followed-0', 'followed-1', 'followed-2'],
              'consume --follow: %r' % got)
    finally:
        follower.kill()
        follower.wait()


def test_bench_piped(ep):
    rc, out, err = run(ep, 'bench', 'ingest', 'cli1', '--rate', '300', '--duration', '1s',
                       '--records-per-frame', '3', '--keys', 'zipf', '--drain', '3s', '--json')
    try:
        summary = json.loads(out)
    except ValueError:
        summary = {}
    check(rc in (0, 3) and summary.get('records_acked', 0) > 0,
          'bench --json: rc %d %r %s' % (rc, out, err))
    check(err == '', 'bench piped wrote to stderr: %r' % err)
    rc, out, err = run(ep, 'bench', 'ingest', 'cli1', '--rate', '1000', '--duration', '1s',
                       '--connections', '2', '--pipeline', '8', '--json')
    summary = json.loads(out) if rc in (0, 3) else {}
    check(rc == 0 and summary.get('records_acked') == 1000 and summary.get('pipeline') == 8,
          'bench --pipeline 8: rc %d %s %s' % (rc, out, err))
    rc, out, _ = run(ep, 'bench', 'ingest', 'cli1', '--rate', '100', '--duration', '500ms')
    check(rc in (0, 3) and 'latency' in out and 'p99' in out, 'bench text: %r' % out)


def tmux(sock, *args):
    return subprocess.run(['tmux', '-L', sock, *args], capture_output=True, text=True,
                          timeout=10)


def test_bench_tty(ep):
    if shutil.which('tmux') is None:
        print('SKIP: tmux not installed')
        return
    sock = 'sluice-cli-test-%d' % os.getpid()
    try:
        tmux(sock, 'new-session', '-d', '-s', 'bench', '-x', '200', '-y', '30', 'sh')
        tmux(sock, 'send-keys', '-t', 'bench',
             "SLUICE_ENDPOINT=%s TERM=xterm %s bench ingest cli1 --rate 200 --duration 4s"
             % (ep, SLUICE), 'Enter')
        seen = []
        deadline = time.time() + 15
        while time.time() < deadline:
            time.sleep(0.4)
            pane = tmux(sock, 'capture-pane', '-p', '-t', 'bench').stdout
            live = [x for x in pane.splitlines() if 'rec/s' in x and 'backlog' in x]
            check(len(live) <= 1, 'progress line repeated instead of redrawn: %r' % live)
            if live and (not seen or seen[-1] != live[0]):
                seen.append(live[0])
            if 'latency' in pane and 'from the scheduled send time' in pane:
                break
        check(len(seen) >= 2, 'progress line did not redraw: %r' % seen)
        elapsed = [float(x.split()[0]) for x in seen]
        check(elapsed == sorted(elapsed), 'progress line goes backwards: %r' % elapsed)
        pane = tmux(sock, 'capture-pane', '-p', '-t', 'bench').stdout
        check('acked' in pane and 'from the scheduled send time' in pane,
              'no summary under tmux: %r' % pane)
        check(not any('backlog' in x for x in pane.splitlines()),
              'progress line left behind: %r' % pane)
        # Ctrl-C ends a long run early, with its summary.
        tmux(sock, 'send-keys', '-t', 'bench', 'clear', 'Enter')
        tmux(sock, 'send-keys', '-t', 'bench',
             "SLUICE_ENDPOINT=%s %s bench ingest cli1 --rate 100 --duration 60s; echo rc=$?"
             % (ep, SLUICE), 'Enter')
        time.sleep(1.5)
        tmux(sock, 'send-keys', '-t', 'bench', 'C-c')
        deadline = time.time() + 8
        while time.time() < deadline:
            time.sleep(0.2)
            pane = tmux(sock, 'capture-pane', '-p', '-t', 'bench').stdout
            if 'rc=' in pane:
                break
        check('from the scheduled send time' in pane and re.search(r'rc=[03]\b', pane),
              'Ctrl-C did not end with a summary: %r' % pane)
    finally:
        tmux(sock, 'kill-server')


def test_sigv4(tmp):
    server = Sluiced(tmp, 'signed', '--set', 'auth.mode=sigv4', '--set',
                     'auth.access_keys=AKIDCLI:cli-secret-key')
    try:
        keys = {'AWS_ACCESS_KEY_ID': 'AKIDCLI', 'AWS_SECRET_ACCESS_KEY': 'cli-secret-key'}
        rc, _, err = run(server.endpoint, 'stream', 'create', 'signed1', env_extra=keys)
        check(rc == 0, 'signed create: rc %d %s' % (rc, err))
        rc, out, err = run(server.endpoint, 'stream', 'list', '--access-key', 'AKIDCLI',
                           '--secret-key', 'cli-secret-key')
        check(rc == 0 and 'signed1' in out, 'signed list (flags): rc %d %s' % (rc, err))
        rc, _, err = run(server.endpoint, 'stream', 'list', '--access-key', 'AKIDCLI',
                         '--secret-key', 'wrong')
        check(rc == 1 and 'Signature' in err, 'wrong secret: rc %d %s' % (rc, err))
        rc, _, err = run(server.endpoint, 'stream', 'list')
        check(rc == 1, 'unsigned against sigv4: rc %d %s' % (rc, err))
    finally:
        server.stop()


def frames_run(transport, faults, records, seed):
    """produce --transport over frames_server; returns (rc, produce lines, server rows)."""
    server = subprocess.Popen([FRAMES_SERVER, transport, 'cli1', '4', str(records), *faults,
                               str(seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        lines = ''.join('rec-%d\n' % i for i in range(records)).encode()
        rc, out, err = run('http://127.0.0.1:1', 'produce', 'cli1', '--transport', transport,
                           '--target', '127.0.0.1:%d' % port, '--key-field', '1',
                           stdin=lines, timeout=60)
        rows, _ = server.communicate('', timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    if rc != 0:
        print('produce --transport %s: rc %d %s' % (transport, rc, err[-500:]))
    stored = {int(r.split()[0]): r.split()[1:] for r in rows.splitlines()}
    return rc, out.splitlines(), stored


def test_frames():
    if FRAMES_SERVER is None:
        print('SKIP: no frames_server (libsluice test server not built)')
        return
    # DROP DUP REORDER THROTTLE CUT (percent), per transport.
    for transport, faults in (('udp', ['10', '10', '10', '5', '0']),
                              ('tcp', ['0', '0', '0', '5', '3'])):
        records = 2000
        rc, out, stored = frames_run(transport, faults, records, 1234)
        check(rc == 0 and len(out) == records,
              '%s: rc %d, %d result lines' % (transport, rc, len(out)))
        reported = {}
        for line in out:
            index, shard, seq = line.split('\t')
            reported[int(index)] = (shard, seq)
        check(sorted(reported) == list(range(records)), '%s: each record reported once'
              % transport)
        twice = [i for i, row in stored.items() if row[0] != '1']
        check(not twice, '%s: stored other than once: %r' % (transport, twice[:5]))
        # A replayed ACK may have lost the detail: "stored -" (position unknown).
        wrong = [i for i, (shard, seq) in reported.items()
                 if (shard, seq) != ('stored', '-') and
                 (shard != 'shardId-%012d' % int(stored[i][1]) or seq != stored[i][2])]
        check(not wrong, '%s: reported position differs from the stored one: %r'
              % (transport, wrong[:5]))
    rc, _, err = run('http://127.0.0.1:1', 'produce', 'cli1', '--transport', 'udp',
                     '--target', 'nohostport')
    check(rc == 2 and 'HOST:PORT' in err, 'bad --target: rc %d %s' % (rc, err))


def test_bench_frames():
    """bench ingest over udp/tcp with index data: every record acked and stored once."""
    if FRAMES_SERVER is None:
        return
    # TCP without faults: produce covers cuts, and a throttled batch waits ~1 s over TCP.
    # The test server serves one TCP connection at a time: one producer there.
    for transport, faults in (('udp', ['5', '5', '5', '2', '0']), ('tcp', ['0'] * 5)):
        server = subprocess.Popen([FRAMES_SERVER, transport, 'cli1', '4', '20000', *faults, '99'],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline().split()[1])
            rc, out, err = run('http://127.0.0.1:1', 'bench', 'ingest', 'cli1', '--transport',
                               transport, '--target', '127.0.0.1:%d' % port, '--rate', '2000',
                               '--records-per-frame', '10', '--duration', '1s', '--data',
                               'index', '--size', '40', '--json', '--producers',
                               '4' if transport == 'udp' else '1', timeout=60)
            rows, _ = server.communicate('', timeout=20)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        summary = json.loads(out) if rc in (0, 3) else {}
        sent = summary.get('records_sent', 0)
        check(rc == 0 and sent == 2000 and summary.get('records_acked') == sent,
              'bench %s: rc %d %s %s' % (transport, rc, out, err[-300:]))
        times = [int(r.split()[1]) for r in rows.splitlines()]
        check(times[:sent] == [1] * sent and not any(times[sent:]),
              'bench %s: stored other than once' % transport)


def test_tls(tmp):
    """https endpoints against sluiced's TLS listener (a throwaway self-signed cert)."""
    if shutil.which('openssl') is None:
        print('SKIP: no openssl command')
        return
    cert, key = os.path.join(tmp, 'cert.pem'), os.path.join(tmp, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
                    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
                    '-days', '2'], check=True, capture_output=True)
    tls_port = free_port()
    server = Sluiced(tmp, 'tls', '--set', 'server.tls_listen=127.0.0.1:%d' % tls_port,
                     '--set', 'server.tls_cert=' + cert, '--set', 'server.tls_key=' + key)
    ep = 'https://127.0.0.1:%d' % tls_port
    try:
        rc, _, err = run(ep, 'stream', 'create', 'tls1', '--ca-file', cert)
        check(rc == 0, 'https create: rc %d %s' % (rc, err))
        rc, out, err = run(ep, 'put', 'tls1', 'k', 'over-tls', env_extra={'AWS_CA_BUNDLE': cert})
        check(rc == 0, 'https put (AWS_CA_BUNDLE): rc %d %s' % (rc, err))
        rc, out, err = run(ep, 'consume', 'tls1', '--insecure')
        check(rc == 0 and out == 'over-tls\n', 'https consume --insecure: %r %s' % (out, err))
        rc, _, err = run(ep, 'stream', 'list')
        check(rc == 1 and 'self-signed' in err, 'untrusted certificate: rc %d %s' % (rc, err))
        rc, out, err = run(ep, 'bench', 'ingest', 'tls1', '--ca-file', cert, '--rate', '200',
                           '--duration', '500ms', '--json')
        summary = json.loads(out) if rc in (0, 3) else {}
        check(rc == 0 and summary.get('transport') == 'https' and
              summary.get('records_acked') == 100, 'https bench: rc %d %s %s' % (rc, out, err))
    finally:
        server.stop()


def main():
    tmp = tempfile.mkdtemp(prefix='sluice-cli-')
    server = None
    try:
        server = Sluiced(tmp, 'plain')
        ep = server.endpoint
        test_usage(ep)
        test_frames()
        test_bench_frames()
        test_streams(ep)
        test_records(ep)
        test_bench_piped(ep)
        test_bench_tty(ep)
        rc, _, err = run(ep, 'stream', 'delete', 'cli1')
        check(rc == 0, 'stream delete: rc %d %s' % (rc, err))
        server.stop()
        test_sigv4(tmp)
        test_tls(tmp)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('sluice CLI integration ok')
    return 0


if __name__ == '__main__':
    # meson's timeout sends SIGTERM: exit through the finally blocks, which stop
    # our sluiced and remove the temp dirs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
