"""The operator's commands, run as users run them: status, servers, reviews, approvals, keys, --version, help."""

from __future__ import annotations

import json
import re
from pathlib import Path

from governance import Principal
from registry.context import RegistryContext
from registry.services import approvals
from registry.settings import RegistrySettings
from tests.test_cli_e2e import ROOT, env_for, run


def test_operator_commands(tmp_path: Path) -> None:
    env = env_for(tmp_path, BASTION_PORT="1", COLUMNS="200", NO_COLOR="1")
    assert run(env, "db", "upgrade").returncode == 0
    assert run(env, "registry", "seed").returncode == 0

    version = run(env, "--version")
    assert version.returncode == 0 and re.fullmatch(r"bastion \d+\.\d+\.\d+\n", version.stdout)

    status = run(env, "status").stdout
    assert re.search(r"database\s+│\s+ok\s+│\s+revision \d{4}", status), status
    assert re.search(r"server\s+│\s+not running", status) and re.search(r"index\s+│\s+missing", status)

    servers = run(env, "servers", "list").stdout
    assert "dev.bastion/dedupe" in servers and "platform" in servers
    shown = run(env, "servers", "show", "dev.bastion/dedupe").stdout
    assert "normalize_urls" in shown and "approved" in shown
    missing = run(env, "servers", "show", "dev.bastion/nope")
    assert missing.returncode == 1 and "error:" in missing.stderr and "Traceback" not in missing.stderr

    # A version in review, reviewed from the CLI: refused for the owning team, approved by reviewers.
    doc = json.loads(run(env, "registry", "export", "dev.bastion/registry@1.0.0").stdout)
    doc["version"] = "1.0.1"
    (tmp_path / "next.json").write_text(json.dumps(doc))
    assert run(env, "registry", "import", str(tmp_path / "next.json"), "--submit").returncode == 0
    example = run(env, "registry", "import", str(ROOT / "examples" / "server.json"), "--submit")
    assert example.returncode == 0, example.stderr
    assert "com.example/campaign-insights@1.0.0 (in_review, 2 tools)" in example.stdout
    queue = run(env, "reviews", "list").stdout
    assert "dev.bastion/registry" in queue and "1.0.1" in queue and "security" in queue
    assert "com.example/campaign-insights" in queue
    own = run(env, "reviews", "decide", "dev.bastion/registry", "1.0.1", "--kind", "security", "--decision",
              "approve", "--as", "pat", "--groups", "platform-eng,bastion-reviewers")  # fmt: skip
    assert own.returncode == 1 and "separation of duties" in own.stderr
    nobody = run(env, "reviews", "decide", "dev.bastion/registry", "1.0.1", "--kind", "security", "--decision",
                 "approve", "--as", "eve")  # fmt: skip
    assert nobody.returncode == 1 and "error:" in nobody.stderr
    needed = re.search(r"1\.0\.1\s+│\s+([a-z, ]+?)\s+│", queue)
    assert needed is not None
    last = None
    for kind in [k.strip() for k in needed.group(1).split(",")]:
        last = run(env, "reviews", "decide", "dev.bastion/registry", "1.0.1", "--kind", kind, "--decision", "approve",
                   "--as", "rita", "--groups", "bastion-reviewers", "--notes", "looked at it")  # fmt: skip
        assert last.returncode == 0, last.stderr
    assert last is not None and "1.0.1: approved" in last.stdout
    bad_kind = run(env, "reviews", "decide", "dev.bastion/registry", "1.0.1", "--kind", "vibes", "--decision",
                   "approve", "--as", "rita")  # fmt: skip
    assert bad_kind.returncode == 1 and "kind" in bad_kind.stderr

    # A parked call, decided from the CLI.
    settings = RegistrySettings(data_dir=tmp_path / "data")
    ctx = RegistryContext.create(settings)
    with ctx.db.transaction() as session:
        parked = approvals.park(session, Principal(subject="ann", groups=frozenset({"ads-eng"})),
                                server="dev.bastion/dedupe", tool="learn_rules", arguments={"domain": "x.example"},
                                reasons=["tool learn_rules is not read-only"], second_approver=False,
                                ttl_seconds=600)  # fmt: skip
        approval_id = parked.id
    ctx.db.dispose()
    pending = run(env, "approvals", "list").stdout
    assert approval_id in pending and "learn_rules" in pending and "x.example" in pending
    stranger = run(env, "approvals", "decide", approval_id, "--decision", "approve", "--as", "eve")
    assert stranger.returncode == 1 and "only admins or the team" in stranger.stderr
    decided = run(env, "approvals", "decide", approval_id, "--decision", "approve", "--as", "root", "--groups",
                  "bastion-admins", "--note", "fine")  # fmt: skip
    assert decided.returncode == 0 and f"{approval_id}: approved by root" in decided.stdout
    assert approval_id in run(env, "approvals", "list", "--status", "approved").stdout

    # Keys: listed without their secret, revoked, then only shown with --revoked.
    secret = run(env, "keys", "create", "--name", "ci-bot", "--groups", "ci").stdout.strip()
    listed = run(env, "keys", "list").stdout
    assert "ci-bot" in listed and secret not in listed and secret[:12] not in listed
    assert run(env, "keys", "revoke", "ci-bot").returncode == 0
    assert "ci-bot" not in run(env, "keys", "list").stdout
    assert "ci-bot" in run(env, "keys", "list", "--revoked").stdout
    unknown = run(env, "keys", "revoke", "no-such-key")
    assert unknown.returncode == 1 and "error:" in unknown.stderr and "Traceback" not in unknown.stderr


def test_help_reads_as_written(tmp_path: Path) -> None:
    env = env_for(tmp_path, COLUMNS="120", NO_COLOR="1")
    for args in (["ask", "--help"], ["--help"], ["keys", "list", "--help"]):
        text = run(env, *args).stdout
        assert "<bool>" not in text and "{" not in text.split("\n\n")[0], (args, text)
    assert "QUESTION" in run(env, "ask", "--help").stdout
