"""The console (`/ui/`) end to end in a real headless Chromium against a live Bastion.

One Bastion for the module (the `ops` builtin published for team ads-eng), the run's one browser. Each test
signs in through the token field as a person with one role and works the page by its labels and roles, the
way a person (or a screen reader) would. With BASTION_UI_SCREENSHOTS=DIR (`make screenshots`) the tests also
save a screenshot of each page there.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import require_chromium
from tests.gateway_fixtures import start_gateway
from tests.gateway_harness import Gateway, builtin_tools, ops_server, ops_state
from tests.helpers import tool

require_chromium()
expect.set_options(timeout=15_000)

OPS = "dev.test/ops"
SHOTS = Path(os.environ["BASTION_UI_SCREENSHOTS"]) if os.environ.get("BASTION_UI_SCREENSHOTS") else None
REVIEWERS = ["bastion-reviewers"]


@dataclass
class Stack:
    gw: Gateway

    def token(self, user: str, groups: list[str] | None = None) -> str:
        return self.gw.token(user, groups or [], clearance="restricted")


def _in_thread(fn: Any, *args: Any) -> Any:
    # Playwright's sync API keeps an event loop on the test's thread; anyio gets one of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn, *args).result()


def call_tool(gw: Gateway, token: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with gw.client(token) as client:
            result = await client.call_tool(name, arguments)
            return dict(result.structured_content or {}) | {"isError": result.is_error}

    out: dict[str, Any] = _in_thread(go)
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("console-web")
    db = tmp / "gateway.db"
    shutil.copy(sqlite_template, db)
    gw, ctx = start_gateway(tmp, f"sqlite:///{db}")
    try:
        gw.team("ads-eng", ["ads-eng"])
        gw.team("data-eng", ["data-eng"])
        gw.publish(OPS, "ops", "ads-eng", _in_thread(builtin_tools, ops_server()))
        gw.ok(gw.admin.put(f"/admin/v1/servers/{OPS}/tools/read_metric/settings", json={"minutesSaved": 4}))
        gw.policy(OPS, {"secondApprover": True}, tool="pause_campaign")
        yield Stack(gw)
    finally:
        gw.live.stop()
        ctx.db.dispose()


def open_console(browser: Browser, stack: Stack, token: str, route: str = "servers", width: int = 1280) -> Page:
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A script, style or request the Content-Security-Policy blocks is a bug of the page.
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.errors = errors  # type: ignore[attr-defined]
    page.goto(f"{stack.gw.url}/ui/#/{route}")
    page.get_by_label("token", exact=True).fill(token)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#who")).not_to_be_empty()
    expect(page.locator("#view")).not_to_have_attribute("aria-busy", "true")
    return page


def close(page: Page) -> None:
    errors = page.errors  # type: ignore[attr-defined]
    page.context.close()
    assert errors == [], errors


def shot(page: Page, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def nav(page: Page) -> list[str]:
    return [n.strip() for n in page.get_by_role("navigation", name="Console").get_by_role("link").all_inner_texts()]


def test_a_plain_user_sees_discovery_and_no_admin_pages(browser: Browser, stack: Stack) -> None:
    page = open_console(browser, stack, stack.token("uma", ["analysts"]))
    try:
        expect(page.get_by_role("heading", name="Servers", level=2)).to_be_visible()
        row = page.get_by_role("row").filter(has_text=OPS)
        expect(row).to_contain_text("ads-eng")
        assert nav(page) == ["Servers", "Register", "Approvals", "Chat", "API docs"]
        # The page hides admin pages; the API is what refuses them.
        page.goto(f"{stack.gw.url}/ui/#/keys")
        expect(page.get_by_role("status").first).to_contain_text("only admins")
        page.goto(f"{stack.gw.url}/ui/#/audit")
        expect(page.get_by_role("status").first).to_contain_text("only admins, reviewers or server owners")
        # The server page from discovery: the tools, no admin details.
        page.goto(f"{stack.gw.url}/ui/#/servers/{OPS.replace('/', '%2F')}")
        expect(page.get_by_role("heading", name="Tools")).to_be_visible()
        expect(page.get_by_text("ops__pause_campaign")).to_be_visible()
        expect(page.get_by_role("heading", name="Change log")).to_have_count(0)
    finally:
        close(page)


def test_servers_filter_and_server_page(browser: Browser, stack: Stack) -> None:
    gw = stack.gw
    gw.ok(gw.admin.post("/admin/v1/servers", json={"name": "dev.test/draft", "team": "data-eng",
                                                    "description": "A draft", "transport": "builtin",
                                                    "classification": "confidential"}), 201)  # fmt: skip
    gw.ok(
        gw.admin.post("/admin/v1/servers/dev.test/draft/versions", json={"version": "0.1.0", "tools": [tool("q")]}), 201
    )
    page = open_console(browser, stack, stack.token("root", ["bastion-admins"]))
    try:
        table = page.get_by_role("table", name="Servers")
        expect(table.get_by_role("row")).to_have_count(3)  # header + ops + the draft
        page.get_by_label("Status").select_option("draft")
        expect(table.get_by_role("row")).to_have_count(2)
        expect(table).to_contain_text("dev.test/draft")
        page.get_by_label("Status").select_option("")
        page.get_by_label("Classification").select_option("confidential")
        expect(table.get_by_role("row")).to_have_count(2)
        page.get_by_label("Classification").select_option("")
        page.get_by_label("Search").fill("pause_campaign")
        expect(table.get_by_role("row")).to_have_count(2)
        expect(table).to_contain_text(OPS)
        shot(page, "servers")
        table.get_by_role("link", name=re.compile("ops")).click()
        expect(page.get_by_role("heading", name="Versions")).to_be_visible()
        expect(page.get_by_text("Definition hash").first).to_be_attached()
        policies = page.get_by_role("heading", name="Policies")
        expect(policies).to_be_visible()
        expect(page.locator("table").filter(has_text="someone else approves")).to_be_visible()
        expect(page.get_by_role("heading", name="Health history")).to_be_visible()
        expect(page.locator("table").filter(has_text="server.create")).to_be_visible()
        shot(page, "server")
        # A draft is submitted from its server page.
        page.goto(f"{stack.gw.url}/ui/#/servers/dev.test%2Fdraft")
        page.get_by_role("button", name="Submit").click()
        page.get_by_role("dialog").get_by_role("button", name="Submit").click()
        expect(page.get_by_role("status").first).to_contain_text("0.1.0: submitted for review")
        expect(page.get_by_role("link", name="Review this version")).to_be_visible()
    finally:
        close(page)


def test_register_submit_and_review_to_approved_with_separation_of_duties(browser: Browser, stack: Stack) -> None:
    name = "com.example/insights"
    doc = json.loads(Path("examples/server.json").read_text())
    doc["name"] = name
    doc["_meta"]["dev.bastion/registry"]["classification"] = "confidential"  # security and privacy reviews
    owner = open_console(browser, stack, stack.token("olga", ["ads-eng"]), "register")
    try:
        expect(owner.get_by_role("heading", name="Register a server")).to_be_visible()
        owner.get_by_role("textbox", name="server.json").fill(json.dumps(doc))
        owner.get_by_role("button", name="Import").click()
        expect(owner.get_by_role("status").first).to_contain_text("imported: in review")
        expect(owner.get_by_role("heading", name="Campaign insights")).to_be_visible()
        shot(owner, "register-done")
    finally:
        close(owner)

    # A reviewer of the owning team is told why they cannot review, and has no form.
    insider = open_console(browser, stack, stack.token("ian", [*REVIEWERS, "ads-eng"]), "reviews")
    try:
        row = insider.get_by_role("row").filter(has_text=name)
        expect(row).to_contain_text("separation of duties")
        insider.get_by_role("link", name=f"{name} 1.0.0").click()
        expect(insider.get_by_role("note")).to_contain_text("You cannot review this version")
        expect(insider.get_by_role("button", name="Record review")).to_have_count(0)
    finally:
        close(insider)

    for reviewer, kind in (("rita", "security"), ("sam", "privacy")):
        page = open_console(browser, stack, stack.token(reviewer, REVIEWERS), "reviews")
        try:
            page.get_by_role("row").filter(has_text=name).get_by_role("link", name="Review").click()
            expect(page.get_by_role("heading", name=re.compile("first version"))).to_be_visible()
            expect(page.get_by_text("Poisoning lint: clean").first).to_be_visible()
            if reviewer == "rita":
                shot(page, "review")
                # Rejecting needs a reason: the form says so instead of sending an empty note.
                page.get_by_label("reject").check()
                page.get_by_role("button", name="Record review").click()
                expect(page.get_by_label("Notes")).to_have_attribute("aria-invalid", "true")
                page.get_by_label("approve").check()
            page.get_by_label("Review kind").select_option(kind)
            page.get_by_label("Notes").fill(f"{kind} checked")
            page.get_by_role("button", name="Record review").click()
            expect(page.get_by_role("status").first).to_contain_text(f"{kind} review recorded")
            final = "approved" if reviewer == "sam" else "in review"
            expect(page.get_by_role("status").first).to_contain_text(f"the version is now {final}")
        finally:
            close(page)
    assert stack.gw.ok(stack.gw.admin.get(f"/admin/v1/servers/{name}/versions/1.0.0"))["status"] == "approved"


def test_an_owner_deprecates_and_reinstates_a_version(browser: Browser, stack: Stack) -> None:
    gw = stack.gw
    gw.publish("dev.test/old", "old", "ads-eng", [tool("lookup")])
    page = open_console(browser, stack, stack.token("olga", ["ads-eng"]), "servers/dev.test%2Fold")
    try:
        page.get_by_role("button", name="Deprecate").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("calls to its tools are refused")
        dialog.get_by_label("Note (optional)").fill("replaced by dev.test/ops")
        dialog.get_by_role("button", name="Deprecate").click()
        expect(page.get_by_role("status").first).to_contain_text("1.0.0: deprecated")
        assert gw.ok(gw.admin.get("/admin/v1/servers/dev.test/old/versions/1.0.0"))["status"] == "deprecated"
        # Cancel leaves it as it is.
        page.get_by_role("button", name="Reinstate").click()
        page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
        expect(page.get_by_role("dialog")).to_have_count(0)
        assert gw.ok(gw.admin.get("/admin/v1/servers/dev.test/old/versions/1.0.0"))["status"] == "deprecated"
        page.get_by_role("button", name="Reinstate").click()
        page.get_by_role("dialog").get_by_role("button", name="Reinstate").click()
        expect(page.get_by_role("status").first).to_contain_text("1.0.0: reinstated")
        expect(page.get_by_role("table").filter(has_text="replaced by dev.test/ops")).to_be_visible()
    finally:
        close(page)
    # Someone outside the owning team gets no buttons, and the API refuses them anyway.
    outsider = open_console(browser, stack, stack.token("dora", ["data-eng"]), "servers/dev.test%2Fold")
    try:
        expect(outsider.get_by_role("heading", name="Tools")).to_be_visible()
        expect(outsider.get_by_role("button", name="Deprecate")).to_have_count(0)
    finally:
        close(outsider)
    refused = gw.admin.post(
        "/admin/v1/servers/dev.test/old/versions/1.0.0/status",
        json={"status": "deprecated"},
        headers=gw.auth("dora", ["data-eng"]),
    )
    assert refused.status_code in (403, 404), refused.text


def test_a_new_version_is_reviewed_as_a_diff(browser: Browser, stack: Stack) -> None:
    gw = stack.gw
    tools = list(gw.ok(gw.admin.get(f"/admin/v1/servers/{OPS}/versions/1.0.0"))["tools"])
    changed = [{k: v for k, v in t.items() if k != "contentHash"} for t in tools]
    changed[0]["description"] = "Read one metric (now with a 7-day window)."
    changed.append(tool("export_report"))
    owner = open_console(browser, stack, stack.token("olga", ["ads-eng"]), f"register?server={OPS}")
    try:
        expect(owner.get_by_role("heading", name=f"New version of {OPS}")).to_be_visible()
        owner.get_by_label("Version", exact=True).fill("1.1.0")
        owner.get_by_label("Tools (JSON array)").fill(json.dumps(changed))
        owner.get_by_role("button", name="Create version").click()
        expect(owner.get_by_role("status").first).to_contain_text("1.1.0 created: in review")
    finally:
        close(owner)
    page = open_console(browser, stack, stack.token("rita", REVIEWERS), f"reviews/{OPS.replace('/', '%2F')}/1.1.0")
    try:
        expect(page.get_by_role("heading", name=re.compile("against 1.0.0"))).to_be_visible()
        changed_tool = page.get_by_role("region", name=re.compile(r"ops__\w+ \(changed\)"))
        expect(changed_tool.locator(".del")).to_contain_text(tools[0]["description"])
        expect(changed_tool.locator(".add")).to_contain_text("now with a 7-day window")
        expect(page.get_by_role("region", name="ops__export_report (added)")).to_be_visible()
        expect(page.get_by_role("region", name=re.compile(r"\(unchanged\)"))).to_have_count(1)
        shot(page, "review-diff")
    finally:
        close(page)


def test_a_parked_call_decided_in_a_batch_and_seen_in_history(browser: Browser, stack: Stack) -> None:
    ops_state.paused.clear()
    ann = stack.token("ann", ["ads-eng"])
    parked = [call_tool(stack.gw, ann, "ops__pause_campaign", {"campaign_id": c}) for c in ("c-1", "c-2")]
    assert all("approvalId" in p for p in parked), parked
    # ann's own request: the page shows it, but she may not approve it (a second approver is required).
    own = open_console(browser, stack, ann, "approvals")
    try:
        expect(own.get_by_role("table", name="Pending approvals")).to_contain_text("your own request")
        own.get_by_role("button", name=re.compile(r"^Approve dev\.test.ops . pause_campaign")).first.click()
        own.get_by_role("dialog").get_by_role("button", name="Approve").click()
        expect(own.get_by_role("status").first).to_contain_text("someone other than the requester")
    finally:
        close(own)
    page = open_console(browser, stack, stack.token("olga", ["ads-eng"]), "approvals")
    try:
        pending = page.get_by_role("table", name="Pending approvals")
        expect(pending.get_by_role("row")).to_have_count(3)
        expect(pending).to_contain_text('"campaign_id": "c-1"')
        for box in pending.get_by_role("checkbox").all():
            box.check()
        page.get_by_role("button", name="Approve selected (2)").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Approve 2 calls?")
        dialog.get_by_label("Note (optional)").fill("pausing both for the audit")
        shot(page, "approvals-confirm")
        dialog.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status").first).to_contain_text("2 calls approved")
        expect(page.get_by_text("No call is waiting for a decision.")).to_be_visible()
        history = page.get_by_role("table", name=re.compile("Decided approvals"))
        expect(history.get_by_role("row").filter(has_text="pausing both for the audit")).to_have_count(2)
        expect(history).to_contain_text("olga")
        expect(history).to_contain_text("not run yet")
        # The approved call runs once (the caller retries with the approval id); history shows its outcome.
        done = call_tool(
            stack.gw, ann, "ops__pause_campaign", {"campaign_id": "c-1", "_approval_id": parked[0]["approvalId"]}
        )
        assert not done["isError"], done
        page.reload()
        row = page.get_by_role("table", name=re.compile("Decided approvals")).get_by_role("row").filter(has_text="ok")
        expect(row).to_have_count(1)
        shot(page, "approvals")
    finally:
        close(page)


def test_a_key_is_shown_once_and_a_revoked_key_is_refused(browser: Browser, stack: Stack) -> None:
    page = open_console(browser, stack, stack.token("root", ["bastion-admins"]), "keys")
    try:
        page.get_by_label("Name", exact=True).fill("ci-bot")
        page.get_by_label("Groups", exact=True).fill("ads-eng")
        page.get_by_role("button", name="Create key").click()
        expect(page.get_by_role("alert")).to_contain_text("shown once")
        secret = page.get_by_label("The new key's secret").input_value()
        me = httpx.get(f"{stack.gw.url}/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200 and me.json()["subject"] == "key:ci-bot", me.text
        keys = page.get_by_role("table", name="API keys")
        expect(keys).to_contain_text("ci-bot")
        assert secret not in keys.inner_text()
        shot(page, "keys")
        page.get_by_role("button", name="Revoke key ci-bot").click()
        page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
        expect(page.get_by_role("status").first).to_contain_text("Key ci-bot revoked")
        expect(keys.get_by_role("row").filter(has_text="ci-bot")).to_contain_text("revoked")
        refused = httpx.get(f"{stack.gw.url}/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert refused.status_code == 401, refused.text
    finally:
        close(page)


def test_teams_and_client_rules(browser: Browser, stack: Stack) -> None:
    page = open_console(browser, stack, stack.token("root", ["bastion-admins"]), "teams")
    try:
        form = page.get_by_role("form", name="Create a team")
        form.get_by_label("Name", exact=True).fill("growth")
        form.get_by_label("Support channel").fill("#growth")
        form.get_by_label("Members").fill("gus, gia")
        form.get_by_role("button", name="Create team").click()
        expect(page.get_by_role("status").first).to_contain_text("Team growth created")
        expect(page.get_by_role("table", name="Teams").get_by_role("row").filter(has_text="growth")).to_contain_text(
            "gia, gus"
        )
        # A team that owns servers cannot go: the API says why, the page shows it.
        page.get_by_role("button", name="Delete team ads-eng").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.get_by_role("status").first).to_contain_text("ads-eng")
        shot(page, "teams")
        page.goto(f"{stack.gw.url}/ui/#/clients")
        page.get_by_label("Client id").fill("cursor")
        page.get_by_label("Servers").fill(OPS)
        page.get_by_label("Environment").select_option("prod")
        page.get_by_role("button", name="Save rule").click()
        expect(page.get_by_role("status").first).to_contain_text("Rule for cursor saved")
        expect(page.get_by_role("table", name="Client rules")).to_contain_text(OPS)
        shot(page, "clients")
    finally:
        close(page)
    assert stack.gw.ok(stack.gw.admin.get("/admin/v1/clients"))[0]["clientId"] == "cursor"
    stack.gw.ok(stack.gw.admin.delete("/admin/v1/clients/cursor"), 204)


def test_audit_search_csv_and_time_saved_chart(browser: Browser, stack: Stack, tmp_path: Path) -> None:
    bob = stack.token("bob", ["ads-eng"])
    for metric in ("ctr", "cpc", "spend"):
        assert not call_tool(stack.gw, bob, "ops__read_metric", {"name": metric})["isError"]
    page = open_console(browser, stack, stack.token("olga", ["ads-eng"]), "audit")
    try:
        page.get_by_label("User", exact=True).fill("bob")
        page.get_by_label("Tool", exact=True).fill("read_metric")
        page.get_by_role("button", name="Search").click()
        events = page.get_by_role("table", name="Audit events")
        expect(events.get_by_role("row")).to_have_count(4)
        expect(events).not_to_contain_text("pause_campaign")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        path = tmp_path / "audit.csv"
        download.value.save_as(path)
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        assert [(r["subject"], r["tool"], r["outcome"]) for r in rows] == [("bob", "read_metric", "ok")] * 3
        chart = page.get_by_role("img", name=re.compile("Minutes saved per week"))
        expect(chart).to_be_visible()
        expect(page.locator(".legend")).to_contain_text(OPS)
        page.get_by_text("The figures").click()
        expect(page.get_by_role("table", name=re.compile("Minutes saved per week"))).to_contain_text("12")
        shot(page, "audit")
    finally:
        close(page)


def test_420px_wide_every_page_fits_and_every_control_is_labelled(browser: Browser, stack: Stack) -> None:
    page = open_console(browser, stack, stack.token("root", ["bastion-admins"]), width=420)
    try:
        for route in ("servers", "reviews", "register", "approvals", "audit", "chat", "keys", "teams", "clients",
                      f"servers/{OPS.replace('/', '%2F')}"):  # fmt: skip
            page.goto(f"{stack.gw.url}/ui/#/{route}")
            expect(page.locator("#view")).not_to_have_attribute("aria-busy", "true")
            expect(page.locator(".page-title:visible")).to_have_count(1)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 420, f"{route}: the page is {width}px wide at 420px"
            unlabelled = page.evaluate(
                """() => [...document.querySelectorAll('input, select, textarea, button')]
                    .filter(e => e.offsetParent !== null && e.type !== 'hidden')
                    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                    .filter(e => !e.getAttribute('aria-labelledby'))
                    .filter(e => !(e.tagName === 'BUTTON' && e.textContent.trim()))
                    .map(e => e.outerHTML.slice(0, 80))"""
            )
            assert unlabelled == [], f"{route}: {unlabelled}"
            if route in ("servers", "approvals", "audit"):
                shot(page, f"narrow-{route}")
    finally:
        close(page)


def test_keyboard_only(browser: Browser, stack: Stack) -> None:
    page = open_console(browser, stack, stack.token("rita", REVIEWERS))
    try:
        page.locator("body").focus()
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Review queue":
                break
        else:
            pytest.fail("Tab never reached the Review queue link")
        page.keyboard.press("Enter")
        # The new page's heading takes the focus, so a screen reader announces where the user is.
        expect(page.locator(":focus")).to_have_text("Review queue")
    finally:
        close(page)


def test_a_server_page_lists_prompts_and_resource_templates(browser: Browser, stack: Stack) -> None:
    gw = stack.gw
    name = "dev.test/docs"
    gw.ok(gw.admin.post("/admin/v1/servers", json={"name": name, "shortName": "docs", "team": "data-eng",
                                                    "description": "Docs", "transport": "builtin"}), 201)  # fmt: skip
    version = {
        "version": "1.0.0",
        "prompts": [{"name": "explain", "description": "Explain a page.", "arguments": [{"name": "topic"}]}],
        "resourceTemplates": [{"name": "page", "description": "A page.", "uriTemplate": "docs://pages/{slug}"}],
    }
    out = gw.ok(gw.admin.post(f"/admin/v1/servers/{name}/versions", json=version), 201)
    gw.ok(gw.admin.put(f"/admin/v1/servers/{name}/prompts/explain/policy", json={"allowedGroups": ["data-eng"]}))
    page = open_console(browser, stack, stack.token("dora", ["data-eng"]), "servers/dev.test%2Fdocs", width=420)
    try:
        expect(page.get_by_role("heading", name="Prompts")).to_be_visible()
        page.get_by_text("docs__explain", exact=True).click()
        expect(page.get_by_role("table", name="Arguments of explain")).to_contain_text("topic")
        expect(page.get_by_text(out["prompts"][0]["contentHash"])).to_be_visible()
        expect(page.get_by_role("heading", name="Resource templates")).to_be_visible()
        page.get_by_text("docs__page", exact=True).click()
        expect(page.get_by_text("URI template")).to_be_visible()
        expect(page.get_by_text(out["resourceTemplates"][0]["contentHash"])).to_be_visible()
        expect(page.locator("table").filter(has_text="prompt docs__explain")).to_contain_text("data-eng")
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        shot(page, "server-items")
    finally:
        close(page)
