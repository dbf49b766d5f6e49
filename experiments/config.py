"""Experiment configuration: typed, frozen, validated; one YAML file per experiment.

A config names its task and its features (catalogue names). Nothing runs at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

Task = Literal["hennep", "jonge_aanwas", "branch_turnover"]
TASKS: tuple[str, ...] = ("hennep", "jonge_aanwas", "branch_turnover")


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message names the file and field."""


class ExperimentConfig(BaseModel):
    """One experiment: which task, which features (names from the feature catalogue), and
    optional model parameters (``params: {lightgbm: {reg_lambda: 50}}``) over the zoo's
    defaults; a tuning trial's parameters go over these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Task
    features: tuple[str, ...]
    description: str = ""
    params: dict[str, dict[str, Any]] = {}

    @field_validator("params")
    @classmethod
    def _known_params(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from models.estimators import check_params  # lazy: keeps this module light

        for model, overrides in v.items():
            check_params(model, overrides)
        return v

    def model_params(self, model: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The config's parameters of *model* with *overrides* (a trial's) on top."""
        return {**self.params.get(model, {}), **(overrides or {})}

    @field_validator("features")
    @classmethod
    def _non_empty_unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one feature")
        dup = sorted({f for f in v if v.count(f) > 1})
        if dup:
            raise ValueError(f"features listed twice: {dup}")
        return v


def default_config_path(task: str) -> Path:
    """The shipped config of *task* (``experiments/configs/<task>.yaml``)."""
    return Path(__file__).resolve().parent / "configs" / f"{task}.yaml"


def load_config(path: Path) -> ExperimentConfig:
    """Read and validate a YAML config; :class:`ConfigError` names the file and the field."""
    path = Path(path)
    fix = "fix: pass a YAML file like those in experiments/configs/"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file; see experiments/configs/ for examples"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path}: a directory (rule: --config names a YAML file); {fix}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (rule: a config is UTF-8 YAML; byte {exc.start} is "
            f"not UTF-8); {fix}"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror or exc}; rule: --config names a readable "
            f"YAML file); {fix}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); {fix}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys 'task' and 'features'")
    try:
        return ExperimentConfig(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
