"""The top-level packages resolve to this repository, not to same-named packages elsewhere."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "name", ["microdata", "features", "models", "experiments", "reports", "disclosure"]
)
def test_package_is_ours(name: str) -> None:
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == ROOT / name
