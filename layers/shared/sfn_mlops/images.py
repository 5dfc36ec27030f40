"""Container images by name; the URIs come from the template (one place names the versions)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sfn_mlops.errors import InvalidPipelineConfig

IMAGE_ENV = {"sklearn": "SKLEARN_IMAGE_URI", "spark": "SPARK_IMAGE_URI", "xgboost": "XGBOOST_IMAGE_URI"}


def image_uri(name: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    variable = IMAGE_ENV.get(name)
    if variable is None:
        raise InvalidPipelineConfig(f"unknown image {name!r}; known images: {', '.join(sorted(IMAGE_ENV))}")
    uri = env.get(variable, "")
    if not uri:
        raise InvalidPipelineConfig(f"image {name!r} is not configured ({variable} is empty)")
    return uri


def image_version(uri: str) -> str:
    """The tag of an image URI, e.g. '1.7-1' for .../sagemaker-xgboost:1.7-1."""
    return uri.rsplit(":", 1)[-1] if ":" in uri.rsplit("/", 1)[-1] else ""
