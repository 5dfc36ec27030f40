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


def _whole_numbers_as_ints(value: Any) -> Any:
    """1.0 and 1 hash alike: JSON passing through Step Functions may turn one into the other."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_ints(v) for v in value]
    return value


def config_digest(config: dict[str, Any]) -> str:
    """What a unit's config is (its own digest aside): the planner stamps it on the config as ``config_sha256``
    and the worker checks the config it is given still hashes to it."""
    return canonical_hash(_whole_numbers_as_ints(_without(config, "config_sha256")))


def stamp_config_digests(units: dict[str, dict[str, Any]]) -> None:
    """Each unit's config gets its ``config_sha256`` (not part of any fingerprint: fingerprints do not change)."""
    for config in units.values():
        config["config_sha256"] = config_digest(config)


def _without(config: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in keys}


def static_fingerprints(units: dict[str, dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
    """Per unit: a hash of everything it depends on except upstream outputs."""
    material: dict[str, Any] = {}
    for unit, config in units.items():
        own = _without(config, "runs_root", "script", "config_sha256")
        if "script" in config:
            own["script_sha256"] = config["script"]["sha256"]
        if unit == "preprocess":
            own["dataset_content"] = dataset["content"]
        material[unit] = {"unit": unit, **own}
    # Whole floats as ints: the executor recomputes a fingerprint from a config that went through Step Functions.
    return {unit: canonical_hash(_whole_numbers_as_ints(value)) for unit, value in material.items()}
