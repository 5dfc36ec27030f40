"""A SageMaker transform job on the local service, as users reach it: boto3 and the AWS CLI over HTTP, a restart.

The service is a real process (``mlops local serve``); the model is made the way the batch flow's worker makes
it, the job is created over HTTP, and its output is read back from the service's S3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, wait_until
from tests.unit.local.model_fixtures import ROLE, XGBOOST_IMAGE, tar_gz

pytestmark = pytest.mark.e2e


def _model(tmp: Path) -> tuple[Any, bytes, np.ndarray]:
    import xgboost as xgb

    rng = np.random.default_rng(5)
    features = rng.uniform(0, 1, size=(300, 4))
    booster = xgb.train(
        {"objective": "reg:squarederror", "max_depth": 3},
        xgb.DMatrix(features, label=features @ np.array([1.0, 2.0, 0.5, 3.0])),
        10,
    )
    booster.save_model(str(tmp / "xgboost-model"))
    return booster, tar_gz({"xgboost-model": (tmp / "xgboost-model").read_bytes()}), features


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


def test_a_transform_job_on_the_local_service_scores_every_row_over_http_and_is_kept_across_a_restart(
    tmp_path: Path,
) -> None:
    import xgboost as xgb

    from sfn_mlops_local.local import client

    state = tmp_path / "state"
    info = client.start(state, root=ROOT)
    try:
        clients = client.client_factory(info)
        sm, s3 = clients("sagemaker"), clients("s3")
        bucket = info.resources["ArtifactBucket"]
        booster, archive, features = _model(tmp_path)
        s3.put_object(Bucket=bucket, Key="transform-test/model.tar.gz", Body=archive)
        sm.create_model(
            ModelName="e2e-batch",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{bucket}/transform-test/model.tar.gz"},
        )
        # Given rows with an id first, as a batch input
        ids = [f"r{i}" for i in range(len(features))]
        rows = [f"{i}," + ",".join(repr(float(v)) for v in row) for i, row in zip(ids, features, strict=True)]
        s3.put_object(Bucket=bucket, Key="transform-test/in/rows.csv", Body="\n".join(rows).encode())
        # When a transform job is created over HTTP, the id kept out of the model and joined back
        sm.create_transform_job(
            TransformJobName="e2e-batch-1",
            ModelName="e2e-batch",
            MaxPayloadInMB=1,
            BatchStrategy="MultiRecord",
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/transform-test/in/"}
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            TransformOutput={"S3OutputPath": f"s3://{bucket}/transform-test/out", "AssembleWith": "Line"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
            DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
        )
        described = wait_until(
            lambda: (
                (d := sm.describe_transform_job(TransformJobName="e2e-batch-1"))["TransformJobStatus"] != "InProgress"
                and d
            ),
            timeout=60,
        )
        # Then it completed, with one "id,prediction" line per row, each equal to the model's own prediction
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        out = s3.get_object(Bucket=bucket, Key="transform-test/out/rows.csv.out")["Body"].read().decode()
        lines = out.splitlines()
        assert [line.split(",")[0] for line in lines] == ids
        expected = booster.predict(xgb.DMatrix(features))
        assert np.allclose([float(line.split(",")[1]) for line in lines], expected, atol=1e-6, rtol=0)
        # And the AWS CLI sees it, and a request SageMaker refuses is refused over HTTP with its words
        listed = _aws(info.endpoint, "sagemaker", "list-transform-jobs", "--name-contains", "e2e-batch")
        assert listed.returncode == 0, listed.stderr
        assert [s["TransformJobName"] for s in json.loads(listed.stdout)["TransformJobSummaries"]] == ["e2e-batch-1"]
        refused = _aws(
            info.endpoint,
            "sagemaker",
            "create-transform-job",
            "--transform-job-name",
            "e2e-batch-2",
            "--model-name",
            "nobody",
            "--transform-input",
            json.dumps({"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/x/"}}}),
            "--transform-output",
            json.dumps({"S3OutputPath": f"s3://{bucket}/y"}),
            "--transform-resources",
            json.dumps({"InstanceType": "ml.m5.large", "InstanceCount": 1}),
        )
        assert refused.returncode != 0
        assert "ValidationException" in refused.stderr and "Could not find model" in refused.stderr

        # When the service stops and starts again, Then the job is still described as it ended
        client.stop(state)
        info = client.start(state, root=ROOT)
        sm = client.client_factory(info)("sagemaker")
        after = sm.describe_transform_job(TransformJobName="e2e-batch-1")
        assert after["TransformJobStatus"] == "Completed"
        assert after["DataProcessing"]["OutputFilter"] == "$[0,-1]"
    finally:
        client.stop(state)
