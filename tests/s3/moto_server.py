"""An S3-compatible server for tenderflow's S3 tests: moto, in this process,
on the loopback port given as the first argument.

It makes an IAM user allowed to do anything on S3, and the bucket named by
the second argument, then checks every request's signature from then on
(moto accepts any credentials by default; a test of wrong credentials
needs a server that refuses them). It prints one line, `ready` and the
user's access key as JSON, and serves until it is killed.
"""

import json
import sys
import threading

import boto3
from moto import settings
from moto.server import ThreadedMotoServer

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


def main() -> None:
    port = int(sys.argv[1])
    bucket = sys.argv[2]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    setup = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="tenderflow")
    iam.put_user_policy(
        UserName="tenderflow", PolicyName="s3", PolicyDocument=json.dumps(POLICY)
    )
    key = iam.create_access_key(UserName="tenderflow")["AccessKey"]
    boto3.client("s3", **setup).create_bucket(Bucket=bucket)
    # From now on every request is signed with a key moto knows, or refused.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    print(
        "ready",
        json.dumps(
            {
                "access_key_id": key["AccessKeyId"],
                "secret_access_key": key["SecretAccessKey"],
            }
        ),
        flush=True,
    )
    threading.Event().wait()


if __name__ == "__main__":
    main()
