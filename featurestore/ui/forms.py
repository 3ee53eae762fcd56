"""The UI's forms and plain pages: online lookup, skew report picker, login, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from featurestore.errors import EntityFrameError, FeatureViewNotFoundError
from featurestore.ui.format import badge, moment, value_text
from featurestore.ui.markup import Markup, join, table, tag

if TYPE_CHECKING:
    from collections.abc import Mapping

    from featurestore.online.response import OnlineResponse
    from featurestore.repo.registry import RegistrySnapshot
    from featurestore.types import DType

__all__ = [
    "LookupInputs",
    "error_page",
    "login_page",
    "lookup_inputs",
    "lookup_page",
    "parse_inputs",
    "skew_page",
]

_INTEGER = frozenset({"Int32", "Int64"})
_FLOAT = frozenset({"Float32", "Float64"})


@dataclass(frozen=True, slots=True)
class LookupInputs:
    """What a lookup of a selection needs: join keys and request fields, with their types."""

    keys: dict[str, DType]
    request: dict[str, DType]


def lookup_inputs(snapshot: RegistrySnapshot, selection: str) -> LookupInputs:
    """The join keys and request fields a lookup of ``selection`` (a service or view) needs.

    Raises:
        FeatureViewNotFoundError: ``selection`` is neither a service nor a view.
    """
    service = snapshot.feature_services.get(selection)
    if service is not None:
        todo = list(dict.fromkeys(ref.view for ref in service.refs))
    elif selection in snapshot.feature_views or selection in snapshot.on_demand_views:
        todo = [selection]
    else:
        raise FeatureViewNotFoundError(
            name=selection,
            candidates=[
                *snapshot.feature_services,
                *snapshot.feature_views,
                *snapshot.on_demand_views,
            ],
            hint="Pick a feature service or a view from the list.",
        )
    keys: dict[str, DType] = {}
    request: dict[str, DType] = {}
    seen: set[str] = set()
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        record = snapshot.feature_views.get(name)
        if record is not None:
            keys.update({k: record.key_dtypes[k] for k in record.view.join_keys})
            continue
        odfv = snapshot.on_demand_views[name]
        todo += [ref.view for ref in odfv.view_inputs] + list(odfv.upstream)
        request.update({f.name: f.dtype for f in odfv.request_fields})
    return LookupInputs(keys=keys, request=request)


def _parse(name: str, text: str, dtype: DType, *, what: str) -> Any:
    kind = dtype.name
    try:
        if kind in _INTEGER:
            return int(text)
        if kind in _FLOAT:
            return float(text)
        if kind == "Bool":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)  # noqa: TRY301 - the one message below
            return text.lower() == "true"
        if kind == "String":
            return text
        return json.loads(text)
    except ValueError:
        msg = (
            f"{what} '{name}' is {kind}, but {text!r} is not one; enter a "
            f"{kind} value (JSON for lists)."
        )
        raise EntityFrameError(msg) from None


def parse_inputs(inputs: LookupInputs, form: Mapping[str, str]) -> dict[str, Any] | None:
    """The entity row of a submitted form, or None while a field is still empty.

    Raises:
        EntityFrameError: A value does not parse as its field's type (the message names it).
    """
    row: dict[str, Any] = {}
    for fields, what in ((inputs.keys, "Join key"), (inputs.request, "Request field")):
        for name, dtype in fields.items():
            text = form.get(name, "").strip()
            if not text:
                return None
            row[name] = _parse(name, text, dtype, what=what)
    return row


def lookup_page(
    snapshot: RegistrySnapshot,
    base: str,
    *,
    selection: str | None,
    inputs: LookupInputs | None,
    form: Mapping[str, str],
    response: OnlineResponse | None,
    error: str | None = None,
) -> Markup:
    """The lookup form (a selection, then its keys and request fields) and the result."""
    options = []
    for group, names in (
        ("feature services", sorted(snapshot.feature_services)),
        ("feature views", sorted(snapshot.feature_views)),
        ("on-demand views", sorted(snapshot.on_demand_views)),
    ):
        items = join(tag("option", name, value=name, selected=name == selection) for name in names)
        options.append(tag("optgroup", items, label=group))
    choose = tag(
        "label",
        "Features ",
        tag(
            "select",
            tag("option", "choose...", value=""),
            *options,
            name="features",
            id="features",
            data_autosubmit=True,
        ),
    )
    fields: list[Markup] = []
    if inputs is not None:
        for fields_of, what in ((inputs.keys, "join key"), (inputs.request, "request field")):
            for name, dtype in fields_of.items():
                fields.append(
                    tag(
                        "label",
                        f"{name} ",
                        tag("small", f"{what}, {dtype.name}"),
                        tag(
                            "input",
                            name=name,
                            id=f"input-{name}",
                            value=form.get(name, ""),
                            required=True,
                            autocomplete="off",
                        ),
                    )
                )
    button = tag("button", "Look up" if inputs is not None else "Choose", type="submit", id="go")
    body: list[object] = [
        tag("h1", "Online lookup"),
        tag(
            "p",
            "Reads one entity from the online store, the same path as 'featurestore "
            "get-online' and POST /get-online-features (now as the request time).",
            class_="note",
        ),
        tag("form", choose, *fields, button, method="get", action=f"{base}/lookup", id="lookup"),
    ]
    if error is not None:
        body.append(tag("p", error, class_="error", id="lookup-error"))
    if response is not None:
        body.append(_result(response))
    return join(body)


_STATUS_KIND = {"PRESENT": "ok", "NOT_FOUND": "warn", "OUTSIDE_MAX_AGE": "warn"}


def _result(response: OnlineResponse) -> Markup:
    values = response.to_dict()
    stamps = response.event_timestamps
    keys = ", ".join(f"{k}={values[k][0]}" for k in response.join_keys)
    rows = []
    for name in response.features:
        status = response.statuses[name][0].value
        rows.append(
            (
                tag("span", name, class_="feature"),
                tag("span", value_text(values[name][0]), class_="value"),
                badge(status, _STATUS_KIND.get(status, "bad")),
                moment(stamps[name][0], exact=True),
            )
        )
    return tag(
        "section",
        tag("h2", f"Values for {keys}"),
        table(["feature", "value", "status", "event time"], rows, id_="lookup-result"),
        id="result",
    )


def skew_page(snapshot: RegistrySnapshot, base: str) -> Markup:
    """The services with feature logging, each with a form for its skew report."""
    logged = sorted(n for n, s in snapshot.feature_services.items() if s.logging is not None)
    rows = []
    for name in sorted(snapshot.feature_services):
        logging = snapshot.feature_services[name].logging
        rows.append(
            (
                name,
                f"sample rate {logging.sample_rate:g}" if logging else "off",
                tag("a", "report", href=f"{base}/skew/report?service={quote(name, safe='')}")
                if logging
                else "-",
            )
        )
    form = tag(
        "form",
        tag(
            "label",
            "Service ",
            tag(
                "select",
                join(tag("option", n, value=n) for n in logged),
                name="service",
                id="service",
            ),
        ),
        tag("label", "Since ", tag("input", name="since", placeholder="2026-11-01T00:00:00Z")),
        tag("label", "Until ", tag("input", name="until", placeholder="(now)")),
        tag(
            "label",
            "Max mismatch rate ",
            tag("input", name="max_mismatch_rate", value="0", inputmode="decimal"),
        ),
        tag("button", "Replay the log", type="submit"),
        method="get",
        action=f"{base}/skew/report",
        id="skew-form",
    )
    return join(
        [
            tag("h1", "Skew reports"),
            tag(
                "p",
                "A report replays a service's feature log through the training path and "
                "compares each served value with the training value (docs/skew.md). It reads "
                "the log and the offline sources: a large window takes a while.",
                class_="note",
            ),
            table(["service", "logging", ""], rows, id_="skew-services"),
            form if logged else tag("p", "No service logs what it serves (logging=...)."),
        ]
    )


def login_page(base: str, *, next_path: str, failed: bool) -> Markup:
    """The API key form (the server requires a key); the key is never written back."""
    return join(
        [
            tag("h1", "API key required"),
            tag(
                "p",
                "This feature server requires an API key (serving.api_keys). Enter one to "
                "browse the UI; the browser keeps a session cookie derived from it, not the key.",
            ),
            *(
                [tag("p", "That key is not valid.", class_="error", id="login-error")]
                if failed
                else []
            ),
            tag(
                "form",
                tag(
                    "label",
                    "API key ",
                    tag(
                        "input",
                        type="password",
                        name="key",
                        id="key",
                        autocomplete="off",
                        required=True,
                    ),
                ),
                tag("input", type="hidden", name="next", value=next_path),
                tag("button", "Enter", type="submit"),
                method="post",
                action=f"{base}/login",
                id="login",
            ),
        ]
    )


def error_page(status: int, message: str, base: str) -> Markup:
    """The page of a failed request: the status, the message, a way back."""
    titles = {404: "Not found", 401: "Unauthorized", 422: "Cannot do that", 503: "Unavailable"}
    return join(
        [
            tag("h1", f"{status} {titles.get(status, 'Error')}", id="error-title"),
            tag("p", message, class_="error", id="error-message"),
            tag("p", tag("a", "Back to the catalog", href=f"{base}/")),
        ]
    )
