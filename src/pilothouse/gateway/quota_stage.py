"""The quota stage of a gateway call (docs/quotas.md), around the one `QuotaGate`: before
the call, what the request may use is reserved against every quota that applies to its
key, user and team (a 429 past a hard limit; past a soft one, the policy's cheaper alias
and/or capped `max_tokens`); after it, the reservation becomes what the call used."""

from __future__ import annotations

from pilothouse.gateway.accounting import usage_bound
from pilothouse.gateway.http_io import Headers
from pilothouse.gateway.resolve import Resolution, degrade
from pilothouse.policy.keys import ApiKey
from pilothouse.policy.quota_gate import Admission, QuotaGate
from pilothouse.snapshot import Snapshot
from pilothouse.telemetry.request_log import RequestRecord


async def reserve(
    gate: QuotaGate,
    snapshot: Snapshot,
    key: ApiKey,
    resolution: Resolution,
    record: RequestRecord,
    sent_bytes: int | None,
) -> Admission | None:
    """Reserve what the request may use against every quota that applies (None when none
    does); QuotaExceeded (429) past a hard limit. `sent_bytes` bounds the prompt when it is
    all in the body the client sent."""
    applicable = snapshot.quotas.applicable(key.id, record.user, key.team)
    if not applicable:
        return None
    return await gate.admit(applicable, usage_bound(resolution.alias, resolution.body, sent_bytes))


async def degraded(
    gate: QuotaGate,
    snapshot: Snapshot,
    admission: Admission,
    resolution: Resolution,
    record: RequestRecord,
    headers: Headers,
    sent_bytes: int | None,
) -> Resolution:
    """Past a soft limit: the policy's cheaper alias and/or capped max_tokens, the
    reservation moved to the degraded request's bound. The same resolution otherwise."""
    if not admission.degraded:
        return resolution
    changed = degrade(snapshot, resolution, admission.degrade_to, admission.max_tokens)
    if changed.alias is not resolution.alias:
        record.model_alias = changed.alias.alias
        headers.append((b"x-pilothouse-quota-degraded", changed.alias.alias.encode()))
    if changed is not resolution:
        await gate.rebound(admission, usage_bound(changed.alias, changed.body, sent_bytes))
    return changed


async def settle(
    gate: QuotaGate | None, admission: Admission | None, record: RequestRecord
) -> None:
    """The reservation becomes the real usage (streams and cuts included: the row's
    tokens and cost are what was used), or is released when nothing was used. Nothing to
    do without one (no quota applied)."""
    if gate is None or admission is None:
        return
    tokens = (record.prompt_tokens or 0) + (record.completion_tokens or 0)
    cost = record.cost_usd or 0.0
    used = record.error_class is None or tokens > 0 or cost > 0
    await gate.settle(admission, used_anything=used, tokens=tokens, cost_usd=cost)
