"""The documentation: the MkDocs site builds in strict mode, and the README stays short with working links."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
MAX_README_LINES = 200

_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1\s*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")  # http:, https:, mailto:, ...


def relative_link_targets(markdown: str) -> list[str]:
    """Targets of the inline and reference-style links of ``markdown`` that point at local files.

    Links inside fenced code blocks and code spans are not links; external URLs and bare anchors
    (``#section``) are left out; an anchor or query after a file name is dropped.
    """
    text = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    targets = []
    for target in _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text):
        if _EXTERNAL.match(target) or target.startswith("#"):
            continue
        path = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
        if path:
            targets.append(path)
    return targets


def test_mkdocs_builds_in_strict_mode(tmp_path: Path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO_ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (site / "index.html").is_file()
    assert (site / "architecture" / "index.html").is_file()


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move details to a page under docs/")


def test_readme_starts_with_the_two_commands():
    head = README.read_text(encoding="utf-8").splitlines()[:8]
    assert any(line.startswith("make demo ") for line in head), head
    assert any(line.startswith("make test ") for line in head), head


def test_readme_relative_links_point_to_existing_files():
    targets = relative_link_targets(README.read_text(encoding="utf-8"))
    assert targets, "README.md links to no page of docs/"
    missing = sorted({target for target in targets if not (README.parent / target).exists()})
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_link_finder():
    markdown = (
        "See [a](docs/a.md#x), ![img](pic.png \"title\"), [web](https://example.org), [top](#top),\n"
        "`[not](code.md)` and\n```\n[not](fenced.md)\n```\n[ref]: docs/ref.md\n"
    )
    assert relative_link_targets(markdown) == ["docs/a.md", "pic.png", "docs/ref.md"]
