"""What is under test, resolved against the registry: a route arm, or a prompt on a model.

`Target.request` builds the body and headers of one call. For prompt targets it renders
the prompt here, as the gateway renders a route's (one shared builder is planned); it is
strict the same way: a missing, unknown or null variable is an error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pilothouse.evals.calls import deterministic
from pilothouse.evals.types import Case
from pilothouse.registry import templates
from pilothouse.releases.requests import release_request


class CaseProblem(ValueError):
    """A case that cannot be sent to a target; the message names the field."""


def null_fields(variables: dict[str, Any]) -> list[str]:
    return sorted(f"variables.{name}" for name, value in variables.items() if value is None)


@dataclass
class Target:
    """What is under test, resolved: either a route arm or a rendered prompt on a model."""

    kind: str  # "route" or "prompt"
    route: str | None = None
    release: str = "active"
    prompt: dict[str, Any] | None = None  # the registry's JSON for the prompt version
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    candidate: bool = False
    # Routes: the release the arm serves now (GET /api/routes) and its prompt's registry
    # JSON, so every case can be rendered before the first call.
    release_info: dict[str, Any] | None = None
    release_prompt: dict[str, Any] | None = None
    identity: Any = None  # what the gateway resolved: part of every cache key

    def request(
        self, case: Case, seed: int | None, repeat: int
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The body and headers for one case and repeat (repeats get distinct seeds)."""
        messages = list(case.inputs.get("messages", []))
        variables = dict(case.inputs.get("variables", {}))
        nulls = null_fields(variables)
        if nulls:
            raise CaseProblem(f"{', '.join(nulls)} is null: give a value or leave it out")
        body: dict[str, Any]
        if self.kind == "route":
            body = {
                "model": f"route:{self.route}",
                "messages": messages,
                "pilothouse": {"variables": variables},
            }
            headers = {"x-pilothouse-release": self.release}
        else:
            assert self.prompt is not None
            # The same builder the gateway uses for a release: an eval measures what
            # production would serve.
            body = release_request(
                {"model": self.model, "messages": messages},
                _render(self.prompt, variables),
                self.prompt,
                self.params,
            )
            headers = {}
        if seed is not None:
            body.setdefault("seed", seed + repeat)
        return body, headers

    def check(self, case: Case, seed: int | None) -> str | None:
        """Why `case` cannot be sent to this target, or None (nothing is called)."""
        messages = case.inputs.get("messages", [])
        for index, message in enumerate(messages):
            if not isinstance(message.get("role"), str) or message.get("content") is None:
                return f"messages[{index}] needs a `role` and a non-null `content`"
        try:
            self.request(case, seed, 0)
            if self.kind == "route" and self.release_prompt is not None:
                _render(self.release_prompt, dict(case.inputs.get("variables", {})))
        except (templates.RenderError, templates.TemplateError, CaseProblem) as exc:
            return str(exc)
        return None

    def cacheable(self, seed: int | None) -> bool:
        """Whether answers are deterministic enough to reuse: temperature 0 or a seed."""
        params = dict((self.release_info or {}).get("params") or {}) if self.kind == "route" else {}
        params.update(self.params)
        if seed is not None:
            params.setdefault("seed", seed)
        return deterministic(params)

    def manifest(self) -> dict[str, Any]:
        part: dict[str, Any] = {
            "name": self.name,
            "candidate": self.candidate,
            "kind": self.kind,
            "params": self.params,
        }
        if self.kind == "route":
            info = self.release_info or {}
            part.update(
                route=self.route,
                release=self.release,
                release_id=info.get("id"),
                prompt=info.get("prompt"),
                prompt_hash=info.get("prompt_hash"),
                model_alias=info.get("model"),
                params=info.get("params") or {},
            )
        else:
            assert self.prompt is not None
            part.update(
                prompt=f"{self.prompt['name']}@{self.prompt['version']}",
                prompt_hash=self.prompt["hash"],
                # The version with the fragment versions it included: what the promotion
                # gate matches a run against (contracts/suite_evidence.py).
                composition_hash=self.prompt.get("composition_hash"),
                model_alias=self.model,
            )
        part["identity"] = self.identity
        return part


def _render(prompt: dict[str, Any], variables: dict[str, Any]) -> list[dict[str, Any]]:
    fragments = {ref: templates.Fragment(**f) for ref, f in prompt["fragments"].items()}
    return templates.render(
        prompt["name"],
        prompt["messages"],
        templates.parse_variables(prompt["variables"]),
        variables,
        fragments,
    ).messages
