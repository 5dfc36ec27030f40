"""Lineage: which runs and models came from a dataset, which data made a model, what a bad dataset affects.

Every answer is one Query on a partition of the metadata table (see metadata.py for the keys): no Scan.
"""

from __future__ import annotations

import json
from typing import Any

from sfn_mlops.errors import LineageNotFound
from sfn_mlops.metadata import (
    APPROVAL_SK_PREFIX,
    MetadataTable,
    dataset_pk,
    dataset_version_prefix,
    dataset_version_sk,
    model_pk,
    now_iso,
    serialize,
)


def record_dataset_use(table: MetadataTable, run_id: str, pipeline: str, dataset: dict[str, Any]) -> None:
    """A run read this dataset version (written when the run is planned, idempotent)."""
    item = {
        "PK": dataset_pk(dataset["uri"]),
        "SK": dataset_version_sk(dataset["version"], "RUN", run_id),
        "run_id": run_id,
        "pipeline": pipeline,
        "dataset": dataset,
        "created_at": now_iso(),
    }
    table.client.put_item(TableName=table.table_name, Item=serialize(item))


def _query(table: MetadataTable, pk: str, sk_prefix: str | None = None) -> list[dict[str, Any]]:
    if sk_prefix:
        return table.query_all(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":sk": {"S": sk_prefix}},
        )
    return table.query_all(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": pk}})


def dataset_lineage(table: MetadataTable, uri: str, version: str | None = None) -> dict[str, Any]:
    """Runs that read the dataset (every version, or one) and the model packages trained on it."""
    items = _query(table, dataset_pk(uri), dataset_version_prefix(version) if version else None)
    if not items:
        which = f" version {version}" if version else ""
        raise LineageNotFound(f"no run has read {uri}{which}")
    runs, packages, versions, endpoints, batches = [], [], [], [], []
    for item in items:
        # The version asked for as given: a long one is hashed in the key (metadata.bounded).
        item_version = version or item["SK"].split("#", 2)[1]
        if item_version not in versions:
            versions.append(item_version)
        if "#RUN#" in item["SK"]:
            runs.append({"run_id": item["run_id"], "pipeline": item.get("pipeline"), "version": item_version})
        elif "#MODEL#" in item["SK"]:
            packages.append(
                {"model_package_arn": item["model_package_arn"], "run_id": item["run_id"], "version": item_version}
            )
        elif "#ENDPOINT#" in item["SK"]:
            endpoints.append({**_serving(item), "version": item_version})
        elif "#BATCH#" in item["SK"]:
            batches.append({**_batch_output(item), "version": item_version})
    return {
        "uri": uri,
        "version": version,
        "versions": versions,
        "runs": runs,
        "model_packages": packages,
        # endpoints that served (or serve: "to" is None) a model trained on the dataset
        "endpoints": endpoints,
        # batch predictions made from the dataset (its rows scored) or by a model trained on it
        "batch_outputs": batches,
    }


def _batch_output(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": item.get("run_id"),
        "pipeline": item.get("pipeline"),
        "model_package_arn": item.get("model_package_arn"),
        "output_uri": item.get("output_uri"),
        "input_uri": item.get("input_uri"),
        "rows_scored": item.get("rows_scored"),
        "at": item.get("created_at"),
    }


def _serving(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "endpoint_name": item.get("endpoint_name"),
        "pipeline": item.get("pipeline"),
        "stage": item.get("stage"),
        "model_package_arn": item.get("model_package_arn"),
        "deployment_id": item.get("deployment_id"),
        "from": item.get("from"),
        "to": item.get("to"),
    }


def model_lineage(table: MetadataTable, model_package_arn: str) -> dict[str, Any]:
    """The run, dataset versions, metrics, artifacts, the units that made it and those reused from other runs
    behind a model package, and its approval history (who, when, why): one Query of the package's partition (a
    second for packages registered before units were recorded)."""
    items = _query(table, model_pk(model_package_arn))
    links = [i for i in items if str(i["SK"]).startswith("DATASET#")]
    if not links:
        raise LineageNotFound(f"no lineage recorded for model package {model_package_arn}")
    first = links[0]
    metrics = first.get("metrics")
    # The units as they stood when the model was registered (later reruns of the run do not change them);
    # items written before that snapshot existed fall back to the run's current records.
    units = json.loads(first["units"]) if isinstance(first.get("units"), str) else None
    if units is None:
        units = table.unit_snapshot(str(first.get("run_id")))
    # Units whose outputs came from another run's success (the cache): their lineage runs through that run.
    reused = [
        {"unit": unit, **state["cached_from"]}
        for unit, state in units.items()
        if state.get("status") == "CACHED" and isinstance(state.get("cached_from"), dict)
    ]
    approvals = [
        {
            "status": i.get("status"),
            "previous_status": i.get("previous_status"),
            "reason": i.get("reason"),
            "by": i.get("identity"),
            "at": i.get("at"),
        }
        for i in items
        if str(i["SK"]).startswith(APPROVAL_SK_PREFIX)
    ]
    return {
        "model_package_arn": model_package_arn,
        "model_package_group": first.get("model_package_group"),
        "run_id": first.get("run_id"),
        "units": units,
        "reused": reused,
        "datasets": [
            {**(i.get("dataset") or {}), "uri": i["dataset_uri"], "version": i["dataset_version"]} for i in links
        ],
        "metrics": json.loads(metrics) if isinstance(metrics, str) else metrics or {},
        "model_data": first.get("model_data"),
        "preprocessing_data": first.get("preprocessing_data"),
        "registered_at": first.get("created_at"),
        "approvals": approvals,
        # the endpoints (and stages) that served the package, from when to when ("to" None: serving now)
        "served_by": [_serving(i) for i in items if str(i["SK"]).startswith("SERVED#")],
        # the batches the package scored, and where their predictions are
        "batch_outputs": [_batch_output(i) for i in items if str(i["SK"]).startswith("BATCH#")],
    }


def _s3_uris(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith("s3://") else []
    if isinstance(value, dict):
        return [uri for v in value.values() for uri in _s3_uris(v)]
    if isinstance(value, list):
        return [uri for v in value for uri in _s3_uris(v)]
    return []


def impact(table: MetadataTable, uri: str, version: str | None = None) -> dict[str, Any]:
    """Everything downstream of a dataset: runs, the data they derived, model packages (one Query per run)."""
    lineage = dataset_lineage(table, uri, version)
    runs: list[dict[str, Any]] = []
    derived: list[dict[str, Any]] = []
    for link in lineage["runs"]:
        run = table.get_run(link["run_id"]) or {"units": {}}
        preprocess = run["units"].get("preprocess") or {}
        outputs = _s3_uris(preprocess.get("outputs"))
        derived.extend({"uri": o, "run_id": link["run_id"], "version": link["version"]} for o in outputs)
        runs.append(
            {
                **link,
                "status": run.get("status"),
                "model_package_arn": run.get("model_package_arn"),
                "cached_from": preprocess.get("cached_from"),
            }
        )
    return {
        "uri": uri,
        "version": version,
        "runs": runs,
        "derived_datasets": derived,
        "model_packages": lineage["model_packages"],
        "endpoints": lineage["endpoints"],
        "batch_outputs": lineage["batch_outputs"],
    }
