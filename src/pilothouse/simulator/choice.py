"""What the simulated model answered: one `Choice` per reply, with its text tokens or
tool call, why it stopped, and its token count. Shared by generation, the reply cache and
both API renderers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "tool_calls", "stop_sequence"]


@dataclass
class ToolCallOut:
    """A tool call in a reply; `arguments` is JSON text (cut short when max_tokens was hit)."""

    call_id: str
    name: str
    argument_tokens: list[str]

    @property
    def arguments(self) -> str:
        """The argument JSON text, exactly as emitted."""
        return "".join(self.argument_tokens)


@dataclass
class Choice:
    """One generated answer: its text tokens or tool call, why it stopped, and its token count."""

    index: int
    text_tokens: list[str]
    tool_call: ToolCallOut | None
    finish: FinishReason
    completion_tokens: int
    stop_sequence: str | None = None
    refusal: bool = False

    @property
    def text(self) -> str:
        """The reply text, exactly as emitted ("" for tool calls and the `empty` fault)."""
        return "".join(self.text_tokens)
