"""Inputs fingerprints: a unit reruns when, and only when, what it would compute from changes.

The planner hashes each unit's own inputs (data content, code, image, instance config, parameters);
the job flow then hashes that together with the upstream units' recorded outputs (``States.Hash``), so a
unit whose upstream produced different outputs reruns too. Nothing run-specific (run id, run prefixes)
goes in, so the same inputs in another run give the same fingerprint: that is what the cache keys on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _without(config: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in keys}


def static_fingerprints(units: dict[str, dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
    """Per unit: a hash of everything it depends on except upstream outputs."""
    material: dict[str, Any] = {}
    for unit, config in units.items():
        own = _without(config, "runs_root", "script")
        if "script" in config:
            own["script_sha256"] = config["script"]["sha256"]
        if unit == "preprocess":
            own["dataset_content"] = dataset["content"]
        material[unit] = {"unit": unit, **own}
    return {unit: canonical_hash(value) for unit, value in material.items()}
