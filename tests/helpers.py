"""Test helpers: token minting and a small driver for the admin API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from registry.auth import mint_token
from registry.settings import RegistrySettings


def tool(name: str, *, read_only: bool = True, description: str | None = None) -> dict[str, Any]:
    annotations = {"readOnlyHint": True, "destructiveHint": False} if read_only else {"readOnlyHint": False}
    return {
        "name": name,
        "description": description or f"The {name} tool.",
        "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
        "annotations": annotations,
    }


class Tokens:
    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings

    def __call__(self, user: str, groups: list[str] | None = None, **kwargs: Any) -> dict[str, str]:
        token = mint_token(self.settings, user=user, groups=groups or [], **kwargs)
        return {"Authorization": f"Bearer {token}"}

    @property
    def admin(self) -> dict[str, str]:
        return self("root", ["bastion-admins"], clearance="restricted")

    @property
    def reviewer(self) -> dict[str, str]:
        return self("rita", ["bastion-reviewers"], clearance="restricted")


class Api:
    """Drives the admin API as an admin, asserting each step succeeds."""

    def __init__(self, client: TestClient, tokens: Tokens) -> None:
        self.client = client
        self.tokens = tokens

    def _ok(self, response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, f"{response.status_code}: {response.text}"
        return response.json() if response.content else None

    def team(self, name: str, groups: list[str] | None = None, members: list[str] | None = None) -> Any:
        body = {"name": name, "supportChannel": f"#{name}", "groups": groups or [], "members": members or []}
        return self._ok(self.client.post("/admin/v1/teams", json=body, headers=self.tokens.admin), 201)

    def server(self, name: str, team: str, **fields: Any) -> Any:
        body = {"name": name, "team": team, "description": f"{name} server", "transport": "builtin", **fields}
        return self._ok(self.client.post("/admin/v1/servers", json=body, headers=self.tokens.admin), 201)

    def version(self, server: str, version: str, tools: list[dict[str, Any]] | None = None) -> Any:
        body = {"version": version, "tools": tools if tools is not None else [tool("search")]}
        return self._ok(
            self.client.post(f"/admin/v1/servers/{server}/versions", json=body, headers=self.tokens.admin), 201
        )

    def status(self, server: str, version: str, status: str, headers: dict[str, str] | None = None) -> Any:
        return self._ok(
            self.client.post(
                f"/admin/v1/servers/{server}/versions/{version}/status",
                json={"status": status},
                headers=headers or self.tokens.admin,
            ),
            200,
        )

    def review(self, server: str, version: str, kind: str, decision: str = "approve") -> Any:
        return self._ok(
            self.client.post(
                f"/admin/v1/servers/{server}/versions/{version}/reviews",
                json={"kind": kind, "decision": decision},
                headers=self.tokens.reviewer,
            ),
            201,
        )

    def publish(self, server: str, version: str, tools: list[dict[str, Any]] | None = None) -> Any:
        """Create, submit and approve a version with every review its classification needs."""
        self.version(server, version, tools)
        out = self.status(server, version, "in_review")
        for kind in out["requiredReviews"]:
            out = self.review(server, version, kind)
        assert out["status"] == "approved", out
        return out

    def policy(self, server: str, body: dict[str, Any], tool_name: str | None = None) -> Any:
        path = (
            f"/admin/v1/servers/{server}/tools/{tool_name}/policy"
            if tool_name
            else f"/admin/v1/servers/{server}/policy"
        )
        return self._ok(self.client.put(path, json=body, headers=self.tokens.admin), 200)


def serve_with_dev_token(env: dict[str, str], port: int, cwd: Path, log: Any = None) -> tuple[Any, str, str]:
    """`bastion serve --print-dev-token` as `make run` starts it: (process, base URL, dev admin token), healthy."""
    import subprocess
    import sys
    import time

    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve", "--print-dev-token"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=log if log is not None else subprocess.STDOUT,
        text=True,
    )
    token = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if "dev admin token" in line:
            token = proc.stdout.readline().strip()
            break
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    return proc, base, token
