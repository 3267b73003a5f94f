"""SSE load client: time to first token and streams per second, bounded in count and time.

    python stream_client.py --url URL --model M [--header 'K: V'] --conc 1 --n 200 \
        --max-seconds 60 --warmup 10 --out result.json [--door chat|responses|messages] \
        [--words N]

TTFT is measured from just before the request is handed to aiohttp to the arrival of the
first event with content: `choices[0].delta.content` (chat), a `response.output_text.delta`
(responses) or a `text_delta` (messages). A stream counts as ok when the status is 200 and
its end arrives (`data: [DONE]`, `response.completed`, `message_stop`); the first
`--verify` streams (and every stream at concurrency 1) must also re-assemble exactly the
canned reply (of `--words` words, when the upstream streams a longer one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import payloads


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


DOOR = "chat"  # set from --door
REPLY = payloads.REPLY  # set from --words


def _content(data: bytes) -> str:
    try:
        chunk = json.loads(data)
    except ValueError:
        return ""
    if DOOR == "responses":
        return chunk.get("delta", "") if chunk.get("type") == "response.output_text.delta" else ""
    if DOOR == "messages":
        delta = chunk.get("delta") or {}
        return delta.get("text", "") if delta.get("type") == "text_delta" else ""
    out = []
    for choice in chunk.get("choices") or ():
        text = (choice.get("delta") or {}).get("content")
        if text:
            out.append(text)
    return "".join(out)


def _ends(data: bytes) -> bool:
    if DOOR == "chat":
        return data == b"[DONE]"
    return data.startswith((b'{"type":"response.completed"', b'{"type":"message_stop"'))


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], verify: bool
) -> tuple[float | None, float, str | None]:
    """(ttft, total, error) in seconds; error is None for a good stream."""
    perf = time.perf_counter
    t0 = perf()
    ttft = None
    text: list[str] = []
    done = False
    buf = b""
    async with session.post(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            detail = (await resp.read())[:160]
            return None, perf() - t0, f"HTTP {resp.status}: {detail!r}"
        async for chunk in resp.content.iter_any():
            buf += chunk
            while (end := buf.find(b"\n\n")) >= 0:
                frame, buf = buf[:end], buf[end + 2 :]
                at = frame.find(b"data:")
                if at < 0:
                    continue  # comments (keep-alives)
                data = frame[at + 5 :].strip()
                if _ends(data):
                    done = True
                    if DOOR == "chat":
                        continue
                if ttft is None or verify:
                    content = _content(data)
                    if content and ttft is None:
                        ttft = perf() - t0
                    text.append(content)
    total = perf() - t0
    if not done:
        return ttft, total, "stream ended without its end event"
    if ttft is None:
        return ttft, total, "no content event"
    if verify and "".join(text) != REPLY:
        return ttft, total, f"reply differs: {''.join(text)[:80]!r}"
    return ttft, total, None


async def run(args: argparse.Namespace) -> dict[str, object]:
    headers = {"Content-Type": "application/json"}
    for h in args.header:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    body = payloads.door_body(DOOR, args.model, stream=True)
    connector = aiohttp.TCPConnector(limit=args.conc, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    ttfts: list[float] = []
    totals: list[float] = []
    errors: list[str] = []
    issued = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # warm-up: open the connections, let the target warm its pools (not measured)
        for _ in range(max(1, args.warmup // args.conc)):
            await asyncio.gather(
                *(one_stream(session, args.url, body, headers, True) for _ in range(args.conc))
            )
        deadline = time.perf_counter() + args.max_seconds
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal issued
            while issued < args.n and time.perf_counter() < deadline:
                issued += 1
                verify = args.conc == 1 or issued <= args.verify
                try:
                    ttft, total, err = await one_stream(session, args.url, body, headers, verify)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if err is None and ttft is not None:
                    ttfts.append(ttft)
                    totals.append(total)
                else:
                    errors.append(err or "?")

        await asyncio.gather(*(worker() for _ in range(args.conc)))
        elapsed = time.perf_counter() - start

    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1000

    return {
        "ok": len(totals),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": elapsed,
        "streams_per_s": len(totals) / elapsed if elapsed else 0.0,
        "ttft_p50_ms": ms(percentile(ttfts, 50)),
        "ttft_p99_ms": ms(percentile(ttfts, 99)),
        "total_p50_ms": ms(percentile(totals, 50)),
        "total_p99_ms": ms(percentile(totals, 99)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--conc", type=int, default=1)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--verify", type=int, default=100)
    ap.add_argument("--out", required=True)
    ap.add_argument("--door", choices=sorted(payloads.DOOR_PATHS), default="chat")
    ap.add_argument("--words", type=int, help="the upstream streams this many words")
    args = ap.parse_args()
    global DOOR, REPLY
    DOOR = args.door
    REPLY = payloads.reply(args.words)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(run(args))
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
