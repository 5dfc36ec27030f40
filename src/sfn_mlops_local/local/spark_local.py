"""The Spark processing image's ``smspark-submit`` as the local runtime runs it: the PySpark script under the image's
environment's Python, Spark in local mode, the system's Java.

On AWS, ``smspark-submit [options] app.py args...`` (the image's entrypoint, aws/sagemaker-spark-container
src/smspark/cli.py) bootstraps YARN over the job's instances and runs ``spark-submit --master yarn --deploy-mode
client [options] app.py args...`` as one shell line (the app and its arguments joined with spaces, src/smspark/
job.py: ``subprocess.run(cmd, shell=True)``). Locally there is one host: ``python app.py args...`` where pyspark
starts its JVM with ``PYSPARK_SUBMIT_ARGS="--master local[N] pyspark-shell"``; the arguments are split as that shell
line would be (quotes removed, words split; a shell's ``$`` expansions and globs are not done). Each difference is
written to the job's log. See docs/decisions/0028-spark-preprocessing.md.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENTRYPOINT = "smspark-submit"
JAVA_PACKAGE = "openjdk-17-jre-headless"
# The Java the Spark 3.5 image runs (Amazon Corretto 17) and the ones Spark 3.5 supports.
IMAGE_JAVA = "17"
SUPPORTED_JAVA = ("8", "11", "17")
# vCPUs of an ml.<family>.<size> instance by its size, as for the general-purpose and compute families (m5, c5...):
# xlarge is 4 and each multiple of it scales them.
_SIZE = re.compile(r"^ml\.[a-z0-9-]+\.(?:(\d*)xlarge|(large|medium))$")
_SMALL_SIZES = {"large": 2, "medium": 1}
# The local JVM's options (decision 0028): a local job's data is small and its JVM lives for one job, so the client
# compiler alone (C1) and the serial collector. With C2 and the parallel collector the JVM spent about twice the
# CPU time (60-62 against 30-40 CPU-s for four churn preprocess runs, bench/spark_jvm.py) for the same wall time
# of a job's one run. Speed only: Spark and the script compute the same.
LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def submit_args(master: str) -> str:
    """``PYSPARK_SUBMIT_ARGS`` for Spark in local mode at ``master``: pyspark splits it as a shell would."""
    return (
        f"--master {master} --conf spark.ui.showConsoleProgress=false "
        f"--driver-java-options {shlex.quote(LOCAL_JVM_OPTIONS)} pyspark-shell"
    )


class SparkUnavailable(Exception):
    """This machine cannot run the Spark image's job (the reason says what to install)."""


@dataclass(frozen=True)
class Java:
    home: Path
    version: str  # the major version ("17")

    @property
    def label(self) -> str:
        return f"Java {self.version} ({self.home})"


@dataclass(frozen=True)
class SparkCommand:
    argv: list[str]  # the app and its arguments as the script receives them
    env: dict[str, str]
    notes: list[str]  # what differs from AWS, for the job's log


def instance_vcpus(instance_type: str) -> int | None:
    match = _SIZE.match(instance_type or "")
    if match is None:
        return None
    if match.group(2):
        return _SMALL_SIZES[match.group(2)]
    return 4 * int(match.group(1) or 1)


def _java_home_candidates() -> list[Path]:
    given = os.environ.get("JAVA_HOME")
    found = shutil.which("java")
    homes = [Path(given)] if given else []
    if found:
        homes.append(Path(os.path.realpath(found)).parent.parent)  # <home>/bin/java, through the alternatives links
    return homes


@functools.lru_cache(maxsize=8)
def _version_of(java: Path) -> str:
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        return ""
    major, minor = match.groups()
    return minor if major == "1" and minor else major  # "1.8.0_x" is Java 8


def find_java() -> Java:
    """The Java pyspark will start (JAVA_HOME, else ``java`` on PATH); SparkUnavailable naming the package to install
    when there is none, or none that Spark 3.5 runs on."""
    install = f"install Java 17 from the system packages (apt-get install {JAVA_PACKAGE}; `make java` does)"
    seen = []
    for home in _java_home_candidates():
        java = home / "bin" / "java"
        if not java.is_file():
            seen.append(f"{home} has no bin/java")
            continue
        version = _version_of(java)
        if version in SUPPORTED_JAVA:
            return Java(home, version)
        seen.append(f"{home} is Java {version or '(unknown version)'}")
    why = "; ".join(seen) if seen else "no java on PATH and JAVA_HOME is not set"
    raise SparkUnavailable(
        f"the Spark image's jobs run PySpark, which needs Java {'/'.join(SUPPORTED_JAVA)}: {why}; {install}"
    )


def local_command(
    app_and_arguments: list[str], instance_type: str, instance_count: int, sandbox: Path, python: Path, java: Java
) -> SparkCommand:
    """``smspark-submit``'s app and arguments as a local command's argv and environment (ClientError-worthy
    problems raise ValueError: options before the app, a JAR)."""
    if not app_and_arguments or app_and_arguments[0].startswith("-"):
        raise ValueError(
            f"the local runtime runs '{ENTRYPOINT} app.py [arguments]' only: smspark-submit's own options "
            f"(--jars, --py-files, --files, --class...) are not available locally (got {app_and_arguments[:1]})"
        )
    # One shell line on AWS: split as the shell would split it.
    argv = shlex.split(" ".join(app_and_arguments))
    if not argv[0].endswith(".py"):
        raise ValueError(f"the local runtime runs PySpark applications only (a .py file), not {argv[0]}")
    cores = os.cpu_count() or 1
    vcpus = instance_vcpus(instance_type)
    if instance_count > 1:
        master = "local[*]"
        standing = (
            f"one local process with every core of this host ({cores}) stands for the {instance_count} "
            f"{instance_type} instances of a YARN cluster on AWS"
        )
    else:
        threads = min(cores, vcpus) if vcpus else cores
        master = f"local[{threads}]"
        standing = f"{threads} core(s) of this host stand for the {vcpus or '?'} vCPUs of one {instance_type}"
    local_dirs = sandbox / "tmp" / "spark"
    local_dirs.mkdir(parents=True, exist_ok=True)
    env = {
        # The shell mode pyspark runs in would draw a progress bar in the log; spark-submit does not.
        "PYSPARK_SUBMIT_ARGS": submit_args(master),
        "PYSPARK_PYTHON": str(python),  # the image's PYSPARK_PYTHON is its python3; here its environment's
        "JAVA_HOME": str(java.home),
        "SPARK_LOCAL_IP": "127.0.0.1",  # one host: nothing listens beyond it
        "SPARK_LOCAL_DIRS": str(local_dirs),  # shuffle and spill files in the job's sandbox, removed with it
        # The image's environment (Dockerfile.cpu ENV).
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    notes = [
        f"local runtime: {ENTRYPOINT} runs {argv[0]} with Spark in local mode ({master}: {standing}), not "
        "spark-submit --master yarn --deploy-mode client; its arguments are split as smspark-submit's shell line "
        "splits them",
        f"local runtime: {java.label}"
        + ("" if java.version == IMAGE_JAVA else f" (image: Java {IMAGE_JAVA})")
        + f", started with {LOCAL_JVM_OPTIONS} (a short local run's JIT and collector)",
    ]
    return SparkCommand(argv, env, notes)
