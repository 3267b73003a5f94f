"""What the contract tests share: a simulator scenario where one wording of the triage
prompt drops the `label` key for billing tickets, the prompt in its wordings, a consumer's
contract on it, and a verification run in-process the way `pilothouse contracts verify`
runs one (the eval's own request builder, the gateway's answers), without a port."""

from __future__ import annotations

from typing import Any

from inprocess import InProcess
from pilothouse.evals.datasets import cases
from pilothouse.evals.targets import Target
from pilothouse.simulator.scenario import parse_scenario

# The wording that asks for "the team" makes the model answer billing tickets with
# {"team": "billing"}: the key a downstream parser reads (`label`) is gone for them.
SCENARIO_TEXT = """
replies:
  - system: "(?i)name the team"
    match: "(?i)charged|refund|invoice"
    json: {team: billing}
"""
SCENARIO = parse_scenario(SCENARIO_TEXT, source="contract scenario")
SAFE = "Sort the support ticket into a queue. Answer with JSON only."
BREAKING = "Name the team that should handle this ticket. JSON only."
REPHRASED = "Put this support ticket in the right queue; reply with JSON only."
TICKETS = {
    "charge": "I was charged twice this month",
    "crash": "The app crashes when I open settings",
    "export": "How do I export my data to CSV?",
    "refund": "Refund the annual plan I cancelled",
    "login": "Login button does nothing on Android",
    "invoice": "My invoice shows the wrong VAT number",
}


def triage(system: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "{{ticket}}"},
        ],
        "variables": {"ticket": {"required": True}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "queue",
                "schema": {
                    "type": "object",
                    "properties": {"label": {"enum": ["billing", "bug", "question"]}},
                    "required": ["label"],
                },
            },
        },
    }


def contract(**changes: Any) -> dict[str, Any]:
    """The billing team's contract on triage: every answer carries a known `label`."""
    return {
        "name": "billing-router",
        "consumer": "billing",
        "prompt": "triage",
        "model": "fast",
        "params": {"temperature": 0},
        "samples": [{"id": k, "variables": {"ticket": v}} for k, v in TICKETS.items()],
        "tolerance": {"min_pass_rate": 0.98, "repeats": 2},
        "expect": {
            "json_schema": {"type": "object", "required": ["label"]},
            "labels": {"path": "label", "allowed": ["billing", "bug", "question"]},
        },
        **changes,
    }


async def push(gw: InProcess, system: str, **fields: Any) -> int:
    response = await gw.client.post(
        "/api/prompts/triage/versions", json={**triage(system), **fields}, headers=gw.admin
    )
    assert response.status_code in (200, 201), response.text
    return int(response.json()["version"])


async def run_samples(
    gw: InProcess, key: str, added: dict[str, Any], subject: dict[str, Any]
) -> dict[str, Any]:
    """The body `pilothouse contracts verify` posts: every sample's answers from the
    gateway for `subject`, and the target as the eval runner records it."""
    spec = added["spec"]
    auth = {"Authorization": f"Bearer {key}", "X-Pilothouse-Source": "eval"}
    if "release" in subject:
        routes = (await gw.client.get("/api/routes", headers=gw.admin)).json()["data"]
        release = next(r for r in routes if r["name"] == subject["route"])[subject["release"]]
        target = Target(
            kind="route",
            route=subject["route"],
            release=subject["release"],
            release_info=release,
            name="route",
        )
    else:
        name, _, version = subject["prompt"].partition("@")
        prompt = await gw.client.get(
            f"/api/prompts/{name}", params={"version": version}, headers=gw.admin
        )
        assert prompt.status_code == 200, prompt.text
        model = subject.get("model", spec.get("model"))
        params = subject.get("params", spec.get("params") or {})
        target = Target(kind="prompt", prompt=prompt.json(), model=model, params=params, name="p")
    served: set[str] = set()
    samples = []
    for case in cases(spec["samples"]):
        outputs = []
        for repeat in range(spec["tolerance"]["repeats"]):
            body, headers = target.request(case, 0, repeat)
            answer = await gw.client.post(
                "/v1/chat/completions", json=body, headers={**auth, **headers}
            )
            assert answer.status_code == 200, answer.text
            if answer.headers.get("x-pilothouse-release"):
                served.add(answer.headers["x-pilothouse-release"])
            choice = answer.json()["choices"][0]
            outputs.append(
                {"text": choice["message"]["content"], "finish_reason": choice["finish_reason"]}
            )
        samples.append({"id": case.id, "outputs": outputs})
    manifest = target.manifest()
    if target.kind == "route":
        manifest["served_release_ids"] = sorted(served)
    return {
        "subject": subject,
        "spec_hash": added["spec_hash"],
        "run_id": "run_inprocess",
        "target": manifest,
        "samples": samples,
    }


async def verify(
    gw: InProcess, key: str, added: dict[str, Any], subject: dict[str, Any]
) -> dict[str, Any]:
    body = await run_samples(gw, key, added, subject)
    response = await gw.client.post(
        f"/api/contracts/{added['id']}/verifications",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())
