#!/usr/bin/python3
"""
The dataplane in cluster mode (docs/CLUSTER.md "The dataplane in cluster mode"), end to
end on 127.0.0.1: a real etcd and three sluiced processes, each with the kernel-socket
dataplane (UDP and TCP on its own port), acks = all.

  usage: test_cluster_dataplane.py SLUICED SLUICE

Checks:
  - raw frames (struct, docs/PROTOCOL.md) to node 1: a RECORDS frame for a shard node 2
    leads is NACKed not_leader (status 10) and its redirect block names node 2's
    dataplane (127.0.0.1, its ingest port) and the shard; a frame over shards of two
    leaders is NACKed split_leaders (11); nothing of either is stored; node 1's
    frames_redirected and frames_split_leaders counters moved;
  - libsluice (`sluice produce --transport udp --shard-map`, then the same over
    `--transport tcp`: a connection per leader) pointed at node 1 only, for a 6-shard
    stream led by all three nodes: every record acknowledged, read back (boto3
    GetRecords on each shard's leader) exactly once at its acknowledged ShardId and
    sequence number with its data; node 1 redirected frames;
  - the replicated ACK: a frame sent straight to a shard's leader while one of its
    followers is SIGSTOPped (acks = all) is durable there (records_durable moved,
    frames_replicating moved) and not acknowledged; SIGCONT: acknowledged;
  - a shard leader SIGKILLed while two libsluice producers send, one over UDP, one over
    TCP: each follows the new leader (its shards go back to node 1, which redirects;
    over TCP when the dead leader's connection fails), and every acknowledged record is
    on the shard's new leader (duplicates, the window being per node, are counted).
Waits are for conditions with generous deadlines; no time is asserted.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster_forward as tcf  # noqa: E402  (placement, read_shard)
from campaign_data import log_seq  # noqa: E402  (the log's seq in a Kinesis number)
import test_cluster_node as tcn  # noqa: E402  (its Etcd, Node, wait_for, fail)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
from test_spec_independent import records_frame  # noqa: E402  (the spec's own encoder)

SLUICE = sys.argv[2] if len(sys.argv) > 2 else None
STREAM = "cdp"
SHARDS = 6
PRODUCER_ID = 0x5eed0c1d
NOT_LEADER, SPLIT_LEADERS = 10, 11


def shard_of(shard_id):
    return int(shard_id.split("-")[1])


def hash_key(shard, i=0):
    """An explicit hash key (16 big-endian bytes) inside shard `shard` of SHARDS even ranges."""
    return (shard * ((1 << 128) // SHARDS) + 1000 + i).to_bytes(16, "big")


def metric(node, name):
    """A dataplane counter of the node's /metrics, summed over its workers."""
    prefix = "sluice_dataplane_%s_total{" % name
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % node.admin, timeout=10) as r:
        return sum(int(float(line.split()[-1])) for line in r.read().decode().splitlines()
                   if line.startswith(prefix))


def read_shard(node, shard):
    """Every readable record of the shard on `node`: [(log seq, data)]."""
    return [(log_seq(seq), data) for seq, data, _ in tcf.read_shard(node, shard, STREAM)]


def placement(nodes):
    return tcf.placement(nodes, STREAM, SHARDS)


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def answer(sock, deadline_s=tcn.DEADLINE_S):
    """The next ACK/NACK on `sock`: (type, status, batch_seq, bytes)."""
    sock.settimeout(deadline_s)
    data = sock.recv(65535)
    return data[13], data[36], struct.unpack_from("<Q", data, 24)[0], data


def send_frame(sock, node, batch_seq, records):
    """One durable RECORDS frame to node's ingest port; records: [(key, data, hash key)]."""
    frame = records_frame(PRODUCER_ID, batch_seq, 1, 2, STREAM.encode(),
                          [(k, d, 1, h) for k, d, h in records])
    sock.sendto(bytes(frame), ("127.0.0.1", node.ingest))


def raw_frames(nodes, leaders):
    entry = nodes[0]
    s = next(s for s in range(SHARDS) if leaders[s] != 1)
    other = nodes[leaders[s] - 1]
    mine = next((x for x in range(SHARDS) if leaders[x] == 1), None)
    sock = udp_socket()
    redirected = metric(entry, "frames_redirected")
    send_frame(sock, entry, 1, [(b"raw", b"not-here", hash_key(s))])
    ftype, status, seq, data = answer(sock)
    if ftype != 3 or status != NOT_LEADER or seq != 1 or len(data) != 80:
        tcn.fail("not_leader NACK: type %d status %d seq %d, %d bytes" % (ftype, status, seq,
                                                                         len(data)))
    shard, family, reserved, port = struct.unpack_from("<IBBH", data, 56)
    if (shard, family, reserved, port, data[64:68], data[68:80]) != \
            (s, 4, 0, other.ingest, bytes([127, 0, 0, 1]), bytes(12)):
        tcn.fail("redirect block %s: want shard %d, node %d's 127.0.0.1:%d" %
                 (data[56:80].hex(), s, other.id, other.ingest))
    if metric(entry, "frames_redirected") != redirected + 1:
        tcn.fail("frames_redirected did not move by 1")
    if mine is not None:
        send_frame(sock, entry, 2, [(b"raw", b"split-a", hash_key(mine)),
                                    (b"raw", b"split-b", hash_key(s))])
        ftype, status, seq, _ = answer(sock)
        if ftype != 3 or status != SPLIT_LEADERS or seq != 2:
            tcn.fail("split frame: type %d status %d seq %d" % (ftype, status, seq))
        if metric(entry, "frames_split_leaders") != 1:
            tcn.fail("frames_split_leaders != 1")
    sock.close()
    print("raw frames: not_leader names node %d (shard %d), split_leaders checked: %s" %
          (other.id, s, mine is not None), flush=True)


class Producer:
    """`sluice produce --transport udp|tcp --shard-map` through node 1: lines in, results out."""

    def __init__(self, entry, root, name, transport="udp"):
        env = dict(os.environ, SLUICE_ENDPOINT="http://127.0.0.1:%d" % entry.api,
                   AWS_ACCESS_KEY_ID=entry.key[0], AWS_SECRET_ACCESS_KEY=entry.key[1])
        self.err = open(os.path.join(root, name + ".err"), "w")
        self.proc = subprocess.Popen(
            [SLUICE, "produce", STREAM, "--transport", transport, "--shard-map", "--lines",
             "--target", "127.0.0.1:%d" % entry.ingest, "--key-field", "1",
             "--delivery-timeout", "90s"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, env=env, text=True)
        self.results = {}   # index -> (shard, seq) or ("ERROR", text)
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self.read)
        self.reader.start()

    def read(self):
        for line in self.proc.stdout:
            f = line.rstrip("\n").split("\t")
            with self.cond:
                if f[1] == "ERROR":
                    self.results[int(f[0])] = ("ERROR", " ".join(f[2:]))
                else:
                    self.results[int(f[0])] = (shard_of(f[1]), int(f[2]))
                self.cond.notify_all()

    def put(self, index, key):
        self.proc.stdin.write("%s rec-%d\n" % (key, index))
        self.proc.stdin.flush()

    def wait_results(self, count):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.results) >= count, tcn.DEADLINE_S * 2):
                tcn.fail("only %d of %d results" % (len(self.results), count))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=tcn.DEADLINE_S * 3)
        self.reader.join()
        self.err.close()
        return self.results


def data_of(index):
    return ("k%d rec-%d" % (index, index)).encode()


def check_stored(nodes, leaders, results, first, count, exactly_once):
    """Every acknowledged record of [first, first + count) on its shard's leader at its
    position with its data; returns (acknowledged, duplicates)."""
    acked = {}
    for i in range(first, first + count):
        r = results.get(i - first)   # `sluice produce` numbers its input lines from 0.
        if r is None or r[0] == "ERROR":
            tcn.fail("record %d: %s" % (i, r))
            continue
        acked[(r[0], r[1])] = data_of(i)
    stored = {}
    dups = 0
    wanted = {data for data in acked.values()}
    for s in range(SHARDS):
        for seq, data in read_shard(nodes[leaders[s] - 1], s):
            if data in wanted and data in stored.values():
                dups += 1
            stored[(s, seq)] = data
    for pos, data in acked.items():
        if stored.get(pos) != data:
            tcn.fail("acknowledged %s at shard %d seq %s, stored there: %s" %
                     (data, pos[0], pos[1], stored.get(pos)))
    if exactly_once and dups:
        tcn.fail("%d records stored twice" % dups)
    return len(acked), dups


def produce_all(nodes, leaders, root, transport, first):
    entry = nodes[0]
    redirected = metric(entry, "frames_redirected")
    p = Producer(entry, root, "produce-" + transport, transport)
    for i in range(first, first + 300):
        p.put(i, "k%d" % i)
    results = p.close()
    acked, _ = check_stored(nodes, leaders, results, first, 300, True)
    moved = metric(entry, "frames_redirected") - redirected
    if moved < 1:
        tcn.fail("node 1 redirected nothing over %s (leaders %s)" % (transport, leaders))
    print("libsluice over %s through node 1: %d acknowledged, read back once; node 1 "
          "redirected %d frames" % (transport, acked, moved), flush=True)


def replicated_ack(nodes, leaders):
    """A follower of a shard stopped (acks = all): the leader's frame is durable, not ACKed."""
    s = 0
    leader = nodes[leaders[s] - 1]
    followers = [next(n for n in nodes if n is not leader)]
    durable = metric(leader, "records_durable")
    replicating = metric(leader, "frames_replicating")
    sock = udp_socket()
    for f in followers:
        f.signal(signal.SIGSTOP)
    try:
        send_frame(sock, leader, 10, [(b"repl", b"waits-for-replicas", hash_key(s, 7))])
        tcn.wait_for("durable on the leader", lambda: metric(leader, "records_durable") > durable
                     and metric(leader, "frames_replicating") > replicating)
        sock.setblocking(False)
        try:
            early = sock.recv(65535)
            tcn.fail("answered before a follower held it: %s" % early.hex())
        except BlockingIOError:
            pass
    finally:
        for f in followers:
            f.signal(signal.SIGCONT)
    ftype, status, seq, _ = answer(sock)
    if (ftype, status, seq) != (2, 0, 10):
        tcn.fail("after SIGCONT: type %d status %d seq %d, want the ACK" % (ftype, status, seq))
    sock.close()
    print("replicated ACK: waited for node %d (node %d leads shard %d, acks = all)" %
          (followers[0].id, leader.id, s), flush=True)


def leader_killed(nodes, leaders, root):
    """Two producers, UDP and TCP, through node 1 while a shard leader is SIGKILLed."""
    entry = nodes[0]
    victim = nodes[next(leaders[s] for s in range(SHARDS) if leaders[s] != 1) - 1]
    count = 240
    producers = [(Producer(entry, root, "failover-" + t, t), t, first)
                 for t, first in (("udp", 1000), ("tcp", 3000))]
    for p, _, first in producers:
        for i in range(first, first + 80):
            p.put(i, "k%d" % i)
    for p, _, _ in producers:
        p.wait_results(80)
    victim.signal(signal.SIGKILL)
    victim.proc.wait()
    lost = {s for s in range(SHARDS) if leaders[s] == victim.id}
    print("node %d (leader of %s) killed" % (victim.id, sorted(lost)), flush=True)
    for p, _, first in producers:
        for i in range(first + 80, first + count):
            p.put(i, "k%d" % i)
    closed = [(p.close(), t, first) for p, t, first in producers]
    after = tcn.wait_for("every shard led by a live node", lambda: placement(nodes),
                         tcn.DEADLINE_S * 2)
    for results, transport, first in closed:
        followed = sum(1 for j in range(80, count) if results.get(j, ("ERROR",))[0] in lost)
        if followed == 0:
            tcn.fail("%s: no record of the killed leader's shards %s was acknowledged after "
                     "the kill" % (transport, sorted(lost)))
        acked, dups = check_stored(nodes, after, results, first, count, False)
        print("leader killed, %s: %d acknowledged (%d of them in its shards, after the kill), "
              "each on its shard's leader; %d stored twice; leaders now %s" %
              (transport, acked, followed, dups, after), flush=True)


def main():
    root = tempfile.mkdtemp(prefix="sluice-cdp-")
    etcd = tcn.Etcd(root)
    nodes = [tcn.Node(root, i, etcd, cluster="cdptest", ttl=6, acks="all", dataplane=True)
             for i in (1, 2, 3)]
    done = False
    try:
        for n in nodes:
            n.start()
        nodes[0].client.create_stream(StreamName=STREAM, ShardCount=SHARDS)
        tcn.active_everywhere(nodes, STREAM)
        leaders = tcn.wait_for("every shard led and seen by every node", lambda: placement(nodes))
        print("leaders by shard: %s" % leaders, flush=True)
        if set(leaders.values()) != {1, 2, 3}:
            tcn.fail("the shards are not led by all three nodes: %s" % leaders)
        raw_frames(nodes, leaders)
        produce_all(nodes, leaders, root, "udp", 0)
        produce_all(nodes, leaders, root, "tcp", 500)
        replicated_ack(nodes, leaders)
        leaders = tcn.wait_for("placement again", lambda: placement(nodes))
        leader_killed(nodes, leaders, root)
        done = True
    except BaseException:
        traceback.print_exc()   # tcn.finish() exits on a failure: say why first.
        raise
    finally:
        pids = [n.proc.pid for n in nodes if n.proc is not None]
        try:
            tcn.finish(nodes, etcd, root, done)
        finally:
            for pid in pids:   # EAL's runtime files (file prefix sluice-<pid>).
                subprocess.run(["rm", "-rf", "/var/run/dpdk/sluice-%d" % pid])


if __name__ == "__main__":
    main()
