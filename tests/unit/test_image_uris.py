"""Image URIs from SageMaker's own table: every URI the template builds, in every region of its account mapping and
at every allowed container version, equals the one the SageMaker SDK's image URI config gives; and the execution
role may pull exactly those repositories.

The SDK's tables are sagemaker-core's ``sagemaker/core/image_uri_config/<framework>.json``, read from the wheel that
``requirements-sdk-config.txt`` pins by hash (downloaded without dependencies; docs/decisions/0027). The rule the
comparison follows is the one ``sagemaker.core.image_uris.retrieve`` documents: the registry is the region's account
under ``registries``, the host is ``<account>.dkr.<ECR endpoint of the region>``, and the tag joins the version, the
processor (when the config lists processors), the Python version (when it lists ``py_versions``) and the container
version (Spark: ``v<n>``, as the SDK's Spark processor passes it), skipping the parts that are absent.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import re
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sfn_mlops.images import IMAGE_ENV

from sfn_mlops_local.local.template import ResolvedTemplate, load_template
from tests.conftest import ROOT

PIN_FILE = ROOT / "requirements-sdk-config.txt"
# Where `make` downloads the pinned wheel: beside the interpreter running the tests (the project's venv).
WHEEL_DIR = Path(sys.prefix) / "image-uri-config"
CONFIG_DIR = "sagemaker/core/image_uri_config"
MAPPING = "SageMakerImageAccounts"


@dataclasses.dataclass(frozen=True)
class Image:
    """One image the functions are given: its env var, version parameter and how the SDK names it."""

    name: str  # sfn_mlops.images.IMAGE_ENV key
    env: str
    parameter: str  # the template parameter whose AllowedValues are the versions
    framework: str  # the SDK config file
    scopes: tuple[str, ...]  # every SDK image scope the image serves in the pipelines
    py_version: str | None = None
    container_version: str | None = None


IMAGES = (
    # Built-in algorithm: training jobs, and the model (endpoints, transform jobs) serves with the same image.
    Image("xgboost", "XGBOOST_IMAGE_URI", "XGBoostContainerVersion", "xgboost", ("training", "inference")),
    # Preprocessing jobs (the SDK's processors use the training scope), and the inference pipeline's first container.
    Image("sklearn", "SKLEARN_IMAGE_URI", "SklearnContainerVersion", "sklearn", ("training", "inference"), "py3"),
    Image("spark", "SPARK_IMAGE_URI", "SparkContainerVersion", "spark", ("processing",), "py312", "v1"),
)


# ---------------------------------------------------------------- the SDK's side


def _pinned_wheel() -> tuple[str, str]:
    """(version, sha256) of sagemaker-core in the pin file."""
    match = re.search(r"^sagemaker-core==(\S+)\s+--hash=sha256:([0-9a-f]{64})", PIN_FILE.read_text(), re.MULTILINE)
    assert match, f"{PIN_FILE.name} should pin sagemaker-core==<version> --hash=sha256:<digest>"
    return match.group(1), match.group(2)


@functools.cache
def sdk_configs() -> dict[str, dict[str, Any]]:
    """The SDK's image URI config per framework, from the pinned wheel (its digest checked)."""
    version, digest = _pinned_wheel()
    wheel = WHEEL_DIR / f"sagemaker_core-{version}-py3-none-any.whl"
    assert wheel.is_file(), (
        f"{wheel.name} is missing: `make` downloads it (pip download --no-deps --require-hashes "
        f"-r {PIN_FILE.name} --dest <venv>/image-uri-config)"
    )
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == digest, f"{wheel.name} is not the pinned wheel"
    with zipfile.ZipFile(wheel) as archive:
        return {
            framework: json.loads(archive.read(f"{CONFIG_DIR}/{framework}.json"))
            for framework in {image.framework for image in IMAGES}
        }


@functools.cache
def ecr_endpoint(region: str) -> dict[str, str]:
    """botocore's ECR endpoint for a region: its hostname, partition and DNS suffix (what the SDK builds hosts from)."""
    import botocore.loaders
    import botocore.regions

    resolver = botocore.regions.EndpointResolver(botocore.loaders.create_loader().load_data("endpoints"))
    endpoint = resolver.construct_endpoint("ecr", region)
    if not endpoint:
        raise LookupError(f"botocore knows no ECR endpoint in {region}")
    return {key: endpoint[key] for key in ("hostname", "partition", "dnsSuffix")}


def sdk_uri(config: Mapping[str, Any], image: Image, scope: str, version: str, region: str) -> str:
    """The image URI the SDK's config gives, or LookupError naming what the config lacks."""
    if scope not in config:
        raise LookupError(f"the SDK config has no {scope!r} scope")
    versions = config[scope]["versions"]
    if version not in versions:
        raise LookupError(f"the SDK config has no version {version} (it has {', '.join(versions)})")
    entry = versions[version]
    if region not in entry["registries"]:
        raise LookupError(f"the SDK config publishes no image in {region}")
    processors = config[scope].get("processors") or entry.get("processors")
    if processors and "cpu" not in processors:
        raise LookupError(f"the SDK config has no cpu image (processors: {processors})")
    py_versions = entry.get("py_versions")
    if py_versions and image.py_version not in py_versions:
        raise LookupError(f"the SDK config has no Python {image.py_version} (it has {', '.join(py_versions)})")
    if not py_versions and image.py_version:
        raise LookupError(f"the SDK config lists no Python version, the template names {image.py_version}")
    parts = (version, "cpu" if processors else None, image.py_version, image.container_version)
    tag = "-".join(part for part in parts if part)
    return f"{entry['registries'][region]}.dkr.{ecr_endpoint(region)['hostname']}/{entry['repository']}:{tag}"


# ---------------------------------------------------------------- the template's side


@dataclasses.dataclass
class RegionalTemplate(ResolvedTemplate):
    """The template resolved as CloudFormation would in another region (the local runtime's is fixed)."""

    region: str = "us-east-1"

    def _ref(self, name: str) -> str | list[str]:
        if name == "AWS::Region":
            return self.region
        if name in ("AWS::Partition", "AWS::URLSuffix"):
            endpoint = ecr_endpoint(self.region)
            return endpoint["partition"] if name == "AWS::Partition" else endpoint["dnsSuffix"]
        return super()._ref(name)


def in_region(template: ResolvedTemplate, region: str, **parameters: str) -> RegionalTemplate:
    fields = {f.name: getattr(template, f.name) for f in dataclasses.fields(template)}
    fields["parameters"] = {**template.parameters, **parameters}
    return RegionalTemplate(**fields, region=region)


def allowed_versions(template: ResolvedTemplate, parameter: str) -> list[str]:
    spec = template.raw["Parameters"][parameter]
    return [str(v) for v in spec.get("AllowedValues", [spec["Default"]])]


def template_uri(template: ResolvedTemplate, image: Image, region: str, version: str) -> str:
    env = template.raw["Globals"]["Function"]["Environment"]["Variables"]
    return str(in_region(template, region, **{image.parameter: version}).resolve(env[image.env]))


def drift(template: ResolvedTemplate, configs: Mapping[str, Mapping[str, Any]], images: Sequence[Image]) -> list[str]:
    """Every (image, version, scope, region of the mapping) whose URI differs from the SDK's, one line each.

    A region the SDK config publishes in but the mapping leaves out is fine; the opposite is drift.
    """
    problems = []
    for region in template.raw["Mappings"][MAPPING]:
        for image in images:
            for version in allowed_versions(template, image.parameter):
                for scope in image.scopes:
                    where = f"{image.name} {version} ({scope}) in {region}"
                    try:
                        built = template_uri(template, image, region, version)
                        expected = sdk_uri(configs[image.framework], image, scope, version, region)
                    except LookupError as error:
                        problems.append(f"{where}: {error}")
                        continue
                    if built != expected:
                        problems.append(f"{where}: the template builds {built}, the SDK config gives {expected}")
    return problems


def pull_statement(template: ResolvedTemplate) -> dict[str, Any]:
    for resource in template.raw["Resources"].values():
        for policy in resource.get("Properties", {}).get("Policies", []):
            document = policy.get("PolicyDocument", {}) if isinstance(policy, dict) else {}  # SAM names are strings
            for statement in document.get("Statement", []):
                if statement.get("Sid") == "PullSageMakerImages":
                    return dict(statement)
    raise AssertionError("no PullSageMakerImages statement in template.yaml")


def repository_arn(uri: str, region: str) -> str:
    host, repository = uri.split("/", 1)
    return (
        f"arn:{ecr_endpoint(region)['partition']}:ecr:{region}:{host.split('.', 1)[0]}:repository/"
        + (repository.split(":", 1)[0])
    )


@functools.cache
def template() -> ResolvedTemplate:
    return load_template(ROOT)


# ---------------------------------------------------------------- the template against the SDK


@pytest.mark.tooling
def test_every_image_uri_the_template_builds_is_the_one_the_sdk_config_gives() -> None:
    # Given the template's account mapping and the SDK's image URI config
    # When each image is built for every region of the mapping at every allowed version
    problems = drift(template(), sdk_configs(), IMAGES)
    # Then no account, repository, host or tag differs from the SDK's
    assert problems == [], "\n".join(problems)


def test_every_image_the_template_gives_the_functions_is_checked_and_known_by_name() -> None:
    # Given the template's function environment and the images this test checks
    env = template().raw["Globals"]["Function"]["Environment"]["Variables"]
    image_vars = {name for name in env if name.endswith("_IMAGE_URI")}
    # Then each image variable is checked here, and the code knows every one by the same name
    assert image_vars == {image.env for image in IMAGES}
    assert {image.name: image.env for image in IMAGES} == IMAGE_ENV


@pytest.mark.parametrize("region", sorted(template().raw["Mappings"][MAPPING]))
def test_the_execution_role_may_pull_exactly_the_images_the_functions_are_given(region: str) -> None:
    # Given the template resolved in a region of its mapping
    regional = in_region(template(), region)
    # When the pull statement's resources and the images' repositories are compared
    resources = regional.resolve(pull_statement(template())["Resource"])
    repositories = {
        repository_arn(template_uri(template(), image, region, version), region)
        for image in IMAGES
        for version in allowed_versions(template(), image.parameter)
    }
    # Then the role may pull those repositories and no other
    assert sorted(resources) == sorted(repositories)


# ---------------------------------------------------------------- the comparison itself (no SDK needed)


def fake_configs(accounts: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """SDK-shaped configs publishing the template's versions in the given regions: region -> (algorithm, spark)."""
    algorithm = {region: pair[0] for region, pair in accounts.items()}
    spark = {region: pair[1] for region, pair in accounts.items()}
    return {
        "xgboost": {
            scope: {"versions": {"1.7-1": {"registries": algorithm, "repository": "sagemaker-xgboost"}}}
            for scope in ("training", "inference")
        },
        "sklearn": {
            scope: {
                "versions": {
                    "1.2-1": {
                        "processors": ["cpu"],
                        "py_versions": ["py3"],
                        "registries": algorithm,
                        "repository": "sagemaker-scikit-learn",
                    }
                }
            }
            for scope in ("training", "inference")
        },
        "spark": {
            "processing": {
                "processors": ["cpu"],
                "versions": {
                    "3.5": {
                        "py_versions": ["py39", "py312"],
                        "registries": spark,
                        "repository": "sagemaker-spark-processing",
                    }
                },
            }
        },
    }


def with_mapping(accounts: Mapping[str, tuple[str, str]]) -> ResolvedTemplate:
    """The real template with its account mapping replaced (deep copy: the cached template stays as it is)."""
    raw = copy.deepcopy(template().raw)
    raw["Mappings"][MAPPING] = {
        region: {"Account": pair[0], "SparkAccount": pair[1]} for region, pair in accounts.items()
    }
    return dataclasses.replace(template(), raw=raw)


ACCOUNTS = {"us-east-1": ("683313688378", "173754725891"), "eu-west-1": ("141502667606", "571004829621")}


def test_a_mapping_that_matches_the_sdk_has_no_drift_and_may_leave_sdk_regions_out() -> None:
    # Given an SDK config that also publishes in a region the mapping leaves out
    configs = fake_configs({**ACCOUNTS, "ap-south-1": ("720646828776", "105495057255")})
    # When the template's mapping is compared with it, then nothing drifts
    assert drift(with_mapping(ACCOUNTS), configs, IMAGES) == []


@pytest.mark.parametrize(
    ("drifted", "images"),
    [(("000000000000", "571004829621"), {"xgboost", "sklearn"}), (("141502667606", "000000000000"), {"spark"})],
    ids=["algorithm-account", "spark-account"],
)
def test_an_account_that_drifted_from_the_sdk_is_named_with_its_region_and_images(
    drifted: tuple[str, str], images: set[str]
) -> None:
    # Given a mapping whose eu-west-1 entry differs from the SDK config in one account
    problems = drift(with_mapping({**ACCOUNTS, "eu-west-1": drifted}), fake_configs(ACCOUNTS), IMAGES)
    # Then the comparison fails on the images from that account in that region (every scope), and on nothing else
    assert all("in eu-west-1: the template builds 000000000000.dkr.ecr.eu-west-1." in p for p in problems)
    assert {p.split(" ", 1)[0] for p in problems} == images
    assert len(problems) == sum(len(image.scopes) for image in IMAGES if image.name in images)


def test_a_region_the_sdk_does_not_publish_in_is_drift() -> None:
    # Given a mapping with a region the SDK config has no image in
    problems = drift(with_mapping({**ACCOUNTS, "ca-central-1": ("1", "2")}), fake_configs(ACCOUNTS), IMAGES)
    # Then every image fails there
    assert len(problems) == 5 and all("publishes no image in ca-central-1" in p for p in problems)


def test_a_version_or_python_the_sdk_config_does_not_list_is_drift() -> None:
    # Given an SDK config without the template's scikit-learn version, and a Spark image the template names with a
    # Python the config does not list
    configs = fake_configs(ACCOUNTS)
    configs["sklearn"]["training"]["versions"] = {"1.4-2": configs["sklearn"]["training"]["versions"]["1.2-1"]}
    spark = dataclasses.replace(IMAGES[2], py_version="py310")
    # When they are compared
    problems = drift(with_mapping(ACCOUNTS), configs, (IMAGES[1], spark))
    # Then both are named, in each region
    assert sum("has no version 1.2-1 (it has 1.4-2)" in p for p in problems) == 2
    assert sum("has no Python py310 (it has py39, py312)" in p for p in problems) == 2


def test_a_tag_that_drifted_from_the_sdk_rule_is_drift() -> None:
    # Given an SDK tag rule that now gives container version v2 where the template builds v1
    spark = dataclasses.replace(IMAGES[2], container_version="v2")
    # When they are compared, then the Spark image drifts in every region
    problems = drift(with_mapping(ACCOUNTS), fake_configs(ACCOUNTS), (spark,))
    assert len(problems) == 2 and all(p.endswith("3.5-cpu-py312-v2") for p in problems)
