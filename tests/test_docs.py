"""The README and the pages under docs/: links that resolve, a tour that runs, a short front door.

Links are checked as GitHub renders them: a relative link must name a file or folder of
the repository, and a ``#fragment`` must be the slug of a heading in the target page
(lowercase, spaces to ``-``, punctuation other than ``-`` and ``_`` dropped, ``-1``,
``-2``, ... for repeated headings).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from datapaths import REPO, TAXI_CSV

README = Path(REPO) / "README.md"
DOCS = Path(REPO) / "docs"
MAX_README_LINES = 300
TOUR_HEADING = "## A tour"

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link that is not a URL, outside code. A link's text
    may run over several lines."""
    lines = dict(_prose_lines(page.read_text(encoding="utf-8")))
    prose = "\n".join(lines.get(n, "") for n in range(1, max(lines, default=0) + 1))
    # a code span may hold brackets; keep a link whose text is code (``[`x`](y)``)
    prose = INLINE_CODE.sub(lambda m: "`" + "-" * (len(m.group()) - 2 - m.group().count("\n"))
                            + "\n" * m.group().count("\n") + "`", prose)
    links = []
    for match in LINK.finditer(prose):
        target = match.group(1)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        links.append((prose.count("\n", 0, match.start()) + 1, target))
    return links


def test_slugs_follow_github():
    assert slug("Sharing a metadata store (MySQL)") == "sharing-a-metadata-store-mysql"
    assert slug("### `tfx.dsl.experimental`".lstrip("# ")) == "tfxdslexperimental"
    assert slug("8. MySQL (`tests/mysql/`)") == "8-mysql-testsmysql"
    assert slug("What `toolkit.v1` provides") == "what-toolkitv1-provides"
    assert slug("Set up and run") == "set-up-and-run"


def test_every_relative_link_resolves():
    broken = []
    for page in _pages():
        links = relative_links(page)
        for number, target in links:
            path, _, fragment = target.partition("#")
            where = f"{page.relative_to(REPO)}:{number}: {target}"
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{where} (no such file)")
                continue
            if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                broken.append(f"{where} (no heading with that anchor in {resolved.name})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n\n[ok](#a-section) [bad](#nothing) "
                    "[gone](missing.md) `[not a link](x.md)`\n\n```\n[in code](y.md)\n```\n"
                    "[two\nlines](#two) [`code`](code.md)\n", encoding="utf-8")
    assert relative_links(page) == [(5, "#a-section"), (5, "#nothing"), (5, "missing.md"),
                                    (10, "#two"), (11, "code.md")]
    assert "a-section" in anchors(page) and "nothing" not in anchors(page)


def test_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES
    # the two commands on a fresh machine (CI runs the test command)
    assert re.search(r"^scripts/main\s+# the main job", text, re.M)
    assert re.search(r"^scripts/test\s+# the test suite", text, re.M)
    for name in ("TOOLKIT_REQUIRE_BROWSER", "TOOLKIT_REQUIRE_MYSQL", "TOOLKIT_REQUIRE_UNSHARE",
                 "scripts/test-long", ".ci/run"):
        assert name in text
    # every page of docs/ is in the README's table
    listed = {target for _, target in relative_links(README)}
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in listed, f"docs/{page.name} is not in the README's table"


def tour_code(text: str) -> str:
    """The first python block after the README's tour heading."""
    start = text.index("\n" + TOUR_HEADING + "\n")
    match = re.search(r"^```python\n(.*?)^```", text[start:], re.S | re.M)
    assert match, f"no python block after {TOUR_HEADING!r}"
    return match.group(1)


def _run_tour(code: str, folder: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("TOOLKIT_ONLY_COMPONENT", None)
    (folder / "tour.py").write_text(code, encoding="utf-8")
    return subprocess.run([sys.executable, "tour.py"], cwd=folder, env=env, text=True,
                          capture_output=True, timeout=600)


def test_the_readme_tour_runs(tmp_path):
    """The tour, run as a script from a folder laid out like the repository's root (a copy of
    the taxi data at notebooks/data/chicago_taxi), does what its comments say: it records
    the four data components' artifacts under runs/tour, blesses the rule, and a second run
    takes every component from the cache."""
    code = tour_code(README.read_text(encoding="utf-8"))
    data = tmp_path / "notebooks" / "data" / "chicago_taxi"
    data.mkdir(parents=True)
    shutil.copy(TAXI_CSV, data / "data.csv")

    first = _run_tour(code, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "blessed: True" in first.stdout
    root = tmp_path / "runs" / "tour"
    assert (root / "metadata.sqlite").is_file()
    for pattern in ("CsvExampleGen/examples/*/Split-train", "CsvExampleGen/examples/*/Split-eval",
                    "StatisticsGen/statistics/*/Split-train/FeatureStats.pb",
                    "SchemaGen/schema/*/schema.pbtxt", "ExampleValidator/anomalies/*"):
        assert list(root.glob(pattern)), pattern

    second = _run_tour(code, tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    from toolkit import InteractiveContext

    states: dict[str, list[str]] = {}
    for row in InteractiveContext(pipeline_name="tour", pipeline_root=str(root)).executions():
        states.setdefault(row["component_id"], []).append(row["state"])
    assert states == {name: ["COMPLETE", "CACHED"] for name in
                      ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator")}

