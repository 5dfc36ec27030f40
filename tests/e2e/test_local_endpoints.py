"""A SageMaker endpoint on the local service, as users reach it: boto3 and the AWS CLI over HTTP, a restart.

The service is a real process (``mlops local serve``), its clients use ``--endpoint-url``; alarms are fired
with ``aws cloudwatch set-alarm-state``, the local way to trip an auto-rollback alarm.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.e2e

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"


def _model(tmp: Path, scale: float) -> tuple[Any, bytes, np.ndarray]:
    import xgboost as xgb

    rng = np.random.default_rng(11)
    features = rng.uniform(0, 1, size=(50, 4))
    booster = xgb.train(
        {"objective": "reg:squarederror", "max_depth": 3},
        xgb.DMatrix(features, label=scale * (features @ np.array([1.0, 2.0, 0.5, 3.0]))),
        10,
    )
    booster.save_model(str(tmp / "xgboost-model"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(tmp / "xgboost-model", arcname="xgboost-model")
    return booster, buffer.getvalue(), features


def _aws(endpoint: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_SESSION_TOKEN", None)
    aws = str(Path(sys.executable).parent / "aws")
    return subprocess.run(
        [aws, "--endpoint-url", endpoint, *argv], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_an_endpoint_on_the_local_service_answers_the_aws_cli_rolls_back_on_an_alarm_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    from sfn_mlops_local.local import client

    state = tmp_path / "state"
    info = client.start(state, root=ROOT)
    try:
        clients = client.client_factory(info)
        sm, runtime, s3 = clients("sagemaker"), clients("sagemaker-runtime"), clients("s3")
        bucket = info.resources["ArtifactBucket"]
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        booster, archive, features = _model(tmp_path / "a", 1.0)
        _, archive_b, _ = _model(tmp_path / "b", 5.0)
        s3.put_object(Bucket=bucket, Key="endpoint-test/a/model.tar.gz", Body=archive)
        s3.put_object(Bucket=bucket, Key="endpoint-test/b/model.tar.gz", Body=archive_b)
        for name in ("a", "b"):
            sm.create_model(
                ModelName=f"e2e-{name}",
                ExecutionRoleArn=ROLE,
                PrimaryContainer={
                    "Image": XGBOOST_IMAGE,
                    "ModelDataUrl": f"s3://{bucket}/endpoint-test/{name}/model.tar.gz",
                },
            )
            sm.create_endpoint_config(
                EndpointConfigName=f"e2e-{name}",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": f"e2e-{name}",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 2,
                    }
                ],
            )
        # Given an endpoint created over HTTP, When it goes InService
        started = time.monotonic()
        sm.create_endpoint(EndpointName="e2e", EndpointConfigName="e2e-a")
        described = wait_until(
            lambda: (d := sm.describe_endpoint(EndpointName="e2e"))["EndpointStatus"] != "Creating" and d, timeout=60
        )
        created_s = time.monotonic() - started
        assert described["EndpointStatus"] == "InService", described.get("FailureReason")
        # Then the AWS CLI's invoke-endpoint gets the model's predictions, one per row, as the container writes them
        rows = features[:5]
        (tmp_path / "rows.csv").write_text("\n".join(",".join(repr(float(v)) for v in row) for row in rows))
        out = tmp_path / "out.csv"
        invoked = _aws(
            info.endpoint,
            "sagemaker-runtime",
            "invoke-endpoint",
            "--endpoint-name",
            "e2e",
            "--content-type",
            "text/csv",
            "--body",
            f"fileb://{tmp_path / 'rows.csv'}",
            str(out),
        )
        assert invoked.returncode == 0, invoked.stderr
        assert json.loads(invoked.stdout) == {
            "ContentType": "text/csv; charset=utf-8",
            "InvokedProductionVariant": "AllTraffic",
        }
        import xgboost as xgb

        expected = booster.predict(xgb.DMatrix(rows))
        assert np.allclose([float(v) for v in out.read_text().replace(",", " ").split()], expected, atol=1e-6)
        # And boto3 over HTTP gets them too, within milliseconds
        body = (tmp_path / "rows.csv").read_bytes()
        started = time.perf_counter()
        for _ in range(20):
            answer = runtime.invoke_endpoint(EndpointName="e2e", ContentType="text/csv", Body=body)["Body"].read()
        invoke_ms = (time.perf_counter() - started) / 20 * 1000
        assert np.allclose([float(v) for v in answer.decode().replace(",", " ").split()], expected, atol=1e-6)
        # And an unknown endpoint is refused as SageMaker refuses it
        missing = _aws(
            info.endpoint, "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", "nope", "--body", "1", str(out)
        )
        assert missing.returncode != 0 and "ValidationError" in missing.stderr
        assert "Endpoint nope of account 123456789012 not found." in missing.stderr
        # And rows the model cannot read are the container's 415, as a ModelError with its status and message
        with pytest.raises(runtime.exceptions.ModelError) as refused:
            runtime.invoke_endpoint(EndpointName="e2e", ContentType="text/csv", Body=b"x,y")
        error = refused.value.response
        assert error["OriginalStatusCode"] == 415 and error["OriginalMessage"].startswith("Loading csv data failed")
        assert error["Error"]["Message"].startswith("Received client error (415) from primary with message")

        # When an update bakes its canary and the alarm it watches is set to ALARM with the AWS CLI
        alarm = _aws(
            info.endpoint,
            "cloudwatch",
            "put-metric-alarm",
            "--alarm-name",
            "e2e-errors",
            "--namespace",
            "AWS/SageMaker",
            "--metric-name",
            "Invocation5XXErrors",
            "--dimensions",
            "Name=EndpointName,Value=e2e",
            "Name=VariantName,Value=AllTraffic",
            "--statistic",
            "Sum",
            "--period",
            "60",
            "--evaluation-periods",
            "1",
            "--threshold",
            "1",
            "--comparison-operator",
            "GreaterThanOrEqualToThreshold",
        )
        assert alarm.returncode == 0, alarm.stderr
        sm.update_endpoint(
            EndpointName="e2e",
            EndpointConfigName="e2e-b",
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                        "WaitIntervalInSeconds": 30,
                    },
                    "MaximumExecutionTimeoutInSeconds": 600,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "e2e-errors"}]},
            },
        )
        baking = wait_until(
            lambda: (
                (d := sm.describe_endpoint(EndpointName="e2e")).get("PendingDeploymentSummary")
                and d["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["Status"] == "Baking"
                and d
            ),
            timeout=30,
        )
        assert baking["PendingDeploymentSummary"]["ProductionVariants"][0]["CurrentWeight"] == pytest.approx(0.5)
        fired = _aws(
            info.endpoint,
            "cloudwatch",
            "set-alarm-state",
            "--alarm-name",
            "e2e-errors",
            "--state-value",
            "ALARM",
            "--state-reason",
            "canary errors",
        )
        assert fired.returncode == 0, fired.stderr
        # Then it is rolled back to the old config, saying which alarm
        rolled_back = wait_until(
            lambda: (d := sm.describe_endpoint(EndpointName="e2e"))["EndpointStatus"] == "InService" and d, timeout=30
        )
        assert rolled_back["EndpointConfigName"] == "e2e-a" and "e2e-errors" in rolled_back["FailureReason"]

        # When the service stops and starts again
        client.stop(state)
        info = client.start(state, root=ROOT)
        clients = client.client_factory(info)
        sm, runtime = clients("sagemaker"), clients("sagemaker-runtime")
        # Then the endpoint, its configs and the alarm's state are there, and it serves again
        after = sm.describe_endpoint(EndpointName="e2e")
        assert after["EndpointStatus"] == "InService" and after["EndpointConfigName"] == "e2e-a"
        assert [
            c["EndpointConfigName"]
            for c in sm.list_endpoint_configs(SortBy="Name", SortOrder="Ascending")["EndpointConfigs"]
        ] == [
            "e2e-a",
            "e2e-b",
        ]
        alarms = clients("cloudwatch").describe_alarms(AlarmNames=["e2e-errors"])["MetricAlarms"]
        assert [a["StateValue"] for a in alarms] == ["ALARM"]
        answer = runtime.invoke_endpoint(EndpointName="e2e", ContentType="text/csv", Body=body)["Body"].read()
        assert np.allclose([float(v) for v in answer.decode().replace(",", " ").split()], expected, atol=1e-6)
        print(f"\nendpoint InService after {created_s:.2f}s; InvokeEndpoint over HTTP {invoke_ms:.1f} ms (5 rows)")
    finally:
        client.stop(state)
