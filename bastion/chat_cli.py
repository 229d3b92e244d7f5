"""`bastion chat`: the terminal REPL of the chat agent, a client of a running server's /v1/chat API.

The answer streams as it comes; each tool call prints one line with its latency and outcome; proposed calls
are approved or rejected at a prompt (all at once, or one by one); a call parked for another approver shows its
approval id and is checked again on request. Without an LLM the REPL says so once and `/call` still works.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

HELP = """Commands:
  /tools                      the tools this session may use
  /scope                      this session's scope
  /history                    the conversation so far
  /new [server,server…]       a new session (optionally limited to some servers)
  /call server__tool {json}   call a tool directly (works without an LLM)
  /check                      check again on calls waiting for another approver
  /help, /quit"""


# Terminal control sequences (C0 but newline and tab, DEL, C1): a tool result or the model could otherwise clear
# the screen, move the cursor, or write hyperlinks and the clipboard (OSC 8/52).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: object) -> str:
    """Server-supplied text as the terminal shows it: no control sequences, no rich markup."""
    return escape(_CONTROLS.sub("\ufffd", str(text)))


class ChatError(Exception):
    pass


class Repl:
    def __init__(self, url: str, token: str, console: Console, ask: Callable[[str], str]) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30, read=600)
        )
        self.console = console
        self.ask = ask
        self.session: dict[str, Any] = {}
        self.llm: bool | None = None
        self.waiting: list[dict[str, Any]] = []

    # -- API -------------------------------------------------------------------------------------

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
                message = body.get("message") or body.get("error_description") or body.get("error") or response.text
            except ValueError:
                message = response.text
            raise ChatError(f"{response.status_code}: {str(message)[:300]}")
        return response.json() if response.content else None

    def new(self, scope: list[str] | None) -> None:
        self.session = self._check(self.http.post("/v1/chat/sessions", json={"scope": scope}))
        self.waiting = []
        detail = self._check(self.http.get(f"/v1/chat/sessions/{self.session['id']}"))
        self.llm = bool(detail["llm"])
        where = f" (scope: {', '.join(self.session['scope'])})" if self.session.get("scope") else ""
        self.console.print(f"[dim]session {self.session['id']}{safe(where)}[/]")
        if not self.llm:
            self.console.print(
                "[yellow]No LLM configured (BASTION_LLM_BASE_URL, BASTION_LLM_MODEL): direct tool mode "
                "— /call server__tool {json}.[/]"
            )

    def resume(self, session_id: str) -> None:
        detail = self._check(self.http.get(f"/v1/chat/sessions/{session_id}"))
        self.session, self.llm = detail, bool(detail["llm"])
        self.waiting = [c for c in detail["toolCalls"] if c["status"] in ("awaiting_user", "awaiting_approval")]
        self.console.print(f"[dim]session {session_id}: {len(detail['messages'])} message(s)[/]")

    def _events(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with self.http.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                response.read()
                self._check(response)
            kind = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    yield json.loads(line[6:])

    def turn(self, path: str, body: dict[str, Any]) -> None:
        sid = self.session["id"]
        streaming = False
        proposals: list[dict[str, Any]] = []
        for event in self._events(f"/v1/chat/sessions/{sid}/{path}", body):
            kind = event["type"]
            if kind == "text":
                self.console.print(safe(event["delta"]), end="", soft_wrap=True, highlight=False)
                streaming = True
                continue
            if streaming:
                self.console.print()
                streaming = False
            if kind == "tool_call":
                args = json.dumps(event["arguments"], separators=(",", ":"))
                args = args if len(args) <= 100 else args[:100] + "…"
                self.console.print(f"[cyan]→ {safe(event['tool'])}[/] [dim]{safe(args)}[/]")
            elif kind == "tool_result":
                self.console.print(self._result_line(event))
            elif kind == "approval_required":
                proposals = event["proposals"]
            elif kind == "notice":
                self.console.print(f"[yellow]{safe(event['message'])}[/]")
            elif kind == "done":
                tail = f"{event['tool_calls']} tool call(s), {event['tokens']:,} tokens"
                if event.get("sources"):
                    tail += "; sources: " + ", ".join(src["tool"] for src in event["sources"])
                self.console.print(f"[dim]({safe(tail)})[/]")
        if streaming:
            self.console.print()
        self.waiting = proposals
        if proposals:
            self.decide(proposals)

    def _result_line(self, event: dict[str, Any]) -> str:
        status = event["status"]
        color = {"ok": "green", "awaiting_user": "yellow", "awaiting_approval": "yellow"}.get(status, "red")
        shown = {"awaiting_user": "needs your approval", "awaiting_approval": "waits for an approver"}.get(
            status, status
        )
        line = f"  [{color}]{safe(shown)}[/] {safe(event['tool'])} [dim]{event.get('latency_ms') or 0:.0f} ms[/]"
        if event.get("rule"):
            line += f" [red](rule {safe(str(event['rule']))})[/]"
        if status not in ("ok", "awaiting_user", "awaiting_approval") and event.get("detail"):
            line += f"\n    {safe(str(event['detail'])[:300])}"
        return line

    # -- human in the loop --------------------------------------------------------------------------

    def decide(self, proposals: list[dict[str, Any]]) -> None:
        confirm = [p for p in proposals if p["kind"] == "confirm"]
        parked = [p for p in proposals if p["kind"] == "parked"]
        for p in parked:
            self.console.print(
                f"[yellow]⏸ {safe(p['tool'])} waits for another approver: approval "
                f"{safe(str(p['approval_id']))}. /check once it is decided.[/]"
            )
        if not confirm:
            return
        for i, p in enumerate(confirm, 1):
            self.console.print(f"[bold]Proposed call {i}/{len(confirm)}:[/] {safe(p['prompt'] or p['tool'])}")
        choice = (
            self.ask(
                f"Run {'these calls' if len(confirm) > 1 else 'this call'}? [y]es / [n]o"
                + (" / [s]elect one by one" if len(confirm) > 1 else "")
                + ": "
            )
            .strip()
            .lower()
        )
        decisions: dict[str, str] = {}
        if choice in ("y", "yes"):
            decisions = {p["id"]: "approve" for p in confirm}
        elif choice in ("s", "select") and len(confirm) > 1:
            for p in confirm:
                one = self.ask(f"Run {p['tool']} {json.dumps(p['arguments'])[:120]}? [y/n]: ").strip().lower()
                decisions[p["id"]] = "approve" if one in ("y", "yes") else "reject"
        else:
            decisions = {p["id"]: "reject" for p in confirm}
        self.turn("decisions", {"decisions": decisions})

    # -- the loop -----------------------------------------------------------------------------------

    def command(self, line: str) -> bool:
        """Handle one input line; False to quit."""
        if not line.strip():
            return True
        if not line.startswith("/"):
            self.turn("messages", {"content": line})
            return True
        name, _, rest = line.partition(" ")
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.console.print(safe(HELP))
        elif name == "/new":
            self.new([s.strip() for s in rest.split(",") if s.strip()] or None)
        elif name == "/scope":
            scope = self.session.get("scope")
            self.console.print("scope: " + (safe(", ".join(scope)) if scope else "every tool you may use"))
        elif name == "/tools":
            tools = self._check(self.http.get(f"/v1/chat/sessions/{self.session['id']}/tools"))
            for t in tools:
                flag = "" if t["readOnly"] else " [yellow](changes things)[/]"
                self.console.print(f"  [cyan]{safe(t['name'])}[/]{flag} [dim]{safe(t['description'][:100])}[/]")
            self.console.print(f"[dim]{len(tools)} tool(s)[/]")
        elif name == "/history":
            detail = self._check(self.http.get(f"/v1/chat/sessions/{self.session['id']}"))
            for m in detail["messages"]:
                body = m["body"]
                if body["role"] == "tool":
                    self.console.print(f"  [dim]tool {safe(body.get('name', ''))}: {safe(body.get('status', ''))}[/]")
                elif body.get("content"):
                    self.console.print(f"[bold]{safe(body['role'])}:[/] {safe(str(body['content']))}")
        elif name == "/call":
            tool, _, raw = rest.strip().partition(" ")
            try:
                arguments = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                raise ChatError(f"/call: the arguments are not JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(arguments, dict):
                raise ChatError("/call: the arguments must be a JSON object")
            self.turn("messages", {"call": {"tool": tool, "arguments": arguments}})
        elif name == "/check":
            if not self.waiting:
                self.console.print("nothing is waiting")
            else:
                self.turn("decisions", {"decisions": {}})
        else:
            raise ChatError(f"unknown command {name[:40]}; /help lists them")
        return True


def chat(
    url: Annotated[
        str | None,
        typer.Option(
            envvar="BASTION_PUBLIC_URL", help="The server (default: BASTION_PORT on 127.0.0.1)", show_default=False
        ),
    ] = None,
    token: Annotated[
        str, typer.Option(envvar="BASTION_TOKEN", help="Bearer token or API key", show_default=False)
    ] = "",
    session: Annotated[str | None, typer.Option(help="Resume this session id")] = None,
    scope: Annotated[str | None, typer.Option(help="Limit a new session to these servers (comma-separated)")] = None,
) -> None:
    """Talk to the chat agent; it uses tools through the gateway, as you."""
    from bastion.console import fail
    from registry.settings import RegistrySettings

    if not token:
        fail("set BASTION_TOKEN (or --token): a JWT from your identity provider, or a Bastion API key")
    if url is None:
        url = f"http://127.0.0.1:{RegistrySettings().port}"
    console = Console(highlight=False)
    interactive = sys.stdin.isatty()

    def ask(prompt: str) -> str:
        if interactive:
            return console.input(safe(prompt))
        console.print(safe(prompt), end="")
        line = sys.stdin.readline()
        console.print(line.rstrip("\n"))
        return line

    repl = Repl(url, token, console, ask)
    try:
        if session:
            repl.resume(session)
        else:
            repl.new([s.strip() for s in scope.split(",") if s.strip()] if scope else None)
    except (ChatError, httpx.HTTPError) as exc:
        fail(f"cannot start a chat session at {url}: {exc}")
    console.print("[dim]/help for commands[/]")
    while True:
        try:
            line = ask("you> ")
        except (EOFError, KeyboardInterrupt):
            break
        if not line:
            break  # end of input
        try:
            if not repl.command(line.rstrip("\n")):
                break
        except ChatError as exc:
            console.print(f"[red]error:[/] {safe(str(exc))}")
        except httpx.HTTPError as exc:
            console.print(f"[red]error:[/] the server did not answer: {safe(str(exc)[:200])}")
