"""The protected-attribute guard. There is no switch to turn it off.

A feature may not be built from origin or migration background, by any route:

* **by name or lineage**: :func:`check_selection` refuses a feature whose catalogue lineage
  touches a protected column (marked in :mod:`microdata.schemas`, or named like one), and a
  feature the catalogue does not know;
* **added by code**: :func:`check_frame` refuses any column of a feature table that is not a
  catalogue feature or a declared meta column, and any column named like a protected one;
* **as a stray input column**: :class:`features.world.WorldReader` never reads a protected
  or undeclared column, and :func:`check_inputs` refuses input frames that carry one;
* **as a relabelled copy**: :func:`check_copies` asks the audit accessor how strongly each
  column determines origin and refuses near-copies, whatever their name.

Every refusal raises :class:`ProtectedAttributeError` (or :class:`UnknownFeatureError`), which
the CLI turns into exit 2 with the feature and the protected column named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from features.catalogue import CATALOGUE, RETIRED, Feature
from features.world import ProtectedAttributeError
from microdata.schemas import TABLES, is_protected_name

__all__ = [
    "ProtectedAttributeError",
    "UnknownFeatureError",
    "check_copies",
    "check_frame",
    "check_inputs",
    "check_selection",
    "check_stray_copies",
    "protected_sources",
]


class UnknownFeatureError(ValueError):
    """A configuration names a feature the catalogue does not declare."""


def _is_protected(table: str, column: str) -> bool:
    spec = TABLES.get(table)
    return (spec is not None and column in spec.protected_columns) or is_protected_name(column)


def protected_sources(feature: Feature) -> list[str]:
    """The protected ``table.column`` sources in *feature*'s lineage (empty: clean)."""
    return [f"{t}.{c}" for t, c in feature.source_columns if _is_protected(t, c)]


def check_selection(names: Iterable[str], catalogue: Mapping[str, Feature] = CATALOGUE) -> None:
    """Refuse unknown features and features built from a protected column."""
    names = list(names)
    unknown = [n for n in names if n not in catalogue]
    for n in names:
        if is_protected_name(n):
            raise ProtectedAttributeError(
                f"feature {n!r} names a protected attribute (origin/migration background; "
                "rule: protected attributes are never features); fix: remove it from the "
                "configuration's features"
            )
    retired = [n for n in unknown if n in RETIRED]
    if retired:
        raise UnknownFeatureError(
            f"feature {retired[0]!r} was removed from the catalogue: {RETIRED[retired[0]]}; "
            "fix: remove it from the configuration's features"
        )
    if unknown:
        raise UnknownFeatureError(
            f"unknown feature(s) {unknown} (rule: features are catalogue names; the catalogue "
            f"declares {len(catalogue)}, e.g. {sorted(catalogue)[:5]}); fix: correct or remove "
            "them, choosing from docs/features.md (`zicht catalogue`)"
        )
    for n in names:
        bad = protected_sources(catalogue[n])
        if bad:
            raise ProtectedAttributeError(
                f"feature {n!r} is built from protected column {bad[0]}; remove it from the "
                "configuration and the catalogue: its lineage touches origin/migration background"
            )


def check_inputs(frames: Mapping[str, pd.DataFrame]) -> None:
    """Refuse input frames that carry a protected or undeclared column."""
    for table, df in frames.items():
        spec = TABLES.get(table)
        for col in df.columns:
            if _is_protected(table, col):
                raise ProtectedAttributeError(
                    f"input table {table!r} carries protected column {col!r}; feature builders "
                    "may not see it (read tables through features.world.WorldReader)"
                )
            if spec is not None and col not in spec.columns:
                raise ProtectedAttributeError(
                    f"input table {table!r} carries undeclared column {col!r}; builders accept "
                    "only the columns the schemas declare, so nothing unvetted can become a feature"
                )


def check_frame(
    frame: pd.DataFrame, *, meta: Iterable[str], catalogue: Mapping[str, Feature] = CATALOGUE
) -> None:
    """Refuse feature-table columns that are neither declared features nor meta columns."""
    meta = set(meta)
    for col in frame.columns:
        if is_protected_name(col):
            raise ProtectedAttributeError(
                f"column {col!r} of the feature table names a protected attribute; it is refused"
            )
        if col not in meta and col not in catalogue:
            raise ProtectedAttributeError(
                f"column {col!r} of the feature table is not declared in the feature catalogue; "
                "declare it (with its sources) in features/catalogue.py or drop it"
            )
    for col in frame.columns:
        if col in catalogue:
            bad = protected_sources(catalogue[col])
            if bad:
                raise ProtectedAttributeError(
                    f"feature {col!r} is built from protected column {bad[0]}; it is refused"
                )


def check_stray_copies(
    scores: Mapping[tuple[str, str], float], *, world_dir: Path, threshold: float
) -> None:
    """Refuse a world whose tables carry an undeclared column that is a copy of origin
    (scores from :meth:`features.audit.ProtectedAccess.stray_copy_scores`)."""
    for (file, col), score in sorted(scores.items(), key=lambda kv: -kv[1]):
        if score >= threshold:
            raise ProtectedAttributeError(
                f"{Path(world_dir) / file}: column {col}: undeclared copy of persons.herkomst "
                f"(association {score:.3f} >= {threshold}; rule: no protected attribute in the "
                "feature inputs, whatever its name); fix: drop the column from the extract"
            )


def check_copies(scores: Mapping[str, float], *, threshold: float) -> None:
    """Refuse columns whose association with origin makes them a relabelled copy."""
    for col, score in sorted(scores.items(), key=lambda kv: -kv[1]):
        if score >= threshold:
            raise ProtectedAttributeError(
                f"column {col!r} determines persons.herkomst almost perfectly "
                f"(association {score:.3f} >= {threshold}); a renamed or relabelled copy of a "
                "protected attribute is refused, whatever its name"
            )
