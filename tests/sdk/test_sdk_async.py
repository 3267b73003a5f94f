"""AsyncClient: the same cache and background thread as Client, awaited."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from sdk_harness import FaultProxy, Registry

from pilothouse import AsyncClient, PromptUnavailable


async def until(condition: object, timeout: float = 10, what: str = "condition") -> float:
    """Await until `condition()` is true, without blocking the loop; the seconds it took."""
    assert callable(condition)
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def test_async_memory_and_push(registry: Registry, name: str, cache_dir: Path) -> None:
    v1 = registry.chat(name, "one {{ticket}}", labels=("production",), variables={"ticket": {}})
    v2 = registry.chat(name, "two {{ticket}}", variables={"ticket": {}})

    async def main() -> None:
        async with AsyncClient(registry.url, registry.key, cache_dir=cache_dir) as client:
            first = await client.get_prompt(name)
            assert (first.source, first.version) == ("server", v1)
            second = await client.get_prompt(name)
            assert second.source == "memory" and await client.get_prompt(name) is second
            assert second.render(ticket="t") == [{"role": "user", "content": "one t"}]
            await until(lambda: client.stream_connected, what="the event stream")

            start = time.monotonic()
            await asyncio.to_thread(registry.move, name, "production", v2)
            await until(lambda: client.cached()[0].version == v2, timeout=5, what="the move")
            assert time.monotonic() - start < 1.0
            assert (await client.get_prompt(name)).version == v2
            assert client.stats["fetches"] == 1

            pinned = await asyncio.gather(*(client.get_prompt(name, version=1) for _ in range(20)))
            assert {p.version for p in pinned} == {1}
            assert client.stats["fetches"] == 2, "concurrent first calls fetch once"

    asyncio.run(main())


def test_async_server_error_keeps_last_good_copy(
    registry: Registry, proxy: FaultProxy, name: str, cache_dir: Path
) -> None:
    registry.chat(name, "one", labels=("production",))
    v2 = registry.chat(name, "two")

    async def main() -> None:
        client = AsyncClient(
            proxy.url, registry.key, cache_dir=cache_dir, poll_interval_seconds=0.2
        )
        try:
            good = await client.get_prompt(name)
            # The stream's connect-time revalidation (a 304) must be done first: sent late,
            # it could pass the proxy before the switch and fetch v2 after the move. Each
            # poll before the stream connects revalidates too.
            await until(
                lambda: (
                    client.stream_connected and client.stats["not_modified"] > client.stats["polls"]
                ),
                what="the event stream and its revalidation",
            )
            proxy.set_mode("error")
            await asyncio.to_thread(registry.move, name, "production", v2)
            await until(lambda: client.stats["refresh_errors"] >= 2, what="failed polls")
            served = await client.get_prompt(name)
            assert (served.version, served.hash) == (1, good.hash)
            assert client.stats["stale_serves"] >= 1 and not client.healthy
            proxy.set_mode("pass")
            await until(lambda: client.cached()[0].version == v2, what="recovery")
            assert client.healthy
        finally:
            await client.aclose()

    asyncio.run(main())


def test_async_cold_start_disk_fallback_strict(
    own_registry: Registry, name: str, cache_dir: Path
) -> None:
    reg = own_registry
    reg.chat(name, "Hello {{who}}", labels=("production",), variables={"who": {}})

    async def main() -> None:
        async with AsyncClient(reg.url, reg.key, cache_dir=cache_dir) as warm:
            assert (await warm.get_prompt(name)).source == "server"
        reg.stop(signal.SIGKILL)
        async with AsyncClient(reg.url, reg.key, cache_dir=cache_dir) as cold:
            prompt = await cold.get_prompt(name)
            assert (prompt.source, prompt.version) == ("disk", 1)
            assert prompt.render(who="Ann") == [{"role": "user", "content": "Hello Ann"}]
            fallback = await cold.get_prompt(f"{name}-x", fallback="Hi {{who}}")
            assert (fallback.source, fallback.version) == ("fallback", 0)
            with pytest.raises(PromptUnavailable, match="no copy"):
                await cold.get_prompt(f"{name}-y")
        async with AsyncClient(reg.url, reg.key, cache_dir=cache_dir, strict=True) as strict:
            with pytest.raises(PromptUnavailable, match="refused"):
                await strict.get_prompt(f"{name}-x", fallback="Hi")
        async with AsyncClient(reg.url, reg.key, cache_dir=cache_dir / "empty") as empty:
            assert (await empty.get_prompt(name, fallback="fb")).source == "fallback"

    asyncio.run(main())
