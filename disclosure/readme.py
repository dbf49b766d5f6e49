"""``publish/README.md``: the reading guide, in Dutch and English, generated from schema.json.

Pure: the tasks' ``schema.json`` documents and the rule settings in, Markdown out (Jinja2,
``disclosure/templates/README.md.j2``). Every column of every level table, every status
value and every rule is explained from what the schema states, so the guide cannot drift
from the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"

#: what each task is about, Dutch and English
TASK_TITLES = {
    "hennep": (
        "Hennepteelt: risico per woning op een opgerolde hennepkwekerij",
        "Cannabis cultivation: risk per dwelling of a dismantled cannabis farm",
    ),
    "jonge_aanwas": (
        "Jonge aanwas: risico op een eerste verdenking van een drugsdelict (8-23 jaar)",
        "Young recruits: risk of a first drug-offence suspicion (aged 8-23)",
    ),
    "branch_turnover": (
        "Omzet per branche: gerealiseerde tegenover verwachte omzet per inwoner",
        "Turnover per branch: realised against expected turnover per inhabitant",
    ),
}


def _precision(doc: Mapping[str, Any]) -> str:
    if "precision" in doc:
        digits = int(doc["precision"])
        return "0" if digits == 0 else "0." + "0" * (digits - 1) + "1"
    return ""


def render_readme(
    schemas: Mapping[str, Mapping[str, Any]],
    *,
    settings: Mapping[str, Any],
    version: str,
    created_at: str,
) -> str:
    """The reading guide for a version holding the tasks of *schemas* (task -> schema.json).

    >>> text = render_readme({}, settings={"min_count": 10, "dominance_share": 0.5,
    ...     "group_share": 0.9, "protection_share": 0.1, "margin_units": 1.0, "nk": None},
    ...     version="v1", created_at="2026-01-01T00:00:00+00:00")
    >>> "## Nederlands" in text and "## English" in text
    True
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,  # Markdown, not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["precision"] = _precision
    env.filters["cell"] = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    tasks = []
    for name, schema in sorted(schemas.items()):
        columns = schema.get("columns") or {
            m: {
                "label_nl": spec.get("label_nl", m),
                "description": spec.get("description", ""),
                "description_nl": spec.get("description_nl", ""),
                **({"precision": spec["precision"]} if "precision" in spec else {}),
            }
            for m, spec in schema.get("measures", {}).items()
        }
        title_nl, title_en = TASK_TITLES.get(name, (name, name))
        tasks.append(
            {
                "name": name,
                "title_nl": title_nl,
                "title_en": title_en,
                "levels": schema.get("levels", []),
                "columns": columns,
                "notes": schema.get("notes", []),
                "geojson": schema.get("geojson", ""),
            }
        )
    return env.get_template("README.md.j2").render(
        tasks=tasks, settings=settings, version=version, created_at=created_at
    )
