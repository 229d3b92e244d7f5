"""Schemathesis over `/openapi.json` of a real `bastion serve`: 0 server errors, 0 schema violations.

Two runs per backend (SQLite, PostgreSQL) — as an admin and as a plain analyst — against a server of this
file's own (own data directory, own database): the admin run creates, edits, revokes and deletes freely, so
it must not touch the shared `live` server the other red-team tests rely on. The runs are what `st run`
does (examples, coverage, fuzzing and stateful phases, every check), bounded and seeded so they repeat.

What a run checks, besides "no 5xx": every status code, content type, header and body is the documented one
(for every error too), undocumented methods get 405 with `Allow`, a request the schema calls invalid is
refused and one it calls valid is accepted — unless the server refused it for a reason JSON Schema cannot
express (a state or business rule: `code` `invalid` or `bad_request`, never `validation_error`). Generated
text holds no NUL: the API refuses it everywhere (PostgreSQL cannot store it), as tests/test_api_contract.py
checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.security.conftest import Live, server_on

pytestmark = pytest.mark.slow

# Test cases per operation and phase: enough to reach every documented answer of every operation, small
# enough for ~30 s per run on two shared cores.
MAX_EXAMPLES = 10
SEED = 14
# Refusals that rest on state or meaning, which a schema cannot state (transport needs an endpoint, a cursor
# this API did not issue, a poisoned tool description, server.json rules): not a schema gap.
SEMANTIC_CODES = {"invalid", "bad_request"}


@schemathesis.check
def positive_data_accepted(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Any) -> None:
    """Schemathesis' `positive_data_acceptance`, except for semantic refusals (see SEMANTIC_CODES)."""
    try:
        positive_data_acceptance(ctx, response, case)
    except AssertionError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("code") not in SEMANTIC_CODES:
            raise


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A server of this module's own: `db upgrade`, `registry seed`, `serve`, on its own database."""
    with server_on(request.param, tmp_path_factory.mktemp(f"openapi-fuzz-{request.param}")) as server:
        yield server


def describe(failure: AssertionError, sample: str, response: Any) -> str:
    """One failure: operation, code, message, what the server answered, and the request to reproduce it."""
    what = " ".join(str(getattr(failure, "message", failure)).split())[:300]
    answer = ""
    if response is not None:
        answer = f"\n    → {response.status_code} {response.content[:300].decode(errors='replace')}"
    return f"{getattr(failure, 'operation', '?')}: {getattr(failure, 'code', '?')} {what}{answer}\n    {sample[:1500]}"


def fuzz(live: Live, headers: dict[str, str]) -> tuple[list[str], int]:
    """Run schemathesis against `live` with these credentials: every failure, described, and the cases run."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "headers": headers,
            "request-timeout": 30,
            "generation": {"max-examples": MAX_EXAMPLES, "no-shrink": True, "allow-x00": False},
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{live.base}/openapi.json", config=config)
    failures: set[str] = set()
    cases = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                interaction = event.recorder.interactions.get(case_id)
                answer = interaction.response if interaction is not None else None
                for check in checks:
                    if check.failure_info is not None:
                        failures.add(describe(check.failure_info.failure, check.failure_info.code_sample, answer))
        elif isinstance(event, events.NonFatalError):
            failures.add(f"{event.label}: error {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            failures.update(f"run: {f.code} {f.title}" for f in getattr(event, "failures", []) or [])
    return sorted(failures), cases


@pytest.mark.parametrize("who", ["admin", "analyst"])
def test_openapi_has_no_server_errors_or_schema_violations(target: Live, who: str) -> None:
    headers = target.admin if who == "admin" else target.analyst
    started = time.monotonic()
    failures, cases = fuzz(target, headers)
    took = time.monotonic() - started
    print(f"schemathesis ({target.backend}, {who}): {cases} cases in {took:.1f} s, {len(failures)} failures")
    assert cases > 500, f"only {cases} test cases ran"
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
    # The server survived the run, and logged no unhandled error.
    assert target.proc.poll() is None
    assert "unhandled error" not in target.log.read_text()
