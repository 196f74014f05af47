"""Citations of docs/heartbeat.md in code and docs point at headings that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_MD = ROOT / "docs" / "heartbeat.md"
CITATION = re.compile(r"heartbeat\.md#([a-z0-9-]+)")
STALE = "spec \u00a7"  # the old citations of a document outside the repository


def _github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _cited_files() -> list[Path]:
    roots = [ROOT / "src", ROOT / "tests", ROOT / "bench", ROOT / "docs", *ROOT.glob("contrib/*")]
    files = [ROOT / "README.md"]
    for root in roots:
        files += [p for p in root.rglob("*") if p.suffix in {".py", ".md"} and p.is_file()]
    return [p for p in files if ".egg-info" not in str(p)]


def test_every_heartbeat_md_citation_names_a_heading() -> None:
    headings = re.findall(r"^#+ (.+)$", HEARTBEAT_MD.read_text(), re.MULTILINE)
    anchors = {_github_anchor(h) for h in headings}
    cited = {
        f"{path.relative_to(ROOT)}: #{anchor}"
        for path in _cited_files()
        for anchor in CITATION.findall(path.read_text(errors="replace"))
        if anchor not in anchors
    }
    assert not cited
    assert "liveness" in anchors and "hacf-ordering-quirks" in anchors


def test_no_comment_cites_the_unpublished_spec() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path in _cited_files()
        if path.suffix == ".py" and STALE in path.read_text(errors="replace")
    ]
    assert not stale
