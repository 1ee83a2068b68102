"""Defence in depth on AWS: IAM scopes the worker, the warrant scopes the task.

Two tenants share one bucket, one prefix each (``s3://tenant-data-…/tenant-a/``
and ``…/tenant-b/``), and one pool of Temporal workers. Each tenant's workflow
carries its own warrant, held by its own key: ``s3_get_object`` with
``bucket`` = ``Exact(<the bucket>)`` and ``key`` = ``Pattern("tenant-a/*")``
(S3 keys are flat strings: S3 never resolves ``..``, so a prefix pattern is
exact here, where a filesystem path would need ``Subpath``). The holder keys
live in AWS Secrets Manager, stored there at start-up and read by the
workflow worker through ``AWSSecretsManagerKeyResolver``. The workflow worker
(signs, holds keys) and the activity worker (verifies with the issuer's public
key only, reads S3) are separate principals with separate AWS credentials and
separate task queues, as separate deployments would be.

Everything runs offline: a ``moto_server`` (S3, Secrets Manager and IAM, with
IAM enforcement switched on) and a local Temporal dev server, both started
here. Set ``AWS_ENDPOINT_URL`` to use an emulator you run instead; the IAM
rows are then skipped, as this example cannot switch on enforcement there.

Where each layer stops an attack:

* IAM is per principal and enforced by AWS, whatever the code does. The
  activity worker's role may ``s3:GetObject`` on ``tenant-data-…/*`` (every
  tenant: one worker pool serves them all) and nothing else: no other
  bucket, no Secrets Manager. The workflow worker's role may read the holder
  keys and nothing in S3. So a compromised or buggy activity worker, code
  that skips the plugin altogether, still cannot read the payroll bucket or
  steal the holder keys to sign Proofs-of-Possession with. IAM cannot tell
  tenant A's task from tenant B's: the shared role may read both prefixes.
* The warrant is per task, signed by the control plane and bound to the
  tenant's holder key; the activity worker checks it before the activity body
  runs. Tenant A's workflow asking for tenant B's object (a prompt injection,
  a bug, a confused deputy) is denied there, before any S3 request: the
  activity worker's S3 client counts its requests, and moto's request log
  shows the object was never asked for. The warrant cannot stop code that
  does not go through the plugin; that is IAM's part.

(Per-tenant IAM, with STS session policies or ABAC tags per tenant, would add
a third layer; the warrant gives per-task scope without per-tenant role
plumbing, and works the same for tools that are not AWS.)

Run: ``python examples/cloud_iam_layering.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import boto3
    import tenuo_core
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from tenuo_keys import encode_signing_key
    from tenuo_keys.backends.aws import AWSSecretsManagerKeyResolver
    from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin, execute_workflow_authorized
    from tenuo_temporal.testing import (
        Decision,
        decide,
        exit_with_verdict,
        local_server,
        quiet_runtime,
    )

REGION = "us-east-1"
TENANTS = ("tenant-a", "tenant-b")


class S3Reader:
    """The activity worker's S3 access, with a count of the requests it sends."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.requests: list[str] = []
        s3.meta.events.register("before-send.s3", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        self.requests.append(f"{request.method} {urlsplit(request.url).path}")

    @activity.defn(name="s3_get_object")
    async def s3_get_object(self, bucket: str, key: str) -> str:
        def get() -> bytes:
            body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body

        return (await asyncio.to_thread(get)).decode("utf-8")


@workflow.defn
class TenantReport:
    """Ordinary Temporal code: reads one object; the plugin signs the activity."""

    @workflow.run
    async def run(self, bucket: str, key: str, activity_queue: str) -> str:
        return await workflow.execute_activity(
            "s3_get_object", args=[bucket, key], task_queue=activity_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1))


# --------------------------------------------------------------------------- the account


# --------------------------------------------------------------------------- AWS side


@contextlib.contextmanager
def aws_endpoint(log: Path):
    """Yield ``(endpoint, ours)``: ``$AWS_ENDPOINT_URL``, or a moto_server started here."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        print(f"using the AWS endpoint {os.environ['AWS_ENDPOINT_URL']} (AWS_ENDPOINT_URL)")
        yield os.environ["AWS_ENDPOINT_URL"], False
        return
    binary = shutil.which("moto_server") or shutil.which(
        "moto_server", path=os.path.dirname(sys.executable))
    if binary is None:
        raise SystemExit("no `moto_server` (pip install 'moto[server]') and no AWS_ENDPOINT_URL")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    print(f"starting moto_server (S3, Secrets Manager, IAM) on 127.0.0.1:{port} ...")
    with log.open("wb") as out:
        server = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _ready(endpoint, port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("moto_server did not start:\n" + log.read_text(errors="replace"))
            time.sleep(0.05)
        yield endpoint, True
    finally:
        stop_process(server)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Stop a server this example started (by its handle); kill it after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _ready(endpoint: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        if s.connect_ex(("127.0.0.1", port)) != 0:
            return False
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def session(access_key: str | None = None, secret_key: str | None = None) -> Any:
    if access_key is not None:
        return boto3.session.Session(aws_access_key_id=access_key,
                                     aws_secret_access_key=secret_key, region_name=REGION)
    ambient = boto3.session.Session(region_name=REGION)
    if ambient.get_credentials() is None:  # emulators accept any credentials
        return session("testing", "testing")
    return ambient


def iam_user(iam: Any, name: str, statements: list[dict[str, Any]]) -> tuple[str, str]:
    """Create an IAM user with an inline policy; return its access key."""
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def enforce_iam(endpoint: str) -> None:
    """Switch on moto's IAM enforcement: from now on every request is checked."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0",
                                     method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def refusal(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if not code or code.isdigit():  # moto answers some JSON APIs with an XML error
        code = "AccessDenied" if "AccessDenied" in str(error.get("Message", "")) else "error"
    return f"{code} (HTTP {status})"


def moto_gets(log: Path, bucket: str) -> list[str]:
    """The S3 object GETs in moto's request log, as ``key -> status``."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    pattern = re.compile(rf'"GET /{re.escape(bucket)}/(\S+) HTTP/[\d.]+" (\d+)')
    return [f"{key} -> {status}" for key, status in pattern.findall(text)]


# --------------------------------------------------------------------------- the example


async def main() -> tuple[list[Decision], list[bool], list[str]]:
    run = uuid.uuid4().hex[:8]
    bucket, payroll = f"tenant-data-{run}", f"payroll-{run}"
    template = f"tenuo/examples/{run}/{{key_id}}"
    problems: list[str] = []

    with tempfile.TemporaryDirectory(prefix="tenuo-iam-") as tmp, \
            aws_endpoint(Path(tmp, "moto_server.log")) as (endpoint, ours):
        moto_log = Path(tmp, "moto_server.log")
        admin = session("testing", "testing") if ours else session()

        # Provisioning (an operator, before the workers start).
        s3_admin = admin.client("s3", endpoint_url=endpoint)
        for name in (bucket, payroll):
            s3_admin.create_bucket(Bucket=name)
        objects = {
            (bucket, "tenant-a/reports/q3.csv"): "tenant-a,Q3,revenue,1250000",
            (bucket, "tenant-b/reports/q3.csv"): "tenant-b,Q3,revenue,980000",
            (bucket, "tenant-b/contracts/nda.pdf"): "tenant-b confidential NDA",
            (payroll, "salaries.csv"): "name,salary\nalice,185000",
        }
        for (where, key), body in objects.items():
            s3_admin.put_object(Bucket=where, Key=key, Body=body.encode())

        issuer = tenuo_core.SigningKey.generate()  # the control plane's key
        provisioner = AWSSecretsManagerKeyResolver(
            template, client=admin.client("secretsmanager", endpoint_url=endpoint))
        warrants = {}
        for tenant in TENANTS:
            holder = tenuo_core.SigningKey.generate()
            provisioner.store_key(tenant, encode_signing_key(holder))
            warrants[tenant] = tenuo_core.Warrant.issue(
                keypair=issuer, ttl_seconds=600, holder=holder.public_key,
                capabilities={"s3_get_object": {
                    "bucket": tenuo_core.Exact(bucket),
                    "key": tenuo_core.Pattern(f"{tenant}/*")}})
        print(f"holder keys stored in Secrets Manager as {template.format(key_id='tenant-a')} "
              "and …/tenant-b")
        print(f"warrants: s3_get_object on bucket {bucket}, key tenant-a/* (or tenant-b/*)")

        if ours:
            iam = admin.client("iam", endpoint_url=endpoint)
            workflow_role = session(*iam_user(iam, "workflow-worker", [
                {"Effect": "Allow", "Resource": "*",
                 "Action": ["secretsmanager:ListSecrets", "secretsmanager:BatchGetSecretValue"]},
                {"Effect": "Allow",
                 "Resource": f"arn:aws:secretsmanager:*:*:secret:tenuo/examples/{run}/*",
                 "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]},
            ]))
            activity_role = session(*iam_user(iam, "activity-worker", [
                {"Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/*"},
            ]))
            enforce_iam(endpoint)
            print("IAM enforced: workflow-worker may read the holder keys only; "
                  f"activity-worker may s3:GetObject on {bucket}/* only\n")
        else:
            workflow_role = activity_role = admin
            print("IAM rows skipped: this example did not start the endpoint, so it cannot "
                  "switch on IAM enforcement there\n")

        # The workflow worker signs with keys from Secrets Manager; the activity
        # worker only verifies (trusted roots, no keys) and reads S3.
        resolver = AWSSecretsManagerKeyResolver(
            template, client=workflow_role.client("secretsmanager", endpoint_url=endpoint))
        signer = TenuoTemporalPlugin(TenuoPluginConfig(key_resolver=resolver))
        verifier = TenuoTemporalPlugin(TenuoPluginConfig(trusted_roots=[issuer.public_key]))
        reader = S3Reader(activity_role.client(
            "s3", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1})))
        secrets_from_activity_worker = activity_role.client(
            "secretsmanager", endpoint_url=endpoint,
            config=Config(retries={"total_max_attempts": 1}))

        outcomes: list[Decision] = []
        expected: list[bool] = []
        async with local_server() as server:
            print(server)
            runtime = quiet_runtime()
            workflow_client = await server.connect(plugins=[signer], runtime=runtime)
            activity_client = await server.connect(plugins=[verifier], runtime=runtime)
            # Separate deployments, separate task queues: a worker with the signing
            # plugin also serves the plugin's own activity on its queue.
            queue = f"tenants-{uuid.uuid4().hex[:6]}"
            s3_queue = f"{queue}-s3"

            async def read(tenant: str, key: str, allowed: bool, note: str = "") -> None:
                before = len(reader.requests)
                outcome = await decide(
                    f"{tenant}'s workflow reads s3://{bucket}/{key}",
                    execute_workflow_authorized(
                        workflow_client, TenantReport.run,
                        workflow_id=f"{tenant}-{uuid.uuid4().hex[:8]}",
                        warrant=warrants[tenant], key_id=tenant, args=[bucket, key, s3_queue],
                        task_queue=queue))
                sent = reader.requests[before:]
                if sent:
                    print(f"           S3 requests from the activity worker: {len(sent)} "
                          f"({'; '.join(sent)})")
                else:
                    print("           S3 was not called: 0 requests from the activity worker")
                if not outcome.allowed and sent:
                    problems.append(f"{outcome.label}: denied, yet S3 was called")
                if note:
                    print(f"           {note}")
                outcomes.append(outcome)
                expected.append(allowed)

            async with Worker(workflow_client, task_queue=queue, workflows=[TenantReport]), \
                    Worker(activity_client, task_queue=s3_queue,
                           activities=[reader.s3_get_object]):
                await read("tenant-a", "tenant-a/reports/q3.csv", True)
                await read("tenant-b", "tenant-b/reports/q3.csv", True)
                await read("tenant-a", "tenant-b/contracts/nda.pdf", False,
                           "IAM alone would have allowed it: the shared activity role may "
                           f"read {bucket}/*; the warrant stopped it" if ours else "")

            if ours:
                print("\nA compromised activity worker, running code that skips the plugin, "
                      "with the worker's own AWS credentials:")

                async def direct(label: str, call: Any, what: str) -> None:
                    try:
                        await asyncio.to_thread(call)
                    except ClientError as exc:
                        outcome = Decision(label, False, f"IAM: {refusal(exc)} on {what}")
                    else:
                        outcome = Decision(label, True, f"{what} succeeded")
                    print(outcome)
                    outcomes.append(outcome)
                    expected.append(False)

                await direct(f"it reads s3://{payroll}/salaries.csv",
                             lambda: reader.s3.get_object(Bucket=payroll, Key="salaries.csv"),
                             "s3:GetObject")
                await direct(f"it reads tenant-b's holder key {template.format(key_id='tenant-b')}",
                             lambda: secrets_from_activity_worker.get_secret_value(
                                 SecretId=template.format(key_id="tenant-b")),
                             "secretsmanager:GetSecretValue")

        if ours:
            gets = moto_gets(moto_log, bucket)
            print(f"\nmoto's request log, object GETs on {bucket}: " + ", ".join(gets))
            if any("tenant-b/contracts/" in line for line in gets):
                problems.append("moto's log shows a request for tenant-b/contracts/nda.pdf")
            else:
                print("tenant-b/contracts/nda.pdf never appears: S3 was not called for the "
                      "denied read")
            # Control: the same object read with the activity worker's credentials
            # and no warrant in between. IAM allows it: only the warrant stopped it.
            body = reader.s3.get_object(Bucket=bucket, Key="tenant-b/contracts/nda.pdf")
            text = body["Body"].read().decode()
            print(f"control: the activity worker's credentials, with no warrant in between, "
                  f"read tenant-b/contracts/nda.pdf -> {text!r}\n"
                  "         (IAM allows it; this is also the gap a compromised activity worker "
                  "keeps, which per-tenant IAM would close)")
    return outcomes, expected, problems


if __name__ == "__main__":
    # The SDK logs each denial with a traceback; the account above says it all.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    outcomes, expected, problems = asyncio.run(main())
    exit_with_verdict([o.allowed for o in outcomes], expected, problems)
