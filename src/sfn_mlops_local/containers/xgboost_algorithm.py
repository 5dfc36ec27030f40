"""Entry point of the local SageMaker XGBoost 1.7-1 algorithm container (training mode).

Run either way, with the image's packages only (nothing of the project needs to be importable):

    python -m sfn_mlops_local.containers.xgboost_algorithm
    python <this folder>/xgboost_algorithm.py

The rules live in the xgboost_container package beside this file; see its docstrings and
docs/decisions/0022-xgboost-container-rules.md.
"""

from __future__ import annotations

import importlib
import sys

if __package__:
    train = importlib.import_module(f"{__package__}.xgboost_container.train")
else:  # run by path: this file's folder is sys.path[0], so the package imports as a top-level one
    train = importlib.import_module("xgboost_container.train")

main = train.main

if __name__ == "__main__":
    sys.exit(main())
