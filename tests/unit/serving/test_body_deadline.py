"""The endpoint's body reading: the same body whether it came with the head or later.

``_read_body_in_time`` steps the reading by hand and keeps a deadline only when the body is
not all there yet; the deadline answers 408, and a cancellation from elsewhere (shutdown)
still cancels. The ASGI ``receive`` here is a queue of the messages a server would deliver.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.errors import FeatureStoreError
from featurestore.repo.config import ServingConfig
from featurestore.serving.endpoint import OnlineFeaturesEndpoint
from featurestore.serving.errors import ServingError


def _endpoint(**serving: Any) -> OnlineFeaturesEndpoint:
    state = SimpleNamespace(settings=ServingConfig(**serving))
    return OnlineFeaturesEndpoint(state)  # type: ignore[arg-type]  # only settings is read


async def _read(
    endpoint: OnlineFeaturesEndpoint, chunks: list[bytes], delays: list[float]
) -> bytes | str:
    """Deliver ``chunks`` (the i-th after ``delays[i]`` s) and read them as the endpoint does."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    arrived = 0  # the leading chunks without a delay came with the head: nothing to wait for
    while arrived < len(messages) and not delays[arrived]:
        queue.put_nowait(messages[arrived])
        arrived += 1

    async def deliver() -> None:
        for message, delay in zip(messages[arrived:], delays[arrived:], strict=True):
            await asyncio.sleep(delay)
            queue.put_nowait(message)

    feeder = asyncio.ensure_future(deliver())
    try:
        return await endpoint._read_body_in_time(queue.get)
    except FeatureStoreError as exc:
        return f"{getattr(exc, 'status_code', '?')}: {exc}"
    finally:
        feeder.cancel()


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.binary(max_size=400), min_size=1, max_size=4),
    st.lists(st.sampled_from([0.0, 0.001]), min_size=4, max_size=4),
    st.integers(1024, 1400),  # serving.max_body_bytes is at least 1024
)
def test_the_body_is_the_same_whether_it_waited_or_not(
    chunks: list[bytes], delays: list[float], limit: int
) -> None:
    endpoint = _endpoint(max_body_bytes=limit)
    got = asyncio.run(_read(endpoint, chunks, delays[: len(chunks)]))
    body = b"".join(chunks)
    if len(body) > limit:
        assert isinstance(got, str)
        assert got.startswith("413: ")
    else:
        assert got == body


def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    endpoint = _endpoint(body_timeout_s=0.05)
    got = asyncio.run(_read(endpoint, [b"{", b"}"], [0.0, 5.0]))
    assert isinstance(got, str)
    assert got.startswith("408: ")
    assert "serving.body_timeout_s" in got


def test_a_body_that_never_starts_is_a_408() -> None:
    endpoint = _endpoint(body_timeout_s=0.05)
    got = asyncio.run(_read(endpoint, [b"{}"], [5.0]))
    assert isinstance(got, str)
    assert got.startswith("408: ")


def test_a_cancellation_from_elsewhere_still_cancels() -> None:
    endpoint = _endpoint(body_timeout_s=60)

    async def main() -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        reading = asyncio.ensure_future(endpoint._read_body_in_time(queue.get))
        await asyncio.sleep(0.01)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading

    asyncio.run(main())


def test_a_client_gone_before_its_body_is_not_answered() -> None:
    endpoint = _endpoint()

    async def main() -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        queue.put_nowait({"type": "http.disconnect"})
        with pytest.raises(Exception) as gone:
            await endpoint._read_body_in_time(queue.get)
        assert not isinstance(gone.value, ServingError)  # nothing to answer

    asyncio.run(main())
