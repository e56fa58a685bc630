#!/usr/bin/python3
"""
Encryption at rest end to end: sluiced (no dataplane) with a keyring file,
driven by boto3.

  usage: test_encryption.py SLUICED SLUICE

Records written before StartStreamEncryption stay readable and stay plaintext
on disk; after it (UPDATING, then ACTIVE, EncryptionType KMS and the KeyId in
DescribeStream and DescribeStreamSummary, EncryptionType KMS in PutRecord(s)
answers and on records) the segment files never hold a record's bytes, yet
GetRecords returns them. Key rotation (a new version in the file, SIGHUP):
new records use it and old ones stay readable; with the old version gone
from the file, old records fail with KMSNotFoundException, other bytes under
the same id and version with KMSAccessDeniedException, a disabled key with
KMSDisabledException (reads and writes); none of them returns ciphertext.
StopStreamEncryption makes new records plaintext again; the state survives a
restart. Frames through the dataplane (kernel backend, UDP on 127.0.0.1) to
the encrypted stream are encrypted the same way. Validation: EncryptionType, KeyId forms and unknown keys, unknown
streams; a world-readable keyring stops sluiced at start with its mode named.
Uses its own temp dir and free ports; stops only its own sluiced.
"""
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ops"))
from opslib import Sluiced, check, free_port, wait_active  # noqa: E402

SLUICED = sys.argv[1]
SLUICE = sys.argv[2]
STREAM = "enc"
KEY_V1 = "11" * 32
KEY_V2 = "22" * 32
KEY_OTHER = "33" * 32
ACCOUNT_ARN = "arn:aws:kms:us-east-1:000000000000"
LAST_PLAIN = None  # Sequence number of the last record written before encryption.


def client(srv):
    """boto3 without its own parameter checks: the server's answers are under test."""
    cfg = botocore.config.Config(parameter_validation=False, connect_timeout=5,
                                 read_timeout=30, retries={"max_attempts": 1})
    return boto3.client("kinesis", endpoint_url=srv.url, region_name="us-east-1",
                        aws_access_key_id="AKID", aws_secret_access_key="SECRET", config=cfg)


def write_keyring(path, lines, mode=0o600):
    with open(path + ".tmp", "w") as f:
        f.write("# test keyring\n" + "\n".join(lines) + "\n")
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)


def reload_keyring(srv, versions):
    """SIGHUP, then wait for the journal line naming the new key count."""
    log = os.path.join(srv.data_dir, "sluiced.log")
    before = open(log, "rb").read().count(b"keyring ")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = open(log, "rb").read()
        if text.count(b"keyring ") > before:
            last = text[text.rfind(b"keyring "):].split(b"\n")[0]
            check(b"%d key versions" % versions in last, "reload said %r" % last)
            return
        time.sleep(0.05)
    raise SystemExit("FAIL: no keyring line after SIGHUP")


def disk_has(data_dir, needle):
    for path in glob.glob(os.path.join(data_dir, "log", "seg-*.log")):
        with open(path, "rb") as f:
            if needle in f.read():
                return True
    return False


def expect_error(code, fn, **kwargs):
    try:
        out = fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, "%s: got %s (%s), want %s" % (
            fn.__name__, got, e.response["Error"].get("Message"), code))
        return e.response["Error"].get("Message", "")
    raise SystemExit("FAIL: %s(%s) answered %r, want %s" % (fn.__name__, kwargs, out, code))


def shard_id(kc):
    return kc.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]


def iterator(kc, seq_after=None):
    args = {"ShardIteratorType": "TRIM_HORIZON"} if seq_after is None else {
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": seq_after}
    return kc.get_shard_iterator(StreamName=STREAM, ShardId=shard_id(kc),
                                 **args)["ShardIterator"]


def read_all(kc, seq_after=None):
    """Every record from TRIM_HORIZON (or after seq_after) up to the tip."""
    it = iterator(kc, seq_after)
    out = []
    while True:
        r = kc.get_records(ShardIterator=it, Limit=1000)
        out += r["Records"]
        if not r["Records"]:
            return out
        it = r["NextShardIterator"]


def put(kc, prefix, count):
    """Puts prefix-0 .. prefix-(count-1) (half PutRecord, half PutRecords); returns answers."""
    answers = []
    for i in range(count // 2):
        answers.append(kc.put_record(StreamName=STREAM, PartitionKey="pk",
                                     Data=b"%s-%d" % (prefix, i)))
    r = kc.put_records(StreamName=STREAM, Records=[
        {"PartitionKey": "pk", "Data": b"%s-%d" % (prefix, i)}
        for i in range(count // 2, count)])
    check(r["FailedRecordCount"] == 0, "PutRecords failed: %r" % r)
    answers.append(r)
    answers += r["Records"]
    return answers


def datas(records):
    return [r["Data"] for r in records]


def wait_status(kc, want):
    for _ in range(400):
        s = kc.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
        if s["StreamStatus"] == want:
            return s
        time.sleep(0.05)
    raise SystemExit("FAIL: stream never %s" % want)


def test_validation(kc):
    key = "alias/aws/kinesis"
    expect_error("ResourceNotFoundException", kc.start_stream_encryption,
                 StreamName="nosuch", EncryptionType="KMS", KeyId=key)
    expect_error("ValidationException", kc.start_stream_encryption,
                 StreamName=STREAM, EncryptionType="AES", KeyId=key)
    expect_error("ValidationException", kc.start_stream_encryption,
                 StreamName=STREAM, EncryptionType="KMS", KeyId="")
    expect_error("ValidationException", kc.start_stream_encryption,
                 StreamName=STREAM, EncryptionType="KMS", KeyId="k" * 2049)
    expect_error("InvalidArgumentException", kc.start_stream_encryption,
                 StreamName=STREAM, EncryptionType="NONE", KeyId=key)
    for unknown in ("nosuch-key", "alias/nosuch", ACCOUNT_ARN + ":key/nosuch",
                    ACCOUNT_ARN + ":alias/nosuch"):
        expect_error("KMSNotFoundException", kc.start_stream_encryption,
                     StreamName=STREAM, EncryptionType="KMS", KeyId=unknown)
    expect_error("ResourceNotFoundException", kc.stop_stream_encryption,
                 StreamName="nosuch", EncryptionType="KMS", KeyId=key)
    s = kc.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    check(s["EncryptionType"] == "NONE" and "KeyId" not in s, "still unencrypted: %r" % s)


def test_start(kc, srv):
    before = put(kc, b"BEFORE-MARK", 10)
    for a in before:
        check("EncryptionType" not in a, "plain put answer %r" % a)
    check(all("EncryptionType" not in r for r in read_all(kc)), "plain records say nothing")
    kc.start_stream_encryption(StreamName=STREAM, EncryptionType="KMS",
                               KeyId="alias/aws/kinesis")
    s = kc.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    check(s["StreamStatus"] == "UPDATING", "status after start: %s" % s["StreamStatus"])
    expect_error("ResourceInUseException", kc.start_stream_encryption,
                 StreamName=STREAM, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    s = wait_status(kc, "ACTIVE")
    check(s["EncryptionType"] == "KMS" and s["KeyId"] == "alias/aws/kinesis",
          "summary after start: %r" % s)
    d = kc.describe_stream(StreamName=STREAM)["StreamDescription"]
    check(d["EncryptionType"] == "KMS" and d["KeyId"] == "alias/aws/kinesis",
          "describe after start: %r" % d)
    after = put(kc, b"AFTER-MARK", 10)
    check(all(a["EncryptionType"] == "KMS" for a in after if "ResponseMetadata" in a),
          "encrypted put answers: %r" % after)
    records = read_all(kc)
    global LAST_PLAIN
    LAST_PLAIN = records[9]["SequenceNumber"]
    want = [b"BEFORE-MARK-%d" % i for i in range(10)] + [b"AFTER-MARK-%d" % i for i in range(10)]
    check(datas(records) == want, "read back %r" % datas(records))
    check(all(r["EncryptionType"] == "KMS" for r in records[10:]), "records say KMS")
    check(disk_has(srv.data_dir, b"BEFORE-MARK-3"), "plain records are on disk as they were")
    check(not disk_has(srv.data_dir, b"AFTER-MARK"), "encrypted records' plaintext on disk")
    return records[-1]["SequenceNumber"]


def test_rotation(kc, srv, keyring, last_v1):
    write_keyring(keyring, ["key-1 1 %s alias/aws/kinesis" % KEY_V1, "key-1 2 %s" % KEY_V2])
    reload_keyring(srv, 2)
    put(kc, b"ROT-MARK", 6)
    check(len(read_all(kc)) == 26, "all records after the rotation")
    check(not disk_has(srv.data_dir, b"ROT-MARK"), "rotated records' plaintext on disk")
    # Version 1 gone: records under it cannot be read; those under version 2 can.
    write_keyring(keyring, ["key-1 2 %s alias/aws/kinesis" % KEY_V2])
    reload_keyring(srv, 1)
    expect_error("KMSNotFoundException", kc.get_records, ShardIterator=iterator(kc, LAST_PLAIN))
    check(datas(read_all(kc, last_v1)) == [b"ROT-MARK-%d" % i for i in range(6)],
          "version 2 records after the rotation")
    # Other bytes under the same id and version: access denied; disabled: disabled.
    write_keyring(keyring, ["key-1 1 %s alias/aws/kinesis" % KEY_OTHER, "key-1 2 %s" % KEY_V2])
    reload_keyring(srv, 2)
    expect_error("KMSAccessDeniedException", kc.get_records, ShardIterator=iterator(kc, LAST_PLAIN))
    write_keyring(keyring, ["key-1 1 %s" % KEY_V1, "key-1 2 %s disabled alias/aws/kinesis"
                            % KEY_V2])
    reload_keyring(srv, 2)
    expect_error("KMSDisabledException", kc.get_records, ShardIterator=iterator(kc, last_v1))
    expect_error("KMSDisabledException", kc.put_record, StreamName=STREAM, PartitionKey="p",
                 Data=b"x")
    # The key gone from the keyring: writes refused too.
    write_keyring(keyring, ["other 1 %s" % KEY_V1])
    reload_keyring(srv, 1)
    expect_error("KMSNotFoundException", kc.put_record, StreamName=STREAM, PartitionKey="p",
                 Data=b"x")
    write_keyring(keyring, ["key-1 1 %s alias/aws/kinesis" % KEY_V1, "key-1 2 %s" % KEY_V2])
    reload_keyring(srv, 2)
    check(len(read_all(kc)) == 26, "everything readable with both versions back")


def test_stop_and_restart(kc, srv, keyring):
    kc.stop_stream_encryption(StreamName=STREAM, EncryptionType="KMS",
                              KeyId="alias/aws/kinesis")
    s = wait_status(kc, "ACTIVE")
    check(s["EncryptionType"] == "NONE" and "KeyId" not in s, "after stop: %r" % s)
    put(kc, b"PLAIN-AGAIN", 2)
    check(disk_has(srv.data_dir, b"PLAIN-AGAIN-1"), "records after the stop are plain")
    kc.start_stream_encryption(StreamName=STREAM, EncryptionType="KMS",
                               KeyId=ACCOUNT_ARN + ":key/key-1")
    wait_status(kc, "ACTIVE")
    srv.stop()
    srv.start("--set", "encryption.keyring=" + keyring, *srv.dataplane)
    kc = client(srv)
    s = kc.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    check(s["EncryptionType"] == "KMS" and s["KeyId"] == ACCOUNT_ARN + ":key/key-1",
          "after restart: %r" % s)
    put(kc, b"AFTER-RESTART", 4)
    check(not disk_has(srv.data_dir, b"AFTER-RESTART"), "encryption survives a restart")
    check(len(read_all(kc)) == 32, "everything readable after the restart")
    return kc


def test_dataplane(kc, srv):
    """Records that come as UDP frames (kernel backend) are encrypted like the API's."""
    lines = b"".join(b"UDP-MARK-%d\n" % i for i in range(20))
    r = subprocess.run([SLUICE, "produce", STREAM, "--transport", "udp", "--target",
                        "127.0.0.1:%d" % srv.ingest_port, "--lines", "--key", "u",
                        "--endpoint", srv.url, "--quiet"],
                       input=lines, capture_output=True, timeout=60)
    check(r.returncode == 0, "sluice produce: %r" % r.stderr)
    got = [d for d in datas(read_all(kc)) if d.startswith(b"UDP-MARK-")]
    check(sorted(got) == sorted(lines.split()), "UDP records read back: %r" % got)
    check(not disk_has(srv.data_dir, b"UDP-MARK"), "UDP records' plaintext on disk")


def test_world_readable(tmp, keyring):
    write_keyring(keyring, ["key-1 1 %s" % KEY_V1], mode=0o644)
    r = subprocess.run([SLUICED, "--set", "dataplane.enabled=false", "--data-dir",
                        os.path.join(tmp, "wr"), "--set", "encryption.keyring=" + keyring],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "mode 0644" in r.stderr,
          "a world-readable keyring must stop the start: %d %r" % (r.returncode, r.stderr))


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-encrypt-")
    keyring = os.path.join(tmp, "keyring")
    write_keyring(keyring, ["key-1 1 %s alias/aws/kinesis" % KEY_V1])
    srv = Sluiced(SLUICED, os.path.join(tmp, "data"))
    srv.ingest_port = free_port()
    srv.dataplane = dataplane = ("--set", "dataplane.enabled=true", "--set", "dataplane.backend=kernel",
                 "--set", "dataplane.ipv4=127.0.0.1",
                 "--set", "dataplane.ingest_port=%d" % srv.ingest_port)
    try:
        srv.start("--set", "encryption.keyring=" + keyring,
                  "--set", "server.stream_status_delay_ms=300", *dataplane)
        kc = client(srv)
        kc.create_stream(StreamName=STREAM, ShardCount=1)
        wait_active(kc, STREAM)
        test_validation(kc)
        last_v1 = test_start(kc, srv)
        test_rotation(kc, srv, keyring, last_v1)
        kc = test_stop_and_restart(kc, srv, keyring)
        test_dataplane(kc, srv)
        srv.stop()
        test_world_readable(tmp, keyring)
    finally:
        srv.kill()
        subprocess.run(["rm", "-rf", tmp])
    print("encryption: ok")


main()
