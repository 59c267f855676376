"""The README stays a front page: under 200 lines, every link it has leads somewhere, and it links
every page of docs/. The pages themselves are checked by `make docs` (mkdocs --strict)."""

from __future__ import annotations

import re
from pathlib import Path

from streams.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$")
FENCE = re.compile(r"^```")


def _links(text: str) -> list[str]:
    links = []
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            links.extend(LINK.findall(line))
    return links


def _anchors(page: Path) -> set[str]:
    """The ids a Markdown viewer gives the page's headings: lower case, punctuation dropped, spaces to -."""
    anchors = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        heading = HEADING.match(line)
        if heading and not in_fence:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).replace("`", "").lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines: move sections to docs/ (listed in mkdocs.yml)"


def test_every_link_in_the_readme_leads_somewhere() -> None:
    links = [link for link in _links(README.read_text(encoding="utf-8")) if "://" not in link]
    assert len(links) > 10  # the check reads the links at all
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = (README.parent / path).resolve() if path else README
        if not target.exists() or (anchor and anchor not in _anchors(target)):
            broken.append(link)
    assert broken == []


def test_the_readme_links_every_page_of_the_docs() -> None:
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in _links(README.read_text(encoding="utf-8"))}
    pages = {page.resolve() for page in DOCS.rglob("*.md") if page.name != "index.md"}
    assert sorted(str(p.relative_to(PROJECT_ROOT)) for p in pages - linked) == []


def test_the_link_check_sees_a_missing_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Topics and headers\n\n```sh\n# not a heading\n```\n", encoding="utf-8")
    assert _anchors(page) == {"title", "topics-and-headers"}
