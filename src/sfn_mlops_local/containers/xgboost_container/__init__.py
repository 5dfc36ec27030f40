"""Local emulation of the SageMaker XGBoost 1.7-1 algorithm container, training mode.

Standalone on purpose: only the standard library, numpy, scipy, pandas, scikit-learn and xgboost (the
image's packages) are imported, and only relative imports inside this package, so the runtime can run
it by file path with nothing of the project importable. Entry point: ../xgboost_algorithm.py.
See docs/decisions/0022-xgboost-container-rules.md.
"""
