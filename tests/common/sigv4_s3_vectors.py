#!/usr/bin/python3
"""Re-derives the S3 vectors of test_sigv4.c with botocore's S3SigV4Auth
(Debian's /usr/bin/python3 has it). The clock is fixed; each line is
METHOD URL BODY-REPR -> the Authorization header botocore writes, which the
test compares against common/sigv4.c signing the same request."""
import datetime
from unittest import mock

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

VECTORS = [
    ('PUT', 'http://127.0.0.1:4568/lake/2026/12/07/05/clicks-1-2026-12-07-05-30-00-x.gz',
     b'hello\n'),
    ('POST', 'http://127.0.0.1:4568/lake/big?uploads=', b''),
    ('PUT', 'http://127.0.0.1:4568/lake/big?partNumber=2&uploadId=a%2Fb%2Bc', b'part two'),
    ('POST', 'http://127.0.0.1:4568/lake/big?uploadId=a%2Fb%2Bc',
     b'<CompleteMultipartUpload></CompleteMultipartUpload>'),
    ('PUT', 'http://lake.s3.local:9000/p%20q/a%2Bb%3Dc/%C3%A9.json', b'{}'),
    ('DELETE', 'http://127.0.0.1:4568/lake/big?uploadId=xyz', b''),
]


def sign(method, url, body):
    creds = Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY')
    req = AWSRequest(method=method, url=url, data=body)
    fixed = datetime.datetime(2026, 12, 7, 5, 30, 0)
    with mock.patch('botocore.auth.datetime') as clock:
        clock.datetime.utcnow.return_value = fixed
        clock.datetime.now.return_value = fixed
        S3SigV4Auth(creds, 's3', 'eu-west-1').add_auth(req)
    return req.headers['Authorization']


for v in VECTORS:
    print('%s %s %r\n  %s' % (v[0], v[1], v[2], sign(*v)))
