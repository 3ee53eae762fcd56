"""``featurestore ingest`` from the real NATS JetStream on 127.0.0.1:4222 (DESIGN G8).

Messages are Feast push bodies. Checked: rows land in the push log, online and in training
frames; a consumer killed (SIGKILL) after its durable append but before its acknowledgement
gets the messages again, and they are recognised by their message ids, not counted twice;
a message that can never be pushed is rejected once, not redelivered.

The broker is a service of this machine and of CI; without it these tests fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from featurestore import FeatureStore
from featurestore.ingest.consumer import IngestStats, ingest
from featurestore.ingest.jetstream import JetStreamSource
from tests.integration.test_push import T, build

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")


def names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {"stream": f"fstest_{tag}", "subject": f"fstest.{tag}.push", "durable": f"c_{tag}"}


def push_body(user: int, count: int, ts: Any = T) -> bytes:
    return orjson.dumps(
        {
            "push_source_name": "stats",
            "df": {"user_id": [user], "ts": [ts.isoformat()], "count": [count], "amount": [1.0]},
        }
    )


async def publish(bodies: list[bytes], stream: str, subject: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[subject])
        for body in bodies:
            await js.publish(subject, body)
    finally:
        await nc.close()


async def delete_stream(stream: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def consume(store: FeatureStore, *, ack_wait_s: float = 30.0, **options: Any) -> IngestStats:
    source = JetStreamSource(NATS_URL, ack_wait_s=ack_wait_s, **options.pop("names"))
    await source.connect()
    try:
        return await asyncio.wait_for(ingest(store, source, **options), timeout=60)
    finally:
        await source.close()


@pytest.fixture
def broker() -> Any:
    created = names()
    yield created
    asyncio.run(delete_stream(created["stream"]))


def test_ingested_rows_are_online_offline_and_counted_once(tmp_path: Path, broker) -> None:
    bodies = [push_body(user, 10 + user, T + timedelta(hours=1)) for user in (1, 2, 3)]
    bodies.append(b"not json")
    bodies.append(push_body(9, 1).replace(b'"stats"', b'"stat"'))
    asyncio.run(publish(bodies, broker["stream"], broker["subject"]))
    with build(tmp_path) as store:
        stats = asyncio.run(consume(store, names=broker, stop_when_idle=True))
        assert (stats.messages, stats.rows, stats.duplicates, stats.rejected) == (5, 3, 0, 2)
        assert any("Did you mean 'stats'" in e for e in stats.errors)
        online = store.get_online_features(["stats:count"], {"user_id": [1, 2, 3]})
        assert online.to_dict()["count"] == [11, 12, 13]
        entity = pl.DataFrame(
            {"user_id": [1, 2, 3], "event_timestamp": [T + timedelta(hours=2)] * 3}
        )
        frame = store.get_training_frame(entity, ["stats:count"]).to_polars()
        assert frame["count"].to_list() == [11, 12, 13]
        logged = store.offline.sources.push_log.read("stats")
        assert logged is not None
        assert len(set(logged.column("push_id").to_pylist())) == 3
        # rejected messages are terminated: a second consumer gets nothing
        again = asyncio.run(consume(store, names=broker, stop_when_idle=True))
        assert again.messages == 0


KILLED_CONSUMER = """
import sys, time
from pathlib import Path
from featurestore.cli.main import app
from featurestore.ingest.jetstream import JetStreamDelivery

marker = Path(sys.argv[2])

async def never_ack(self):
    marker.write_text("appended, not acknowledged")
    time.sleep(60)

JetStreamDelivery.ack = never_ack
app(["--repo", sys.argv[1], "ingest", "--url", sys.argv[3], "--stream", sys.argv[4],
     "--subject", sys.argv[5], "--durable", sys.argv[6], "--ack-wait", "1"])
"""


def test_messages_redelivered_after_a_crash_are_not_counted_twice(tmp_path: Path, broker) -> None:
    bodies = [push_body(user, 100 + user) for user in (1, 2, 3, 4)]
    asyncio.run(publish(bodies, broker["stream"], broker["subject"]))
    build(tmp_path).close()
    marker = tmp_path / "marker"
    script = tmp_path / "consumer.py"
    script.write_text(KILLED_CONSUMER)
    argv = [sys.executable, str(script), str(tmp_path), str(marker), NATS_URL]
    argv += [broker["stream"], broker["subject"], broker["durable"]]
    proc = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the consumer ended before acknowledging"
            assert time.monotonic() < deadline, "the consumer never appended"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    with FeatureStore(tmp_path) as store:
        logged = store.offline.sources.push_log.read("stats")
        assert logged is not None
        assert logged.num_rows == 4  # the killed consumer appended all four
        # the broker delivers the four unacknowledged messages again (after --ack-wait 1 s)
        stats = asyncio.run(consume(store, names=broker, ack_wait_s=1.0, max_messages=4))
        assert (stats.messages, stats.rows, stats.duplicates) == (4, 0, 4)
        logged = store.offline.sources.push_log.read("stats")
        assert logged is not None
        assert logged.num_rows == 4
        assert sorted(logged.column("count").to_pylist()) == [101, 102, 103, 104]
        online = store.get_online_features(["stats:count"], {"user_id": [1, 2, 3, 4]})
        assert online.to_dict()["count"] == [101, 102, 103, 104]
        # acknowledged now: nothing comes back
        assert asyncio.run(consume(store, names=broker, stop_when_idle=True)).messages == 0
