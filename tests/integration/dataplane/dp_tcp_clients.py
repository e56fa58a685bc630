#!/usr/bin/python3
"""TCP producers for test_dp_tcp.sh, built on tests/protocol/test_spec_independent.py (an
implementation of docs/PROTOCOL.md written from the document alone), not on the C codec:

  python ADDR STREAM LEDGER CONNS RECORDS SEED   CONNS Linux sockets, each a producer id
        sending RECORDS records in frames of PER_FRAME, at most 8 unacknowledged
        (PROTOCOL.md §5), each ACK's runs written to LEDGER.<connection> as
        "shard seq key data".
  nc-frames STREAM FRAMES MANIFEST RECORDS SEED  pre-built frames for `nc` to pipe, and
        what each batch holds (the ledger needs it once the answers are back).
  nc-ledger MANIFEST ANSWERS LEDGER              the answers nc wrote out, into a ledger.
  conns ADDR STREAM COUNT                        COUNT connections open at once, each
        sends one frame and gets its ACK while all are open; then all close.
  lines PATH COUNT SEED                          COUNT lines "key payload" for
        `sluice produce --lines --key-field 1`.
  produce-ledger LINES OUTPUT LEDGER             what sluice produce printed per line
        ("index <tab> shardId-N <tab> seq") into a ledger; a line without a position
        or not stored fails.
Every answer must be a durable ACK; anything else fails (exit 1).
"""
import os
import random
import selectors
import socket
import string
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "protocol"))
import test_spec_independent as spec  # noqa: E402

PER_FRAME = 50
WINDOW = 8  # FRAME_DEDUP_WINDOW
ACK_DURABLE = 2
TYPE_ACK, TYPE_NACK = 2, 3
F_DUPLICATE = 0x8
ALPHABET = string.ascii_letters + string.digits


def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c_fast(data):
    """spec.crc32c, byte-wise with a table (the bit-wise one costs minutes for 10^5 records)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c_fast(b"123456789") == spec.crc32c(b"123456789") == 0xE3069283
spec.crc32c = crc32c_fast  # records_frame() seals through the module's crc32c


def make_records(rng, count):
    out = []
    for _ in range(count):
        key = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 24)))
        data = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 96)))
        out.append((key, data))
    return out


def make_batches(rng, stream, records, producer_id):
    batches = []
    for i in range(0, len(records), PER_FRAME):
        recs = records[i:i + PER_FRAME]
        frame = spec.records_frame(producer_id, len(batches) + 1, 1, ACK_DURABLE,
                                   stream.encode(),
                                   [(k.encode(), d.encode(), 0, b"") for k, d in recs])
        batches.append((bytes(frame), recs))
    return batches


def parse_answer(frame):
    """(type, flags, producer_id, batch_seq, status, [(seq_first, shard, count)])."""
    if frame[:4] != b"SLUC" or spec.crc32c(frame[8:]) != struct.unpack_from("<I", frame, 4)[0]:
        raise ValueError("answer with a bad magic or CRC")
    _, ftype, flags = struct.unpack_from("<BBH", frame, 12)
    pid, seq, _, status, _, _, _, runs, _, _, _ = struct.unpack_from("<QQIBBHHHIII", frame, 16)
    out = [struct.unpack_from("<QIH", frame, 56 + 16 * r) for r in range(runs)]
    return ftype, flags, pid, seq, status, out


def split_answers(buf):
    """Whole frames at the front of buf, and the rest."""
    frames = []
    while len(buf) >= 16:
        size = struct.unpack_from("<I", buf, 8)[0]
        if size < 16 or len(buf) < size:
            break
        frames.append(bytes(buf[:size]))
        buf = buf[size:]
    return frames, buf


def ledger_lines(recs, runs):
    lines = []
    it = iter(recs)
    for seq_first, shard, count in runs:
        for k in range(count):
            key, data = next(it)
            lines.append(f"{shard} {seq_first + k} {key} {data}\n")
    if next(it, None) is not None:
        raise ValueError("ACK runs do not cover the batch")
    return lines


def producer(addr, stream, records, seed, out, errors):
    """One connection, one producer id, at most WINDOW batches unacknowledged."""
    rng = random.Random(seed)
    try:
        batches = make_batches(rng, stream, make_records(rng, records), rng.getrandbits(63) | 1)
        sock = socket.create_connection((addr, 4570), timeout=120)
        done = [None] * len(batches)
        sent = acked = 0
        buf = b""
        while acked < len(batches):
            while sent < len(batches) and sent - acked < WINDOW:
                sock.sendall(batches[sent][0])
                sent += 1
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the appliance")
            frames, buf = split_answers(buf + data)
            for f in frames:
                ftype, _, _, seq, status, runs = parse_answer(f)
                if ftype != TYPE_ACK or status != 0 or not runs:
                    raise ValueError(f"batch {seq}: type {ftype} status {status}")
                if done[seq - 1] is None:
                    done[seq - 1] = ledger_lines(batches[seq - 1][1], runs)
                    acked += 1
        sock.close()
        out.extend(line for lines in done for line in lines)
    except Exception as e:  # noqa: BLE001 - reported by the caller
        errors.append(f"producer {seed}: {e!r}")


def cmd_python(addr, stream, ledger, conns, records, seed):
    outs = [[] for _ in range(conns)]
    errors = []
    threads = [threading.Thread(target=producer,
                                args=(addr, stream, records, seed * 1000 + i, outs[i], errors))
               for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("\n".join(errors))
        return 1
    for i, lines in enumerate(outs):  # one ledger per producer: per-key order is per producer
        with open(f"{ledger}.{i}", "w") as f:
            f.writelines(lines)
    print(f"python: {conns * records} records over {conns} connections acknowledged")
    return 0


def cmd_nc_frames(stream, frames_path, manifest_path, records, seed):
    rng = random.Random(seed)
    batches = make_batches(rng, stream, make_records(rng, records), rng.getrandbits(63) | 1)
    with open(frames_path, "wb") as f:
        for frame, _ in batches:
            f.write(frame)
    with open(manifest_path, "w") as f:
        for _, recs in batches:
            f.write(" ".join(f"{k}:{d}" for k, d in recs) + "\n")
    return 0


def cmd_nc_ledger(manifest_path, answers_path, ledger_path):
    batches = [[tuple(r.split(":")) for r in line.split()] for line in open(manifest_path)]
    frames, rest = split_answers(open(answers_path, "rb").read())
    done = {}
    for f in frames:
        ftype, _, _, seq, status, runs = parse_answer(f)
        if ftype != TYPE_ACK or status != 0 or not runs:
            print(f"nc: batch {seq}: type {ftype} status {status}")
            return 1
        done.setdefault(seq, ledger_lines(batches[seq - 1], runs))
    if rest or len(done) != len(batches):
        print(f"nc: {len(done)} of {len(batches)} batches acknowledged, {len(rest)} bytes left")
        return 1
    with open(ledger_path, "w") as f:
        for seq in sorted(done):
            f.writelines(done[seq])
    print(f"nc: {sum(len(b) for b in batches)} records in {len(batches)} frames acknowledged")
    return 0


def cmd_conns(addr, stream, count):
    """count sockets connected at once; each sends a frame and must get its ACK."""
    sel = selectors.DefaultSelector()
    rng = random.Random(count)
    socks = []
    deadline = time.monotonic() + 120
    for i in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((addr, 4570))
        frame = spec.records_frame(rng.getrandbits(63) | 1, 1, 1, ACK_DURABLE, stream.encode(),
                                   [(f"k{i}".encode(), f"conn {i}".encode(), 0, b"")])
        socks.append([s, bytes(frame), b"", False])
        sel.register(s, selectors.EVENT_WRITE, i)
    pending = count
    while pending and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1):
            st = socks[key.data]
            s = st[0]
            if ev & selectors.EVENT_WRITE:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    print(f"conns: connection {key.data} failed")
                    return 1
                s.send(st[1])
                sel.modify(s, selectors.EVENT_READ, key.data)
                continue
            data = s.recv(4096)
            if not data:
                print(f"conns: connection {key.data} closed before its ACK")
                return 1
            frames, st[2] = split_answers(st[2] + data)
            for f in frames:
                ftype, _, _, _, status, _ = parse_answer(f)
                if ftype != TYPE_ACK or status != 0:
                    print(f"conns: connection {key.data}: type {ftype} status {status}")
                    return 1
                st[3] = True
                pending -= 1
                sel.unregister(s)
    if pending:
        print(f"conns: {pending} of {count} connections without an ACK")
        return 1
    # Every socket is still open here: all COUNT were established at once.
    print(f"conns: {count} connections open at once, each acknowledged")
    if len(sys.argv) > 5:  # a command to run while they are all open (counters)
        rc = os.system(sys.argv[5])
        if rc != 0:
            return 1
    for st in socks:
        st[0].close()
    return 0


def cmd_lines(path, count, seed):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for key, data in make_records(rng, count):
            f.write(f"{key} {data}\n")
    return 0


def cmd_produce_ledger(lines_path, output_path, ledger_path):
    lines = [line.rstrip("\n") for line in open(lines_path)]
    done = [None] * len(lines)
    for row in open(output_path):
        index, shard, seq = row.rstrip("\n").split("\t")[:3]
        if not shard.startswith("shardId-") or not seq.isdigit():
            print(f"produce: line {index}: {row.strip()}")
            return 1
        if done[int(index)] is not None:
            print(f"produce: line {index} reported twice")
            return 1
        done[int(index)] = (int(shard.split("-")[1]), int(seq))
    if None in done:
        print(f"produce: {done.count(None)} of {len(lines)} lines not reported")
        return 1
    with open(ledger_path, "w") as f:
        for line, (shard, seq) in zip(lines, done):
            f.write(f"{shard} {seq} {line.split(' ', 1)[0]} {line}\n")
    return 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "python":
        return cmd_python(args[0], args[1], args[2], int(args[3]), int(args[4]), int(args[5]))
    if cmd == "nc-frames":
        return cmd_nc_frames(args[0], args[1], args[2], int(args[3]), int(args[4]))
    if cmd == "nc-ledger":
        return cmd_nc_ledger(args[0], args[1], args[2])
    if cmd == "lines":
        return cmd_lines(args[0], int(args[1]), int(args[2]))
    if cmd == "produce-ledger":
        return cmd_produce_ledger(args[0], args[1], args[2])
    if cmd == "conns":
        return cmd_conns(args[0], args[1], int(args[2]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
