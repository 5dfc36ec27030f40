"""Running models/churn/scripts/preprocess.py (PySpark) from the tests: which Python has PySpark, and the arguments
the preprocess job gives the script for the churn pipeline."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CHURN = REPO / "models" / "churn"
SCRIPT = CHURN / "scripts" / "preprocess.py"
DATA = CHURN / "data" / "churn.csv"
# Set it to a Python with pyspark 3.5 (and a Java 17 on PATH) to run the Spark tests.
SPARK_PYTHON_ENV = "MLOPS_SPARK_PYTHON"
SPARK_TIMEOUT_S = 900


@functools.cache
def spark_python() -> str | None:
    """$MLOPS_SPARK_PYTHON, else this interpreter when it has pyspark, else the local runtime's Spark image
    environment when built; None when none (or no Java)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return None
    given = os.environ.get(SPARK_PYTHON_ENV)
    if given:
        return given
    if importlib.util.find_spec("pyspark") is not None:
        return sys.executable
    # The local runtime's environment of the Spark image (make's images target builds it), as jobs run it
    from sfn_mlops_local.local import image_environments

    spec = image_environments.spec_for("173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5")
    if image_environments.is_built(spec):
        return str(image_environments.python_of(image_environments.environments_root() / spec.folder_name))
    return None


SKIP_REASON = (
    f"no Python with PySpark: set {SPARK_PYTHON_ENV} to one (pyspark 3.5, Java 17 on PATH) to run the churn "
    "preprocess (PySpark) tests"
)


def contract_arguments() -> list[str]:
    """What the preprocess job request passes for churn's declared contract (jobs.preprocess_request, with the
    positive class of a categorical label)."""
    contract = json.loads((CHURN / "pipeline.json").read_text())["data"]["contract"]
    arguments = ["--label", contract["label"]["name"], "--positive-label", contract["label"]["positive"]]
    for feature in contract["features"]:
        if feature["type"] == "categorical":
            arguments += ["--categorical", f"{feature['name']}={','.join(feature['domain'])}"]
    arguments += ["--features", ",".join(f["name"] for f in contract["features"])]
    return arguments


def main_in_one_process(argvs: list[list[str]]) -> tuple[list[int], str]:
    """Each argument list through the script's ``main`` in one PySpark process (one JVM start for all, the slow
    part): the exit codes, and what the process wrote on stderr."""
    driver = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('churn_preprocess', {str(SCRIPT)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(json.dumps([module.main(argv) for argv in json.loads(sys.argv[1])]))\n"
    )
    from sfn_mlops_local.local.spark_local import submit_args

    python = spark_python()
    assert python is not None, SKIP_REASON
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": submit_args("local[*]")}  # the JVM a local job starts
    done = subprocess.run(
        [python, "-c", driver, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=SPARK_TIMEOUT_S,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr
