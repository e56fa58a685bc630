#!/usr/bin/python3
"""Re-derives the SigV4 vectors of test_sigv4.c with botocore (Debian's
/usr/bin/python3 has it). The clock is fixed; the output is what the test
compares against."""
import datetime
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sign(token=None, host='127.0.0.1:4567', body=b'{"StreamName":"orders"}',
         target='Kinesis_20131202.DescribeStreamSummary'):
    creds = Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', token)
    req = AWSRequest(method='POST', url='http://%s/' % host, data=body,
                     headers={'Content-Type': 'application/x-amz-json-1.1',
                              'X-Amz-Target': target})
    fixed = datetime.datetime(2026, 11, 26, 8, 15, 30)
    with mock.patch('botocore.auth.datetime') as clock:
        clock.datetime.utcnow.return_value = fixed
        clock.datetime.now.return_value = fixed
        SigV4Auth(creds, 'kinesis', 'eu-west-1').add_auth(req)
    return req.headers['Authorization']


print(sign())
print(sign(token='FQoGZXIvYXdzEXAMPLETOKEN'))
print(sign(host='kinesis.local', body=b'{}', target='Kinesis_20131202.ListStreams'))
