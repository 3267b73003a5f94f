"""Behaviour diffs: what a prompt (or release) change does to answers, not to text.

`observe` reads an answer's behaviour (JSON, keys, label, tool calls, refusal, length),
`compare` finds what changed between two answers, `similarity` says how close they are
in meaning, `run` answers both sides through the eval runner's calls and cache, `report`
counts it all (with the noise floor), `render` draws it and `summary` condenses it.
Nothing here knows HTTP or the command line; `pilothouse diff` and POST /api/diff do.
"""

from pilothouse.behaviour.summary import summarise

__all__ = ["summarise"]
