"""Generated Markdown: replace one named section of a shared document, leaving the others as they are."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_section"]


def write_section(path: str | Path, name: str, markdown: str, title: str = "# Benchmarks") -> None:
    """Put ``markdown`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``.

    The file is created (with ``title``) if missing; an existing section is replaced, a new one appended.
    Lets several commands (simulator and runtime benchmarks, say) each regenerate their part of one page.
    """
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else f"{title}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
