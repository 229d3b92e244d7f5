"""`bastion eval chat`: the chat scenarios against a real LLM when one is configured, else the scripted one.

A server is started in-process on loopback (a scratch registry database, the builtin tools, this data dir's
index when it has one); each scenario gets its own user and session. Reported: task success, tool-choice
precision and recall (micro-averaged over steps), and approvals honoured — an approved call ran exactly once,
a rejected one never (read from the gateway's audit log). With the scripted LLM the figures measure the
agent's plumbing, not a model, and are labelled so.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from agents.chat.scenarios import SCENARIOS, Scenario, Step
from bastion.console import out
from tools.progress import bar


def _matches(expected: list[str], called: list[str]) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of the tools called against the expected ones."""
    remaining = list(called)
    tp = 0
    for want in expected:
        options = want.split("|")
        hit = next((c for c in remaining if c in options), None)
        if hit is not None:
            remaining.remove(hit)
            tp += 1
    return tp, len(remaining), len(expected) - tp


def _events(http: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    response = http.post(path, json=body)
    response.raise_for_status()
    found = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            found.append(json.loads(line[6:]))
    return found


class Run:
    def __init__(self, base: str, admin_token: str, mint: Any) -> None:
        self.base = base
        self.admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=300)
        self.mint = mint

    def audit(self, subject: str, since: str, tool: str) -> list[dict[str, Any]]:
        response = self.admin.get(
            "/admin/v1/audit", params={"subject": subject, "since": since, "tool": tool, "kind": "call", "limit": 100}
        )
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()["items"]
        return rows

    def scenario(self, index: int, scenario: Scenario, scripted: Any | None) -> dict[str, Any]:
        for server, tool, body in scenario.policies:
            self.admin.put(f"/admin/v1/servers/{server}/tools/{tool}/policy", json=body).raise_for_status()
        user = f"eval-{index}"
        http = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.mint(user)}"}, timeout=600)
        sid = http.post("/v1/chat/sessions", json={"scope": scenario.scope}).json()["id"]
        steps: list[dict[str, Any]] = []
        try:
            for step in scenario.steps:
                steps.append(self.step(http, sid, user, step, scripted))
        finally:
            for server, tool, _ in scenario.policies:
                self.admin.delete(f"/admin/v1/servers/{server}/tools/{tool}/policy")
        success = all(s["success"] for s in steps)
        return {"name": scenario.name, "success": success, "steps": steps}

    def step(self, http: httpx.Client, sid: str, user: str, step: Step, scripted: Any | None) -> dict[str, Any]:
        if scripted is not None:
            scripted.replies.clear()
            scripted.script(*step.script)
        since = datetime.now(UTC).isoformat()
        events = _events(http, f"/v1/chat/sessions/{sid}/messages", {"content": step.user})
        honoured: bool | None = None
        proposals = [e for e in events if e["type"] == "approval_required"]
        if proposals and step.decide is not None:
            ids = {p["id"]: step.decide for p in proposals[-1]["proposals"] if p["kind"] == "confirm"}
            events += _events(http, f"/v1/chat/sessions/{sid}/decisions", {"decisions": ids})
        results = [e for e in events if e["type"] == "tool_result" and e["status"] not in ("awaiting_user",)]
        called = [e["tool"] for e in events if e["type"] == "tool_call"]
        tp, fp, fn = _matches(step.expect, called)
        final = {r["tool"]: r["status"] for r in results}
        # Each expected call that was made (any of its alternatives) ended as expected.
        statuses_ok = all(
            next(final[t] for t in tool.split("|") if t in final) == step.status.get(tool, "ok")
            for tool in step.expect
            if any(t in final for t in tool.split("|"))
        )
        if step.decide is not None:
            ran = 0
            for tool in {t for t in called if "__" in t}:
                rows = self.audit(user, since, tool.split("__", 1)[1])
                ran += sum(1 for r in rows if r["outcome"] == "ok")
            honoured = ran == (1 if step.decide == "approve" else 0)
        done = next((e for e in events if e["type"] == "done"), {})
        success = fp == 0 and fn == 0 and statuses_ok and honoured is not False and done.get("status") != "error"
        return {
            "user": step.user[:80],
            "called": called,
            "statuses": final,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "approvals_honoured": honoured,
            "success": success,
            "status": done.get("status"),
        }


def evaluate(data_dir: Path, only: str | None = None) -> dict[str, Any]:
    """Run the scenarios; the returned dict is what `report` prints and the JSON records."""
    from agents.chat import scenarios as scenarios_module
    from bastion.app import create_app
    from bastion.builtins import definitions_resolver
    from bastion.live import LiveServer, free_port
    from embeddings.settings import LLMSettings
    from registry.auth import mint_token
    from registry.context import RegistryContext
    from registry.db import migrate
    from registry.services.seed import apply_seed, load_seed
    from registry.settings import RegistrySettings
    from tools.provenance import data_version, provenance

    llm = LLMSettings()
    scripted = None
    servers: list[LiveServer] = []
    has_index = (data_dir / "index" / "summary.json").exists()
    chosen = [s for s in SCENARIOS if only is None or only.lower() in s.name.lower()]
    skipped = [s.name for s in chosen if s.needs_index and not has_index]
    chosen = [s for s in chosen if s.name not in skipped]
    saved_env = {k: os.environ.get(k) for k in ("BASTION_LLM_BASE_URL", "BASTION_LLM_MODEL")}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if not llm.configured:
                from agents.scripted_llm import ScriptedLLM, scripted_app

                scripted = ScriptedLLM()
                # The Text-to-SQL agent behind sql__ask asks too (without tools): a fixed query.
                scripted.without_tools = lambda body: "```sql\nSELECT count(*) AS campaigns FROM ads.campaigns\n```"
                servers.append(LiveServer(scripted_app(scripted)).start())
                os.environ["BASTION_LLM_BASE_URL"] = f"{servers[-1].url}/v1"
                os.environ["BASTION_LLM_MODEL"] = "scripted"
            port = free_port()
            settings = RegistrySettings(
                data_dir=data_dir,
                database_url=f"sqlite:///{Path(tmp) / 'eval.db'}",
                jwt_secret=secrets.token_urlsafe(48),
                public_url=f"http://127.0.0.1:{port}",
                gateway_state_keys=[secrets.token_urlsafe(48)],
                registry_cache_ttl=0.2,
                log_level="WARNING",
            )
            migrate.upgrade(settings.effective_database_url)
            ctx = RegistryContext.create(settings)
            with ctx.db.transaction() as session:
                apply_seed(
                    session, load_seed(settings.seed_file), settings.review_requirements, definitions_resolver(ctx)
                )
            servers.append(LiveServer(create_app(settings, ctx), port).start())
            run = Run(
                servers[-1].url,
                mint_token(settings, user="eval-admin", groups=["bastion-admins"]),
                lambda user: mint_token(settings, user=user, groups=["analysts"]),
            )
            outcomes = []
            started = time.perf_counter()
            with bar() as progress:
                task = progress.add_task("chat scenarios", total=len(chosen))
                for i, scenario in enumerate(chosen):
                    outcomes.append(run.scenario(i, scenario, scripted))
                    progress.advance(task)
            elapsed = time.perf_counter() - started
        finally:
            for server in reversed(servers):
                server.stop()
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    steps = [s for o in outcomes for s in o["steps"]]
    tp, fp, fn = (sum(s[k] for s in steps) for k in ("tp", "fp", "fn"))
    decided = [s["approvals_honoured"] for s in steps if s["approvals_honoured"] is not None]
    return {
        "llm": "scripted" if scripted is not None else f"{llm.model} at {llm.base_url}",
        "label": "scripted LLM: measures the agent's plumbing (tools, approvals, audit), not a model"
        if scripted is not None
        else "real LLM",
        "scenarios": len(outcomes),
        "skipped": skipped,
        "task_success": sum(o["success"] for o in outcomes) / max(len(outcomes), 1),
        "tool_precision": tp / (tp + fp) if tp + fp else 1.0,
        "tool_recall": tp / (tp + fn) if tp + fn else 1.0,
        "approvals_honoured": sum(decided) / len(decided) if decided else None,
        "approvals_decided": len(decided),
        "seconds": round(elapsed, 1),
        "outcomes": outcomes,
        **provenance(
            [], {"scenarios": data_version([Path(scenarios_module.__file__ or "")])}, data_dir=str(data_dir), only=only
        ),
    }


def report(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"chat scenarios — {result['llm']}", caption=result["label"])
    for column in ("scenario", "success", "tools called", "approvals honoured"):
        table.add_column(column)
    for o in result["outcomes"]:
        called = "; ".join(", ".join(s["called"]) or "—" for s in o["steps"])
        honoured = [s["approvals_honoured"] for s in o["steps"] if s["approvals_honoured"] is not None]
        table.add_row(
            o["name"],
            "yes" if o["success"] else "[red]no[/]",
            called,
            "" if not honoured else ("yes" if all(honoured) else "[red]no[/]"),
        )
    out.print(table)
    honoured = result["approvals_honoured"]
    out.print(
        f"task success {result['task_success']:.0%} of {result['scenarios']} · tool precision "
        f"{result['tool_precision']:.2f} · recall {result['tool_recall']:.2f} · approvals honoured "
        + ("n/a" if honoured is None else f"{honoured:.0%} of {result['approvals_decided']}")
        + f" · {result['seconds']} s"
    )
    if result["skipped"]:
        out.print(f"[yellow]skipped (no index in the data dir; run `bastion index`): {', '.join(result['skipped'])}[/]")
