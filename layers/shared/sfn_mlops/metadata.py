"""The metadata table: run and unit records, and the keys every reader and writer agrees on.

One table, single-table design:

| item              | PK                    | SK                          | GSI1PK / GSI1SK                            |
| ----------------- | --------------------- | --------------------------- | ------------------------------------------ |
| run               | RUN#<run_id>          | RUN                         | PIPELINE#<name> / <started>#<id>           |
| unit of a run     | RUN#<run_id>          | UNIT#<unit>                 | FP#<pipeline>#<unit>#<fingerprint> / <end> |
| dataset → run     | DATASET#<uri>         | VERSION#<version>#RUN#<id>  |                                            |
| dataset → model   | DATASET#<uri>         | VERSION#<version>#MODEL#<arn> |                                          |
| model → dataset   | MODEL#<package arn>   | DATASET#<uri>#<version>     |                                            |
| artifact → pkg    | ARTIFACT#<model data> | MODEL#<preprocessing digest> |                                           |
| approval of a pkg | MODEL#<package arn>   | APPROVAL#<at>               |                                            |
| trigger (dedup)   | TRIGGER#<object id>   | TRIGGER                     | (TTL: expires_at)                          |
| batch run         | RUN#<batch id>        | RUN (kind "batch")          | PIPELINE#<name> / <started>#<id>           |
| model → batch     | MODEL#<package arn>   | BATCH#<batch id>            |                                            |
| dataset → batch   | DATASET#<uri>         | VERSION#<version>#BATCH#<id> |                                           |

A unit's GSI1 keys are set only while it is SUCCEEDED: that index is the cache across runs.

The executor state machine writes unit records with DynamoDB's native integration using the same keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from sfn_mlops.errors import NonFiniteNumber

RUN_SK = "RUN"
UNIT_SK_PREFIX = "UNIT#"
APPROVAL_SK_PREFIX = "APPROVAL#"
ENDPOINT_SK = "ENDPOINT"
ENDPOINTS_INDEX_PK = "ENDPOINTS"
# PARTIAL: the run's last execution ran one unit (--only); the units after it are not up to date.
TERMINAL_RUN_STATUSES = {"SUCCEEDED", "FAILED", "REJECTED", "PARTIAL"}

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# DynamoDB's key limits (bytes): a key that embeds a user's string (an S3 URI, a version id) is bounded below them.
MAX_PK_BYTES = 2048
MAX_SK_BYTES = 1024
# Room kept for the prefix and separators around a bounded part.
_KEY_MARGIN = 64


def bounded(part: str, limit: int) -> str:
    """``part`` itself when it fits in ``limit`` bytes, else a readable prefix + ``~`` + a SHA-256 digest of the whole:
    the same part always gives the same key, and keys of short parts (all real ones so far) do not change."""
    raw = part.encode()
    if len(raw) <= limit:
        return part
    digest = hashlib.sha256(raw).hexdigest()[:40]
    prefix = raw[: max(limit - len(digest) - 1, 0)].decode(errors="ignore")
    return f"{prefix}~{digest}"


def run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def unit_sk(unit: str) -> str:
    return f"{UNIT_SK_PREFIX}{unit}"


def dataset_pk(uri: str) -> str:
    return f"DATASET#{bounded(uri, MAX_PK_BYTES - _KEY_MARGIN)}"


_VERSION_SK_ROOM = (MAX_SK_BYTES - _KEY_MARGIN) // 2


def dataset_version_prefix(version: str) -> str:
    """The start of every sort key of one dataset version's links: what a query for that version begins with."""
    return f"VERSION#{bounded(version, _VERSION_SK_ROOM)}#"


def dataset_version_sk(version: str, kind: str, ident: str) -> str:
    return f"{dataset_version_prefix(version)}{kind}#{bounded(ident, _VERSION_SK_ROOM)}"


def model_dataset_sk(uri: str, version: str) -> str:
    """A model's link to the dataset version it was trained on: the URI (up to ~1 KiB of S3 key) is bounded."""
    room = MAX_SK_BYTES - _KEY_MARGIN
    return f"DATASET#{bounded(uri, room * 3 // 4)}#{bounded(str(version), room // 4)}"


def model_pk(model_package_arn: str) -> str:
    return f"MODEL#{bounded(model_package_arn, MAX_PK_BYTES - _KEY_MARGIN)}"


def endpoint_pk(endpoint_name: str) -> str:
    return f"ENDPOINT#{endpoint_name}"


def deployments_pk(pipeline: str) -> str:
    return f"DEPLOYMENTS#{pipeline}"


def artifact_pk(model_data: str) -> str:
    return f"ARTIFACT#{bounded(model_data, MAX_PK_BYTES - _KEY_MARGIN)}"


def artifact_sk(preprocessing_digest: str | None) -> str:
    """A model artifact is registered once per preprocessing it is served behind ("MODEL": none recorded)."""
    return f"MODEL#{preprocessing_digest}" if preprocessing_digest else "MODEL"


def _to_dynamo(value: Any, path: str = "<item>") -> Any:
    """Floats as Decimals; a NaN or infinity is refused here, by name, rather than by DynamoDB's obscure error
    (or, as a Decimal, stored and crashing every later reader)."""
    if isinstance(value, float | Decimal) and not math.isfinite(value):
        raise NonFiniteNumber(f"{path} is {value}: only finite numbers are stored")
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v, f"{path}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        # An old record may hold Infinity/NaN (written before serialize refused them): read it, never crash on it.
        if not value.is_finite():
            return float(value)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed form of an item; raises NonFiniteNumber (naming the attribute) for a NaN or infinity."""
    return {k: _serializer.serialize(_to_dynamo(v, k)) for k, v in item.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def _parsed_run(run: dict[str, Any]) -> dict[str, Any]:
    """A run item with the fields it keeps as JSON text parsed."""
    for field in ("metrics", "error", "unit_results", "overrides", "traffic_steps", "gate_verdict", "drift", "retrain"):
        if isinstance(run.get(field), str):
            run[field] = json.loads(run[field])
    return run


class MetadataTable:
    """Reads and writes of the metadata table; takes a DynamoDB client so tests can pass moto's."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    @property
    def client(self) -> Any:
        return self._client

    def start_run(self, plan: dict[str, Any], flow_execution_arn: str) -> int:
        """Create the run record, or mark an existing one RUNNING again (a rerun). Returns the run attempt."""
        now = now_iso()
        run_id = plan["run_id"]
        response = self._client.update_item(
            TableName=self.table_name,
            Key=serialize({"PK": run_pk(run_id), "SK": RUN_SK}),
            UpdateExpression=(
                "SET #status = :running, pipeline = :pipeline, dataset = :dataset, unit_order = :order, "
                "gate = :gate, flow_execution_arn = :arn, updated_at = :now, "
                "started_at = if_not_exists(started_at, :now), GSI1PK = :gsi1pk, "
                "GSI1SK = if_not_exists(GSI1SK, :gsi1sk), run_attempt = if_not_exists(run_attempt, :zero) + :one, "
                "overrides = :overrides, #scope = :scope "
                "REMOVE finished_at, #error, unit_results"
            ),
            ExpressionAttributeNames={"#status": "status", "#error": "error", "#scope": "scope"},
            ExpressionAttributeValues=serialize(
                {
                    ":running": "RUNNING",
                    # As JSON text: a number type round-trip would turn 1.0 into 1 and change fingerprints.
                    ":overrides": json.dumps(plan.get("overrides") or {}, sort_keys=True),
                    ":scope": plan.get("scope") or {},
                    ":pipeline": plan["pipeline"],
                    ":dataset": plan["dataset"],
                    ":order": plan["order"],
                    ":gate": plan["gate"],
                    ":arn": flow_execution_arn,
                    ":now": now,
                    ":gsi1pk": f"PIPELINE#{plan['pipeline']}",
                    ":gsi1sk": f"{now}#{run_id}",
                    ":zero": 0,
                    ":one": 1,
                }
            ),
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["run_attempt"]["N"])

    def replace_overrides(self, run_id: str, overrides: dict[str, Any], expected: dict[str, Any]) -> bool:
        """The run's overrides after ``mlops rerun --unset``: written only while the run is not running and its
        overrides are still ``expected`` (as start_run wrote them); False if either changed meanwhile."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize({"PK": run_pk(run_id), "SK": RUN_SK}),
                UpdateExpression="SET overrides = :overrides, updated_at = :now",
                ConditionExpression=(
                    "attribute_exists(PK) AND #status <> :running AND "
                    "(attribute_not_exists(overrides) OR overrides = :expected)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialize(
                    {
                        ":overrides": json.dumps(overrides, sort_keys=True),
                        ":expected": json.dumps(expected, sort_keys=True),
                        ":running": "RUNNING",
                        ":now": now_iso(),
                    }
                ),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # ---------------------------------------------------------------------------------------- deployments
    def start_deployment(self, plan: dict[str, Any], flow_execution_arn: str) -> int:
        """Create the deployment's record (a run record of kind "deployment", listed per pipeline apart from
        training runs), or mark it RUNNING again for a rerun. Returns the attempt."""
        now = now_iso()
        run_id = plan["run_id"]
        fields = {
            "kind": "deployment",
            "pipeline": plan["pipeline"],
            "stage": plan["stage"],
            "deploy_action": plan["action"],
            "deploy_trigger": plan["trigger"],
            "model_package_arn": plan["model_package_arn"],
            "previous_model_package_arn": plan["previous_model_package_arn"],
            "endpoint_name": plan["endpoint_name"],
            "strategy": plan["strategy"],
            "unit_order": plan["order"],
            "scope": plan["scope"],
            "flow_execution_arn": flow_execution_arn,
            "updated_at": now,
        }
        return self._start_run_record(run_id, fields, deployments_pk(plan["pipeline"]), now)

    # ---------------------------------------------------------------------------------------- batches
    def start_batch(self, plan: dict[str, Any], flow_execution_arn: str) -> int:
        """Create the batch's record (a run record of kind "batch", listed with the pipeline's runs), or mark it
        RUNNING again for a rerun. Returns the attempt."""
        now = now_iso()
        source = plan["input"]
        fields = {
            "kind": "batch",
            "pipeline": plan["pipeline"],
            "batch_trigger": plan["trigger"],
            "model_package_arn": plan["model_package_arn"],
            "input": source,
            # What `mlops runs` shows for every run: the data it read.
            "dataset": {"uri": source["uri"], "version": source["version"]},
            "drift_action": plan.get("drift_action"),
            "unit_order": plan["order"],
            "scope": plan["scope"],
            "flow_execution_arn": flow_execution_arn,
            "updated_at": now,
        }
        # A rerun's outcome is recorded afresh: what the last attempt scored goes with its status.
        return self._start_run_record(
            plan["run_id"], fields, f"PIPELINE#{plan['pipeline']}", now, clear=("output_uri", "rows_scored")
        )

    def _start_run_record(
        self, run_id: str, fields: dict[str, Any], gsi1pk: str, now: str, clear: tuple[str, ...] = ()
    ) -> int:
        """Create a run record of a flow that records itself (a deployment, a batch) with ``fields``, or mark it
        RUNNING again for a rerun (its first start time and index position kept); returns the attempt."""
        names = {f"#{i}": name for i, name in enumerate(fields)}
        assignments = ", ".join(f"#{i} = :{i}" for i in range(len(fields)))
        values = {f":{i}": value for i, value in enumerate(fields.values())}
        response = self._client.update_item(
            TableName=self.table_name,
            Key=serialize({"PK": run_pk(run_id), "SK": RUN_SK}),
            UpdateExpression=(
                f"SET {assignments}, #status = :running, started_at = if_not_exists(started_at, :now), "
                "GSI1PK = :gsi1pk, GSI1SK = if_not_exists(GSI1SK, :gsi1sk), "
                "run_attempt = if_not_exists(run_attempt, :zero) + :one "
                f"REMOVE {', '.join(('finished_at', '#error', 'unit_results', *clear))}"
            ),
            ExpressionAttributeNames={**names, "#status": "status", "#error": "error"},
            ExpressionAttributeValues=serialize(
                {
                    **values,
                    ":running": "RUNNING",
                    ":now": now,
                    ":gsi1pk": gsi1pk,
                    ":gsi1sk": f"{now}#{run_id}",
                    ":zero": 0,
                    ":one": 1,
                }
            ),
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["run_attempt"]["N"])

    def record_batch_drift(self, run_id: str, drift: dict[str, Any]) -> None:
        """The check unit's drift report on the batch's record (per-feature distances, violations)."""
        self._client.update_item(
            TableName=self.table_name,
            Key=serialize({"PK": run_pk(run_id), "SK": RUN_SK}),
            UpdateExpression="SET drift = :drift, updated_at = :now",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues=serialize({":drift": json.dumps(drift, sort_keys=True), ":now": now_iso()}),
        )

    def record_batch(self, plan: dict[str, Any], outcome: dict[str, Any]) -> None:
        """A batch's outcome, in one transaction: the run record and, when it scored, lineage both ways (the
        package's partition names the batch output; so does the batch input's, and each training dataset
        version behind the package, which is what ``impact`` reads)."""
        now = now_iso()
        status = outcome["status"]
        values: dict[str, Any] = {
            ":status": status,
            ":now": now,
            ":results": json.dumps(outcome.get("results") or {}, sort_keys=True),
            ":flow": outcome.get("flow_execution_arn") or "",
            ":rows": int(outcome.get("rows_scored") or 0),
        }
        sets = "SET #status = :status, finished_at = :now, unit_results = :results, flow_execution_arn = :flow, "
        sets += "rows_scored = :rows, updated_at = :now"
        removes = []
        for field, value in (("output_uri", outcome.get("output_uri")), ("retrain", outcome.get("retrain"))):
            if value:
                values[f":{field}"] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                sets += f", {field} = :{field}"
            else:
                removes.append(field)
        if outcome.get("error"):
            values[":error"] = json.dumps(outcome["error"])
            sets += ", #error = :error"
        else:
            removes.append("#error")
        run_update = {
            "Update": {
                "TableName": self.table_name,
                "Key": serialize({"PK": run_pk(plan["run_id"]), "SK": RUN_SK}),
                "UpdateExpression": sets + (f" REMOVE {', '.join(removes)}" if removes else ""),
                "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
                "ExpressionAttributeValues": serialize(values),
            }
        }
        items: list[dict[str, Any]] = []
        if status == "SUCCEEDED" and outcome.get("output_uri"):
            source = plan["input"]
            output = {
                "run_id": plan["run_id"],
                "pipeline": plan["pipeline"],
                "model_package_arn": plan["model_package_arn"],
                "output_uri": outcome["output_uri"],
                "input_uri": source["uri"],
                "input_version": source["version"],
                "rows_scored": int(outcome.get("rows_scored") or 0),
                "created_at": now,
            }
            items.append({"PK": model_pk(plan["model_package_arn"]), "SK": f"BATCH#{plan['run_id']}", **output})
            links = [(source["uri"], source["version"])]
            trained_on = self._package_datasets(plan["model_package_arn"])
            links += [(link["dataset_uri"], link["dataset_version"]) for link in trained_on]
            for uri, version in dict.fromkeys(links):
                items.append(
                    {"PK": dataset_pk(uri), "SK": dataset_version_sk(version, "BATCH", plan["run_id"]), **output}
                )
        self._client.transact_write_items(
            TransactItems=[run_update, *({"Put": {"TableName": self.table_name, "Item": serialize(i)}} for i in items)]
        )

    def get_endpoint(self, endpoint_name: str) -> dict[str, Any] | None:
        """What serves an endpoint of this stack (one GetItem): package, previous package, config, stage."""
        item = self._client.get_item(
            TableName=self.table_name,
            Key=serialize({"PK": endpoint_pk(endpoint_name), "SK": ENDPOINT_SK}),
            ConsistentRead=True,
        ).get("Item")
        return deserialize(item) if item else None

    def list_endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint of this stack, by pipeline and stage (one Query of the index)."""
        return self._query_index(ENDPOINTS_INDEX_PK, forward=True, limit=None)

    def list_deployments(self, pipeline: str, limit: int = 20) -> list[dict[str, Any]]:
        """A pipeline's deployments, newest first (one Query of the index)."""
        return [_parsed_run(item) for item in self._query_index(deployments_pk(pipeline), forward=False, limit=limit)]

    def _query_index(self, pk: str, forward: bool, limit: int | None) -> list[dict[str, Any]]:
        return self.query_all(
            limit=limit,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ScanIndexForward=forward,
        )

    def query_all(self, limit: int | None = None, **query: Any) -> list[dict[str, Any]]:
        """Every item a Query of this table finds (all its pages, or the first ``limit`` items), deserialized."""
        kwargs: dict[str, Any] = {"TableName": self.table_name, **query}
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(items)
            page = self._client.query(**kwargs)
            items.extend(deserialize(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page or (limit is not None and len(items) >= limit):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def record_deployment(self, plan: dict[str, Any], outcome: dict[str, Any]) -> None:
        """A deployment's outcome, in one transaction: the deployment record; on success the endpoint record
        (what serves it now, and what served it before) and the serving lineage both ways (the package's
        partition names the endpoints that served it and when; each dataset version behind it names them)."""
        now = now_iso()
        status = outcome["status"]
        run_update = {
            "Update": {
                "TableName": self.table_name,
                "Key": serialize({"PK": run_pk(plan["run_id"]), "SK": RUN_SK}),
                "UpdateExpression": (
                    "SET #status = :status, finished_at = :now, unit_results = :results, "
                    "flow_execution_arn = :flow, traffic_steps = :steps, updated_at = :now"
                    + (", #error = :error" if outcome.get("error") else " REMOVE #error")
                ),
                "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
                "ExpressionAttributeValues": serialize(
                    {
                        ":status": status,
                        ":now": now,
                        ":results": json.dumps(outcome.get("results") or {}, sort_keys=True),
                        ":flow": outcome.get("flow_execution_arn") or "",
                        ":steps": json.dumps(outcome.get("traffic_steps") or []),
                        **({":error": json.dumps(outcome["error"])} if outcome.get("error") else {}),
                    }
                ),
            }
        }
        items: list[dict[str, Any]] = []
        if status == "SUCCEEDED":
            items = self._serving_items(plan, outcome, now)
        self._client.transact_write_items(
            TransactItems=[run_update, *({"Put": {"TableName": self.table_name, "Item": serialize(i)}} for i in items)]
        )
        if status == "SUCCEEDED" and plan.get("previous_model_package_arn"):
            self._end_serving(plan, now)
        if status == "ROLLED_BACK":
            # The endpoint is back on the previous config: the deploy unit's success no longer holds, so a rerun
            # of this deployment deploys again (the executor reuses only SUCCEEDED records).
            with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
                self._client.update_item(
                    TableName=self.table_name,
                    Key=serialize({"PK": run_pk(plan["run_id"]), "SK": unit_sk("deploy")}),
                    UpdateExpression="SET #status = :rolled_back",
                    ConditionExpression="#status = :succeeded",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues=serialize({":rolled_back": "ROLLED_BACK", ":succeeded": "SUCCEEDED"}),
                )

    def _serving_items(self, plan: dict[str, Any], outcome: dict[str, Any], now: str) -> list[dict[str, Any]]:
        endpoint = plan["endpoint_name"]
        current = self.get_endpoint(endpoint) or {}
        same_package = current.get("model_package_arn") == plan["model_package_arn"]
        serving = {
            "endpoint_name": endpoint,
            "pipeline": plan["pipeline"],
            "stage": plan["stage"],
            "model_package_arn": plan["model_package_arn"],
            "deployment_id": plan["run_id"],
            "from": current.get("serving_since") if same_package else now,
        }
        items = [
            {
                "PK": endpoint_pk(endpoint),
                "SK": ENDPOINT_SK,
                **serving,
                "status": "InService",
                "model_data": plan.get("model_data") or "",
                "endpoint_config_name": plan["units"]["endpoint_config"]["endpoint_config_name"],
                "previous_model_package_arn": current.get("previous_model_package_arn")
                if same_package
                else current.get("model_package_arn") or "",
                "previous_endpoint_config_name": current.get("endpoint_config_name") or "",
                "serving_since": serving["from"],
                "updated_at": now,
                "GSI1PK": ENDPOINTS_INDEX_PK,
                "GSI1SK": f"{plan['pipeline']}#{plan['stage']}",
            },
            {"PK": model_pk(plan["model_package_arn"]), "SK": f"SERVED#{endpoint}#{serving['from']}", **serving},
        ]
        for link in self._package_datasets(plan["model_package_arn"]):
            items.append(
                {
                    "PK": dataset_pk(link["dataset_uri"]),
                    "SK": dataset_version_sk(link["dataset_version"], "ENDPOINT", f"{endpoint}#{serving['from']}"),
                    **serving,
                }
            )
        return items

    def registered_units(self, model_package_arn: str) -> dict[str, dict[str, Any]] | None:
        """The units behind a package as they stood when it was registered (from its lineage; one Query)."""
        for link in self._package_datasets(model_package_arn):
            if isinstance(link.get("units"), str):
                return dict(json.loads(link["units"]))
        return None

    def _package_datasets(self, model_package_arn: str) -> list[dict[str, Any]]:
        return self.query_all(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues=serialize({":pk": model_pk(model_package_arn), ":sk": "DATASET#"}),
        )

    def _end_serving(self, plan: dict[str, Any], now: str) -> None:
        """The package that served the endpoint before stops serving it now (its lineage gets an end time)."""
        previous = plan["previous_model_package_arn"]
        if previous == plan["model_package_arn"]:
            return
        endpoint = plan["endpoint_name"]
        spans = self.query_all(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues=serialize({":pk": model_pk(previous), ":sk": f"SERVED#{endpoint}#"}),
        )
        open_spans = [span for span in spans if "to" not in span]
        keys = [(model_pk(previous), span["SK"]) for span in open_spans]
        for link in self._package_datasets(previous):
            for span in open_spans:
                sk = dataset_version_sk(link["dataset_version"], "ENDPOINT", f"{endpoint}#{span['from']}")
                keys.append((dataset_pk(link["dataset_uri"]), sk))
        for pk, sk in keys:
            with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
                self._client.update_item(
                    TableName=self.table_name,
                    Key=serialize({"PK": pk, "SK": sk}),
                    UpdateExpression="SET #to = :now",
                    ConditionExpression="attribute_exists(PK)",
                    ExpressionAttributeNames={"#to": "to"},
                    ExpressionAttributeValues=serialize({":now": now}),
                )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run and all its units in one Query."""
        items = self.query_all(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": run_pk(run_id)}},
            ConsistentRead=True,
        )
        run = next((i for i in items if i["SK"] == RUN_SK), None)
        if run is None:
            return None
        units = {i["SK"][len(UNIT_SK_PREFIX) :]: i for i in items if i["SK"].startswith(UNIT_SK_PREFIX)}
        for unit in units.values():
            for field in ("inputs", "outputs", "executor_input", "cached_from"):
                if isinstance(unit.get(field), str):
                    unit[field] = json.loads(unit[field])
        run["units"] = units
        return _parsed_run(run)

    def run_progress(self, run_id: str) -> list[dict[str, Any]]:
        """What changes as a run moves (each record's status, attempt and end, the plan, the execution that
        finished it), projected from the same Query as ``get_run``: a cheap poll for "has anything moved?"."""
        return self.query_all(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": run_pk(run_id)}},
            ProjectionExpression="SK, #status, attempt, finished_at, unit_order, flow_execution_arn",
            ExpressionAttributeNames={"#status": "status"},
            ConsistentRead=True,
        )

    def trigger_run_id(self, trigger_key: str) -> str | None:
        """The run a trigger (e.g. ``s3://bucket/key#version``) started, from its dedup record: one GetItem."""
        item = self._client.get_item(
            TableName=self.table_name,
            Key=serialize({"PK": f"TRIGGER#{trigger_key}", "SK": "TRIGGER"}),
            ConsistentRead=True,
        ).get("Item")
        return str(deserialize(item)["run_id"]) if item and "run_id" in item else None

    def running_records(self) -> list[dict[str, Any]]:
        """Every run and unit record marked RUNNING. A Scan: only for recovering a local service that
        stopped with executions in flight (AWS never loses a running execution, so nothing calls it there)."""
        return self._scan(
            FilterExpression="#status = :running",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":running": {"S": "RUNNING"}},
        )

    def unplanned_upload_claims(self) -> list[dict[str, Any]]:
        """Upload trigger claims whose run has no record yet: the service stopped between starting the run and
        planning it. A Scan plus one GetItem per claim, only for recovering a local service (as running_records)."""
        claims = self._scan(
            FilterExpression="(begins_with(PK, :upload) OR begins_with(PK, :batch)) AND SK = :trigger",
            ExpressionAttributeValues={
                ":upload": {"S": "TRIGGER#s3://"},
                ":batch": {"S": "TRIGGER#batch#s3://"},  # uploads under batch/<pipeline>/incoming/
                ":trigger": {"S": "TRIGGER"},
            },
        )
        return [c for c in claims if c.get("run_id") and self.get_run(str(c["run_id"])) is None]

    def _scan(self, **filters: Any) -> list[dict[str, Any]]:
        """Every item the filter keeps, all pages, consistently read (local recovery only: see above)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True, **filters}
        while True:
            page = self._client.scan(**kwargs)
            items.extend(deserialize(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def mark_interrupted(self, record: dict[str, Any], status: str, error: dict[str, Any]) -> bool:
        """Mark a RUNNING run (FAILED, error as the flow records it) or unit (ABANDONED) as interrupted;
        False if it changed meanwhile. The run keeps ``error`` as JSON text, a unit as error and cause."""
        is_run = record["SK"] == RUN_SK
        values: dict[str, Any] = {":running": "RUNNING", ":status": status, ":now": now_iso()}
        if is_run:
            values[":error"] = json.dumps(error)
            update = "SET #status = :status, #error = :error, finished_at = :now"
        else:
            values[":error"], values[":cause"] = error["error"], error["cause"]
            update = "SET #status = :status, #error = :error, cause = :cause, finished_at = :now"
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=serialize({"PK": record["PK"], "SK": record["SK"]}),
                UpdateExpression=update,
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status", "#error": "error"},
                ExpressionAttributeValues=serialize(values),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def list_runs(self, pipeline: str, limit: int = 20) -> list[dict[str, Any]]:
        """Runs of a pipeline, newest first."""
        page = self._client.query(
            TableName=self.table_name,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues={":pk": {"S": f"PIPELINE#{pipeline}"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_parsed_run(deserialize(i)) for i in page.get("Items", [])]

    def unit_snapshot(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Each unit of the run as it stands now: what lineage keeps of the units behind a model."""
        run = self.get_run(run_id) or {"units": {}}
        return {
            unit: {
                "status": record.get("status"),
                "attempt": record.get("attempt"),
                "job_name": (record.get("outputs") or {}).get("job_name"),
                "cached_from": record.get("cached_from"),
                # What a deployment's smoke test sends and expects for this model (later attempts write elsewhere),
                # and the data baseline (statistics.json, constraints.json) batch input is checked against.
                **{
                    key: value
                    for key, value in (record.get("outputs") or {}).items()
                    if key in ("raw_test_uri", "predictions_uri", "baseline")
                },
            }
            for unit, record in run["units"].items()
        }

    def find_package_for_artifact(
        self, model_data: str, preprocessing_digest: str | None = None
    ) -> dict[str, Any] | None:
        """The package registered for a model artifact with this preprocessing (one GetItem)."""
        response = self._client.get_item(
            TableName=self.table_name,
            Key=serialize({"PK": artifact_pk(model_data), "SK": artifact_sk(preprocessing_digest)}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def record_model_package(
        self,
        model_data: str,
        model_package_arn: str,
        run_id: str,
        dataset: dict[str, Any],
        metrics: dict[str, Any],
        units: dict[str, dict[str, Any]] | None = None,
        preprocessing: dict[str, str] | None = None,
        group: str | None = None,
        approval: dict[str, Any] | None = None,
    ) -> None:
        """Link artifacts, model package and dataset version both ways, in one transaction.

        ``units`` is how each upstream unit stood when the model was registered (attempt, status, the run
        a cached unit came from): a later rerun of the run changes its unit records, not this model's past.
        ``preprocessing`` is the package's preprocessing model (``uri``, ``digest``); ``approval`` the stack's
        own approval at registration (auto-approval), written to the approval history in the same transaction."""
        now = now_iso()
        common = {
            "run_id": run_id,
            "created_at": now,
            "model_package_group": group,
            "preprocessing_data": (preprocessing or {}).get("uri"),
            "preprocessing_digest": (preprocessing or {}).get("digest"),
        }
        link = {
            "model_package_arn": model_package_arn,
            "dataset_uri": dataset["uri"],
            "dataset_version": dataset["version"],
            **common,
        }
        items = [
            {
                "PK": artifact_pk(model_data),
                "SK": artifact_sk((preprocessing or {}).get("digest")),
                "model_package_arn": model_package_arn,
                "model_data": model_data,
                **common,
            },
            {
                "PK": dataset_pk(dataset["uri"]),
                "SK": dataset_version_sk(dataset["version"], "MODEL", model_package_arn),
                **link,
            },
            {
                "PK": model_pk(model_package_arn),
                "SK": model_dataset_sk(dataset["uri"], dataset["version"]),
                "dataset": dataset,
                "metrics": json.dumps(metrics),
                "units": json.dumps(units or {}),
                "model_data": model_data,
                **link,
            },
        ]
        if approval is not None:
            items.append(self._approval_item(model_package_arn, approval, group))
        self._client.transact_write_items(
            TransactItems=[{"Put": {"TableName": self.table_name, "Item": serialize(i)}} for i in items]
        )

    # approvals
    # A package's approval history lives in its MODEL# partition (APPROVAL#<at>), beside its lineage: one Query
    # answers both. Each record says who decided, when, why, and the status before and after.
    def record_approval(self, model_package_arn: str, approval: dict[str, Any], group: str | None = None) -> None:
        """One decision on a package (``status``, ``previous_status``, ``reason``, ``identity``, ``at``)."""
        self._client.put_item(
            TableName=self.table_name,
            Item=serialize(self._approval_item(model_package_arn, approval, group)),
            ConditionExpression="attribute_not_exists(PK)",  # a record is never overwritten
        )

    def approval_history(self, model_package_arn: str) -> list[dict[str, Any]]:
        """A package's decisions, oldest first (one Query)."""
        return self.query_all(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues=serialize({":pk": model_pk(model_package_arn), ":sk": APPROVAL_SK_PREFIX}),
            ConsistentRead=True,
        )

    @staticmethod
    def _approval_item(model_package_arn: str, approval: dict[str, Any], group: str | None) -> dict[str, Any]:
        return {
            "PK": model_pk(model_package_arn),
            "SK": f"{APPROVAL_SK_PREFIX}{approval['at']}",
            "model_package_arn": model_package_arn,
            "model_package_group": group,
            "status": approval["status"],
            "previous_status": approval.get("previous_status"),
            "reason": approval["reason"],
            "identity": approval["identity"],
            "at": approval["at"],
        }
