"""The churn pipeline's model quality against the reference: test AUC and accuracy over 5 split seeds.

    MLOPS_SPARK_PYTHON=/path/to/python-with-pyspark python bench/churn_reference.py [--seeds 42,1,2,3,4]

Each seed: models/churn/scripts/preprocess.py (PySpark, local mode) splits data/churn.csv 70/15/15 stratified, as
the pipeline's job does (its contract's arguments); xgboost.train fits the pipeline's hyperparameters (the
SageMaker XGBoost churn example's: max_depth 5, eta 0.2, gamma 4, min_child_weight 6, subsample 0.8, 100 rounds,
binary:logistic) on the training split, watching the validation split, with early stopping only when the config
sets ``early_stopping_rounds``; models/churn/scripts/evaluate.py scores it on the test split, with the
majority-class baseline. The reference (XGBoost, those hyperparameters, 70/15/15 splits, 5 seeds): test AUC 0.92
(0.90-0.94), accuracy 0.95; the majority class alone gets 0.86.

Skips (exit 0, saying why) when no Python with PySpark is found ($MLOPS_SPARK_PYTHON, or this one).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHURN = ROOT / "models" / "churn"
REFERENCE_AUC = (0.92, 0.90, 0.94)  # mean (range over the seeds)
REFERENCE_ACCURACY = 0.95
REFERENCE_MAJORITY_ACCURACY = 0.86


def spark_python() -> str | None:
    given = os.environ.get("MLOPS_SPARK_PYTHON")
    if given:
        return given
    return sys.executable if importlib.util.find_spec("pyspark") is not None else None


def contract_arguments(config: dict[str, Any]) -> list[str]:
    contract = config["data"]["contract"]
    arguments = ["--label", contract["label"]["name"], "--positive-label", contract["label"]["positive"]]
    for feature in contract["features"]:
        if feature["type"] == "categorical":
            arguments += ["--categorical", f"{feature['name']}={','.join(feature['domain'])}"]
    return [*arguments, "--features", ",".join(f["name"] for f in contract["features"])]


def preprocess(python: str, config: dict[str, Any], work: Path, seed: int) -> Path:
    input_dir, output_dir = work / "input", work / f"splits-{seed}"
    input_dir.mkdir(exist_ok=True)
    shutil.copy(CHURN / config["data"]["sample_file"], input_dir / "churn.csv")
    ratios = ["--train-ratio", str(config["preprocess"]["train_ratio"])]
    ratios += ["--validation-ratio", str(config["preprocess"]["validation_ratio"])]
    command = [python, str(CHURN / config["preprocess"]["script"]), "--input-dir", str(input_dir)]
    command += ["--output-dir", str(output_dir), "--message-file", str(work / "message")]
    command += [*contract_arguments(config), *ratios, "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"preprocess failed for seed {seed}: {done.stderr[-2000:]}")
    return output_dir


def train(config: dict[str, Any], splits: Path, model_dir: Path) -> int:
    """Fit on train, watch validation; returns the rounds kept. Packs model.tar.gz as the training job does."""
    import numpy as np
    import xgboost

    params = {k: v for k, v in config["train"]["hyperparameters"].items() if k != "num_round"}
    rounds = int(config["train"]["hyperparameters"]["num_round"])
    stopping = params.pop("early_stopping_rounds", None)
    data = {name: np.loadtxt(splits / name / f"{name}.csv", delimiter=",") for name in ("train", "validation")}
    matrices = {name: xgboost.DMatrix(d[:, 1:], label=d[:, 0]) for name, d in data.items()}
    booster = xgboost.train(
        params,
        matrices["train"],
        rounds,
        evals=[(matrices["validation"], "validation")],
        early_stopping_rounds=int(stopping) if stopping else None,
        verbose_eval=False,
    )
    model_dir.mkdir(parents=True)
    booster.save_model(str(model_dir / "xgboost-model"))
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        tar.add(model_dir / "xgboost-model", arcname="xgboost-model")
    best = booster.attr("best_iteration")
    return int(best) + 1 if best is not None else rounds


def evaluate(config: dict[str, Any], splits: Path, model_dir: Path, output_dir: Path) -> dict[str, Any]:
    command = [sys.executable, str(CHURN / config["evaluate"]["script"]), "--model-dir", str(model_dir)]
    command += ["--test-dir", str(splits / "test"), "--train-dir", str(splits / "train")]
    command += ["--output-dir", str(output_dir), "--message-file", str(output_dir.parent / "evaluate-message")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"evaluate failed: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads((output_dir / "evaluation.json").read_text())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,1,2,3,4", help="split seeds, comma-separated")
    args = parser.parse_args(argv)
    python = spark_python()
    if python is None:
        print("skipped: no Python with PySpark (set MLOPS_SPARK_PYTHON to one; Java 17 on PATH)")
        return 0
    config = json.loads((CHURN / "pipeline.json").read_text())
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for seed in seeds:
            splits = preprocess(python, config, work, seed)
            rounds = train(config, splits, work / f"model-{seed}")
            report = evaluate(config, splits, work / f"model-{seed}", work / f"evaluation-{seed}")
            metrics, baseline = report["metrics"], report["baseline"]["metrics"]
            rows.append({"seed": seed, "rounds": rounds, **metrics, "majority_accuracy": baseline["accuracy"]})
            print(
                f"seed {seed:>3}: auc {metrics['auc']:.4f}  accuracy {metrics['accuracy']:.4f}  "
                f"precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  f1 {metrics['f1']:.4f}  "
                f"majority accuracy {baseline['accuracy']:.4f}  ({rounds} rounds)",
                flush=True,
            )
    aucs = [r["auc"] for r in rows]
    accuracies = [r["accuracy"] for r in rows]
    auc_ref, auc_low, auc_high = REFERENCE_AUC
    print(
        f"mean: auc {statistics.mean(aucs):.4f} (range {min(aucs):.4f}-{max(aucs):.4f}; reference {auc_ref} "
        f"({auc_low}-{auc_high})), accuracy {statistics.mean(accuracies):.4f} (reference {REFERENCE_ACCURACY}), "
        f"majority accuracy {statistics.mean(r['majority_accuracy'] for r in rows):.4f} "
        f"(reference {REFERENCE_MAJORITY_ACCURACY})"
    )
    print(json.dumps({"seeds": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
