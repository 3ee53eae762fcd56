"""``featurestore snapshot``: every entity's features as of one time, written to a file."""

# No ``from __future__ import annotations`` here: Typer reads the annotations at runtime.

from pathlib import Path
from typing import Annotated, Any

import typer

from featurestore.cli import render
from featurestore.cli._app import (
    FeatureRefsOption,
    FullFeatureNamesOption,
    JsonOption,
    OutputFileOption,
    PointInTime,
    ServiceOption,
    keep_examples,
    parse_pairs,
    parse_time,
    request_value,
    state_of,
)
from featurestore.cli.data_commands import check_suffix, features_or_service, write_frame

__all__ = ["snapshot"]


@keep_examples
def snapshot(
    ctx: typer.Context,
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of", metavar="TIME", help="The time of the snapshot, ISO 8601 (naive = UTC)."
        ),
    ],
    output: OutputFileOption,
    features: FeatureRefsOption = None,
    service: ServiceOption = None,
    keys: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            "-k",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="Only these keys (.parquet or .csv with the join keys; every column is kept). "
            "Default: every key with a row in the views' windows at TIME.",
        ),
    ] = None,
    request: Annotated[
        list[str] | None,
        typer.Option(
            "--request",
            metavar="KEY=VALUE",
            help="A request field key=value (JSON literal), the same for every row.",
        ),
    ] = None,
    full_feature_names: FullFeatureNamesOption = False,
    timestamp_column: Annotated[
        str,
        typer.Option("--timestamp-column", metavar="COLUMN", help="The column holding TIME."),
    ] = "event_timestamp",
    point_in_time: Annotated[
        PointInTime,
        typer.Option(
            "--point-in-time",
            help="'event' uses event timestamps; 'available' also requires "
            "created_timestamp <= TIME.",
        ),
    ] = PointInTime.EVENT,
    as_json: JsonOption = False,
) -> None:
    """Write every entity's features as of one time (batch scoring), by the training rule.

    Each key gets the values a training frame row at TIME would get (newest row at or before
    TIME, within the view's ttl), and the online store would serve at TIME once materialized
    through it. Streams to the file.

    Example:
        featurestore snapshot --features user_stats:txn_count_7d,user_stats:avg_amount_7d --as-of 2026-11-20T00:00:00Z -o scores_input.parquet
    """
    selection = features_or_service(features, service)
    at = parse_time(as_of)
    out_suffix = check_suffix(output, option="--output")
    keys_input: Any = None
    if keys is not None:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        in_suffix = check_suffix(keys, option="--keys")
        keys_input = pa_csv.read_csv(keys) if in_suffix == ".csv" else pq.read_table(keys)
    values: dict[str, object] = {}
    for text in request or []:
        values.update(
            {k: request_value(v) for k, v in parse_pairs(text, option="--request").items()}
        )
    store = state_of(ctx).store()
    with render.spinner("Building snapshot..."):
        frame = store.get_snapshot(
            selection,
            at,
            keys=keys_input,
            request=values,
            full_feature_names=full_feature_names,
            timestamp_column=timestamp_column,
            point_in_time="available" if point_in_time is PointInTime.AVAILABLE else "event",
        )
        rows, columns = write_frame(frame, output, out_suffix)
    summary = {"output": str(output), "as_of": at.isoformat(), "rows": rows, "columns": columns}
    if as_json:
        render.json_out(summary)
    else:
        render.stdout().print(
            f"Wrote {rows:,} rows as of {at.isoformat()} to {output} ({len(columns)} columns: "
            f"{', '.join(columns)})."
        )
