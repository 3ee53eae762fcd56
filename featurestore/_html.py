"""HTML tables for notebooks (``_repr_html_``): escaped text, no styling, stdlib only."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["html_table"]


def html_table(caption: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """One ``<table>`` with a caption, a header row and one row per item; all text escaped.

    Example:
        >>> html_table("Views", ["name"], [["a<b"]])
        '<table><caption>Views</caption><tr><th>name</th></tr><tr><td>a&lt;b</td></tr></table>'
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"
