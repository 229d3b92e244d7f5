"""The HTTP contract, for every route: authentication before anything is parsed, errors documented and
bounded, names, limits and times declared in the schema and enforced alike, 405 with `Allow`."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from bastion.app import create_app
from registry.context import RegistryContext
from registry.schemas.names import SERVER_NAME_PATTERN
from registry.services.common import MAX_LIMIT
from registry.settings import RegistrySettings
from tests.helpers import Api, Tokens, tool

API_PREFIXES = ("/v0.1/", "/v1/", "/admin/v1/")
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
S = "dev.bastion/ads"
MB2 = "x" * 2_000_000


def operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    doc = client.get("/openapi.json").json()
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def invalid_request(path: str, op: dict[str, Any]) -> tuple[str, dict[str, str], bytes | None, bool]:
    """A request to this operation that fails validation: (url, query, body, whether it is invalid)."""
    url = path
    query: dict[str, str] = {}
    invalid = False
    for param in op.get("parameters", []):
        schema = param.get("schema", {})
        if param["in"] == "path":
            value = "dev.bastion/sql" if schema.get("pattern") == SERVER_NAME_PATTERN else "x"
            url = url.replace("{" + param["name"] + "}", quote(value, safe=""))
        elif param["in"] == "query":
            kinds = {s.get("type") for s in [schema, *schema.get("anyOf", [])]}
            formats = {s.get("format") for s in [schema, *schema.get("anyOf", [])]}
            if kinds & {"integer", "boolean"} or "date-time" in formats:
                query[param["name"]] = "not-a-valid-value"
                invalid = True
    body = None
    if "requestBody" in op:
        body = b'{"this": is not JSON'
        invalid = True
    return url, query, body, invalid


def send(client: TestClient, method: str, url: str, query: dict[str, str], body: bytes | None, **kw: Any) -> Any:
    headers = {"content-type": "application/json", **kw.pop("headers", {})}
    return client.request(method, url, params=query, content=body, headers=headers, **kw)


# --- authentication comes first ----------------------------------------------------------------


def test_every_api_route_needs_a_token(client: TestClient) -> None:
    ops = [(m, p, op) for m, p, op in operations(client) if p.startswith(API_PREFIXES)]
    assert len(ops) > 30
    assert [f"{m} {p}" for m, p, op in ops if not op.get("security")] == []
    # ... and says so, with the error model and the challenge.
    for method, path, op in ops:
        unauthorized = op["responses"].get("401")
        assert unauthorized is not None, f"{method} {path}"
        assert unauthorized["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
        assert "WWW-Authenticate" in unauthorized["headers"]


@pytest.mark.parametrize("credentials", [None, "Bearer not-a-jwt", "Bearer bst_000000000000_nope", "Basic eDp5"])
def test_unauthenticated_requests_are_401_before_any_parsing_or_validation(
    client: TestClient, tokens: Tokens, credentials: str | None
) -> None:
    """For every route that needs a token: an unauthenticated request with an invalid body or query gets
    401 with the challenge, never the 422 the same request gets once authenticated."""
    checked = 0
    for method, path, op in operations(client):
        if not op.get("security"):
            continue
        url, query, body, invalid = invalid_request(path, op)
        headers = {"Authorization": credentials} if credentials else {}
        response = send(client, method, url, query, body, headers=headers)
        assert response.status_code == 401, f"{method} {url}: {response.status_code} {response.text}"
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer "), f"{method} {url}"
        # RFC 6750 §3.1: an error code only when credentials were presented (and refused).
        assert ('error="invalid_token"' in challenge) == (credentials is not None), challenge
        assert response.json()["code"] == "unauthorized"
        if invalid:
            authenticated = send(client, method, url, query, body, headers=tokens.admin)
            assert authenticated.status_code == 422, f"{method} {url}: {authenticated.text}"
            checked += 1
    assert checked > 25


def test_a_body_that_is_not_even_json_or_utf8_is_401_without_credentials(client: TestClient, tokens: Tokens) -> None:
    for body in (b"{", b"\xff\xfe\x00garbage", b"[" * 100_000, MB2.encode()):
        response = client.post("/v1/authz/check", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 401, response.text
        assert "WWW-Authenticate" in response.headers
    # Authenticated, an undecodable body is a 422 naming the body (FastAPI alone said 400, undocumented).
    response = client.post(
        "/v1/authz/check", content=b"_\xffj\xee", headers={**tokens.admin, "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "body"
    assert response.json()["error"] == "body: not valid JSON: not UTF-8"
    # Nested deeper than the JSON parser goes: said so (it used to be called "not UTF-8").
    deep = b'{"server": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post(
        "/v1/authz/check", content=deep, headers={**tokens.admin, "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text[:300]
    assert response.json()["error"] == "body: not valid JSON: nested too deeply"


def test_anonymous_discovery_when_allowed_still_validates(client: TestClient) -> None:
    client.app.state.registry.settings.discovery_anonymous = True  # type: ignore[attr-defined]
    try:
        assert client.get("/v0.1/servers").status_code == 200
        bad = client.get("/v0.1/servers", params={"limit": 0})
        assert bad.status_code == 422
        assert bad.json()["field"] == "query.limit"
        # Other routes still need a token.
        assert client.post("/v1/authz/check", content=b"{").status_code == 401
    finally:
        client.app.state.registry.settings.discovery_anonymous = False  # type: ignore[attr-defined]


# --- errors are bounded -------------------------------------------------------------------------


def test_validation_errors_never_echo_unbounded_input(client: TestClient, tokens: Tokens) -> None:
    bodies = [
        ("/admin/v1/teams", {"name": MB2, "supportChannel": "#x"}),
        ("/admin/v1/teams", {"name": "t", "supportChannel": MB2}),
        ("/admin/v1/keys", {"name": MB2}),
        ("/v1/authz/check", {"server": MB2}),
        ("/admin/v1/servers", {MB2: 1, "name": MB2, "team": MB2, "description": MB2}),
        # A 2 MB dictionary key ends up in the field path and in the validator's message.
        ("/admin/v1/servers/dev.bastion%2Fads/policy", {"annotations": {MB2: True}}),
    ]
    for path, body in bodies:
        method = "PUT" if path.endswith("/policy") else "POST"
        response = client.request(method, path, json=body, headers=tokens.admin)
        assert response.status_code == 422, response.text[:500]
        assert len(response.content) < 5_000, f"{path}: {len(response.content)} bytes"
        error = response.json()
        assert error["code"] == "validation_error" and error["field"].startswith("body")
        assert all(len(e["field"]) <= 200 and len(e["reason"]) <= 500 for e in error["errors"])


def test_error_lists_are_bounded_too(client: TestClient, tokens: Tokens) -> None:
    response = client.post(
        "/admin/v1/teams", json={"name": "t", "supportChannel": "#t", "members": [1] * 50_000}, headers=tokens.admin
    )
    assert response.status_code == 422
    error = response.json()
    assert len(error["errors"]) == 20
    assert "(and 49999 more)" in error["error"]
    assert len(response.content) < 10_000


def test_domain_errors_quoting_input_are_bounded(client: TestClient, tokens: Tokens) -> None:
    # `ids` entries are free text the service quotes: "approval <id> does not exist".
    response = client.post(
        "/admin/v1/approvals/decide", json={"ids": [MB2], "decision": "approve"}, headers=tokens.admin
    )
    assert response.status_code == 404
    error = response.json()
    assert len(response.content) < 2_000
    assert error["error"].startswith("approval xxx") and error["error"].endswith("does not exist")
    assert "…" in error["error"]


def test_the_challenge_quotes_nothing_unbounded_or_unquotable(client: TestClient) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": 'no"ne\\\r\n' + "x" * 5_000}).encode()).decode()
    forged = f"{header.rstrip('=')}.e30.c2ln"
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert len(challenge) < 400
    description = challenge.split('error_description="', 1)[1]
    assert description.endswith('"') and '"' not in description[:-1] and "\\" not in description


# --- routing: 405 with Allow, malformed server names are 404 ----------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/v1/me", "GET"),
        ("TRACE", "/healthz", "GET"),
        ("DELETE", "/admin/v1/teams", "GET, POST"),
        ("OPTIONS", "/admin/v1/servers/dev.bastion%2Fsql/policy", "PUT, DELETE"),
        ("POST", "/admin/v1/servers/dev.bastion%2Fsql", "GET, PATCH"),
        ("TRACE", "/openapi.json", "GET, HEAD"),
    ],
)
def test_405_says_what_is_allowed(client: TestClient, tokens: Tokens, method: str, path: str, allow: str) -> None:
    response = client.request(method, path, headers=tokens.admin)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["code"] == "method_not_allowed"


def test_a_405_from_the_mcp_transport_carries_allow_too(settings: RegistrySettings, tokens: Tokens) -> None:
    """Stateless, the MCP transport itself refuses DELETE (no session to end), without an `Allow` of its own."""
    ctx = RegistryContext.create(settings.model_copy(update={"gateway_stateless": True}))
    try:
        with TestClient(create_app(ctx.settings, ctx)) as stateless:
            headers = {**tokens.admin, "accept": "application/json, text/event-stream"}
            response = stateless.delete("/mcp", headers={**headers, "mcp-protocol-version": "2025-11-25"})
            assert response.status_code == 405
            assert response.headers["Allow"] == "GET, HEAD, POST"
    finally:
        ctx.db.dispose()


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("DELETE", "/admin/v1/servers/foo/policy", "foo"),
        ("PUT", "/admin/v1/servers/foo/policy", "foo"),
        ("POST", "/admin/v1/servers/foo/versions", "foo"),
        ("GET", "/admin/v1/servers/foo", "foo"),
        ("DELETE", "/admin/v1/servers/dev.bastion/tools/t/policy", "dev.bastion"),
        ("GET", "/v0.1/servers/no-slash/versions", "no-slash"),
        ("GET", "/v0.1/servers/a/b/c/versions/latest", "a/b/c"),
    ],
)
def test_a_malformed_server_name_is_a_404_naming_it(
    client: TestClient, tokens: Tokens, method: str, path: str, name: str
) -> None:
    response = client.request(method, path, json={}, headers=tokens.admin)
    assert response.status_code == 404, response.text
    assert response.json() == {"error": f"server {name!r} does not exist", "code": "not_found", "field": "name"}


def test_server_names_are_declared_in_the_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    named = [
        param["schema"]
        for path, item in doc["paths"].items()
        if "{name}" in path and "/servers/" in path
        for op in item.values()
        for param in op.get("parameters", [])
        if param["name"] == "name"
    ]
    assert len(named) >= 15
    assert all(s["pattern"] == SERVER_NAME_PATTERN and s["maxLength"] == 200 for s in named)
    assert doc["components"]["schemas"]["ServerCreate"]["properties"]["name"]["pattern"] == SERVER_NAME_PATTERN


def test_an_unknown_path_is_a_json_404(client: TestClient) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- limits and times -------------------------------------------------------------------------


def test_every_limit_is_bounded_in_the_schema_and_at_runtime(client: TestClient, tokens: Tokens) -> None:
    limited = []
    for method, path, op in operations(client):
        for param in op.get("parameters", []):
            if param["name"] == "limit":
                assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (1, MAX_LIMIT), path
                limited.append((method, path, op))
    assert len(limited) >= 9
    for method, path, op in limited:
        url, _, _, _ = invalid_request(path, op)
        for bad in (0, MAX_LIMIT + 1, -5):
            response = client.request(method, url, params={"limit": bad}, headers=tokens.admin)
            assert response.status_code == 422, f"{path} limit={bad}: {response.text}"
            assert response.json()["field"] == "query.limit"
    assert client.get("/admin/v1/teams", params={"limit": MAX_LIMIT}, headers=tokens.admin).status_code == 200


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/admin/v1/audit", "until"),
        ("/admin/v1/audit", "since"),
        ("/admin/v1/audit.csv", "until"),
        ("/admin/v1/reports/time-saved", "until"),
        ("/v0.1/servers", "updated_since"),
    ],
)
@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-01-31", "2026-01-31T10:00:00", "yesterday"])
def test_time_filters_take_rfc3339_only(client: TestClient, tokens: Tokens, path: str, param: str, value: str) -> None:
    response = client.get(path, params={param: value}, headers=tokens.admin)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == f"query.{param}"
    assert "RFC 3339" in response.json()["error"]


def test_rfc3339_times_are_accepted(client: TestClient, tokens: Tokens) -> None:
    for value in ("2026-01-31T10:00:00Z", "2026-01-31t10:00:00.123456+02:00", "2016-12-31T23:59:60Z"):
        assert client.get("/admin/v1/audit", params={"until": value}, headers=tokens.admin).status_code == 200


# --- documented media types and error shapes --------------------------------------------------


def test_the_csv_export_is_documented_as_csv(client: TestClient, tokens: Tokens) -> None:
    doc = client.get("/openapi.json").json()
    assert list(doc["paths"]["/admin/v1/audit.csv"]["get"]["responses"]["200"]["content"]) == ["text/csv"]
    response = client.get("/admin/v1/audit.csv", headers=tokens.admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")


def test_validation_errors_are_documented_with_the_error_model(client: TestClient) -> None:
    for method, path, op in operations(client):
        if "422" in op["responses"] and path.startswith(API_PREFIXES):
            schema = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, f"{method} {path}"


# --- input the databases cannot hold is a 422, not a 500 ---------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/admin/v1/teams/a%00b", None, "path.name"),
        ("GET", "/v0.1/servers?search=a%00b", None, "query.search"),
        ("POST", "/admin/v1/teams", '{"name": "t", "supportChannel": "#t\\u0000"}', "body"),
        ("POST", "/admin/v1/teams", '{"name": "t", "supportChannel": "#t", "members": ["\\ud800"]}', "body"),
        ("POST", "/admin/v1/keys", '{"name": "k", "groups": ["a\\\\u0000", "\\u0000"]}', "body"),
    ],
)
def test_nul_and_unpaired_surrogates_are_refused(
    client: TestClient, tokens: Tokens, method: str, path: str, body: str | None, field: str
) -> None:
    response = client.request(method, path, content=body, headers={**tokens.admin, "content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_an_escaped_backslash_before_u0000_is_text_not_nul(client: TestClient, tokens: Tokens) -> None:
    body = '{"name": "t", "supportChannel": "C:\\\\u0000"}'
    assert json.loads(body)["supportChannel"] == "C:\\u0000"
    headers = {**tokens.admin, "content-type": "application/json"}
    response = client.post("/admin/v1/teams", content=body, headers=headers)
    assert response.status_code == 201, response.text


def test_json_the_database_cannot_store_is_a_422(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng")
    api.server(S, "ads-eng")
    deep: Any = "leaf"
    for _ in range(100):
        deep = [deep]
    for schema in ({"type": "object", "maximum": 2**70}, {"type": "object", "x": deep}):
        body = {"version": "1.0.0", "tools": [{**tool("q"), "inputSchema": schema}]}
        response = client.post(f"/admin/v1/servers/{quote(S, safe='')}/versions", json=body, headers=tokens.admin)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "body.tools.0.inputSchema"
    big = client.post(
        f"/admin/v1/servers/{quote(S, safe='')}/versions",
        json={"version": "1.0.0", "serverJson": {"n": 2**64}},
        headers=tokens.admin,
    )
    assert big.status_code == 422, big.text


def test_patch_may_leave_fields_out_but_not_null_them(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng")
    api.server(S, "ads-eng")
    for field in ("members", "groups", "supportChannel"):
        response = client.patch("/admin/v1/teams/ads-eng", json={field: None}, headers=tokens.admin)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == f"body.{field}"
    for field in ("description", "team", "environment", "classification", "allowedGroups"):
        response = client.patch(f"/admin/v1/servers/{quote(S, safe='')}", json={field: None}, headers=tokens.admin)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == f"body.{field}"
    # What may be removed still can be.
    removed = client.patch(f"/admin/v1/servers/{quote(S, safe='')}", json={"title": None}, headers=tokens.admin)
    assert removed.status_code == 200, removed.text
    assert client.patch("/admin/v1/teams/ads-eng", json={"displayName": None}, headers=tokens.admin).status_code == 200


def test_blank_names_are_refused_as_the_schema_says(client: TestClient, tokens: Tokens) -> None:
    doc = client.get("/openapi.json").json()
    item = doc["components"]["schemas"]["TeamCreate"]["properties"]["members"]["items"]
    assert (item["minLength"], item["maxLength"]) == (1, 200)
    for blank in (" ", "\t", "\u3000", "\x1c"):
        response = client.post(
            "/admin/v1/teams", json={"name": "t", "supportChannel": "#t", "members": [blank]}, headers=tokens.admin
        )
        assert response.status_code == 422, repr(blank)
        assert response.json()["field"] == "body.members.0"


def test_rules_the_schema_cannot_state_are_invalid_not_validation_errors(
    client: TestClient, api: Api, tokens: Tokens
) -> None:
    """`validation_error`: the request breaks the published schema; `invalid`: it keeps to it but breaks a rule
    JSON Schema cannot express — the fuzz run tells the two apart."""
    api.team("ads-eng")
    api.server(S, "ads-eng")
    url = f"/admin/v1/servers/{quote(S, safe='')}/versions"
    cases = [
        ([tool("a"), tool("a")], "invalid", "body.tools"),
        ([{**tool("a"), "inputSchema": {"type": "object", "properties": 5}}], "invalid", "body.tools.0.inputSchema"),
        ([{**tool("a"), "inputSchema": {"type": "string"}}], "validation_error", "body.tools.0.inputSchema"),
        ([{**tool("a"), "name": "a b"}], "validation_error", "body.tools.0.name"),
    ]
    for tools, code, field in cases:
        response = client.post(url, json={"version": "1.0.0", "tools": tools}, headers=tokens.admin)
        assert response.status_code == 422, response.text
        assert (response.json()["code"], response.json()["field"]) == (code, field), response.text


def test_true_and_false_are_not_numbers(client: TestClient, api: Api, tokens: Tokens) -> None:
    """Lax parsing read `"expiresInDays": true` as 1 day; JSON Schema's integer is never a boolean."""
    api.team("ads-eng", groups=["ads-eng"])
    api.server(S, "ads-eng")
    api.publish(S, "1.0.0")
    cases = [
        ("post", "/admin/v1/keys", {"name": "k", "expiresInDays": True}, "body.expiresInDays"),
        ("put", f"/admin/v1/servers/{S}/policy", {"rateLimitPerMinute": False}, "body.rateLimitPerMinute"),
        ("put", f"/admin/v1/servers/{S}/tools/search/settings", {"minutesSaved": True}, "body.minutesSaved"),
    ]
    for method, path, body, field in cases:
        response = client.request(method.upper(), path, json=body, headers=tokens.admin)
        assert response.status_code == 422 and response.json()["field"] == field, response.text
    integral = client.post("/admin/v1/keys", json={"name": "k2", "expiresInDays": 30.0}, headers=tokens.admin)
    assert integral.status_code == 201  # 30.0 is an integer in JSON Schema's sense
