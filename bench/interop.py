"""Interop: two clients nobody here wrote, on the paths they take by default, against a
running gateway (`make run`). Not part of the test suite: it installs the clients from
their registries at run time, into temporary directories it removes afterwards.

- The Vercel AI SDK (npm `ai`, `@ai-sdk/openai`, `zod`): `openai(model)`, which calls the
  Responses API. Plain text, a stream, tools over several steps, a structured object,
  a conversation continued from the earlier answer's messages (which the SDK sends as
  `item_reference`s to the stored answer), and `previousResponseId`.
- Inspect AI (pip `inspect-ai`, in a venv): `openai/<alias>`, which treats a model name it
  does not know as a new OpenAI model and calls the Responses API with `store: false`.
  A plain eval and one with a tool.

    .venv/bin/python bench/interop.py [--base-url URL] [--key KEY] [--model ALIAS]

The key defaults to PILOTHOUSE_API_KEY (make run prints it), the URL to PILOTHOUSE_URL
or http://127.0.0.1:8080. The conversation cases need stored responses: a key with the
`responses:store` scope (the demo key has it). Prints one line per case and a summary
per client; exits 0 when every case passed, 1 when one failed, 2 when a client could not
be installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

NPM_PACKAGES = ["ai@6", "@ai-sdk/openai@3", "zod@4"]
PIP_PACKAGES = ["inspect-ai", "openai"]
INSTALL_TIMEOUT_SECONDS = 600
RUN_TIMEOUT_SECONDS = 300

VERCEL_SCRIPT = r"""
import { openai, createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText, generateObject, tool, stepCountIs } from "ai";
import { z } from "zod";

const provider = createOpenAI({ baseURL: process.env.BASE_URL + "/v1", apiKey: process.env.KEY });
const model = provider(process.env.MODEL);  // the same as openai(model): the Responses API
const cases = {
  "generateText": async () => {
    const r = await generateText({ model, prompt: "Say hello to the gateway." });
    if (!r.text) throw new Error("empty text");
    return `${r.text.length} chars, ${r.usage.inputTokens}+${r.usage.outputTokens} tokens`;
  },
  "streamText": async () => {
    const r = streamText({ model, prompt: "Tell me about lighthouses." });
    let text = "";
    for await (const delta of r.textStream) text += delta;
    if (!text) throw new Error("empty stream");
    return `${text.length} chars, finish ${await r.finishReason}`;
  },
  "tools over steps": async () => {
    const r = await generateText({
      model,
      prompt: "What is the weather in Paris?",
      tools: {
        weather: tool({
          description: "The weather in a city",
          inputSchema: z.object({ city: z.string() }),
          execute: async ({ city }) => ({ city, celsius: 21 }),
        }),
      },
      stopWhen: stepCountIs(3),
    });
    const calls = r.steps.flatMap((s) => s.toolCalls);
    if (!calls.length) throw new Error("no tool call");
    if (!r.text) throw new Error("no answer after the tool result");
    return `${r.steps.length} steps, ${calls.length} tool call(s)`;
  },
  "generateObject": async () => {
    const r = await generateObject({
      model,
      schema: z.object({ name: z.string(), age: z.number() }),
      prompt: "Invent a person.",
    });
    if (typeof r.object.name !== "string" || typeof r.object.age !== "number")
      throw new Error("object does not match: " + JSON.stringify(r.object));
    return JSON.stringify(r.object).slice(0, 60);
  },
  "conversation (item references)": async () => {
    const history = [{ role: "user", content: "My name is Ada." }];
    const first = await generateText({ model, messages: history });
    const second = await generateText({
      model,
      messages: [...history, ...first.response.messages, { role: "user", content: "My name?" }],
    });
    if (!second.text) throw new Error("empty text");
    return `2 turns, ${second.usage.inputTokens} input tokens on the second`;
  },
  "previousResponseId": async () => {
    const first = await generateText({ model, prompt: "My name is Ada." });
    const id = first.providerMetadata.openai.responseId;
    const second = await generateText({
      model,
      prompt: "What is my name?",
      providerOptions: { openai: { previousResponseId: id } },
    });
    if (!second.text) throw new Error("empty text");
    return `continued ${id}`;
  },
};
for (const [name, run] of Object.entries(cases)) {
  try {
    console.log(JSON.stringify({ case: name, ok: true, detail: await run() }));
  } catch (error) {
    const detail = (error.responseBody || error.message || String(error)).slice(0, 400);
    console.log(JSON.stringify({ case: name, ok: false, detail }));
  }
}
"""

INSPECT_SCRIPT = r"""
import json, os, sys
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate, use_tools
from inspect_ai.tool import tool


@tool
def add():
    async def execute(x: int, y: int):
        '''Add two numbers.

        Args:
            x: The first number.
            y: The second number.
        '''
        return x + y

    return execute


tasks = {
    "eval": Task(
        name="plain",
        dataset=[Sample(input="Say hello.", target="hello"), Sample(input="Name a colour.", target="red")],
        solver=generate(),
        scorer=includes(),
    ),
    "eval with a tool": Task(
        name="tool",
        dataset=[Sample(input="What is 1 + 1? Use the add tool.", target="2")],
        solver=[use_tools(add()), generate()],
        scorer=includes(),
    ),
}
for name, task in tasks.items():
    try:
        [log] = eval(
            task,
            model="openai/" + os.environ["MODEL"],
            model_base_url=os.environ["BASE_URL"] + "/v1",
            log_dir=os.environ["LOG_DIR"],
            display="none",
            max_retries=0,
        )
        if log.status != "success":
            raise RuntimeError(f"status {log.status}: {log.error.message if log.error else ''}")
        apis, tool_calls = set(), 0
        for sample in log.samples or []:
            if sample.error:
                raise RuntimeError(sample.error.message)
            if not sample.output.completion and not sample.output.message.tool_calls:
                raise RuntimeError("a sample has no output")
            tool_calls += sum(1 for m in sample.messages if m.role == "tool")
            for event in sample.events:
                if event.event == "model" and event.call is not None:
                    apis.add("responses" if "input" in event.call.request else "chat")
        if name == "eval with a tool" and not tool_calls:
            raise RuntimeError("the model never called the tool")
        detail = f"{len(log.samples or [])} samples via {'/'.join(sorted(apis))} API"
        detail += f", {tool_calls} tool call(s)" if tool_calls else ""
        print(json.dumps({"case": name, "ok": True, "detail": detail}), flush=True)
    except Exception as exc:
        print(json.dumps({"case": name, "ok": False, "detail": str(exc)[:400]}), flush=True)
"""


class InstallFailed(Exception):
    pass


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise InstallFailed(f"{' '.join(command[:3])}...: {(done.stderr or done.stdout)[-600:]}")
    return done.stdout


def vercel(base_dir: Path, env: dict[str, str]) -> list[dict[str, object]]:
    """The Vercel AI SDK's cases, installed from npm into `base_dir`."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise InstallFailed("node and npm are needed for the Vercel AI SDK")
    _run(["npm", "init", "-y"], cwd=base_dir, env=env, timeout=60)
    _run(
        ["npm", "install", "--no-audit", "--no-fund", *NPM_PACKAGES],
        cwd=base_dir,
        env=env,
        timeout=INSTALL_TIMEOUT_SECONDS,
    )
    (base_dir / "interop.mjs").write_text(VERCEL_SCRIPT)
    out = subprocess.run(
        ["node", "interop.mjs"],
        cwd=base_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    return _results(out.stdout, out.stderr)


def inspect(base_dir: Path, env: dict[str, str]) -> list[dict[str, object]]:
    """Inspect AI's cases, installed from PyPI into a venv in `base_dir`."""
    venv.create(base_dir / "venv", with_pip=True)
    python = str(base_dir / "venv" / "bin" / "python")
    _run(
        [python, "-m", "pip", "install", "--quiet", *PIP_PACKAGES],
        cwd=base_dir,
        env=env,
        timeout=INSTALL_TIMEOUT_SECONDS,
    )
    (base_dir / "interop_inspect.py").write_text(INSPECT_SCRIPT)
    out = subprocess.run(
        [python, "interop_inspect.py"],
        cwd=base_dir,
        env={**env, "LOG_DIR": str(base_dir / "logs"), "OPENAI_API_KEY": env["KEY"]},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    return _results(out.stdout, out.stderr)


def _results(stdout: str, stderr: str) -> list[dict[str, object]]:
    results = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            results.append(json.loads(line))
    if not results:
        return [{"case": "(run)", "ok": False, "detail": stderr[-600:] or "no output"}]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url", default=os.environ.get("PILOTHOUSE_URL", "http://127.0.0.1:8080")
    )
    parser.add_argument("--key", default=os.environ.get("PILOTHOUSE_API_KEY"))
    parser.add_argument("--model", default="fast", help="the alias or route:NAME to call")
    parser.add_argument("--only", choices=["vercel", "inspect"], default=None)
    args = parser.parse_args()
    if not args.key:
        parser.error("give --key or set PILOTHOUSE_API_KEY (make run prints it)")
    env = {**os.environ, "BASE_URL": args.base_url.rstrip("/"), "KEY": args.key}
    env["MODEL"] = args.model
    clients = {"vercel-ai-sdk": vercel, "inspect-ai": inspect}
    status = 0
    for name, run in clients.items():
        if args.only and not name.startswith(args.only):
            continue
        with tempfile.TemporaryDirectory(prefix=f"pilothouse-interop-{name}-") as tmp:
            try:
                results = run(Path(tmp), env)
            except (InstallFailed, subprocess.TimeoutExpired) as exc:
                print(f"{name}: not run: {exc}")
                status = max(status, 2)
                continue
        for result in results:
            mark = "pass" if result["ok"] else "FAIL"
            print(f"{name}: {mark} {result['case']}: {result['detail']}")
        passed = sum(1 for r in results if r["ok"])
        verdict = "pass" if passed == len(results) else "FAIL"
        print(f"{name}: {verdict} ({passed}/{len(results)} cases)")
        if passed < len(results):
            status = max(status, 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
