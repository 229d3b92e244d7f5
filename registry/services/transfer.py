"""`server.json` import and export, round-tripping our fields under `_meta[BASTION_META]`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from governance import Principal, ReviewRequirements, VersionStatus
from registry.db.models import Server, ServerVersion
from registry.errors import Invalid, NotFound
from registry.schemas.admin import ServerCreate, VersionCreate, VersionOut
from registry.schemas.serverjson import BASTION_META, ServerJson
from registry.services import servers as server_service
from registry.services import versions as version_service
from registry.services.common import get_server
from registry.services.render import server_json_head, tool_json


def validation_details(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    return [
        {"field": prefix + ".".join(str(p) for p in err["loc"]), "reason": err["msg"].removeprefix("Value error, ")}
        for err in exc.errors()
    ]


def parse_server_json(doc: Any) -> ServerJson:
    try:
        return ServerJson.model_validate(doc)
    except ValidationError as exc:
        details = validation_details(exc)
        raise Invalid(
            f"invalid server.json: {details[0]['field']}: {details[0]['reason']}",
            field=details[0]["field"],
            details=details,
        ) from None


def import_server_json(
    session: Session,
    actor: Principal,
    doc: Any,
    requirements: ReviewRequirements,
    *,
    team: str | None = None,
    submit: bool = False,
) -> VersionOut:
    sj = parse_server_json(doc)
    meta = sj.bastion_meta()
    exists = session.scalar(select(Server.id).where(Server.name == sj.name)) is not None
    if not exists:
        owner = team or meta.get("team")
        if not owner:
            raise Invalid(
                f"server {sj.name} is new: name its owning team (--team, or _meta.{BASTION_META}.team)", field="team"
            )
        remote = next((r for r in sj.remotes or [] if r.type == "streamable-http"), None)
        transport = meta.get("transport") or ("streamable-http" if remote else "builtin")
        try:
            create = ServerCreate(
                name=sj.name,
                short_name=meta.get("shortName"),
                title=sj.title,
                description=sj.description,
                team=owner,
                support_channel=meta.get("supportChannel"),
                environment=meta.get("environment", "dev"),
                transport=transport,
                endpoint=remote.url if (remote and transport != "builtin") else None,
                identity=meta.get("identity", "assertion"),
                classification=meta.get("classification", "internal"),
                allowed_groups=meta.get("allowedGroups", []),
                website_url=sj.website_url,
                repository=sj.repository.model_dump(exclude_none=True) if sj.repository else None,
            )
        except ValidationError as exc:
            details = validation_details(exc, f"_meta.{BASTION_META}.")
            raise Invalid(
                f"invalid server.json: {details[0]['field']}: {details[0]['reason']}", details=details
            ) from None
        server_service.create_server(session, actor, create)
    carried = {k: v for k, v in sj.dump().items() if k in ("packages", "icons", "remotes")}
    publisher_meta = {k: v for k, v in (sj.meta or {}).items() if k != BASTION_META}
    if publisher_meta:
        carried["_meta"] = publisher_meta
    try:
        body = VersionCreate(
            version=sj.version,
            tools=meta.get("tools", []),
            prompts=meta.get("prompts", []),
            resources=meta.get("resources", []),
            resource_templates=meta.get("resourceTemplates", []),
            server_json=carried,
        )
    except ValidationError as exc:
        details = validation_details(exc, f"_meta.{BASTION_META}.")
        raise Invalid(f"invalid server.json: {details[0]['field']}: {details[0]['reason']}", details=details) from None
    out = version_service.create_version(session, actor, sj.name, body, requirements)
    if submit:
        out = version_service.change_status(
            session, actor, sj.name, sj.version, VersionStatus.IN_REVIEW, "imported", requirements
        )
    return out


def export_server_json(session: Session, name: str, version: str | None = None) -> dict[str, Any]:
    """The server.json of a version (default: the latest published, else the highest)."""
    server = get_server(session, name)
    stmt = (
        select(ServerVersion)
        .where(ServerVersion.server_id == server.id)
        .options(selectinload(ServerVersion.tools))
        .order_by(ServerVersion.is_latest.desc(), ServerVersion.version_key.desc())
    )
    if version is not None:
        stmt = stmt.where(ServerVersion.version == version)
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(
            f"server {name!r} has no version {version!r}" if version else f"server {name!r} has no versions",
            field="version",
        )
    return server_json_of(server, row)


def server_json_of(server: Server, version: ServerVersion) -> dict[str, Any]:
    carried = dict(version.server_json or {})
    doc = server_json_head(
        name=server.name,
        description=server.description,
        version=version.version,
        title=server.title,
        website_url=server.website_url,
        repository=server.repository,
        carried=carried,
        carried_keys=("icons", "packages", "remotes"),
    )
    if server.transport == "streamable-http" and server.endpoint:
        remotes = [r for r in doc.get("remotes", []) if r.get("url") != server.endpoint]
        doc["remotes"] = [{"type": "streamable-http", "url": server.endpoint}, *remotes]
    ours: dict[str, Any] = {
        "team": server.team.name,
        "shortName": server.short_name,
        "environment": server.environment,
        "classification": server.classification,
        "allowedGroups": server.allowed_groups or [],
        "transport": server.transport,
        "tools": [tool_json(t, with_hash=False) for t in version.tools],
    }
    # Prompts, resources and templates as imported (their pins are recomputed on import); left out when none.
    for key, items in (
        ("prompts", version.prompts),
        ("resources", version.resources),
        ("resourceTemplates", version.resource_templates),
    ):
        if items:
            ours[key] = [{k: v for k, v in d.items() if k != "contentHash"} for d in items]
    if server.support_channel:
        ours["supportChannel"] = server.support_channel
    if server.transport != "builtin":
        ours["identity"] = server.identity
    doc["_meta"] = {**carried.get("_meta", {}), BASTION_META: ours}
    return doc
