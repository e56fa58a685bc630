#!/usr/bin/python3
"""The AWS JS SDK v3 against delivery streams into an S3-compatible store (issue 16):
npm s3rver and one sluiced ([firehose] s3_* pointing at it, [auth] mode = sigv4) started
here as test_firehose_s3.py starts them (its helpers), then firehose.mjs (beside this
file) drives @aws-sdk/client-firehose and client-kinesis and reads every object back with
@aws-sdk/client-s3: what it checks is in its header.

Usage: test_firehose_js.py SLUICED JS_DIR (npm installs package.json here into JS_DIR on
first use, shared with test_firehose_s3.py's s3rver; without node/npm the test is skipped,
saying so). Own temp dir and free ports; stops only the processes it started, by PID.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from test_firehose_s3 import S3rver, sluiced_args  # noqa: E402
from test_kinesis_api import Sluiced, check, npm_install  # noqa: E402

NODE_TIMEOUT_S = 420  # Under meson's 480 s: the node run is ended (by PID) before it.


def tails(*paths):
    """The last lines of each log, for a failure's message."""
    out = []
    for path in paths:
        with open(path, "rb") as f:
            out.append("%s ends:\n%s" % (os.path.basename(path),
                                         f.read()[-1500:].decode(errors="replace")))
    return "\n".join(out)


def main():
    binary, js_dir = sys.argv[1], sys.argv[2]
    if npm_install(HERE, js_dir, ["package.json", "firehose.mjs"],
                   os.path.join("node_modules", "@aws-sdk", "client-firehose")) is None:
        print("SKIPPED: no node/npm, or npm could not install s3js/package.json")
        return
    # s3rver encrypts ListObjectsV2's continuation tokens with DES, which OpenSSL 3 keeps
    # in its legacy provider: without it the second page is a 500 (every page here is 2).
    os.environ["NODE_OPTIONS"] = "--openssl-legacy-provider"
    # The SDK warns on stderr that its releases after January 2027 need node 22 (Debian
    # has 20; the pinned ones run on it): the warning would bury a failure's message.
    os.environ["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] = "true"
    base = tempfile.mkdtemp(prefix="fhjs-test-")
    store = S3rver(os.path.join(js_dir, "node_modules", "s3rver", "bin", "s3rver.js"),
                   os.path.join(base, "s3"), os.path.join(base, "s3rver.log"))
    srv = Sluiced(binary, os.path.join(base, "data"))
    try:
        os.makedirs(store.directory)
        os.makedirs(srv.data_dir)
        store.start()
        srv.start("--set", "auth.mode=sigv4", "--set", "auth.access_keys=AKID:SECRET",
                  *sluiced_args(store))
        try:
            r = subprocess.run(["node", os.path.join(js_dir, "firehose.mjs"), srv.url,
                                store.url], capture_output=True, timeout=NODE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SystemExit("FAIL: firehose.mjs still running after %d s" % NODE_TIMEOUT_S)
        sys.stdout.write(r.stdout.decode())
        check(r.returncode == 0, "firehose.mjs exit %d: %s\n%s" % (
            r.returncode, r.stderr.decode()[-3000:], tails(store.log_path,
                                                          os.path.join(srv.data_dir, "sluiced.log"))))
        srv.stop()
    finally:
        srv.kill()
        store.stop()
        shutil.rmtree(base, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
