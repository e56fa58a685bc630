#!/usr/bin/python3
"""A graceful stop ([server] shutdown_grace_ms, docs/OPERATIONS.md "Stopping"): sluiced
(no dataplane) driven over raw HTTP/1.1, boto3 and hand-made h2c frames.

- hold: a PutRecords whose head was taken (its "100 Continue" came back) and whose body
  is held back keeps the drain open; SIGTERM closes the listener (a new connection is
  refused); a request sent then on an open keep-alive connection (raw, and boto3) gets 503
  ServiceUnavailable + Connection: close and the connection ends; an h2c connection gets
  GOAWAY (NO_ERROR, last stream = the one it had answered) and ends; a stream sent after
  it is never answered; the held body, sent last, gets its 200 (Connection: close) and
  sluiced exits 0 saying every call was answered; after a restart its records are there.
- load: CLIENTS connections each sending ~0.5 MB PutRecords back to back when SIGTERM
  arrives: every call gets a complete answer, 200 or 503 + close, none sees its
  connection closed or reset; every 200's records are read back after a restart.
- grace 0 (SIGINT): today's stop: the held call's connection is closed unanswered.
- a second SIGTERM stops at once: the held call is closed unanswered, and logged.
- the grace ends with the held call still arriving: it is closed unanswered, and logged.

usage: test_graceful_stop.py SLUICED
"""
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import botocore.config
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ops"))
from opslib import Sluiced, check  # noqa: E402

SLUICED = sys.argv[1]
CLIENTS = 16
RECORDS = 100          # per PutRecords; RECORD_BYTES each: ~0.55 MB of JSON a call
RECORD_BYTES = 4000
DEADLINE_S = 120       # generous: conditions are waited for, never times asserted


def wait_until(what, cond):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    check(False, "never: " + what)


class Stopping(Sluiced):
    """opslib's sluiced with a shutdown grace, its log since the last start, and waits."""

    def __init__(self, tmp):
        super().__init__(SLUICED, os.path.join(tmp, "data"))
        self.log_path = os.path.join(self.data_dir, "sluiced.log")
        self.starts = 0

    def start(self, grace_ms):
        self.starts += 1
        self.offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        return super().start("--set", "server.shutdown_grace_ms=%d" % grace_ms)

    def text(self):
        with open(self.log_path) as f:
            f.seek(self.offset)
            return f.read()

    def refusing(self):
        """True once the API listener is closed (the drain began)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
            return False
        except ConnectionRefusedError:
            return True

    def wait_exit(self):
        try:
            rc = self.proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            check(False, "sluiced did not stop; log:\n" + self.text()[-3000:])
        self.proc = None
        return rc


# ---- raw HTTP/1.1 --------------------------------------------------------------------

def request_bytes(action, body, expect_continue=False):
    head = ("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_20131202.%s\r\n"
            "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n%s\r\n" % (
                action, len(body), "Expect: 100-continue\r\n" if expect_continue else ""))
    return head.encode(), body


def read_response(sock, buf=b""):
    """(status, headers dict (lower-case names), body, rest) of one response; None at EOF
    before a whole one (the connection closed or was reset: a failure to the caller)."""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (line.split(":", 1) for line in lines[1:])}
        size = int(headers.get("content-length", "0"))
        while len(buf) < size:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        return status, headers, buf[:size], buf[size:]
    except (ConnectionResetError, BrokenPipeError):
        return None


def at_eof(sock):
    """True when the peer closed (EOF or reset) with nothing more sent."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def call(port, action, body):
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
        head, data = request_bytes(action, json.dumps(body).encode())
        s.sendall(head + data)
        r = read_response(s)
    check(r is not None, "%s: no answer" % action)
    return r[0], json.loads(r[2]) if r[2] else {}


def put_body(stream, tag, count, size):
    data = base64.b64encode(b"x" * size).decode()
    return json.dumps({"StreamName": stream, "Records": [
        {"PartitionKey": "%s-%d" % (tag, i), "Data": data} for i in range(count)]}).encode()


def create_stream(port, name, shards):
    st, r = call(port, "CreateStream", {"StreamName": name, "ShardCount": shards})
    check(st == 200, "CreateStream %s: %r" % (name, r))

    def active():
        st, r = call(port, "DescribeStreamSummary", {"StreamName": name})
        return st == 200 and r["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    wait_until("stream %s ACTIVE" % name, active)


def read_keys(port, name):
    """The partition keys of every record in the stream (each put's keys are unique)."""
    st, r = call(port, "ListShards", {"StreamName": name})
    check(st == 200, "ListShards: %r" % r)
    keys = []
    for shard in r["Shards"]:
        st, it = call(port, "GetShardIterator", {"StreamName": name,
                                                 "ShardId": shard["ShardId"],
                                                 "ShardIteratorType": "TRIM_HORIZON"})
        it = it["ShardIterator"]
        while it:
            st, g = call(port, "GetRecords", {"ShardIterator": it, "Limit": 10000})
            check(st == 200, "GetRecords: %r" % g)
            keys += [x["PartitionKey"] for x in g["Records"]]
            if not g["Records"] and g.get("MillisBehindLatest", 0) == 0:
                break
            it = g.get("NextShardIterator")
    return keys


class Held:
    """A PutRecords whose head the server took (it sent "100 Continue"), body held back."""

    def __init__(self, port, stream, tag):
        self.body = put_body(stream, tag, 3, 100)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        head, _ = request_bytes("PutRecords", self.body, expect_continue=True)
        self.sock.sendall(head)  # A body sent with the head would mean "no 100 wanted".
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = self.sock.recv(4096)
            check(chunk, "the held call's connection closed before 100 Continue")
            got += chunk
        check(got.startswith(b"HTTP/1.1 100 "), "no 100 Continue: %r" % got[:80])
        self.sock.sendall(self.body[:10])

    def finish(self):
        self.sock.sendall(self.body[10:])
        return read_response(self.sock)


# ---- hand-made h2c (prior knowledge) -------------------------------------------------

H2_DATA, H2_HEADERS, H2_SETTINGS, H2_GOAWAY = 0, 1, 4, 7
FLAG_END_STREAM, FLAG_END_HEADERS, FLAG_ACK = 1, 4, 1


def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def hpack_literal(name, value):
    """A literal header field without indexing, no Huffman (names and values < 127)."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def h2_request(stream, action, body):
    block = b"\x83\x86\x84" + hpack_literal(b":authority", b"127.0.0.1") + \
        hpack_literal(b"x-amz-target", b"Kinesis_20131202." + action) + \
        hpack_literal(b"content-type", b"application/x-amz-json-1.1")
    return h2_frame(H2_HEADERS, FLAG_END_HEADERS, stream, block) + \
        h2_frame(H2_DATA, FLAG_END_STREAM, stream, body)


class H2:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        self.buf = b""
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(H2_SETTINGS, 0, 0))

    def frame(self):
        """(type, flags, stream, payload), or None at EOF/reset."""
        try:
            while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
        except ConnectionResetError:
            return None
        size = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        stream = struct.unpack(">I", self.buf[5:9])[0] & 0x7fffffff
        payload, self.buf = self.buf[9:9 + size], self.buf[9 + size:]
        if ftype == H2_SETTINGS and not flags & FLAG_ACK:
            self.sock.sendall(h2_frame(H2_SETTINGS, FLAG_ACK, 0))
        return ftype, flags, stream, payload

    def answered(self, stream):
        """Reads until `stream` ended (END_STREAM on its HEADERS or DATA)."""
        while True:
            f = self.frame()
            check(f is not None, "h2c: connection closed before stream %d's answer" % stream)
            if f[2] == stream and f[0] in (H2_HEADERS, H2_DATA) and f[1] & FLAG_END_STREAM:
                return


# ---- the cases ----------------------------------------------------------------------

def case_hold(srv):
    srv.start(60000)
    create_stream(srv.port, "hold", 2)
    keep = socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S)
    head, body = request_bytes("ListStreams", b"{}")
    keep.sendall(head + body)
    r = read_response(keep)
    check(r is not None and r[0] == 200 and r[1].get("connection") != "close",
          "keep-alive ListStreams: %r" % (r,))
    h2 = H2(srv.port)
    h2.sock.sendall(h2_request(1, b"ListStreams", b"{}"))
    h2.answered(1)
    sdk = boto3.client("kinesis", endpoint_url=srv.url, region_name="us-east-1",
                       aws_access_key_id="AKID", aws_secret_access_key="SECRET",
                       config=botocore.config.Config(retries={"total_max_attempts": 1}))
    # One attempt: with retries botocore resends the 503 on a new connection (refused
    # here: the only node is stopping), as it would to another node.
    sdk.list_streams()  # Its keep-alive connection is open before the signal.
    held = Held(srv.port, "hold", "held")

    srv.proc.send_signal(signal.SIGTERM)
    wait_until("the listener closes after SIGTERM", srv.refusing)
    try:
        sdk.put_record(StreamName="hold", Data=b"late", PartitionKey="late")
        check(False, "boto3: a put after SIGTERM was taken")
    except ClientError as e:
        check(e.response["Error"]["Code"] == "ServiceUnavailable" and
              e.response["ResponseMetadata"]["HTTPStatusCode"] == 503,
              "boto3: a put after SIGTERM: %r" % e.response)

    head, body = request_bytes("ListStreams", b"{}")
    keep.sendall(head + body)
    r = read_response(keep)
    check(r is not None, "keep-alive request after SIGTERM: connection closed unanswered")
    check(r[0] == 503 and r[1].get("connection") == "close" and
          r[1].get("x-amzn-errortype") == "ServiceUnavailable",
          "keep-alive request after SIGTERM: %d %r" % (r[0], r[1]))
    check(at_eof(keep), "the connection stays open after 503 + Connection: close")
    keep.close()

    goaway = None
    while goaway is None:
        f = h2.frame()
        check(f is not None, "h2c: closed without GOAWAY")
        if f[0] == H2_GOAWAY:
            goaway = struct.unpack(">II", f[3][:8])
    check(goaway == (1, 0), "h2c GOAWAY (last stream, error) = %r, not (1, 0)" % (goaway,))
    try:
        h2.sock.sendall(h2_request(3, b"ListStreams", b"{}"))
    except (BrokenPipeError, ConnectionResetError):
        pass  # Gone already: as good as ignored.
    while True:
        f = h2.frame()
        if f is None:
            break
        check(f[2] != 3, "h2c: stream 3, sent after GOAWAY, was answered: %r" % (f[:3],))
    h2.sock.close()

    check(srv.proc.poll() is None, "sluiced stopped with a call in flight")
    r = held.finish()
    check(r is not None, "the held call: connection closed unanswered")
    check(r[0] == 200 and r[1].get("connection") == "close",
          "the held call: %d %r %r" % (r[0], r[1], r[2][:200]))
    check(json.loads(r[2])["FailedRecordCount"] == 0, "the held call: records failed")
    held.sock.close()
    check(srv.wait_exit() == 0, "sluiced exit status")
    log = srv.text()
    check("every call answered (2 requests refused while stopping)" in log,
          "the log does not say every call was answered:\n" + log[-2000:])
    srv.start(60000)
    keys = read_keys(srv.port, "hold")
    check(sorted(keys) == ["held-0", "held-1", "held-2"], "read back: %r" % keys)
    srv.proc.send_signal(signal.SIGTERM)
    check(srv.wait_exit() == 0, "sluiced exit status (idle)")
    print("hold: 503 + close on keep-alive (raw and boto3), h2c GOAWAY(1), the held put "
          "answered 200 and read back")


def case_load(srv):
    srv.start(60000)
    create_stream(srv.port, "load", 4)
    acked = []            # partition keys of every 200's records
    outcomes = {"200": 0, "200 close": 0, "503 close": 0}
    failures = []
    lock = threading.Lock()
    started = threading.Barrier(CLIENTS + 1)
    enough = threading.Event()

    def client(i):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S)
        started.wait()
        n = 0
        while True:
            tag = "c%d-%d" % (i, n)
            head, body = request_bytes("PutRecords", put_body("load", tag, RECORDS,
                                                              RECORD_BYTES))
            try:
                sock.sendall(head + body)
            except (BrokenPipeError, ConnectionResetError) as e:
                with lock:
                    failures.append("%s: send: %r" % (tag, e))
                break
            r = read_response(sock)
            with lock:
                if r is None:
                    failures.append("%s: connection closed unanswered" % tag)
                    break
                status, headers, data = r[0], r[1], r[2]
                close = headers.get("connection") == "close"
                if status == 200 and json.loads(data)["FailedRecordCount"] == 0:
                    acked.extend("%s-%d" % (tag, k) for k in range(RECORDS))
                    outcomes["200 close" if close else "200"] += 1
                elif status == 503 and close:
                    outcomes["503 close"] += 1
                else:
                    failures.append("%s: %d %r %r" % (tag, status, headers, data[:200]))
                    break
                if outcomes["200"] >= 2 * CLIENTS:
                    enough.set()
            if close:
                if not at_eof(sock):
                    with lock:
                        failures.append("%s: open after Connection: close" % tag)
                break
            n += 1
        sock.close()

    held = Held(srv.port, "load", "held")
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    started.wait()
    check(enough.wait(DEADLINE_S), "the clients never got going")
    srv.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(DEADLINE_S)
        check(not t.is_alive(), "a client never got its last answer")
    check(not failures, "%d calls without a proper answer, e.g. %s" % (len(failures),
                                                                      failures[:3]))
    check(outcomes["503 close"] + outcomes["200 close"] == CLIENTS,
          "every client's last answer closes its connection: %r" % outcomes)
    r = held.finish()
    check(r is not None and r[0] == 200, "the held call: %r" % (r,))
    acked.extend("held-%d" % k for k in range(3))
    check(srv.wait_exit() == 0, "sluiced exit status")
    srv.start(60000)
    keys = set(read_keys(srv.port, "load"))
    missing = [k for k in acked if k not in keys]
    check(not missing, "%d of %d acknowledged records missing after the restart, e.g. %s" % (
        len(missing), len(acked), missing[:3]))
    srv.proc.send_signal(signal.SIGTERM)
    check(srv.wait_exit() == 0, "sluiced exit status (idle)")
    print("load: %d clients x %d KB PutRecords at SIGTERM: %r; none closed unanswered; "
          "%d acknowledged records read back" % (CLIENTS, RECORDS * RECORD_BYTES // 1000,
                                                outcomes, len(acked)))


def case_cut(srv, grace_ms, signals, words):
    """The held call is closed unanswered: grace 0, a second signal, or the grace ends."""
    srv.start(grace_ms)
    create_stream(srv.port, "cut%d" % srv.starts, 1)
    held = Held(srv.port, "cut%d" % srv.starts, "cut")
    for sig in signals:
        srv.proc.send_signal(sig)
        if len(signals) > 1:
            wait_until("the listener closes after the first signal", srv.refusing)
    check(srv.wait_exit() == 0, "sluiced exit status")
    check(at_eof(held.sock), "the held call was answered or left open")
    held.sock.close()
    log = srv.text()
    check(words in log, "the log lacks %r:\n%s" % (words, log[-2000:]))


def main():
    tmp = tempfile.mkdtemp(prefix="graceful-stop-")
    srv = Stopping(tmp)
    try:
        case_hold(srv)
        case_load(srv)
        case_cut(srv, 0, [signal.SIGINT], "stopping (SIGINT)")
        print("grace 0: the call in flight is closed unanswered, as before")
        case_cut(srv, 60000, [signal.SIGTERM, signal.SIGTERM],
                 "stopped at once: 1 calls (or request heads) closed unanswered")
        print("a second SIGTERM: stopped at once, 1 call closed unanswered (logged)")
        case_cut(srv, 300, [signal.SIGTERM],
                 "shutdown_grace_ms ended: 1 calls (or request heads) closed unanswered")
        print("grace ended: 1 call closed unanswered (logged)")
        print("PASS")
    finally:
        srv.kill()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
