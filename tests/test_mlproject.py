"""MLproject entry points map onto real `zicht` subcommands with matching options."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import yaml

from experiments.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _resolve(words: list[str]) -> click.Command:
    cmd: click.Command = cli
    ctx = click.Context(cli)
    while isinstance(cmd, click.Group) and words and not words[0].startswith("-"):
        nxt = cmd.get_command(ctx, words[0])
        assert nxt is not None, f"unknown subcommand {words[0]!r}"
        cmd, words = nxt, words[1:]
    return cmd


def test_entry_points_call_existing_commands() -> None:
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert {
        "main",
        "generate",
        "features",
        "train",
        "tune",
        "predict",
        "bench",
        "explain",
        "publish",
        "report",
    } <= set(project["entry_points"])
    for name, entry in project["entry_points"].items():
        for part in entry["command"].split("&&"):
            words = shlex.split(part.strip())
            assert words[0] == "zicht", (name, part)
            command = _resolve(words[1:])
            options = {o for p in command.params for o in getattr(p, "opts", [])}
            used = [w for w in words if w.startswith("--")]
            assert set(used) <= options, (name, set(used) - options)
            for param in entry.get("parameters", {}):
                assert "{" + param + "}" in entry["command"], (name, param)
