"""Commands of fresh data (docs/push.md): push-compact and ingest."""

# No ``from __future__ import annotations`` here: Typer reads the parameter annotations at
# runtime to build the command line.

import json
from typing import Annotated

import typer

from featurestore.cli._app import JsonOption, ViewsOption, keep_examples, split_values, state_of


@keep_examples
def push_compact(
    ctx: typer.Context,
    views: ViewsOption = None,
    target_rows: Annotated[
        int,
        typer.Option("--target-rows", min=1, help="Rows per folded file, about."),
    ] = 1_000_000,
    as_json: JsonOption = False,
) -> None:
    """Fold each view's small push log files into larger ones.

    Rows keep their order, so no training frame changes.

    Example:
        featurestore push-compact --target-rows 500000
    """
    store = state_of(ctx).store()
    names = split_values(views) or [r.view.name for r in store.list_feature_views()]
    for name in names:
        store.get_feature_view(name)  # an unknown name is an error naming the closest
    results = [
        store.offline.local.sources.push_log.compact(name, target_rows=target_rows)
        for name in names
    ]
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "view": r.view,
                        "files_before": r.files_before,
                        "files_after": r.files_after,
                        "rows": r.rows,
                    }
                    for r in results
                ]
            )
        )
        return
    for r in results:
        typer.echo(f"{r.view}: {r.files_before} -> {r.files_after} push files, {r.rows:,} rows")


@keep_examples
def ingest(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", help="The NATS server.")] = "nats://127.0.0.1:4222",
    stream: Annotated[
        str, typer.Option("--stream", help="The JetStream stream (created when missing).")
    ] = "featurestore",
    subject: Annotated[
        str, typer.Option("--subject", help="The subject producers publish push bodies to.")
    ] = "featurestore.push",
    durable: Annotated[
        str,
        typer.Option("--durable", help="The consumer's durable name (a restart resumes)."),
    ] = "featurestore-ingest",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Messages pushed together at most.")
    ] = 1000,
    ack_wait_s: Annotated[
        float,
        typer.Option(
            "--ack-wait", min=0.1, help="Seconds before an unacknowledged message is redelivered."
        ),
    ] = 30.0,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", min=1, help="Stop after this many messages.")
    ] = None,
    stop_when_idle: Annotated[
        bool,
        typer.Option("--stop-when-idle", help="Stop when a fetch waits a second for nothing."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Push the rows of a NATS JetStream subject as they arrive (at least once, never twice).

    Each message is a Feast push body (JSON). A message is acknowledged after its rows are in
    the push log; a redelivered one is recognised by its message id and not appended again.

    Example:
        featurestore ingest --subject featurestore.push --stop-when-idle
    """
    import anyio

    from featurestore.ingest.consumer import IngestStats
    from featurestore.ingest.consumer import ingest as run_ingest
    from featurestore.ingest.jetstream import JetStreamSource

    store = state_of(ctx).store()

    async def main() -> IngestStats:
        source = JetStreamSource(
            url, stream=stream, subject=subject, durable=durable, ack_wait_s=ack_wait_s
        )
        await source.connect()
        try:
            return await run_ingest(
                store,
                source,
                batch_size=batch_size,
                max_messages=max_messages,
                stop_when_idle=stop_when_idle,
            )
        finally:
            await source.close()

    stats = anyio.run(main)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "messages": stats.messages,
                    "rows": stats.rows,
                    "duplicates": stats.duplicates,
                    "rejected": stats.rejected,
                    "errors": stats.errors,
                }
            )
        )
        return
    typer.echo(
        f"{stats.messages:,} messages: {stats.rows:,} rows pushed, {stats.duplicates:,} "
        f"redelivered (not counted again), {stats.rejected:,} rejected"
    )
    for error in stats.errors:
        typer.echo(f"Warning: {error}", err=True)
