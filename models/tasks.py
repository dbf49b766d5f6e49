"""Task definitions: unit, population, label, features, CV grouping and metric family.

The feature tables (``DATA/features/<task>.parquet``) carry the population and the label;
this module says how each task is modelled and evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from features.catalogue import CATALOGUE


def str_array(column: pd.Series) -> np.ndarray:
    """*column* as an object array of str. A categorical column shares one str object per
    category (70 million rows cost 0.5 GiB of pointers, not 70 million new strings)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = np.array([str(c) for c in column.cat.categories], dtype=object)
        return categories[column.cat.codes.to_numpy()]
    return column.astype(str).to_numpy(dtype=object)


@dataclass(frozen=True)
class TaskSpec:
    """How one task is modelled and evaluated."""

    name: str
    kind: Literal["binary", "regression"]
    unit: str  # the unit id column
    unit_name: str
    label: str
    primary_metric: str
    description: str

    def groups(self, frame: pd.DataFrame) -> np.ndarray:
        """The CV group of every row: its gemeente (neighbours never straddle train and test)."""
        if "gemeente_code" in frame.columns:
            return str_array(frame["gemeente_code"])
        code = frame["area_code"].astype(str)
        return np.where(code.str.startswith("GM"), code, "GM" + code.str[2:6]).astype(str)

    def categorical(self, features: list[str]) -> list[int]:
        """Positions of integer-coded categorical features among *features*."""
        return [i for i, f in enumerate(features) if CATALOGUE[f].categories]


TASK_SPECS = MappingProxyType(
    {
        "hennep": TaskSpec(
            "hennep",
            "binary",
            "dwelling_id",
            "dwelling",
            "label",
            "roc_auc",
            "a cannabis farm dismantled at the dwelling in year t",
        ),
        "jonge_aanwas": TaskSpec(
            "jonge_aanwas",
            "binary",
            "person_id",
            "person",
            "label",
            "roc_auc",
            "a first drug-offence suspicion within 3 years from the start of t",
        ),
        "branch_turnover": TaskSpec(
            "branch_turnover",
            "regression",
            "cell_id",
            "cell",
            "label",
            "r2_log",
            "log(1 + turnover per inhabitant) of an area × branch cell in t",
        ),
    }
)


def get_task(name: str) -> TaskSpec:
    try:
        return TASK_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_SPECS)}") from None
