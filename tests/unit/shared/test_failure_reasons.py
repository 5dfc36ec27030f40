"""A failed job's FailureReason read as one line, the same way by the worker state machines (JSONata) and by the
Python that explains adopted and transform jobs (sfn_mlops.job_failures): one table, both readers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sfn_mlops.job_failures import CUT_SHORT, readable_reason

from sfn_mlops_local.local.moto_adaptations import evaluate_jsonata
from tests.conftest import ROOT

FRAMES = "".join(
    f'  File "/miniconda3/lib/python3.8/site-packages/sagemaker_xgboost_container/algorithm_mode/step{i}.py", '
    f"line {i}, in step{i}\n    step{i + 1}()\n"
    for i in range(12)
)
# A built-in algorithm's error as sagemaker_containers writes it: "framework error:", the traceback, the message.
FRAMEWORK = (
    "AlgorithmError: framework error: \nTraceback (most recent call last):\n"
    '  File "/miniconda3/lib/python3.8/site-packages/sagemaker_xgboost_container/training.py", line 94, in main\n'
    "    train(framework.training_env())\n"
    "sagemaker_algorithm_toolkit.exceptions.UserError: Hyperparameter eta: 2.0 is not in [0, 1]\n\n"
    "Hyperparameter eta: 2.0 is not in [0, 1]"
)
CHAINED = (
    "AlgorithmError: framework error: \nTraceback (most recent call last):\n"
    '  File "/miniconda3/lib/python3.7/site-packages/sagemaker_algorithm_toolkit/hyperparameter_validation.py", '
    "line 278, in validate\n    hyperparameter_obj = self.hyperparameters[hp]\nKeyError: 'silent'\n\n"
    "During handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n"
    + FRAMES
    + "sagemaker_algorithm_toolkit.exceptions.UserError: Extraneous hyperparameter found: silent\n\n"
    "Extraneous hyperparameter found: silent"
)
SCRIPT = (
    'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "Traceback (most recent call last):\n'
    '  File "/opt/ml/code/train.py", line 3, in <module>\n    import lightgbm\n'
    "ModuleNotFoundError: No module named 'lightgbm'\n\""
)

CASES = [
    pytest.param(FRAMEWORK, "AlgorithmError: Hyperparameter eta: 2.0 is not in [0, 1]", id="framework-error"),
    pytest.param(CHAINED, "AlgorithmError: Extraneous hyperparameter found: silent", id="chained-exceptions"),
    # SageMaker keeps the first 1,024 characters: a chained error cut short still shows its first exception ...
    pytest.param(CHAINED[:1024], "AlgorithmError: KeyError: 'silent'", id="cut-after-the-first-exception"),
    # ... and a long traceback that loses its message says so, rather than guessing from a frame
    pytest.param(
        ("AlgorithmError: framework error: \nTraceback (most recent call last):\n" + FRAMES)[:1024],
        f"AlgorithmError: {CUT_SHORT}",
        id="cut-inside-the-traceback",
    ),
    pytest.param(
        SCRIPT + '\nCommand "/miniconda3/bin/python3 train.py --epochs 3"',
        "AlgorithmError: ModuleNotFoundError: No module named 'lightgbm'",
        id="toolkit-error-message",
    ),
    pytest.param(
        SCRIPT, "AlgorithmError: ModuleNotFoundError: No module named 'lightgbm'", id="toolkit-without-command"
    ),
    pytest.param(
        SCRIPT + "\nComm",
        "AlgorithmError: ModuleNotFoundError: No module named 'lightgbm'",
        id="toolkit-cut-in-command",
    ),
    pytest.param(
        'AlgorithmError: Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    f()\n'
        "    ^^^\nValueError: bad row 3; log file: /tmp/state/logs/job.log",
        "AlgorithmError: ValueError: bad row 3",
        id="local-log-tail",
    ),
    pytest.param(
        "CapacityError: Unable to provision requested ML compute capacity.",
        "CapacityError: Unable to provision requested ML compute capacity.",
        id="one-line",
    ),
    pytest.param(
        "AlgorithmError: See job logs for more information",
        "AlgorithmError: See job logs for more information",
        id="processing-job",
    ),
]


def asl_reader() -> str:
    """The train worker's Fail state Cause expression (the three workers share the reader)."""
    states = json.loads((ROOT / "statemachines" / "train.asl.json").read_text())["States"]
    cause = str(states["Training job failed"]["Cause"])
    return cause.removeprefix("{%").removesuffix("%}")


def asl_line(reason: str) -> str:
    job: dict[str, Any] = {
        "TrainingJobName": "j1",
        "TrainingJobStatus": "Failed",
        "FailureReason": reason,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    text = str(evaluate_jsonata(asl_reader(), {"failure": {"Cause": json.dumps(job)}}))
    return text.removeprefix("Training job j1 failed: ").split("; log", 1)[0]


@pytest.mark.parametrize(("reason", "expected"), CASES)
def test_python_reads_a_failure_reason_as_its_message(reason: str, expected: str) -> None:
    assert readable_reason(reason) == expected


@pytest.mark.parametrize(("reason", "expected"), CASES)
def test_the_worker_state_machines_read_it_the_same_way(reason: str, expected: str) -> None:
    assert asl_line(reason) == expected
