"""Real extracts end to end (issue #16): never destroyed, read as they come, run by
``zicht run --world-dir``.

Extracts are planted as copies of the tiny world, changed the way real extracts differ from
the generator's output (no manifest, 16-digit ids, plain-WKB areas, other years, ...).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from experiments.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under *root* by SHA-256 (and every directory), to prove nothing changed."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------- 1. no overwrite


def _plant(tiny_data: Path, data: Path, manifest: str) -> Path:
    """An extract in DATA/world: the tiny world's tables, with no manifest, a foreign one,
    or the generator's manifest plus a file it does not list."""
    world = data / "world"
    shutil.copytree(tiny_data / "world", world)
    if manifest == "none":
        (world / "manifest.json").unlink()
    elif manifest == "foreign":
        doc = {"generator": "CBS Remote Access export", "scale": "tiny", "seed": 7}
        (world / "manifest.json").write_text(json.dumps(doc))
    elif manifest == "extra file":
        (world / "notes_of_the_analyst.parquet").write_bytes(b"not from the generator")
    return world


@pytest.mark.parametrize("manifest", ["none", "foreign", "extra file"])
@pytest.mark.parametrize(
    "command",
    [("run", "--scale", "tiny"), ("generate", "--scale", "tiny"), ("generate", "--overwrite")],
    ids=["run", "generate", "generate --overwrite"],
)
def test_an_extract_is_never_replaced(
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    manifest: str,
    command: tuple[str, ...],
) -> None:
    data = tmp_path / "data"
    world = _plant(tiny_data, data, manifest)
    before = tree_digest(data)
    zones = ["--data-dir", str(data), "--publish-dir", str(tmp_path / "publish")]
    zones += ["--review-dir", str(tmp_path / "review")]
    zones += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    code, _, err = run(capsys, *command, *zones)
    assert code == 2, err
    err = " ".join(err.split())
    assert str(world) in err  # the directory
    assert "left as it is" in err  # what happened
    assert "zicht run --world-dir" in err and "--data-dir" in err  # the fix
    assert tree_digest(data) == before, "the extract was changed"
    assert not (tmp_path / "publish").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_generated_world_is_still_replaced_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty world directory is filled; the generator's own world is replaced."""
    data = tmp_path / "data"
    (data / "world").mkdir(parents=True)
    code, _, err = run(capsys, "generate", "--scale", "tiny", "--data-dir", str(data))
    assert code == 0, err
    first = (data / "world" / "manifest.json").read_bytes()
    code, _, err = run(
        capsys, "generate", "--scale", "tiny", "--seed", "8", "--overwrite", "--data-dir", str(data)
    )
    assert code == 0, err
    assert (data / "world" / "manifest.json").read_bytes() != first
