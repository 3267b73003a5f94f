"""What the Responses and Messages stream writers share: walking one chat chunk (its
usage, each choice's text and tool-call deltas, its finish reason) and the short path of
a chunk that is nothing but text.

A writer keeps `text_open` (its text part is open: one more text delta is one frame) and
says how to write that frame (`_text_frame`), how to begin text that is not open yet
(`_text`), a tool-call delta (`_tool`) and usage (`_usage`)."""

from __future__ import annotations

from typing import Any

from pilothouse.gateway.doors.ids_and_chunks import chat_chunk
from pilothouse.providers.types import EventKind, StreamEvent


class ChunkWriter:
    text_open = False
    finish_reason: str | None = None
    merged_frames = 0  # frames sent inside another frame's event (see door.EventWriter)

    def _text_frame(self, text: str) -> bytes:
        """The frame of one more text delta while the text is open."""
        raise NotImplementedError

    def _text(self, text: str) -> list[StreamEvent]:
        """The events of a text delta, opening the text first if it is not open."""
        raise NotImplementedError

    def _tool(self, call: dict[str, Any]) -> list[StreamEvent]:
        raise NotImplementedError

    def _usage(self, usage: Any) -> None:
        raise NotImplementedError

    def feed_batch(self, batch: list[StreamEvent]) -> list[StreamEvent]:
        """`feed` for each event of one upstream read. Most of a stream is chunks that are
        nothing but text (`StreamEvent.text`, set by the decoder): while the text is open
        each is rewritten in place (`StreamEvent`), still CONTENT, without reading the
        chunk again; a read of one such chunk (how providers send tokens) is shortest."""
        if len(batch) == 1 and (text := batch[0].text) is not None and self.text_open:
            batch[0].data = self._text_frame(text)
            return batch
        out: list[StreamEvent] = []
        append, text_frame = out.append, self._text_frame
        for event in batch:
            text = event.text
            if text is not None and self.text_open:
                event.data = text_frame(text)
                append(event)
            else:
                out += self.feed(event)
        return out

    def feed(self, event: StreamEvent) -> list[StreamEvent]:
        """The door's events for one chat chunk, whatever it carries."""
        if event.kind is EventKind.DONE:
            return []
        chunk = event.chunk if event.chunk is not None else chat_chunk(event.data)
        if chunk is None:
            return []
        if chunk.get("usage"):
            self._usage(chunk["usage"])
        out: list[StreamEvent] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self._text(text)
            for call in delta.get("tool_calls") or []:
                out += self._tool(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out
