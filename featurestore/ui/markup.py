"""HTML building for the UI: escaped by default, marked safe once built (no template engine).

Every value that goes into a page passes through :func:`escape` unless it is :class:`Markup`
already, so text from the registry (names, descriptions, tags, sample values) can never
inject markup. The page frame is ``templates/page.html``, filled by ``string.Template``.
"""

from __future__ import annotations

import html
import string
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["Markup", "escape", "join", "page", "table", "tag"]


class Markup(str):
    """Text that is already HTML (built by these helpers): never escaped again."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """``value`` as HTML text: Markup as it is, anything else escaped (None is empty).

    Example:
        >>> escape("a<b & 'c'")
        'a&lt;b &amp; &#x27;c&#x27;'
        >>> escape(Markup("<b>x</b>"))
        '<b>x</b>'
    """
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(str(value)))


def _attributes(attrs: dict[str, object]) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        parts.append(f" {name}" if value is True else f' {name}="{escape(value)}"')
    return "".join(parts)


def tag(element: str, /, *children: object, **attrs: object) -> Markup:
    """One element: children escaped unless Markup; ``class_`` -> ``class``, ``data_x`` -> ``data-x``.

    An attribute that is None or False is left out; True writes it bare.

    Example:
        >>> tag("a", "<x>", href="/ui/views/a b", class_="link")
        '<a href="/ui/views/a b" class="link">&lt;x&gt;</a>'
    """
    inner = "".join(escape(c) for c in children)
    return Markup(f"<{element}{_attributes(attrs)}>{inner}</{element}>")


def join(parts: Iterable[object], separator: str = "") -> Markup:
    """Escaped ``parts`` joined by ``separator`` (itself HTML)."""
    return Markup(separator.join(escape(p) for p in parts))


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    id_: str | None = None,
    class_: str | None = None,
    row_classes: Sequence[str | None] | None = None,
) -> Markup:
    """A table with a header row; each row's cells escaped unless Markup.

    Args:
        headers: Column titles.
        rows: Cell values, one sequence per row.
        id_: The table's id.
        class_: The table's class.
        row_classes: A class per row (None: none), in row order.
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = row_classes[i] if row_classes is not None else None
        cells = "".join(f"<td>{escape(v)}</td>" for v in row)
        body.append(f'<tr class="{escape(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return Markup(
        f"<table{_attributes({'id': id_, 'class': class_})}><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


@cache
def _frame() -> string.Template:
    text = resources.files("featurestore.ui").joinpath("templates/page.html").read_text("utf-8")
    return string.Template(text)


NAV = (
    ("", "Catalog"),
    ("features", "Features"),
    ("freshness", "Freshness"),
    ("lookup", "Lookup"),
    ("skew", "Skew"),
)
"""The top navigation: path below the UI root, title."""


def page(
    title: str,
    body: Markup,
    *,
    base: str,
    project: str,
    active: str = "",
    notice: str | None = None,
    logout: bool = False,
) -> str:
    """A whole page in the UI's frame: title, navigation (``active`` highlighted), ``body``.

    Args:
        title: The page title (escaped).
        body: The page content.
        base: The UI's root path (``/ui``), for links and assets.
        project: The project name shown in the header.
        active: The navigation entry of this page (a path of ``NAV``).
        notice: A warning shown above the content (e.g. unapplied changes).
        logout: Show the log-out button (the visitor entered an API key).
    """
    nav = join(
        tag("a", text, href=f"{base}/{path}", class_="active" if path == active else None)
        for path, text in NAV
    )
    return _frame().substitute(
        title=escape(title),
        base=escape(base),
        project=escape(project),
        nav=nav,
        account=(
            tag(
                "form",
                tag("button", "Log out", type="submit"),
                method="post",
                action=f"{base}/logout",
            )
            if logout
            else ""
        ),
        notice=tag("p", notice, class_="notice", id="notice") if notice else "",
        body=body,
    )
