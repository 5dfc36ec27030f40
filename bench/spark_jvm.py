"""The local Spark JVM's CPU time and wall time for churn's PySpark preprocess, with the JVM's default options and with
the ones local jobs use (spark_local.LOCAL_JVM_OPTIONS: the client compiler only and the serial collector).

    python bench/spark_jvm.py [--runs 4]

For each option set, one Python process runs models/churn/scripts/preprocess.py's ``main`` ``--runs`` times on
data/churn.csv (as the churn preprocess tests do: one JVM for all, the first run pays the JVM's start), then prints
each run's wall time and the JVM's CPU time (user + system, read from /proc before the process exits). On a
machine whose cores are all busy (the test suite on 2 cores), the CPU time is what the other work waits for.

Skips (exit 0, saying why) without the Spark image's environment (``make images``) or Java.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SUBMIT = "--master local[*] --conf spark.ui.showConsoleProgress=false pyspark-shell"
SPARK_IMAGE = "173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5"

# Runs the script's main in a loop, then reports the JVM child's CPU time (it is not waited for, so no rusage).
DRIVER = """
import importlib.util, json, os, sys, time
spec = importlib.util.spec_from_file_location("churn_preprocess", sys.argv[1])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
data, out, runs = sys.argv[2], sys.argv[3], int(sys.argv[4])
walls = []
for i in range(runs):
    started = time.perf_counter()
    code = module.main(["--input-dir", data, "--output-dir", f"{out}/{i}", "--message-file", f"{out}/m{i}",
                        *json.loads(sys.argv[5])])
    walls.append(round(time.perf_counter() - started, 2))
    assert code == 0, open(f"{out}/m{i}").read()
hz = os.sysconf("SC_CLK_TCK")
jvm = 0.0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2 :].split()
    if int(fields[1]) == os.getpid():
        jvm += (int(fields[11]) + int(fields[12])) / hz
print(json.dumps({"walls": walls, "jvm_cpu_s": round(jvm, 1)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT))
    from sfn_mlops_local.local import image_environments, spark_local
    from tests.unit.scripts.churn_spark import contract_arguments

    spec = image_environments.spec_for(SPARK_IMAGE)
    if not image_environments.is_built(spec) or shutil.which("java") is None:
        print("skipped: needs the Spark image's environment (make images) and Java (make java)")
        return 0
    python = image_environments.python_of(image_environments.environments_root() / spec.folder_name)
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        data.mkdir()
        shutil.copy(ROOT / "models/churn/data/churn.csv", data)
        results: dict[str, dict[str, Any]] = {}
        for label, submit in (
            (
                "JVM defaults (C2, parallel GC)",
                "--master local[*] --conf spark.ui.showConsoleProgress=false pyspark-shell",
            ),
            (f"local jobs' ({spark_local.LOCAL_JVM_OPTIONS})", spark_local.submit_args("local[*]")),
        ):
            out = Path(scratch) / str(len(results))
            done = subprocess.run(
                [str(python), "-c", DRIVER, str(ROOT / "models/churn/scripts/preprocess.py"), str(data), str(out),
                 str(args.runs), json.dumps(contract_arguments())],
                env={**os.environ, "PYSPARK_SUBMIT_ARGS": submit},
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[label] = json.loads(done.stdout.strip().splitlines()[-1])
            walls = results[label]["walls"]
            print(f"{label}: JVM CPU {results[label]['jvm_cpu_s']} s; wall per run {walls} (sum {sum(walls):.1f} s)")
        default, local = results.values()
        print(f"JVM CPU ratio local/default: {local['jvm_cpu_s'] / default['jvm_cpu_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
