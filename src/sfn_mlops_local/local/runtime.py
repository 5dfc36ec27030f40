"""The embedded local runtime: moto in-process, resources from template.yaml, state kept between commands."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto.backends import get_backend

from sfn_mlops_local.local import moto_adaptations
from sfn_mlops_local.local.events import LocalEventBus, rules_from_functions
from sfn_mlops_local.local.lambda_host import LambdaHost
from sfn_mlops_local.local.sagemaker_jobs import LocalJobRunner
from sfn_mlops_local.local.template import ACCOUNT, REGION, ResolvedTemplate, load_template
from sfn_mlops_local.operations import Target

PERSISTED_SERVICES = ("s3", "dynamodb", "sagemaker", "iam")
STATE_FILE = "state.pkl"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def _task_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task states by name, including those inside Parallel branches and Map iterators."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in states.items():
        if state.get("Type") == "Task":
            found[name] = state
        for branch in state.get("Branches", []):
            found.update(_task_states(branch["States"]))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found.update(_task_states(state[key]["States"]))
    return found


def project_root() -> Path:
    """The folder holding template.yaml: the current one or a parent, else the installed source tree."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "template.yaml").exists() and (folder / "statemachines").is_dir():
            return folder
    return Path(__file__).resolve().parents[3]


class LocalRuntime:
    def __init__(self, root: Path | None = None, state_dir: Path | None = None, persist: bool = True) -> None:
        self.root = root or project_root()
        self.state_dir = state_dir or Path(os.environ.get("MLOPS_LOCAL_STATE", self.root / ".mlops-local"))
        self.persist = persist
        self.template: ResolvedTemplate = load_template(self.root)
        self._mock: Any = None
        self.lambdas: LambdaHost
        self.jobs: LocalJobRunner
        self.events: LocalEventBus

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
            }
        )
        moto_adaptations.apply()
        # The interpreter logs every handled error at ERROR level: keep it out of the CLI's output.
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self._capture_warnings()
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        saved_jobs = self._restore()
        functions = self.template.functions()
        self._set_function_environment(functions)
        boto3.setup_default_session(region_name=REGION)
        self.lambdas = LambdaHost(functions, log_dir=self.state_dir / "logs")
        self.jobs = LocalJobRunner(lambda: self.client("s3"), self._work_dir(), self.state_dir / "logs")
        self.jobs.jobs.update(saved_jobs)
        buckets = {
            b["Ref"]
            for logical, b in self.template.physical.items()
            if self.template.raw["Resources"][logical]["Type"] == "AWS::S3::Bucket"
        }
        self.events = LocalEventBus(rules_from_functions(functions), self.lambdas, lambda: self.client("s3"), buckets)
        events: Any = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("before-call.lambda.Invoke", self.lambdas.on_invoke)
        events.register("before-call.sagemaker", self.jobs.on_call)
        for operation in ("PutObject", "CompleteMultipartUpload", "CopyObject"):
            events.register(f"before-parameter-build.s3.{operation}", self.events.on_object_request)
            events.register(f"after-call.s3.{operation}", self.events.on_object_created)
        self._provision()
        # After the service hooks are registered: clients copy the session's hooks when created.
        self._warming = self.lambdas.warm()

    def stop(self) -> None:
        if self._mock is None:
            return
        self.wait_idle()
        # A warm-up still creating clients must not leave them to the next runtime, hooked to this one.
        self._warming.join()
        moto_adaptations.clear_task_faults()
        if self.persist:
            self._save()
        self._mock.stop()
        self._release_warnings()
        self._mock = None
        from sfn_mlops.aws import reset_clients

        reset_clients()

    def reset(self) -> None:
        """Forget all local state (tables, buckets, registry, job history)."""
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def wait_idle(self, timeout: float = 900) -> None:
        """Let running executions, deliveries and jobs finish, so nothing is lost when the process ends."""
        deadline = time.monotonic() + timeout
        self.events.wait_idle()
        sfn = self.client("stepfunctions")
        for machine in self.template.state_machines().values():
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=machine.arn, statusFilter="RUNNING"
            ):
                for execution in page["executions"]:
                    while time.monotonic() < deadline:
                        if sfn.describe_execution(executionArn=execution["executionArn"])["status"] in TERMINAL:
                            break
                        time.sleep(0.05)
        self.jobs.wait_idle(max(1.0, deadline - time.monotonic()))

    # ---------------------------------------------------------------- clients and names
    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]

    def physical(self, logical_id: str, attribute: str = "Ref") -> str:
        return self.template.physical[logical_id][attribute]

    @property
    def bucket(self) -> str:
        return self.physical("ArtifactBucket")

    @property
    def table(self) -> str:
        return self.physical("MetadataTable")

    def state_machine_arn(self, logical_id: str) -> str:
        return self.physical(logical_id)

    # ---------------------------------------------------------------- fault injection
    def task_states(self) -> dict[str, list[str]]:
        """Each state machine's Task states (logical id -> state names, in file order)."""
        found: dict[str, list[str]] = {}
        for logical_id, machine in self.template.state_machines().items():
            found[logical_id] = list(_task_states(json.loads(self.template.definition(machine))["States"]))
        return found

    def fail_task(
        self, logical_id: str, state_name: str, error: str = "InjectedFault", cause: str | None = None, times: int = 1
    ) -> None:
        """Make a Task state of one of the template's state machines fail ``times`` times with ``error``."""
        machines = self.template.state_machines()
        if logical_id not in machines:
            raise ValueError(f"no state machine {logical_id!r}; the template has {', '.join(sorted(machines))}")
        tasks = self.task_states()[logical_id]
        if state_name not in tasks:
            raise ValueError(f"{logical_id} has no Task state {state_name!r}; its Task states: {', '.join(tasks)}")
        moto_adaptations.inject_task_fault(
            machines[logical_id].name,
            state_name,
            error,
            cause or f"fault injected at {logical_id}/{state_name} by the local runtime",
            times,
        )

    def fail_unit(self, unit: str, error: str = "InjectedFault", times: int = 1) -> None:
        """Make a unit's real work fail once: its worker's SageMaker job task, or its only Lambda task."""
        workers = {
            logical.removesuffix("Worker").lower(): logical
            for logical in self.task_states()
            if logical.endswith("Worker")
        }
        if unit not in workers:
            raise ValueError(f"unknown unit {unit!r}; the units are {', '.join(workers)}")
        definition = json.loads(self.template.definition(self.template.state_machines()[workers[unit]]))["States"]
        tasks = _task_states(definition)
        work = next((name for name, state in tasks.items() if ":sagemaker:create" in state["Resource"]), None)
        self.fail_task(
            workers[unit], work or list(tasks)[-1], error, f"{unit} failed: fault injected by --fail-at", times
        )

    def pending_task_faults(self) -> list[Any]:
        return moto_adaptations.pending_task_faults()

    def target(self) -> Target:
        return Target.from_clients(
            self.client, self.bucket, self.table, self.state_machine_arn("TrainingFlow"), "local runtime"
        )

    # ---------------------------------------------------------------- internals
    def _capture_warnings(self) -> None:
        """Warnings raised in-process (e.g. Powertools' "No application metrics to publish" on a function's
        failure path) go to a log file, as they go to CloudWatch Logs on AWS, not into the CLI's output."""
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._warnings_log = logging.FileHandler(self.state_dir / "logs" / "warnings.log", delay=True)
        self._warnings_log.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        captured = logging.getLogger("py.warnings")
        captured.addHandler(self._warnings_log)
        captured.propagate = False
        logging.captureWarnings(True)

    def _release_warnings(self) -> None:
        logging.captureWarnings(False)
        captured = logging.getLogger("py.warnings")
        captured.removeHandler(self._warnings_log)
        captured.propagate = True
        self._warnings_log.close()

    def _work_dir(self) -> Path:
        path = self.state_dir / "jobs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _set_function_environment(self, functions: dict[str, Any]) -> None:
        """Handlers share this process, so their variables must agree; the template keeps them in Globals."""
        merged: dict[str, str] = {}
        for function in functions.values():
            for key, value in function.environment.items():
                if merged.setdefault(key, value) != value:
                    raise ValueError(f"functions disagree on {key}; the local runtime needs one value per variable")
        merged["POWERTOOLS_TRACE_DISABLED"] = "true"
        merged["POWERTOOLS_METRICS_DISABLED"] = "true"
        merged.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
        os.environ.update(merged)
        from sfn_mlops.aws import reset_clients
        from sfn_mlops.settings import get_settings

        reset_clients()
        get_settings.cache_clear()

    def _provision(self) -> None:
        resources = self.template.raw["Resources"]
        for logical, resource in resources.items():
            props = self.template.resolve(resource.get("Properties", {}))
            kind = resource["Type"]
            if kind == "AWS::DynamoDB::Table":
                self._table(self.physical(logical), props)
            elif kind == "AWS::S3::Bucket":
                self._bucket(self.physical(logical), props)
            elif kind == "AWS::IAM::Role":
                self._role(self.physical(logical), props)
        self._role("sfn-mlops-local-states", {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}})
        sfn = self.client("stepfunctions")
        existing = {m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
        role = f"arn:aws:iam::{ACCOUNT}:role/sfn-mlops-local-states"
        for machine in self.template.state_machines().values():
            definition = self.template.definition(machine)
            if machine.arn in existing:
                sfn.update_state_machine(stateMachineArn=machine.arn, definition=definition)
            else:
                sfn.create_state_machine(name=machine.name, definition=definition, roleArn=role, type="STANDARD")

    def _table(self, name: str, props: dict[str, Any]) -> None:
        ddb = self.client("dynamodb")
        if name in ddb.list_tables()["TableNames"]:
            return
        wanted = ("AttributeDefinitions", "KeySchema", "BillingMode")
        kwargs: dict[str, Any] = {k: props[k] for k in wanted if k in props}
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("SSESpecification", {}).get("SSEEnabled"):
            kwargs["SSESpecification"] = {"Enabled": True}
        ddb.create_table(TableName=name, **kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)

    def _bucket(self, name: str, props: dict[str, Any]) -> None:
        s3 = self.client("s3")
        if name in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            return
        s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        if "BucketEncryption" in props:
            # CloudFormation: ServerSideEncryptionByDefault; the S3 API: ApplyServerSideEncryptionByDefault.
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": r["BucketKeyEnabled"]} if "BucketKeyEnabled" in r else {}),
                }
                for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )

    def _role(self, name: str, props: dict[str, Any]) -> None:
        iam = self.client("iam")
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))

    def _save(self) -> None:
        state = {service: pickle.dumps(dict(get_backend(service))) for service in PERSISTED_SERVICES}  # type: ignore[call-overload]
        jobs = {name: dict(job) for name, job in self.jobs.jobs.items()}
        payload = pickle.dumps({"backends": state, "jobs": jobs})
        tmp = self.state_dir / f"{STATE_FILE}.tmp"
        tmp.write_bytes(payload)
        tmp.replace(self.state_dir / STATE_FILE)

    def _restore(self) -> dict[str, Any]:
        path = self.state_dir / STATE_FILE
        if not (self.persist and path.exists()):
            return {}
        saved = pickle.loads(path.read_bytes())
        for service, blob in saved["backends"].items():
            backend: Any = get_backend(service)
            for account, regions in pickle.loads(blob).items():
                backend[account] = regions
        jobs: dict[str, Any] = saved["jobs"]
        return jobs
