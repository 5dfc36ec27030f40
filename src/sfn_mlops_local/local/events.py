"""Events → EventBridge → rule → target, as AWS does it: S3 emits "Object Created", SageMaker "Model Package State
Change"; rules from the template match."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.events.models import EventPattern

from sfn_mlops_local.local.lambda_host import LambdaHost
from sfn_mlops_local.local.template import ACCOUNT, REGION, LocalFunction


@dataclass
class Rule:
    name: str
    pattern: dict[str, Any]
    function: LocalFunction


def rules_from_functions(functions: dict[str, LocalFunction]) -> list[Rule]:
    rules = []
    for function in functions.values():
        for event_name, event in function.events.items():
            if event.get("Type") == "EventBridgeRule":
                rules.append(Rule(f"{function.logical_id}{event_name}", event["Properties"]["Pattern"], function))
    return rules


def object_created_event(bucket: str, key: str, head: dict[str, Any], reason: str) -> dict[str, Any]:
    """The event S3 sends to EventBridge for a new object (detail-type "Object Created")."""
    detail_object: dict[str, Any] = {
        "key": key,
        "size": int(head.get("ContentLength", 0)),
        "etag": str(head.get("ETag", "")).strip('"'),
        "sequencer": uuid.uuid4().hex[:18].upper(),
    }
    if head.get("VersionId") and head["VersionId"] != "null":
        detail_object["version-id"] = head["VersionId"]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": detail_object,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": reason,
        },
    }


def model_package_event(description: dict[str, Any]) -> dict[str, Any]:
    """The event SageMaker sends to EventBridge when a model package is created or its approval changes."""
    detail = json.loads(json.dumps(description, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [description.get("ModelPackageArn", "")],
        "detail": detail,
    }


class LocalEventBus:
    """Delivers events to matching rules' targets on a background thread, like EventBridge (async)."""

    def __init__(self, rules: list[Rule], lambdas: LambdaHost, eventbridge_buckets: set[str]) -> None:
        self._patterns = [(rule, EventPattern.load(json.dumps(rule.pattern))) for rule in rules]
        self._lambdas = lambdas
        self._buckets = eventbridge_buckets
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._undelivered: dict[str, dict[str, Any]] = {}  # by event id, until its delivery completes
        self._undelivered_lock = threading.Lock()
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=1000)  # recent deliveries, for tests and debugging
        self._thread = threading.Thread(target=self._work, name="local-eventbridge", daemon=True)
        self._thread.start()

    # moto_adaptations.on_object_created: called inside the S3 request, so it only queues.
    def on_object_created(
        self, bucket: str, key: str, version_id: str | None, size: int, etag: str, reason: str
    ) -> None:
        if bucket in self._buckets:
            head = {"ContentLength": size, "ETag": etag, "VersionId": version_id}
            self.put_event(object_created_event(bucket, key, head, reason))

    # moto_adaptations.on_model_package_changed: also called inside a request.
    def on_model_package_changed(self, description: dict[str, Any]) -> None:
        self.put_event(model_package_event(description))

    def put_event(self, event: dict[str, Any]) -> None:
        with self._undelivered_lock:
            self._undelivered[event["id"]] = event
        self._queue.put({"event": event})

    def undelivered(self) -> list[dict[str, Any]]:
        """Events queued or being delivered (saved with the state, delivered again after a restart)."""
        with self._undelivered_lock:
            return list(self._undelivered.values())

    def wait_idle(self, timeout: float = 900) -> bool:
        """Wait until every queued event was delivered (or ``timeout``); True if it was."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                event = item["event"]
                for rule, pattern in self._patterns:
                    if pattern.matches_event(event):
                        result, error = self._lambdas.invoke(rule.function.arn, event)
                        self.deliveries.append({"rule": rule.name, "event": event, "result": result, "error": error})
            except Exception as exc:  # a failed delivery must not stop the bus
                self.deliveries.append({"rule": None, "event": item, "result": None, "error": repr(exc)})
            finally:
                with self._undelivered_lock:
                    self._undelivered.pop(item["event"].get("id", ""), None)
                self._queue.task_done()
