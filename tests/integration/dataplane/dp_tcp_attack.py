#!/usr/bin/python3
"""Crafted TCP segments (scapy) against the dataplane's TCP receiver, for
test_dp_tcp_attack.sh. Runs inside the test's namespace, on the tap device, from a
source address no interface holds (198.18.0.77): the namespace's kernel drops the
appliance's answers to it instead of resetting a connection it never opened, and
AF_PACKET (scapy) still sees them.

  dp_tcp_attack.py IFACE SLUICED_PID STREAM RECORDS_OUT

Each case checks the appliance's behaviour on the wire and its counters (DPDK
telemetry), then writes the records it had acknowledged ("key data" hex lines) to
RECORDS_OUT, for the caller to compare with what the Kinesis API reads back:
  - bad checksums: a SYN and a data segment with a wrong TCP checksum are dropped
    (no answer, drop_bad_checksum counted); the same bytes with a good one are taken;
  - RST storms: outside the window ignored, inside but not at rcv_nxt answered with
    challenge ACKs (RFC 5961 3.2), rate limited (every RST is counted as acked or
    suppressed, at most DP_TCP_CHALLENGE_PER_S per second); the connection survives
    and keeps storing; then an RST exactly at rcv_nxt closes it;
  - SYN storms on an established connection, inside and outside the window:
    challenge ACKs under the same limit (RFC 5961 4.2); it survives;
  - overlapping retransmissions with different bytes, both ways (out of order first;
    in order first): the first copy wins, so the frame's CRC holds and the stored
    record is the one first sent.
"""
import os
import random
import socket
import sys
import time

from scapy.all import ARP, Ether, IP, TCP, AsyncSniffer, conf, sendp, srp  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import dp_tcp_clients as clients  # noqa: E402
import dp_telemetry  # noqa: E402

conf.verb = 0
APPLIANCE = "198.18.0.1"
US = "198.18.0.77"
PORT = 4570
CHALLENGE_PER_S = 1000  # DP_TCP_CHALLENGE_PER_S (dataplane/dp_tcp.h)
STORM = int(os.environ.get("DP_TCP_STORM", "4000"))


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def counters(pid):
    return dp_telemetry.stats(pid)


def settled(pid, name, before):
    """How much counter `name` grew since `before`, once it has stopped growing (a storm
    may lose packets on the way in, in the tap's queues: only what arrived counts)."""
    last, still = None, 0
    while still < 10:
        now = counters(pid)[name]
        still = still + 1 if now == last else 0
        last = now
        time.sleep(0.05)
    return last - before[name]


def wait_for(cond, what, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    fail(f"timed out waiting for {what}")


class Conn:
    """One crafted connection: no options but MSS and SACK-permitted (no timestamps,
    so PAWS stays out of the way of replayed segments)."""

    def __init__(self, iface, mac, sniffer, sport):
        self.iface, self.mac, self.sniffer, self.sport = iface, mac, sniffer, sport
        self.seq = random.getrandbits(32)
        self.isn = self.seq
        self.rcv = None       # next byte expected from the appliance
        self.answers = b""    # the appliance's stream, in order

    def seen(self):
        return [p for p in list(self.sniffer) if p[TCP].dport == self.sport]

    def pkt(self, flags, seq=None, payload=b"", ack=None, chksum=None, options=None):
        tcp = TCP(sport=self.sport, dport=PORT, flags=flags,
                  seq=self.seq if seq is None else seq,
                  ack=(self.rcv or 0) if ack is None else ack, window=65535,
                  options=options or [])
        if chksum is not None:
            tcp.chksum = chksum
        return Ether(dst=self.mac) / IP(src=US, dst=APPLIANCE) / tcp / payload

    def send(self, *args, **kw):
        sendp(self.pkt(*args, **kw), iface=self.iface)

    def open(self):
        n = len(self.seen())
        self.send("S", options=[("MSS", 1460), ("SAckOK", b"")])
        wait_for(lambda: any(p[TCP].flags == "SA" for p in self.seen()[n:]), "SYN-ACK")
        synack = [p for p in self.seen()[n:] if p[TCP].flags == "SA"][0]
        self.seq += 1
        self.rcv = synack[TCP].seq + 1
        self.send("A")

    def absorb(self):
        """The appliance's in-order bytes so far (answers); ACKs them."""
        got = False
        for p in self.seen():
            data = bytes(p[TCP].payload)
            start = (self.rcv - p[TCP].seq) & 0xFFFFFFFF
            if data and start < len(data):
                self.answers += data[start:]
                self.rcv = (self.rcv + len(data) - start) & 0xFFFFFFFF
                got = True
        if got:
            self.send("A")

    def wait_answers(self, count):
        def have():
            self.absorb()
            frames, _ = clients.split_answers(self.answers)
            return len(frames) >= count
        wait_for(have, f"{count} answers")
        frames, rest = clients.split_answers(self.answers)
        return [clients.parse_answer(f) for f in frames]


def frame(stream, seq, key, data):
    return bytes(clients.spec.records_frame(0x7a7a0000 + seq, 1, 1, clients.ACK_DURABLE,
                                            stream.encode(), [(key, data, 0, b"")]))


def expect_durable(conn, count, what):
    answers = conn.wait_answers(count)
    for ftype, _, _, seq, status, runs in answers:
        if ftype != clients.TYPE_ACK or status != 0 or not runs:
            fail(f"{what}: batch {seq} answered type {ftype} status {status}")
    return answers


def case_bad_checksum(iface, mac, sniffer, pid, stream, stored):
    before = counters(pid)
    c = Conn(iface, mac, sniffer, 41001)
    n = len(c.seen())
    c.send("S", options=[("MSS", 1460)], chksum=0x1234)
    time.sleep(0.3)  # nothing may come back: give it the time an answer would take
    if len(c.seen()) != n:
        fail("bad checksum: a SYN with a wrong checksum was answered")
    c.open()
    f = frame(stream, 1, b"cksum", b"taken only with a good checksum")
    n = len(c.seen())
    c.send("PA", payload=f, chksum=0xBEEF)
    time.sleep(0.3)
    if any(bytes(p[TCP].payload) for p in c.seen()[n:]):
        fail("bad checksum: a data segment with a wrong checksum was answered")
    after = counters(pid)
    if after["drop_bad_checksum"] - before["drop_bad_checksum"] < 2:
        fail("bad checksum: not counted (drop_bad_checksum)")
    c.send("PA", payload=f)
    c.seq += len(f)
    expect_durable(c, 1, "good checksum")
    stored.append((b"cksum", b"taken only with a good checksum"))
    print("bad checksums: dropped and counted; the same bytes with a good one stored")


def storm(c, flags, seqs):
    """Pre-built frames through one AF_PACKET socket: far faster than scapy's sendp, so
    the storm outruns the challenge-ACK rate limit. Returns the seconds it took."""
    frames = [bytes(c.pkt(flags, seq=s)) for s in seqs]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((c.iface, 0))
    t0 = time.monotonic()
    for i, f in enumerate(frames):
        sock.send(f)
        if i % 250 == 249:
            time.sleep(0.002)  # still ~10^5/s, but the tap's queues drop less of it
    took = time.monotonic() - t0
    sock.close()
    return took


def case_storms(iface, mac, sniffer, pid, stream, stored):
    c = Conn(iface, mac, sniffer, 41002)
    c.open()
    f = frame(stream, 2, b"storm", b"before the storms")
    c.send("PA", payload=f)
    c.seq += len(f)
    expect_durable(c, 1, "before the storms")
    stored.append((b"storm", b"before the storms"))
    # Outside the window (behind rcv_nxt, and far ahead): ignored, no answer at all.
    before = counters(pid)
    outside = [(c.seq - 100000 - i) & 0xFFFFFFFF for i in range(STORM // 2)]
    outside += [(c.seq + (1 << 30) + i) & 0xFFFFFFFF for i in range(STORM // 2)]
    storm(c, "R", outside)
    seen = settled(pid, "tcp_segments_in", before)
    after = counters(pid)
    if seen < len(outside) // 4:
        fail(f"out-of-window RSTs: {seen} of {len(outside)} arrived")
    if after["tcp_challenge_acks"] + after["tcp_challenge_suppressed"] != \
            before["tcp_challenge_acks"] + before["tcp_challenge_suppressed"]:
        fail("RST outside the window got a challenge ACK")
    if after["tcp_out_of_window"] - before["tcp_out_of_window"] != seen:
        fail("RSTs outside the window not counted (tcp_out_of_window)")
    # In the window, not at rcv_nxt: challenge ACKs, rate limited; the connection stays.
    before = after
    inside = [(c.seq + 1 + i % 60000) & 0xFFFFFFFF for i in range(STORM)]
    took = storm(c, "R", inside)
    seen = settled(pid, "tcp_resets_received", before)
    after = counters(pid)
    acks = after["tcp_challenge_acks"] - before["tcp_challenge_acks"]
    suppressed = after["tcp_challenge_suppressed"] - before["tcp_challenge_suppressed"]
    # More than one second's budget must arrive, or the limit is not put to the test.
    if seen <= CHALLENGE_PER_S or acks + suppressed != seen:
        fail(f"in-window RSTs: {acks} challenge ACKs + {suppressed} suppressed, {seen} seen "
             f"of {len(inside)}")
    # The limit is per one-second window: a storm of `took` seconds touches at most
    # int(took) + 2 of them. A storm faster than twice the limit must see suppression.
    if acks == 0 or acks > CHALLENGE_PER_S * (int(took) + 2):
        fail(f"in-window RSTs: {acks} challenge ACKs in {took:.2f} s (limit {CHALLENGE_PER_S}/s)")
    if seen / max(took, 1e-6) > 2 * CHALLENGE_PER_S and suppressed == 0:
        fail(f"in-window RSTs: {seen} in {took:.2f} s and none suppressed")
    # SYNs on the established connection: challenge ACKs too (RFC 5961 4.2).
    before = after
    syns = [(c.seq + 1 + i) & 0xFFFFFFFF for i in range(STORM // 3)]
    storm(c, "S", syns)
    seen_syn = settled(pid, "tcp_segments_in", before)
    after = counters(pid)
    challenged = after["tcp_challenge_acks"] + after["tcp_challenge_suppressed"] - \
        before["tcp_challenge_acks"] - before["tcp_challenge_suppressed"]
    if seen_syn < len(syns) // 4 or challenged != seen_syn:
        fail(f"SYN storm: {challenged} challenged of {seen_syn} seen ({len(syns)} sent)")
    # SYNs outside the window: challenge ACKs as well (any SYN), under the same limit.
    before = after
    far = [(c.seq + (1 << 30) + i) & 0xFFFFFFFF for i in range(STORM)]
    took_far = storm(c, "S", far)
    seen_far = settled(pid, "tcp_segments_in", before)
    after = counters(pid)
    far_acks = after["tcp_challenge_acks"] - before["tcp_challenge_acks"]
    challenged = far_acks + after["tcp_challenge_suppressed"] - before["tcp_challenge_suppressed"]
    if seen_far <= CHALLENGE_PER_S or challenged != seen_far or \
            far_acks > CHALLENGE_PER_S * (int(took_far) + 2):
        fail(f"SYNs outside the window: {far_acks} challenge ACKs, {challenged} challenged of "
             f"{seen_far} seen in {took_far:.2f} s")
    if after["tcp_conns_closed"] != before["tcp_conns_closed"]:
        fail("a storm closed the connection")
    # It still works.
    f = frame(stream, 3, b"storm", b"after the storms")
    c.send("PA", payload=f)
    c.seq += len(f)
    expect_durable(c, 2, "after the storms")
    stored.append((b"storm", b"after the storms"))
    # RST exactly at rcv_nxt closes it.
    before = counters(pid)
    c.send("R")
    wait_for(lambda: counters(pid)["tcp_conns_closed"] > before["tcp_conns_closed"],
             "an exact RST to close the connection")
    print(f"storms: {len(outside)} RSTs outside the window ignored, {seen} inside: "
          f"{acks} challenge ACKs + {suppressed} suppressed in {took:.2f} s, "
          f"{seen_syn} SYNs inside, {seen_far} outside ({far_acks} challenge ACKs); "
          f"the connection survived, then an exact RST closed it")


def case_overlap(iface, mac, sniffer, pid, stream, stored):
    c = Conn(iface, mac, sniffer, 41003)
    c.open()
    intent = [(b"overlap-a", b"A" * 200 + b" first copy of the tail"),
              (b"overlap-b", b"B" * 200 + b" first copy of the head")]
    # a) The tail arrives first (out of order), then the whole frame with a different tail.
    f = frame(stream, 4, *intent[0])
    half = len(f) // 2
    before = counters(pid)
    c.send("PA", seq=(c.seq + half) & 0xFFFFFFFF, payload=f[half:])
    wait_for(lambda: counters(pid)["tcp_ooo_segments"] > before["tcp_ooo_segments"],
             "the tail to be kept out of order")
    forged = f[:half] + bytes(b ^ 0x5A for b in f[half:])
    c.send("PA", payload=forged)
    c.seq += len(f)
    # b) The head arrives in order, then a retransmission of it all with a different head.
    g = frame(stream, 5, *intent[1])
    half = len(g) // 2
    c.send("PA", payload=g[:half])
    forged = bytes(b ^ 0x33 for b in g[:half]) + g[half:]
    c.send("PA", payload=forged)
    c.seq += len(g)
    expect_durable(c, 2, "overlapping retransmissions")
    after = counters(pid)
    if after["tcp_dup_bytes"] - before["tcp_dup_bytes"] < len(f) // 2:
        fail("overlap: the second copies were not counted as duplicate bytes")
    stored.extend(intent)
    print("overlaps: the first copy won both ways (frame CRCs held, durable ACKs)")


def main():
    iface, pid, stream, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    conf.iface = iface
    ans, _ = srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=APPLIANCE, psrc=US), iface=iface,
                 timeout=2, retry=3)
    if not ans:
        fail("no ARP answer from the appliance")
    mac = ans[0][1][ARP].hwsrc
    seen = []  # what the appliance sent us (AsyncSniffer keeps nothing while it runs)
    sniffer = AsyncSniffer(iface=iface, store=False, prn=seen.append,
                           lfilter=lambda p: TCP in p and IP in p and p[IP].src == APPLIANCE
                           and p[IP].dst == US)
    sniffer.start()
    time.sleep(0.2)
    stored = []
    try:
        case_bad_checksum(iface, mac, seen, pid, stream, stored)
        case_storms(iface, mac, seen, pid, stream, stored)
        case_overlap(iface, mac, seen, pid, stream, stored)
    finally:
        sniffer.stop()
    with open(out, "w") as f:
        for key, data in stored:
            f.write(f"{key.hex()} {data.hex()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
