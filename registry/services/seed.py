"""Apply a YAML seed (teams, servers, versions, policies) idempotently."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from governance import SYSTEM, Classification, ReviewDecision, ReviewRequirements, VersionStatus
from registry.db.models import Server, ServerVersion, Team
from registry.errors import Conflict, Invalid
from registry.schemas.admin import (
    PolicyPut,
    ReviewCreate,
    ServerCreate,
    ServerUpdate,
    TeamCreate,
    TeamUpdate,
    VersionCreate,
)
from registry.schemas.base import ApiModel
from registry.schemas.tools import ToolDefinition
from registry.services import policies, servers, teams, versions
from registry.services.transfer import validation_details

# Resolves a builtin server's name to its tool definitions (supplied by the composition root,
# because the registry must not import the tool packages).
BuiltinTools = Callable[[str], list[ToolDefinition]]


class SeedPolicy(PolicyPut):
    tool: str | None = None


class SeedServer(ServerCreate):
    version: str = "1.0.0"
    builtin: str | None = None
    tools: list[ToolDefinition] = Field(default_factory=list)
    policies: list[SeedPolicy] = Field(default_factory=list)


class SeedFile(ApiModel):
    teams: list[TeamCreate] = Field(default_factory=list)
    servers: list[SeedServer] = Field(default_factory=list)


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def load_seed(path: Path) -> SeedFile:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise Invalid(f"seed file {path} does not exist", field="seed_file") from None
    except yaml.YAMLError as exc:
        raise Invalid(f"seed file {path} is not valid YAML: {exc}", field="seed_file") from None
    try:
        return SeedFile.model_validate(raw or {})
    except ValidationError as exc:
        details = validation_details(exc)
        raise Invalid(f"seed file {path}: {details[0]['field']}: {details[0]['reason']}", details=details) from None


def apply_seed(
    session: Session, seed: SeedFile, requirements: ReviewRequirements, builtin_tools: BuiltinTools | None = None
) -> SeedReport:
    report = SeedReport()
    for team in seed.teams:
        existing = session.scalar(select(Team).where(Team.name == team.name))
        if existing is None:
            teams.create_team(session, SYSTEM, team)
            report.created.append(f"team {team.name}")
            continue
        wanted = team.model_dump(exclude={"name"})
        current = {k: getattr(existing, k) for k in wanted}
        if wanted != current:
            teams.update_team(session, SYSTEM, team.name, TeamUpdate(**wanted))
            report.updated.append(f"team {team.name}")
        else:
            report.unchanged.append(f"team {team.name}")
    for spec in seed.servers:
        _seed_server(session, spec, requirements, builtin_tools, report)
    return report


def _seed_server(
    session: Session,
    spec: SeedServer,
    requirements: ReviewRequirements,
    builtin_tools: BuiltinTools | None,
    report: SeedReport,
) -> None:
    tools = spec.tools
    if spec.builtin:
        if builtin_tools is None:
            raise Invalid(f"server {spec.name} is builtin {spec.builtin!r} but no builtin servers are available")
        tools = builtin_tools(spec.builtin)
    server_fields = ServerCreate.model_validate(spec.model_dump(include=set(ServerCreate.model_fields)))
    server = session.scalar(select(Server).where(Server.name == spec.name))
    if server is None:
        servers.create_server(session, SYSTEM, server_fields)
        report.created.append(f"server {spec.name}")
    else:
        update = ServerUpdate.model_validate(
            server_fields.model_dump(include=set(ServerUpdate.model_fields), exclude_unset=False)
        )
        changes = {k: v for k, v in update.model_dump(mode="json").items() if k != "team" and getattr(server, k) != v}
        if server.team.name != spec.team:
            changes["team"] = spec.team
        if changes:
            servers.update_server(session, SYSTEM, spec.name, ServerUpdate(**changes), requirements)
            report.updated.append(f"server {spec.name}")

    version = session.scalar(
        select(ServerVersion)
        .join(Server)
        .where(Server.name == spec.name, ServerVersion.version == spec.version)
        .options(selectinload(ServerVersion.tools))
    )
    if version is None:
        versions.create_version(
            session, SYSTEM, spec.name, VersionCreate(version=spec.version, tools=tools), requirements
        )
        versions.change_status(session, SYSTEM, spec.name, spec.version, VersionStatus.IN_REVIEW, "seed", requirements)
        for kind in requirements.required_for(Classification(spec.classification)):
            versions.add_review(
                session,
                SYSTEM,
                spec.name,
                spec.version,
                ReviewCreate(kind=kind, decision=ReviewDecision.APPROVE, notes="approved by the seed file"),
                requirements,
            )
        report.created.append(f"version {spec.name}@{spec.version}")
    else:
        registered = {t.name: t.content_hash for t in version.tools}
        declared = {t.name: t.content_hash() for t in tools}
        if registered != declared:
            raise Conflict(
                f"seed declares {spec.name}@{spec.version} with tools that differ from the registered ones "
                f"({sorted(set(registered) ^ set(declared)) or 'changed definitions'}); bump the version",
                field="version",
            )
        if version.status == VersionStatus.IN_REVIEW.value:
            # A change the seed made (its owning team, say) sent the version back to review: the seed file
            # is the authority for the servers it declares, so it reviews them again.
            for kind in versions.version_out(version, requirements).missing_reviews:
                versions.add_review(session, SYSTEM, spec.name, spec.version,
                                    ReviewCreate(kind=kind, decision=ReviewDecision.APPROVE,
                                                 notes="approved again by the seed file"), requirements)  # fmt: skip
            report.updated.append(f"version {spec.name}@{spec.version} reviewed again")
        else:
            report.unchanged.append(f"version {spec.name}@{spec.version}")

    for rule in spec.policies:
        policies.put_policy(session, SYSTEM, spec.name, rule.tool, PolicyPut(**rule.model_dump(exclude={"tool"})))
