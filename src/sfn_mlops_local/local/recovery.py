"""After a restart: what was in flight when the local service stopped is marked as such, never left RUNNING.

Step Functions executions live in the service's memory, so a killed service (or a stop that did not wait
for them) loses the executions in flight. Their records in the metadata table would read RUNNING forever;
instead each such run reads FAILED with a cause saying what happened and how to continue, and each
unit it held reads ABANDONED, so the next rerun takes it over as its next attempt.
"""

from __future__ import annotations

from typing import Any

from sfn_mlops.metadata import RUN_SK

from sfn_mlops_local.operations import Target

INTERRUPTED = "LocalServiceInterrupted"


def mark_interrupted_work(target: Target, stopped_cleanly: bool) -> list[dict[str, Any]]:
    """Mark every RUNNING run and unit as interrupted; returns what was marked (run_id, unit, status)."""
    how = "stopped before it finished" if stopped_cleanly else "killed"
    table = target.table
    records = table.running_records()
    held = {r["PK"]: r["SK"].split("#", 1)[1] for r in records if r["SK"] != RUN_SK}
    marked = []
    for record in records:
        run_id = record["PK"].split("#", 1)[1]
        if record["SK"] == RUN_SK:
            unit = held.get(record["PK"])
            where = f" in unit {unit}" if unit else ""
            error = {
                "unit": unit,
                "error": INTERRUPTED,
                "cause": (
                    f"the local service was {how} while this run's flow execution was in flight{where}; "
                    f"its in-flight work was lost. Rerun it: mlops rerun {run_id}"
                ),
            }
            status = "FAILED"
        else:
            unit = record["SK"].split("#", 1)[1]
            error = {
                "error": INTERRUPTED,
                "cause": (
                    f"attempt {record.get('attempt')} was in flight when the local service was {how}; "
                    "the next rerun runs this unit as its next attempt"
                ),
            }
            status = "ABANDONED"
        if table.mark_interrupted(record, status, error):
            marked.append({"run_id": run_id, "unit": None if record["SK"] == RUN_SK else unit, "status": status})
    return marked


def unplanned_uploads(target: Target) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version) of uploads whose run was started but never planned before the service stopped:
    their Object Created event is delivered again, and the trigger, finding its claim but no execution,
    starts the run under the claimed run id (as it does for a delivery that died on AWS)."""
    uploads = []
    for claim in target.table.unplanned_upload_claims():
        uri, _, version = str(claim["PK"]).removeprefix("TRIGGER#").removeprefix("batch#")[5:].partition("#")
        bucket, _, key = uri.partition("/")
        uploads.append((bucket, key, version or None))
    return uploads
