"""The embedded local runtime: moto in-process, resources from template.yaml, state kept between commands."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import re
import shutil
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sfn_mlops_local import model_cache

# Before moto is imported: it loads botocore's data at import, and the runtime creates dozens of sessions.
model_cache.install_for_this_process()

import boto3  # noqa: E402
import moto  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.backends import get_backend  # noqa: E402

from sfn_mlops_local.local import moto_adaptations  # noqa: E402
from sfn_mlops_local.local.client import default_state_dir, project_root  # noqa: E402
from sfn_mlops_local.local.endpoints import EndpointService  # noqa: E402
from sfn_mlops_local.local.events import LocalEventBus, object_created_event, rules_from_functions  # noqa: E402
from sfn_mlops_local.local.lambda_host import LambdaHost  # noqa: E402
from sfn_mlops_local.local.recovery import mark_interrupted_work, unplanned_uploads  # noqa: E402
from sfn_mlops_local.local.sagemaker_jobs import LocalJobRunner  # noqa: E402
from sfn_mlops_local.local.scheduler import LocalScheduler, provision_queues, provision_schedules, sqs_dead_letter  # noqa: E402
from sfn_mlops_local.local.state import (  # noqa: E402
    STATE_FILE,
    StateFormatError,
    claim_state_folder,
    dump_state,
    is_state_folder,
    load_state,
)
from sfn_mlops_local.local.template import ACCOUNT, REGION, ResolvedTemplate, load_template  # noqa: E402
from sfn_mlops_local.operations import Target  # noqa: E402

PERSISTED_SERVICES = ("s3", "dynamodb", "sagemaker", "iam", "scheduler", "cloudwatch")
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# Resource types whose physical names clients need (buckets, tables, state machines, functions).
NAMED_RESOURCES = (
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::Serverless::StateMachine",
    "AWS::Serverless::Function",
)


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


class LocalRuntime:
    def __init__(self, root: Path | None = None, state_dir: Path | None = None, persist: bool = True) -> None:
        self.root = root or project_root()
        self.state_dir = state_dir or default_state_dir(self.root)
        self.persist = persist
        self.template: ResolvedTemplate = load_template(self.root)
        self._mock: Any = None
        self.interrupted: list[dict[str, Any]] = []  # what a restart found in flight and marked
        self._save_lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.save_error: str | None = None  # the last save's failure, shown to clients until a save succeeds
        self.saves = 0
        self._undelivered: list[dict[str, Any]] = []  # events a restored state had not delivered yet
        self._restored_clean = False  # the restored state was saved by a stop, not by a service later killed
        self._saved_endpoints: dict[str, Any] | None = None  # models, endpoint configs and endpoints restored
        self.lambdas: LambdaHost
        self.jobs: LocalJobRunner
        self.events: LocalEventBus
        self.endpoints: EndpointService

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.persist:  # before anything is set up: state is only ever loaded from a folder the service made
            claim_state_folder(self.state_dir)
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
        saved_jobs, restored = self._restore()
        functions = self.template.functions()
        self._set_function_environment(functions)
        boto3.setup_default_session(region_name=REGION)
        self.lambdas = LambdaHost(functions, log_dir=self.state_dir / "logs")
        self.jobs = LocalJobRunner(lambda: self.client("s3"), self._work_dir(), self.state_dir / "logs")
        self.jobs.restore(saved_jobs)
        self.jobs.on_job_end = moto_adaptations.notify_work_ended
        self.endpoints = EndpointService(self.client, self.state_dir, self.state_dir / "logs")
        self.jobs.models = self.endpoints.models.get  # transform jobs run a model's containers
        buckets = {
            b["Ref"]
            for logical, b in self.template.physical.items()
            if self.template.raw["Resources"][logical]["Type"] == "AWS::S3::Bucket"
        }
        self.events = LocalEventBus(rules_from_functions(functions), self.lambdas, buckets)
        # S3 emits "Object Created" for every writer: the CLI, the AWS CLI over HTTP, jobs, functions.
        moto_adaptations.on_object_created(self.events.on_object_created)
        moto_adaptations.on_model_package_changed(self.events.on_model_package_changed)
        events: Any = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("before-call.lambda.Invoke", self.lambdas.on_invoke)
        events.register("before-call.sagemaker", self.jobs.on_call)
        events.register("before-call.sagemaker", self.endpoints.on_call)
        events.register("before-call.sagemaker-runtime.InvokeEndpoint", self.endpoints.on_invoke)
        self._clients.clear()  # clients copy the session's hooks when created: only ones made from now on
        self._provision()
        provision_schedules(self.template, self.client("scheduler"))
        provision_queues(self.template, self.client("sqs"))  # the dead-letter queues: a failed delivery is kept
        self.scheduler = LocalScheduler(
            lambda: self.client("scheduler"),
            self._deliver_scheduled,
            dead_letter=sqs_dead_letter(lambda: self.client("sqs")),
        )
        # Endpoints come back as they were (an update in flight comes back rolled back); changes are saved.
        self.endpoints.restore(self._saved_endpoints, self._restored_clean)
        self.endpoints.on_change = self._save_after_change
        if restored:
            self.interrupted = mark_interrupted_work(self.target(), self._restored_clean)
            # Events S3 had emitted but the bus had not delivered when the service stopped: EventBridge
            # retries a delivery that did not complete; so does the bus (the trigger deduplicates).
            for event in self._undelivered:
                self.events.put_event(event)
            undelivered = {
                (e.get("detail", {}).get("bucket", {}).get("name"), e.get("detail", {}).get("object", {}).get("key"))
                for e in self._undelivered
            }
            for bucket, key, version in unplanned_uploads(self.target()):
                if (bucket, key) not in undelivered:
                    self._redeliver_upload(bucket, key, version)
        # After the service hooks are registered: clients copy the session's hooks when created.
        self._warming = self.lambdas.warm()

    def stop(self, wait_s: float = 900) -> None:
        """Let in-flight work finish for up to ``wait_s``, stop what is left (it is marked interrupted at the
        next start), save, and leave moto."""
        if self._mock is None:
            return
        self.wait_idle(timeout=wait_s)
        self.jobs.terminate_all()
        self.endpoints.stop()  # their containers end; endpoints are saved as they are and come back at a start
        # A warm-up still creating clients must not leave them to the next runtime, hooked to this one.
        self._warming.join()
        self.scheduler.stop()
        moto_adaptations.clear_task_faults()
        moto_adaptations.on_object_created(None)
        moto_adaptations.on_model_package_changed(None)
        if self.persist:
            self.save(clean=True)
        self._mock.stop()
        self._clients.clear()
        self._release_warnings()
        self._mock = None
        from sfn_mlops.aws import reset_clients

        reset_clients()

    def reset(self) -> None:
        """Forget all local state (tables, buckets, registry, job history); a folder the service did not make
        (MLOPS_LOCAL_STATE pointing at some other folder) is refused, never removed."""
        if not is_state_folder(self.state_dir):
            raise StateFormatError(f"{self.state_dir} is not a local state folder made by sfn-mlops: not removed")
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def wait_idle(self, timeout: float = 900) -> None:
        """Let running executions, deliveries and jobs finish, so nothing is lost when the process ends."""
        deadline = time.monotonic() + timeout
        self.events.wait_idle(timeout)
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
        """One client per service for this runtime (clients are thread-safe; creating one takes tens of ms)."""
        with self._clients_lock:
            client = self._clients.get(service)
            if client is None:
                client = self._clients[service] = boto3.client(service, region_name=REGION)  # type: ignore[call-overload]
        return client

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
        """Make a unit's real work fail once: its worker's SageMaker job task, or else its last Task state (a
        Lambda task, or the deploy worker's look at the endpoint, which every deployment reaches)."""
        workers = {
            re.sub(r"(?<!^)(?=[A-Z])", "_", logical.removesuffix("Worker")).lower(): logical
            for logical in self.task_states()
            if logical.endswith("Worker")
        }
        if unit not in workers:
            raise ValueError(f"unknown unit {unit!r}; the units are {', '.join(workers)}")
        definition = json.loads(self.template.definition(self.template.state_machines()[workers[unit]]))["States"]
        tasks = _task_states(definition)
        work = next(
            (name for name, state in tasks.items() if re.search(r":sagemaker:create\w*Job", state["Resource"])), None
        )
        self.fail_task(
            workers[unit], work or list(tasks)[-1], error, f"{unit} failed: fault injected by --fail-at", times
        )

    def pending_task_faults(self) -> list[Any]:
        return moto_adaptations.pending_task_faults()

    def clear_task_faults(self) -> None:
        moto_adaptations.clear_task_faults()

    def target(self) -> Target:
        return Target.from_clients(
            self.client,
            self.bucket,
            self.table,
            self.state_machine_arn("TrainingFlow"),
            "local runtime",
            self.state_machine_arn("DeploymentFlow"),
            self.template.stack_name,
            self.state_machine_arn("BatchFlow"),
            Target.local_batch_schedule(self.template.stack_name),
        )

    # ---------------------------------------------------------------- what the service reports
    def resource_names(self) -> dict[str, str]:
        """Physical names (ARNs for state machines) of the template's resources that clients address."""
        names = {
            logical: names["Ref"]
            for logical, names in self.template.physical.items()
            if self.template.raw["Resources"][logical]["Type"] in NAMED_RESOURCES
        }
        return {**names, "AWS::StackName": self.template.stack_name}

    def _executions(self) -> list[Any]:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT][REGION]
        return [execution for machine in backend.state_machines for execution in machine.executions]

    def completed_executions(self) -> int:
        """How many executions have ended (read from moto's memory: no request, no lock)."""
        return sum(1 for e in self._executions() if e.exec_status is not None and e.exec_status.value != "RUNNING")

    def in_flight(self) -> list[str]:
        return [e.exec_arn for e in self._executions() if e.exec_status is None or e.exec_status.value == "RUNNING"]

    def _redeliver_upload(self, bucket: str, key: str, version: str | None) -> None:
        head_kwargs = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
        try:
            head = self.client("s3").head_object(**head_kwargs)
        except Exception:  # the object is gone: nothing to run on
            return
        self.events.put_event(object_created_event(bucket, key, head, "PutObject"))

    # ---------------------------------------------------------------- schedules
    def start_scheduler(self) -> None:
        """Fire enabled schedules on their rate/cron (the service does; in-process tests fire them by hand)."""
        self.scheduler.start()

    def fire_schedule(self, name: str, group: str = "default") -> dict[str, Any]:
        return self.scheduler.fire_now(name, group)

    def schedules(self) -> list[dict[str, Any]]:
        client = self.client("scheduler")
        listed = client.list_schedules()["Schedules"]
        fired = list(self.scheduler.fired)
        return [
            {
                "name": s["Name"],
                "group": s.get("GroupName", "default"),
                "state": s["State"],
                "expression": client.get_schedule(Name=s["Name"], GroupName=s.get("GroupName", "default"))[
                    "ScheduleExpression"
                ],
                "fired": [vars(f) for f in fired if f.name == s["Name"]][-5:],
            }
            for s in listed
        ]

    def _deliver_scheduled(self, target: dict[str, Any], payload: str) -> None:
        """EventBridge Scheduler's universal delivery: a function is invoked with the input, a state machine
        started with it. Raising makes the scheduler retry per the schedule's retry policy."""
        arn = str(target["Arn"])
        if ":lambda:" in arn:
            result, error = self.lambdas.invoke(arn, json.loads(payload))
            if error:
                raise RuntimeError(f"{arn} failed: {result.get('errorType')}: {result.get('errorMessage')}")
        elif ":states:" in arn:
            self.client("stepfunctions").start_execution(stateMachineArn=arn, input=payload)
        else:
            raise ValueError(f"the local scheduler cannot deliver to {arn}")

    def log_warning(self, message: str) -> None:
        logging.getLogger("py.warnings").warning(message)

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
        self._functions()
        sfn = self.client("stepfunctions")
        existing = {m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
        role = f"arn:aws:iam::{ACCOUNT}:role/sfn-mlops-local-states"
        for machine in self.template.state_machines().values():
            definition = self.template.definition(machine)
            if machine.arn in existing:
                sfn.update_state_machine(stateMachineArn=machine.arn, definition=definition)
            else:
                sfn.create_state_machine(name=machine.name, definition=definition, roleArn=role, type="STANDARD")

    def _functions(self) -> None:
        """Register the template's functions with moto's Lambda API, so `aws lambda list-functions` and
        `get-function` show them; their invocations are served in-process from the same code (lambda_host)."""
        client = self.client("lambda")
        existing = {f["FunctionName"] for f in client.list_functions()["Functions"]}
        defaults = self.template.raw.get("Globals", {}).get("Function", {})
        for logical, function in self.template.functions().items():
            if function.name in existing:
                continue
            props = {**defaults, **self.template.resolve(self.template.raw["Resources"][logical]["Properties"])}
            code = io.BytesIO()
            with zipfile.ZipFile(code, "w") as archive:
                for path in sorted(function.code_dir.rglob("*.py")):
                    archive.write(path, path.relative_to(function.code_dir).as_posix())
            client.create_function(
                FunctionName=function.name,
                Runtime=str(props.get("Runtime", "python3.11")),
                Role=str(props.get("Role") or f"arn:aws:iam::{ACCOUNT}:role/sfn-mlops-local-states"),
                Handler=function.handler,
                Code={"ZipFile": code.getvalue()},
                Description=str(props.get("Description", "")),
                Timeout=int(props.get("Timeout", 3)),
                MemorySize=int(props.get("MemorySize", 128)),
                Environment={"Variables": function.environment},
            )

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
        if props.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )

    def _role(self, name: str, props: dict[str, Any]) -> None:
        iam = self.client("iam")
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))

    def save(self, clean: bool = False) -> None:
        """Write the state durably, as one consistent snapshot (no request runs while it is taken)."""
        with self._save_lock:  # one writer of the state file at a time
            with moto_adaptations.moto_requests_lock():
                backends = {service: pickle.dumps(dict(get_backend(service))) for service in PERSISTED_SERVICES}  # type: ignore[call-overload]
                jobs = self.jobs.snapshot()
                events = self.events.undelivered()
                endpoints = self.endpoints.snapshot()
            extra = {
                "jobs": jobs,
                "events": events,
                "endpoints": endpoints,
                "saved_at": datetime.now(UTC).isoformat(),
                "clean": clean,
            }
            try:
                dump_state(self.state_dir / STATE_FILE, moto.__version__, backends, extra)
            except OSError as exc:
                self.save_error = f"cannot save the local state to {self.state_dir / STATE_FILE}: {exc}"
                raise
            self.save_error = None
            self.saves += 1

    def _save_after_change(self) -> None:
        """An endpoint change (a client's write, or a status an endpoint reached) is saved at once."""
        if not self.persist or self._mock is None:
            return
        try:
            self.save()
        except Exception as exc:  # retried by the next save; clients are told (status)
            self.log_warning(f"saving the local state failed: {exc!r}")

    def _restore(self) -> tuple[dict[str, Any], bool]:
        saved = load_state(self.state_dir / STATE_FILE, moto.__version__) if self.persist else None
        if saved is None:
            return {}, False
        for service, blob in saved["backends"].items():
            backend: Any = get_backend(service)
            for account, regions in pickle.loads(blob).items():
                backend[account] = regions
        self._restored_clean = bool(saved.get("clean"))
        self._undelivered = list(saved.get("events") or [])
        self._saved_endpoints = saved.get("endpoints")
        jobs: dict[str, Any] = saved["jobs"]
        return jobs, True
