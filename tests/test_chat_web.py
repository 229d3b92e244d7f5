"""The web page's chat panel, driven in a real headless Chromium against a live Bastion and a scripted LLM.

One browser for the module; one Bastion (with the `ops` builtin and an OpenAI-compatible scripted LLM) for
the module too. Each test opens a fresh browser context, signs in through the page's token field and talks
to the agent the way a person would: typing, clicking Approve / Reject, reading the streamed answer.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import require_chromium
from tests.gateway_fixtures import start_gateway
from tests.gateway_harness import Gateway, builtin_tools, ops_server, ops_state
from tests.llm_server import ScriptedLLM, scripted_llm

SCREENSHOT = Path("/tmp/chat-panel.png")

require_chromium()  # skips the module (fails under BASTION_TEST_REQUIRE_SERVICES=1) without the browser

expect.set_options(timeout=15_000)


@dataclass
class Stack:
    gw: Gateway
    llm: ScriptedLLM
    token: str


def publish_ops(gw: Gateway) -> None:
    # In a thread of its own: Playwright's sync API keeps an event loop on this one.
    with ThreadPoolExecutor(1) as pool:
        tools = pool.submit(anyio.run, builtin_tools, ops_server()).result()
    gw.team("ads-eng", ["ads-eng"])
    gw.publish("dev.test/ops", "ops", "ads-eng", tools)


def tool_calls(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """An assistant message (OpenAI shape) asking for these tool calls."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls, 1)
        ],
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("chat-web")
    db = tmp / "gateway.db"
    shutil.copy(sqlite_template, db)
    with scripted_llm() as (llm, base), pytest.MonkeyPatch.context() as env:
        env.setenv("BASTION_LLM_BASE_URL", base)
        env.setenv("BASTION_LLM_MODEL", "scripted")
        gw, ctx = start_gateway(tmp, f"sqlite:///{db}")
        try:
            publish_ops(gw)
            yield Stack(gw, llm, gw.token("ann", ["ads-eng"]))
        finally:
            gw.live.stop()
            ctx.db.dispose()


def open_page(browser: Browser, url: str, token: str, width: int = 1280, height: int = 900) -> tuple[Page, list[str]]:
    """The registry page, signed in through its token field; also the page's uncaught errors."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/ui/#/chat")
    page.get_by_label("token", exact=True).fill(token)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#who")).to_contain_text("ann")
    return page, errors


@pytest.fixture
def page(stack: Stack, browser: Browser) -> Iterator[Page]:
    stack.llm.replies.clear()
    ops_state.paused.clear()
    page, errors = open_page(browser, stack.gw.url, stack.token)
    yield page
    page.context.close()
    assert errors == [], errors


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()


def paused_ok(gw: Gateway, campaign: str) -> list[dict[str, Any]]:
    rows = gw.audit(tool="pause_campaign", outcome="ok")
    return [r for r in rows if r["arguments"] == {"campaign_id": campaign}]


def test_message_streams_tool_call_and_answer(page: Page, stack: Stack) -> None:
    stack.llm.script(tool_calls(("ops__read_metric", {"name": "ctr"})), "The CTR is 42 (from ops__read_metric).")
    expect(page.locator("#chat-no-llm")).to_be_hidden()
    send(page, "what is ctr?")

    log = page.get_by_role("log", name="Conversation")
    expect(log.locator(".chat-user")).to_have_text(re.compile("what is ctr\\?"))
    line = log.locator(".chat-tool").filter(has_text="ops__read_metric")
    expect(line).to_have_count(1)
    expect(line.locator(".chat-status")).to_have_text("ok")
    expect(line).to_contain_text(re.compile(r"\d+\.\d ms"))
    expect(line).to_contain_text("ctr=42")
    expect(log.locator(".chat-assistant .chat-body")).to_have_text("The CTR is 42 (from ops__read_metric).")
    expect(page.locator("#chat-state")).to_contain_text("Done")
    assert stack.llm.requests[-1]["messages"][-1]["role"] == "tool"  # the model saw the tool's result

    # A direct call (/call): no model step, the tool runs as the user.
    asked = len(stack.llm.requests)
    send(page, '/call ops__read_metric {"name": "cpc"}')
    direct = log.locator(".chat-tool").filter(has_text="cpc=42")
    expect(direct.locator(".chat-status")).to_have_text("ok")
    expect(page.locator("#chat-state")).to_contain_text("Done")
    assert len(stack.llm.requests) == asked

    # Reloaded, the session is in the list; reopening it renders its history.
    page.reload()
    page.get_by_role("button", name=re.compile("^what is ctr\\?")).click()
    expect(log.locator(".chat-user")).to_have_count(2)
    expect(log.locator(".chat-tool")).to_have_count(2)
    expect(log.locator(".chat-tool .chat-status")).to_have_text(["ok", "ok"])
    expect(log.locator(".chat-assistant .chat-body")).to_have_text(["The CTR is 42 (from ops__read_metric)."])
    expect(page.locator("#chat-current")).to_contain_text("what is ctr?")


def test_approve_runs_the_call_exactly_once(page: Page, stack: Stack) -> None:
    stack.llm.script(tool_calls(("ops__pause_campaign", {"campaign_id": "c-1"})), "Campaign c-1 is paused.")
    send(page, "pause c-1")

    card = page.locator(".chat-card")
    expect(card).to_have_count(1)
    expect(card.get_by_role("heading")).to_have_text("Run ops__pause_campaign?")
    expect(card.locator(".chat-json")).to_have_text(json.dumps({"campaign_id": "c-1"}, indent=2))
    expect(card.locator(".chat-prompt")).to_contain_text("Approve ops__pause_campaign")
    expect(page.get_by_role("button", name=re.compile("^Approve all"))).to_have_count(0)
    expect(page.locator(".chat-tool .chat-status")).to_have_text("needs your decision")
    expect(page.locator("#chat-state")).to_contain_text("Waiting for a decision")
    assert ops_state.paused == []

    card.get_by_role("button", name="Approve ops__pause_campaign").click()
    expect(page.locator(".chat-assistant .chat-body").last).to_have_text("Campaign c-1 is paused.")
    expect(card).to_contain_text("Approved.")
    expect(card.get_by_role("button")).to_have_count(0)
    expect(page.locator(".chat-tool .chat-status")).to_have_text("ok")
    expect(page.locator("#chat-state")).to_contain_text("Done")

    assert ops_state.paused == ["c-1"]
    rows = paused_ok(stack.gw, "c-1")
    assert len(rows) == 1, rows
    assert rows[0]["clientId"] == "bastion-chat"
    assert rows[0]["subject"] == "ann"


def test_reject_does_not_run_the_call(page: Page, stack: Stack) -> None:
    stack.llm.script(tool_calls(("ops__pause_campaign", {"campaign_id": "c-2"})), "Understood: c-2 stays active.")
    send(page, "pause c-2")

    card = page.locator(".chat-card")
    card.get_by_role("button", name="Reject ops__pause_campaign").click()
    expect(page.locator(".chat-assistant .chat-body").last).to_have_text("Understood: c-2 stays active.")
    expect(card).to_contain_text("Rejected.")
    expect(page.locator(".chat-tool .chat-status")).to_have_text("rejected")

    assert ops_state.paused == []
    assert paused_ok(stack.gw, "c-2") == []
    told = stack.llm.requests[-1]["messages"][-1]
    assert told["role"] == "tool" and "rejected" in told["content"]


def test_approve_all(page: Page, stack: Stack) -> None:
    stack.llm.script(
        tool_calls(("ops__pause_campaign", {"campaign_id": "c-3"}), ("ops__pause_campaign", {"campaign_id": "c-4"})),
        "Both are paused.",
    )
    send(page, "pause c-3 and c-4")

    expect(page.locator(".chat-card")).to_have_count(2)
    page.get_by_role("button", name="Approve all (2)").click()
    expect(page.locator(".chat-assistant .chat-body").last).to_have_text("Both are paused.")
    expect(page.locator(".chat-card .chat-card-note")).to_have_text(["Approved.", "Approved."])
    assert sorted(ops_state.paused) == ["c-3", "c-4"]


def test_narrow_viewport_and_keyboard(browser: Browser, stack: Stack) -> None:
    stack.llm.replies.clear()
    ops_state.paused.clear()
    page, errors = open_page(browser, stack.gw.url, stack.token, width=420, height=820)
    try:
        page.get_by_label("Scope").fill("ops")
        page.get_by_role("button", name="New session").click()
        expect(page.locator("#chat-current")).to_contain_text("scope: ops")

        stack.llm.script(
            tool_calls(("ops__read_metric", {"name": "ctr"})),
            "CTR is 42.",
            tool_calls(("ops__pause_campaign", {"campaign_id": "c-9"})),
            "Paused c-9.",
        )
        message = page.get_by_label("Message")
        message.fill("what is ctr?")
        message.press("Enter")  # Enter sends
        expect(page.locator(".chat-assistant .chat-body").last).to_have_text("CTR is 42.")
        message.fill("pause c-9")
        message.press("Enter")
        approve = page.get_by_role("button", name="Approve ops__pause_campaign")
        expect(approve).to_be_enabled()

        send_button = page.get_by_role("button", name="Send")
        send_button.scroll_into_view_if_needed()
        expect(send_button).to_be_visible()
        expect(send_button).to_be_in_viewport(ratio=1)
        box = send_button.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= 420, box
        assert page.evaluate("document.documentElement.scrollWidth") <= 420  # no sideways scrolling
        approve.scroll_into_view_if_needed()
        expect(approve).to_be_in_viewport(ratio=1)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        approve.focus()
        page.keyboard.press("Enter")  # a real button: the keyboard decides too
        expect(page.locator(".chat-assistant .chat-body").last).to_have_text("Paused c-9.")
        assert ops_state.paused == ["c-9"]
        expect(page.locator("#chat-input")).to_be_focused()  # focus returns to the message box
    finally:
        page.context.close()
    assert errors == [], errors


def test_without_llm_direct_calls_and_parked_approvals(
    browser: Browser, tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BASTION_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("BASTION_LLM_MODEL", raising=False)
    ops_state.paused.clear()
    gw, ctx = start_gateway(tmp_path, sqlite_url)
    try:
        publish_ops(gw)
        page, errors = open_page(browser, gw.url, gw.token("ann", ["ads-eng"]))
        send(page, "hello?")
        expect(page.locator("#chat-no-llm")).to_be_visible()
        expect(page.locator("#chat-no-llm")).to_contain_text("No LLM is configured")
        expect(page.locator(".chat-notice-line")).to_contain_text("no_llm")
        send(page, '/call ops__read_metric {"name": "ctr"}')
        expect(page.locator(".chat-tool").filter(has_text="ctr=42").locator(".chat-status")).to_have_text("ok")
        send(page, "/call ops__read_metric {not json")
        expect(page.locator("#chat-state")).to_contain_text("not valid JSON")
        expect(page.get_by_label("Message")).to_have_attribute("aria-invalid", "true")

        # Parked for another approver: the card shows the approval id; "Check again" resumes once decided.
        gw.policy("dev.test/ops", {"secondApprover": True}, tool="pause_campaign")
        send(page, '/call ops__pause_campaign {"campaign_id": "p-1"}')
        card = page.locator(".chat-card.parked")
        expect(card.get_by_role("heading")).to_have_text("Waiting for an approver: ops__pause_campaign")
        approval_id = card.locator(".chat-approval-id").inner_text()
        pending = gw.ok(gw.admin.get("/admin/v1/approvals", params={"status": "pending"}))["items"]
        assert [a["id"] for a in pending] == [approval_id]
        check = card.get_by_role("button", name="Check again whether ops__pause_campaign was approved")
        check.click()
        expect(card.locator(".chat-card-note")).to_contain_text("Still waiting for an approver")
        assert ops_state.paused == []
        gw.ok(gw.admin.post("/admin/v1/approvals/decide", json={"ids": [approval_id], "decision": "approve"}))
        check.click()
        expect(card.locator(".chat-card-note")).to_have_text("Approved.")
        expect(page.locator(".chat-tool").filter(has_text="paused p-1").locator(".chat-status")).to_have_text("ok")
        assert ops_state.paused == ["p-1"]
        page.context.close()
        assert errors == [], errors
    finally:
        gw.live.stop()
        ctx.db.dispose()


def test_api_docs_render_with_no_network_but_this_server(browser: Browser, stack: Stack) -> None:
    """/docs and /redoc render in a browser that may reach nothing but the server (air-gapped)."""
    context = browser.new_context()
    elsewhere: list[str] = []

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if url.startswith(stack.gw.url):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    try:
        page.goto(f"{stack.gw.url}/docs")
        page.wait_for_selector(".opblock-summary", timeout=30_000)  # Swagger UI drew the operations
        assert page.locator(".opblock-summary").count() > 50
        page.goto(f"{stack.gw.url}/redoc")
        page.wait_for_selector("h1", timeout=30_000)
        assert "Bastion" in page.locator("h1").first.inner_text()
    finally:
        context.close()
    assert elsewhere == []
