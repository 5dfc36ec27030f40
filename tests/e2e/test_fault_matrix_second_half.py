"""The second half of the training flow's fault matrix (see test_fault_matrix.py), in a module of its own so that
`make test`, which gives each worker whole modules, runs the two halves side by side."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_fault_matrix import SECOND_HALF, FaultPoint, check_fault_then_rerun, lab  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("point", SECOND_HALF, ids=[p.id for p in SECOND_HALF])
def test_fault_then_rerun_ends_like_a_clean_run(lab: dict[str, Any], point: FaultPoint) -> None:  # noqa: F811
    check_fault_then_rerun(lab, point)
