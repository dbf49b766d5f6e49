"""The single gate: no module but ``disclosure/publish.py`` writes under the public zone.

A static (AST) check over every module of the packages:

1. only ``disclosure/publish.py`` may name the versions directory (``publish.d``) or make
   symbolic links;
2. a function that touches the publish directory (a ``publish_dir`` name or attribute) may
   pass it on, and may read, but may not also call anything that writes, moves or deletes
   files (``write_text``, ``to_csv``, ``mkdir``, ``open(.., "w")``, ``os.replace`` ...);
3. ``reports/`` never touches the publish directory at all (its maps return bytes).

The planted-violation tests run the same checker on small source strings, so the check is
seen to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("microdata", "features", "models", "experiments", "reports", "disclosure", "benchmarks")
GATE = "disclosure/publish.py"
WRITERS = frozenset(
    {
        "write_text",
        "write_bytes",
        "write",
        "to_csv",
        "to_parquet",
        "to_file",
        "to_json",
        "to_feather",
        "write_table",
        "savefig",
        "mkdir",
        "makedirs",
        "touch",
        "replace",
        "rename",
        "symlink",
        "symlink_to",
        "copy",
        "copy2",
        "copyfile",
        "copytree",
        "move",
        "rmtree",
        "unlink",
        "remove",
        "dump",
    }
)


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return ""


def _writes(node: ast.Call) -> bool:
    name = _call_name(node)
    if name == "open":  # builtin open / Path.open: a write mode is a write
        modes = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        modes += [k.value for k in node.keywords if k.arg == "mode"]  # type: ignore[misc]
        return any(
            isinstance(m, ast.Constant) and isinstance(m.value, str) and set(m.value) & set("wax+")
            for m in modes
        )
    if name in ("rename", "replace") and any(
        k.arg in ("columns", "index", "mapper", "axis") for k in node.keywords
    ):
        return False  # DataFrame.rename(columns=...): Path.rename/replace take no such keyword
    return name in WRITERS


def _touches_publish(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id == "publish_dir")
        or (isinstance(n, ast.Attribute) and n.attr == "publish_dir")
        or (isinstance(n, ast.arg) and n.arg == "publish_dir")
        for n in ast.walk(node)
    )


def violations(source: str, relpath: str) -> list[str]:
    """Gate violations in one module's *source* (``relpath`` like ``reports/maps.py``)."""
    if relpath == GATE:
        return []
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "publish.d" in node.value:
                found.append(f"{relpath}:{node.lineno}: names the versions dir 'publish.d'")
        if isinstance(node, ast.Call) and _call_name(node) in ("symlink", "symlink_to"):
            found.append(f"{relpath}:{node.lineno}: makes a symbolic link")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _touches_publish(node):
            if relpath.startswith("reports/"):
                found.append(f"{relpath}:{node.lineno}: {node.name} touches the publish dir")
                continue
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and _writes(call):
                    found.append(
                        f"{relpath}:{call.lineno}: {node.name} touches the publish dir and "
                        f"calls {_call_name(call)}()"
                    )
    return found


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_only_disclosure_publish_writes_under_publish() -> None:
    modules = _modules()
    assert any(p.relative_to(REPO).as_posix() == GATE for p in modules)
    assert len(modules) > 20  # the scan really covers the packages
    found = [v for p in modules for v in violations(p.read_text(), p.relative_to(REPO).as_posix())]
    assert found == []


def test_the_gate_itself_is_the_writer() -> None:
    """The check would flag disclosure/publish.py if it were any other module."""
    source = (REPO / GATE).read_text()
    assert violations(source, "disclosure/elsewhere.py")


@pytest.mark.parametrize(
    ("source", "where"),
    [
        (
            "def f(zones):\n    (zones.publish_dir / 'x.csv').write_text('1')\n",
            "experiments/rogue.py",
        ),
        (
            "def f(publish_dir, frame):\n    frame.to_csv(publish_dir / 'hennep' / 'b.csv')\n",
            "models/rogue.py",
        ),
        ("def f(p):\n    with open(p.publish_dir / 'a', 'w') as fh:\n        pass\n", "x/y.py"),
        ("from pathlib import Path\nROOT = Path('publish.d')\n", "experiments/rogue.py"),
        ("import os\ndef f(a, b):\n    os.symlink(a, b)\n", "features/rogue.py"),
        ("def draw(publish_dir):\n    return publish_dir\n", "reports/maps2.py"),
        ("def f(publish_dir, old):\n    old.rename(publish_dir / 'hennep')\n", "x/z.py"),
    ],
)
def test_planted_violations_are_found(source: str, where: str) -> None:
    assert violations(source, where)


@pytest.mark.parametrize(
    "source",
    [
        # passing the directory on to the gate, and reading from it, are allowed
        "def f(zones, publish):\n    return publish(zones.publish_dir)\n",
        "def g(publish_dir):\n    return (publish_dir / 'manifest.json').read_text()\n",
        "def h(p):\n    with open(p.publish_dir / 'a') as fh:\n        return fh.read()\n",
        "def k(out):\n    out.write_text('not the publish dir')\n",
        "def m(publish_dir, frame):\n    return frame.rename(columns={'a': 'b'}), publish_dir\n",
    ],
)
def test_clean_sources_pass(source: str) -> None:
    assert violations(source, "experiments/ok.py") == []
