"""The campaign's data checks (campaign.py --data): boto3 producers and a libsluice producer
keeping a ledger of every acknowledged record, and the read-back of every shard from every
node at the end.

boto3 producers run in the client namespace (one thread each, setns), send PutRecords to a live
node picked at random per call, never retry inside botocore (total_max_attempts 1; botocore's
max_attempts counts retries, so the 1 this said before allowed one: a client retry would
append a record twice, which is the client's doing, not the cluster's), and give every record
unique bytes: "<producer>:<key>:<counter>:<padding>".

The dataplane producer (Cluster(dataplane=True): every node runs the kernel-socket dataplane)
is `sluice produce --shard-map` (libsluice) in rounds of DP_ROUND records, each round one
process through a live node picked at random (its entry node: the shard map and the
redirects), over UDP or TCP in turn; its records are "dpk<key> <counter> <padding>" (the
first field the partition key). libsluice resends a batch on its own (the same batch_seq,
one batch in flight per shard: per-key order holds); what it acknowledges joins the ledger.

Sequence numbers in the ledger and the reads are the log's per-shard numbers (log_seq): an
ACK frame carries that, a Kinesis number encodes it with the arrival time besides.
"""
import os
import random
import subprocess
import threading
import time

import boto3
import botocore.config

from harness import ACCESS_KEY, DATAPLANE_PORT, SECRET_KEY, wait_for

PRODUCERS = 2
KEYS_PER_PRODUCER = 8
RECORD_PAD = 64
# How long a record missing from a replica's read-back is read again before it counts.
READ_AGAIN_S = 30.0
# The dataplane producer: records per `sluice produce` round, and how long one of them may
# wait for its ACK (a round whose entry node is down or gone waits this long at most).
DP_ROUND = 200
DP_DELIVERY_S = 30
DP_KEYS = 8
DP_PREFIX = b"dpk"


def log_seq(sequence_number):
    """The log's per-shard seq inside a Kinesis sequence number (control/seqnum.h: hex digits
    11 .. 26 of the 47), what an ACK frame and `sluice produce` report."""
    return int(("%047x" % int(sequence_number))[11:27], 16)


def is_dataplane(data):
    return data.startswith(DP_PREFIX)


def client(url):
    cfg = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                 connect_timeout=2, read_timeout=10)
    return boto3.client("kinesis", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=cfg)


def create_stream(c, name, shards):
    """CreateStream through node 1's API (stream metadata goes to etcd from there), ACTIVE."""
    done = {}

    def create():
        c.enter()
        k = client(c.nodes[0].api_url)
        k.create_stream(StreamName=name, ShardCount=shards)
        wait_for(lambda: k.describe_stream_summary(StreamName=name)[
            "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", "stream active")
        done["ok"] = True
    t = threading.Thread(target=create)
    t.start()
    t.join()
    if not done:
        raise RuntimeError("CreateStream %s failed (see above)" % name)


def longest_gap(times):
    t = sorted(times)
    return max((b - a for a, b in zip(t, t[1:])), default=0.0)


class Data:
    def __init__(self, camp):
        self.camp = camp
        self.c = camp.c
        self.streams = []
        self.acked = []          # (stream, shard, seq, key, data, order)
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = []
        self.calls = 0
        self.errors = 0
        self.ack_times = []      # monotonic time of every call that acknowledged a record
        self.shard_ack_times = {}   # (stream, shard) -> monotonic times of its acked records
        # A failed call's exception (with the node called) or a record's ErrorCode -> count.
        self.error_kinds = {}
        self.keys_per_producer = KEYS_PER_PRODUCER
        self.dp_acked = 0
        self.dp_rounds = 0

    def more_acks(self, n, what=""):
        """Waits until n more calls acknowledged records (ingest goes on)."""
        start = len(self.ack_times)
        wait_for(lambda: len(self.ack_times) >= start + n,
                 "%d more acknowledging calls %s(%d so far, errors %r)" %
                 (n, what + " " if what else "", start, self.error_kinds))

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def create_stream(self, name, shards):
        create_stream(self.c, name, shards)
        self.streams.append(name)

    def start(self):
        for p in range(PRODUCERS):
            t = threading.Thread(target=self._produce, args=(p,), daemon=True)
            t.start()
            self.threads.append(t)
        if self.c.dataplane:
            t = threading.Thread(target=self._produce_dataplane, daemon=True)
            t.start()
            self.threads.append(t)

    def _live_picks(self, rng):
        """A live node's id picked at random, again and again until the producers stop."""
        while not self.stop_flag.is_set():
            live = self.camp.live_ids()
            if not live:
                time.sleep(0.05)   # Every node down for a moment: a pause, not a wait.
                continue
            yield rng.choice(live)

    def _count_error(self, kind):
        with self.lock:
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def _produce_dataplane(self):
        """Rounds of `sluice produce` until stopped; the last round finishes (each record
        answered or failed within DP_DELIVERY_S)."""
        rng = random.Random(self.camp.args.seed * 1000 + PRODUCERS)
        counters = {}
        for nid in self._live_picks(rng):
            node = self.c.nodes[nid - 1]
            transport = ("udp", "tcp")[self.dp_rounds % 2]
            self.dp_rounds += 1
            recs = []
            for _ in range(DP_ROUND):
                name = "dpk%d" % rng.randrange(DP_KEYS)
                counters[name] = counters.get(name, 0) + 1
                data = ("%s %d " % (name, counters[name])).encode().ljust(RECORD_PAD, b".")
                recs.append((name, data, counters[name]))
            self._dp_round(node, transport, rng.choice(self.streams), recs)

    def _dp_round(self, node, transport, stream, recs):
        """One `sluice produce` process: recs in, each record's answer out, into the ledger."""
        env = dict(os.environ, SLUICE_ENDPOINT=node.api_url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                   AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1")
        r = subprocess.run(
            ["ip", "netns", "exec", self.c.client_ns, self.c.cli, "produce", stream,
             "--transport", transport, "--shard-map", "--lines", "--key-field", "1",
             "--target", "%s:%d" % (node.addr, DATAPLANE_PORT),
             "--delivery-timeout", "%ds" % DP_DELIVERY_S],
            input=b"".join(data + b"\n" for _, data, _ in recs), capture_output=True, env=env)
        answered = 0
        for line in r.stdout.decode().splitlines():
            f = line.split("\t")
            name, data, order = recs[int(f[0])]
            answered += 1
            if f[1] == "ERROR":
                # The code, and for one libsluice has no name for, its message.
                self._count_error("dp:%s@n%d%s" % (f[2], node.id, "" if f[2] != "Error" else
                                                   ":" + " ".join(f[3:])[:60]))
                continue
            with self.lock:
                self.dp_acked += 1
                self.acked.append((stream, f[1], int(f[2]), name, data, order))
        if r.returncode != 0 and answered == 0:
            # No answer at all: the entry's API did not give the shard map (a node going down).
            why = (r.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
            self._count_error("dp:exit%d@n%d:%s" % (r.returncode, node.id, why[:60]))

    def _produce(self, p):
        self.c.enter()
        rng = random.Random(self.camp.args.seed * 1000 + p)
        clients = {}
        counters = {}
        for nid in self._live_picks(rng):
            k = clients.setdefault(nid, client(self.c.nodes[nid - 1].api_url))
            stream = rng.choice(self.streams)
            keys = rng.sample(range(self.keys_per_producer), 4)
            recs = []
            for key in keys:
                name = "p%dk%d" % (p, key)
                counters[name] = counters.get(name, 0) + 1
                data = ("%s:%d:" % (name, counters[name])).encode().ljust(RECORD_PAD, b".")
                recs.append((name, data, counters[name]))
            try:
                r = k.put_records(StreamName=stream, Records=[
                    {"Data": d, "PartitionKey": n} for n, d, _ in recs])
            except Exception as e:
                with self.lock:
                    self.calls += 1
                    self.errors += 1
                    kind = "%s@n%d" % (type(e).__name__, nid)
                    self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
                continue
            now = time.monotonic()
            with self.lock:
                self.calls += 1
                if any("ErrorCode" not in out for out in r["Records"]):
                    self.ack_times.append(now)
                for (name, data, order), out in zip(recs, r["Records"]):
                    if "ErrorCode" in out:
                        kind = out["ErrorCode"]
                        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
                    else:
                        self.shard_ack_times.setdefault((stream, out["ShardId"]), []).append(now)
                        self.acked.append((stream, out["ShardId"], log_seq(out["SequenceNumber"]),
                                           name, data, order))

    def read_all(self, node):
        """Every record of every shard, through node's API, from TRIM_HORIZON to the end."""
        out = {}

        def read():
            self.c.enter()
            k = client(node.api_url)
            for s in self.streams:
                for sh in k.list_shards(StreamName=s)["Shards"]:
                    it = k.get_shard_iterator(StreamName=s, ShardId=sh["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                    recs = out.setdefault((s, sh["ShardId"]), [])
                    while it:
                        r = k.get_records(ShardIterator=it, Limit=10000)
                        recs += [(log_seq(x["SequenceNumber"]), x["PartitionKey"], x["Data"])
                                 for x in r["Records"]]
                        it = r.get("NextShardIterator")
                        if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                            break
        t = threading.Thread(target=read)
        t.start()
        t.join()
        return out

    def finish(self):
        """Stops the producers, brings every node of the cluster back (not the spare, which
        left drained), reads each; (acked, violations)."""
        import campaign
        self.stop()
        self.camp.ops += self.calls
        self.c.heal_all()
        members = [self.camp.node(i) for i in self.camp.member_ids()]
        for n in members:
            n.resume()
            if not n.alive:
                n.start()
        self.camp.w.wait(campaign.settled_without(None, [n.id for n in members]),
                         "every node back before the read-back")
        return len(self.acked), self.check(members)

    def stop(self):
        """Stops the producers and waits for them."""
        self.stop_flag.set()
        for t in self.threads:
            t.join()

    def longest_ack_gap_s(self):
        """The longest time between two acknowledging calls, over all producers (0 with
        fewer than two)."""
        return longest_gap(self.ack_times)

    def longest_shard_gap_s(self):
        """The longest time between two records acknowledged for one shard (as the producers
        spread their keys: a shard goes unwritten for a while by chance too)."""
        return max((longest_gap(t) for t in self.shard_ack_times.values()), default=0.0)

    def print_dp_dups(self, reads, most=3):
        """The first few dataplane records read twice: where each copy is (the known limit:
        a batch stored by a leader that died before its ACK, resent to the next)."""
        acked = {a[4]: a[2] for a in self.acked}
        shown = 0
        for node, shards in reads.items():
            for (s, sh), recs in shards.items():
                at = {}
                for seq, _, data in recs:
                    at.setdefault(data, []).append(seq)
                for data, seqs in at.items():
                    if len(seqs) > 1 and is_dataplane(data) and shown < most:
                        shown += 1
                        print("cluster-campaign: dp_dup on node %d: %s/%s %r at seqs %s, "
                              "acknowledged at %s" % (node, s, sh, data[:16], seqs,
                                                      acked.get(data)), flush=True)

    def check(self, nodes):
        """Reads every shard from each of `nodes` that its final in-sync set holds and checks
        the ledger against it: (lost, dup, misordered, split_brain, dp_dup)."""
        import campaign
        # Each node answers for the shards it holds in sync (the final placement's isr): a
        # replica still catching up may lack records, and says so by not being in the set.
        # A follower's readable end is the watermark its leader ships after the fact: a record
        # missing from a read is read again until the deadline before it counts as lost.
        end = time.monotonic() + READ_AGAIN_S
        while True:
            final = self.camp.w.state()["shards"]
            reads = {}
            for n in nodes:
                held = {k for k, v in final.items() if n.id in v["isr"]}
                reads[n.id] = {k: v for k, v in self.read_all(n).items() if k in held}
                self.camp.ops += 1
            missing = []
            verdict = campaign.ledger_violations(self.acked, reads, missing, is_dataplane)
            if not missing or time.monotonic() > end:
                break
            time.sleep(0.5)   # A pause between read-backs, not an assertion on time.
        self.print_dp_dups(reads)
        for node, rec, got in missing[:10]:
            if node == 0:
                print("cluster-campaign: split brain: %s/%s seq %d acknowledged for %r and %r" %
                      (rec[0], rec[1], rec[2], rec[4][:24], got[:24]), flush=True)
                continue
            shard = reads[node].get((rec[0], rec[1]), [])
            others = [n for n, r in reads.items()
                      if any(x[2] == rec[4] for x in r.get((rec[0], rec[1]), []))]
            # What the node holds at that number: another record (a divergent one) or none (a gap).
            at = next((x[2][:24] for x in shard if x[0] == rec[2]), None)
            print("cluster-campaign: lost on node %d: %s/%s seq %d key %s (%r); read there: %r; "
                  "at that seq there: %r; "
                  "that node read %d records of the shard, the last at seq %s; held by nodes %r; "
                  "final placement %r" %
                  (node, rec[0], rec[1], rec[2], rec[3], rec[4][:24], got, at, len(shard),
                   shard[-1][0] if shard else None, others, final.get((rec[0], rec[1]))),
                  flush=True)
        return verdict
