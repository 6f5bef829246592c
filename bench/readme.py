"""Copies the bench's Markdown into the top-level README, so the README shows exactly what a run wrote.

The README marks each generated block with a pair of HTML comments, ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; :func:`update` replaces what lies between them and touches nothing else.
Only runs that write to ``bench/results`` update the README (smoke runs go to a temporary folder).
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def update(name: str, markdown: str, readme: Path = README) -> bool:
    """Replace the README's ``name`` block with ``markdown``; False (README untouched) without markers."""
    text = readme.read_text()
    pattern = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n).*?(<!-- /bench:{re.escape(name)} -->)", re.DOTALL)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda match: match.group(1) + markdown.strip("\n") + "\n" + match.group(2), text,
                                  count=1))
    return True
