"""Every Markdown file the docs and the code name is in the repository: a reader can open what a message or a
docstring points at (DOMAIN.md, the contract, once lived outside it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Files of other projects named by their owner ("librdkafka's INTRODUCTION.md").
EXTERNAL = {"INTRODUCTION.md"}

_REFERENCE = re.compile(r"(?<![\w/.-])([\w./-]*[\w-]+\.md)\b")


def _readers() -> list[Path]:
    code = [path for folder in ("psmesh", "processors", "sinks", "streams", "bench", "tests", "scripts", "tools")
            for path in (ROOT / folder).rglob("*.py")]
    named = [ROOT / "README.md", ROOT / "DESIGN.md", ROOT / "DOMAIN.md", *sorted((ROOT / "docs").glob("*.md")), *code]
    return [path for path in named if path.is_file()]


def test_the_contract_and_the_design_are_in_the_repository():
    assert (ROOT / "DOMAIN.md").is_file() and (ROOT / "DESIGN.md").is_file()
    assert "## 5. What must hold when the firm goes quiet" in (ROOT / "DOMAIN.md").read_text()


def test_every_markdown_file_named_exists():
    missing = []
    for path in _readers():
        for found in _REFERENCE.finditer(path.read_text(errors="replace")):
            name = found.group(1)
            if name in EXTERNAL:
                continue
            if not any((base / name).is_file() for base in (ROOT, ROOT / "docs", path.parent)):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, "\n".join(missing)
