"""What demo mode puts in the store before the server starts, each item only where it is
missing (a restarted demo keeps whatever was changed since):

- the `house-style` fragment, the `support-triage` prompt and route on `fast` (what the
  docs' examples use), and the demo key (`DATA_DIR/demo-key`);
- the demo traffic's own routes, `support-reply` on `assist` and `ticket-summary` on
  `summary`, and its two application keys (`DATA_DIR/demo-traffic-keys`);
- a daily spend quota on the support team (whose key the demo traffic's support app uses);
- the `support-tickets` dataset and the `support-reply-quality` suite, scheduled every
  three minutes: the server runs it (monitor/scheduler.py), so the Evals page has runs
  with cases and verdicts, and each run after a pass is compared with it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pilothouse.cli.demo_traffic import INSIGHTS_JOB, SUPPORT_APP, TICKETS
from pilothouse.config import ConfigFile, PromotionSpec
from pilothouse.evals import dataset_store
from pilothouse.monitor import schedules
from pilothouse.policy import keys as key_policy
from pilothouse.policy import quotas as quota_policy
from pilothouse.registry import prompts as registry
from pilothouse.registry.prompt_content import PromptContent
from pilothouse.releases.promotion import Promoter
from pilothouse.releases.routes import list_routes
from pilothouse.store import Store

ACTOR = "serve --demo"
HOUSE_STYLE = {"text": "Be brief and kind. Never promise refunds."}
SUPPORT_TRIAGE = {
    "variables": {"ticket": {"required": True}, "language": {"default": "English"}},
    "messages": [
        {
            "role": "system",
            "content": "You sort support tickets into queues: billing, shipping or other. "
            "Answer in {{language}}.\n{{> house-style}}",
        },
        {"role": "user", "content": "{{ticket}}"},
    ],
}
SUPPORT_REPLY = {
    "variables": {"ticket": {"required": True}},
    "messages": [
        {
            "role": "system",
            "content": "Draft the first reply to this support ticket, in at most three "
            "sentences.\n{{> house-style}}",
        },
        {"role": "user", "content": "{{ticket}}"},
    ],
}
TICKET_SUMMARY = {
    "variables": {"ticket": {"required": True}},
    "messages": [
        {"role": "system", "content": "Summarise the ticket in one line for the on-call engineer."},
        {"role": "user", "content": "{{ticket}}"},
    ],
}
# route: (prompt, its content, model alias, owner)
TRAFFIC_ROUTES = {
    "support-reply": (SUPPORT_REPLY, "assist", "support"),
    "ticket-summary": (TICKET_SUMMARY, "summary", "insights"),
}
TRAFFIC_KEYS = {SUPPORT_APP: "support", INSIGHTS_JOB: "insights"}  # key name: its team
DATASET = "support-tickets"
SUITE = """\
name: support-reply-quality
owner: support
description: First replies stay short, direct and willing (seeded by the demo)
target: {{route: support-reply}}
dataset: {{name: {dataset}, version: {version}}}
seed: 7
concurrency: 4
scorers:
  - {{type: refusal, threshold: 0.9}}
  - {{type: length, max_words: 80, threshold: 0.8}}
  - {{type: hedging, max_per_100_words: 2, threshold: 0.8}}
gate: {{min_verdicts: 8}}
"""
SUITE_EVERY_SECONDS = 180
QUOTA = {
    "name": "support-daily-usd",
    "subject_kind": "team",
    "subject": "support",
    "dimension": "cost",
    "window": "day",
    "soft_limit": 20.0,
    "hard_limit": 50.0,
}


def seed(store: Store, config: ConfigFile, data_dir: Path, *, now: datetime | None = None) -> str:
    """Seed what is missing (the module docstring lists it) under `config` (its models and
    promotion policy); returns the demo key's secret. `now` (default: the wall clock) is
    when the scheduled suite is first due."""
    models, policy = config.models, config.promotion
    if not registry.list_prompts(store):
        for name, content in (("house-style", HOUSE_STYLE), ("support-triage", SUPPORT_TRIAGE)):
            _prompt(store, name, content, "support", policy)
        Promoter(store, models, policy).promote(
            "support-triage",
            prompt="support-triage@production",
            model="fast",
            params={"temperature": 0.2},
            reason="seeded by the demo",
            owner="support",
            actor=ACTOR,
        )
    routes = {route["name"] for route in list_routes(store)}
    prompts = {prompt["name"] for prompt in registry.list_prompts(store)}
    for route, (content, model, owner) in TRAFFIC_ROUTES.items():
        if route in routes:
            continue
        if route not in prompts:
            _prompt(store, route, content, owner, policy)
        Promoter(store, models, policy).promote(
            route,
            prompt=f"{route}@production",
            model=model,
            params={"temperature": 0.3},
            reason="seeded by the demo",
            owner=owner,
            actor=ACTOR,
        )
    if not any(p.name == QUOTA["name"] for p in quota_policy.list_policies(store)):
        quota_policy.set_policy(
            store, QUOTA, known_aliases=set(models), actor=ACTOR, reason="seeded by the demo"
        )
    _suite(store, now or datetime.now(UTC))
    return demo_key(store, data_dir)


def _prompt(
    store: Store, name: str, content: dict[str, Any], owner: str, policy: PromotionSpec
) -> None:
    registry.create_version(
        store,
        name,
        PromptContent.model_validate(content),
        owner=owner,
        description="seeded by the demo",
        labels=["production"],
        actor=ACTOR,
        policy=policy,
    )


def _suite(store: Store, now: datetime) -> None:
    rows = [
        {"id": f"ticket-{n:02d}", "variables": {"ticket": ticket}}
        for n, ticket in enumerate(TICKETS[:12], start=1)
    ]
    stored = dataset_store.store_version(store, DATASET, rows, source="the demo", actor=ACTOR)
    if any(s["suite"] == "support-reply-quality" for s in schedules.list_schedules(store, now)):
        return
    schedules.put_schedule(
        store,
        SUITE.format(dataset=DATASET, version=stored["version"]),
        every_seconds=SUITE_EVERY_SECONDS,
        owner="support",
        actor=ACTOR,
        now=now,
    )


def demo_key(store: Store, data_dir: Path) -> str:
    """The demo key's secret, kept in the data dir so every demo start can print it."""
    path = data_dir / "demo-key"
    if path.exists():
        secret = path.read_text().strip()
        known = {k.prefix for k in key_policy.list_keys(store)}
        if secret[: len(key_policy.SECRET_PREFIX) + 6] in known:
            return secret
    # The demo key may also run evals (docs/evals.md walks through that with it) and
    # have its Responses API answers stored (docs/gateway.md, "Stored responses").
    _, secret = key_policy.create_key(
        store, name="demo", user="demo", scopes=["evals", "responses:store"], actor=ACTOR
    )
    _write_private(path, secret + "\n")
    return secret


def traffic_keys(store: Store, data_dir: Path) -> dict[str, str]:
    """The demo traffic's application keys (name -> secret), kept in the data dir; one an
    admin disabled or deleted is replaced by a new one."""
    path = data_dir / "demo-traffic-keys"
    kept: dict[str, str] = {}
    if path.exists():
        try:
            loaded = orjson.loads(path.read_bytes())
            kept = {k: v for k, v in loaded.items() if isinstance(v, str)}
        except (orjson.JSONDecodeError, AttributeError):
            kept = {}
    usable = {k.prefix for k in key_policy.list_keys(store) if not k.disabled}
    secrets = {}
    for name, team in TRAFFIC_KEYS.items():
        secret = kept.get(name, "")
        if secret[: len(key_policy.SECRET_PREFIX) + 6] not in usable:
            _, secret = key_policy.create_key(store, name=name, team=team, actor=ACTOR)
        secrets[name] = secret
    if secrets != kept:
        _write_private(path, orjson.dumps(secrets).decode() + "\n")
    return secrets


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
