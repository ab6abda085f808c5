"""Generated sections of a markdown document, between ``<!-- KEY:begin -->`` and ``:end``.

Benchmark scripts rewrite their own section of ``docs/benchmarks.md`` and leave the rest of
the document (the prose around the figures) alone.

>>> replace_section("# B\\n", "x", "figures")
'# B\\n\\n<!-- x:begin -->\\nfigures\\n<!-- x:end -->\\n'
>>> replace_section(_, "x", "new")
'# B\\n\\n<!-- x:begin -->\\nnew\\n<!-- x:end -->\\n'
"""

from __future__ import annotations

from pathlib import Path


def replace_section(doc: str, key: str, text: str) -> str:
    """``doc`` with section ``key`` set to ``text`` (appended when it is not there yet)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return doc.rstrip() + "\n\n" + block + "\n"


def record_section(path: Path, key: str, text: str) -> None:
    """Rewrite section ``key`` of the markdown file at ``path`` (created if missing)."""
    doc = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    path.write_text(replace_section(doc, key, text), encoding="utf-8")
