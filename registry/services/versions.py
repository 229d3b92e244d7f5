"""Server versions: their tool snapshots, reviews and lifecycle."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from governance import (
    EDITABLE,
    Classification,
    Principal,
    ReviewDecision,
    ReviewRequirements,
    TransitionError,
    VersionStatus,
    check_transition,
    lint_description,
)
from registry import semver
from registry.db.models import Review, Server, ServerVersion, Tool, VersionTransition
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.schemas.admin import (
    ReviewCreate,
    ReviewOut,
    ToolOut,
    TransitionOut,
    VersionCreate,
    VersionOut,
    VersionSummary,
    VersionUpdate,
)
from registry.schemas.base import Page
from registry.schemas.items import (
    PromptDefinition,
    PromptOut,
    ResourceDefinition,
    ResourceOut,
    ResourceTemplateDefinition,
    ResourceTemplateOut,
    stored,
)
from registry.schemas.tools import ToolDefinition
from registry.services.common import (
    can_see_unpublished,
    check_limit,
    decode_cursor,
    get_server,
    get_version,
    is_owner,
    page_of,
    record_event,
    require_owner_or_admin,
    require_reviewer,
    visible_server_or_404,
)
from registry.services.lifecycle import decisions, recompute_latest, require_separation
from registry.services.servers import check_tool_names_fit


def schema_texts(schema: Any, path: str) -> list[tuple[str, str]]:
    """Every string a model may read inside a JSON Schema — descriptions and titles, but also enum values,
    defaults, examples, constants and property names — with where it sits (iteratively: schemas nest)."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(schema, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            found.append((where, node))
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str):
                    # identifiers read as words too: ignore_previous_instructions
                    found.append((f"{where}.{key}(name)", re.sub(r"[_\-.]+", " ", key)))
                stack.append((value, f"{where}.{key}"))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))
    return found


def lint_tools(definitions: list[ToolDefinition]) -> None:
    """Refuse tool definitions whose text tries to steer the model (tool poisoning), wherever the text is."""
    for index, tool in enumerate(definitions):
        texts = [(f"tools[{index}].description", tool.description), (f"tools[{index}].title", tool.title or "")]
        texts += schema_texts(tool.input_schema, f"tools[{index}].inputSchema")
        texts += schema_texts(tool.output_schema or {}, f"tools[{index}].outputSchema")
        texts += schema_texts(tool.annotations or {}, f"tools[{index}].annotations")
        _lint_texts(f"tool {tool.name!r}", texts)


Item = PromptDefinition | ResourceDefinition | ResourceTemplateDefinition


def _lint_texts(what: str, texts: list[tuple[str, str]]) -> None:
    """Refuse the first text the poisoning lint flags, naming where it is (every finding in `details`)."""
    for where, text in texts:
        findings = lint_description(text)
        if findings:
            details = [{"field": where, "reason": f"{f.rule}: {f.message}"} for f in findings]
            raise Invalid(
                f"{what} refused: {findings[0].rule}: {findings[0].message}",
                field=where.removesuffix("(name)"),
                details=details,
            )


def item_texts(kind: str, definition: dict[str, Any]) -> list[tuple[str, str]]:
    """Every string of a prompt, resource or resource template (its wire shape) that a model reads, with its
    field: descriptions and titles, a prompt's argument names and descriptions, a URI or URI template."""
    texts = [("description", definition.get("description") or ""), ("title", definition.get("title") or "")]
    if kind == "prompt":
        for j, argument in enumerate(definition.get("arguments") or []):
            name = argument.get("name") or ""
            texts += [(f"arguments[{j}].name", name), (f"arguments[{j}].name(name)", _as_words(name)),
                      (f"arguments[{j}].description", argument.get("description") or "")]  # fmt: skip
    else:
        address = "uri" if kind == "resource" else "uriTemplate"
        value = definition.get(address) or ""
        # Identifiers and paths read as words too: note://ignore-all-previous-instructions, {ignore_all_…}, %20.
        texts += [(address, value), (f"{address}(name)", _as_words(unquote(value)))]
        texts.append(("mimeType", definition.get("mimeType") or ""))
    return texts


def _as_words(text: str) -> str:
    return re.sub(r"[_\-.:/{}+?&=#,;*~%]+", " ", text)


# (request field, kind, what an error calls one)
ITEM_FIELDS = (
    ("prompts", "prompt", "prompt"),
    ("resources", "resource", "resource"),
    ("resourceTemplates", "resourceTemplate", "resource template"),
)


def lint_items(prompts: list[PromptDefinition], resources: list[ResourceDefinition],
               templates: list[ResourceTemplateDefinition]) -> None:  # fmt: skip
    """Prompts, resources and templates are text a model reads, as tool descriptions are: the same lint,
    on every string (a prompt's argument descriptions, a template's URI pattern too)."""
    groups: tuple[Sequence[Item], ...] = (prompts, resources, templates)
    for (key, kind, what), items in zip(ITEM_FIELDS, groups, strict=True):
        for i, item in enumerate(items):
            texts = [(f"{key}[{i}].{field}", text) for field, text in item_texts(kind, item.wire())]
            _lint_texts(f"{what} {item.name!r}", texts)


def _set_items(server: Server, version: ServerVersion, prompts: list[PromptDefinition] | None,
               resources: list[ResourceDefinition] | None,
               templates: list[ResourceTemplateDefinition] | None) -> None:  # fmt: skip
    check_tool_names_fit(server, [p.name for p in prompts or []], what="prompts")
    check_tool_names_fit(server, [r.name for r in resources or []], what="resources")
    check_tool_names_fit(server, [t.name for t in templates or []], what="resourceTemplates")
    lint_items(prompts or [], resources or [], templates or [])
    if (resources is None) != (templates is None):  # one replaced: its names against the kept other's
        kept = version.resource_templates if resources is not None else version.resources
        given = resources if resources is not None else templates
        clash = sorted({d["name"] for d in kept or []} & {i.name for i in given or []})
        if clash:
            raise Invalid(
                f"{', '.join(repr(n) for n in clash[:5])} already name a "
                f"{'resource template' if resources is not None else 'resource'} of this version: resources and "
                "resource templates share names (a policy's `resource:NAME` names either)",
                field="resources" if resources is not None else "resourceTemplates",
            )
    if prompts is not None:
        version.prompts = [stored(p) for p in sorted(prompts, key=lambda p: p.name)]
    if resources is not None:
        version.resources = [stored(r) for r in sorted(resources, key=lambda r: r.name)]
    if templates is not None:
        version.resource_templates = [stored(t) for t in sorted(templates, key=lambda t: t.name)]


def _tools_from(definitions: list[ToolDefinition]) -> list[Tool]:
    return [
        Tool(
            name=d.name,
            title=d.title,
            description=d.description,
            input_schema=d.input_schema,
            output_schema=d.output_schema,
            annotations=d.annotations,
            content_hash=d.content_hash(),
        )
        for d in definitions
    ]


def tool_summary(tools: list[Tool]) -> list[dict[str, object]]:
    """What list views show of a version's tools; full definitions and hashes stay on the version."""
    return [{"name": t.name, "annotations": t.annotations} for t in tools]


def version_out(version: ServerVersion, requirements: ReviewRequirements) -> VersionOut:
    classification = Classification(version.server.classification)
    return VersionOut(
        server=version.server.name,
        version=version.version,
        status=VersionStatus(version.status),
        is_latest=version.is_latest,
        tools=[ToolOut.model_validate(t) for t in version.tools],
        prompts=[PromptOut.model_validate(p) for p in version.prompts or []],
        resources=[ResourceOut.model_validate(r) for r in version.resources or []],
        resource_templates=[ResourceTemplateOut.model_validate(t) for t in version.resource_templates or []],
        server_json=version.server_json or {},
        reviews=[ReviewOut.model_validate(r) for r in version.reviews],
        required_reviews=requirements.required_for(classification),
        missing_reviews=requirements.missing(classification, decisions(version)),
        transitions=[TransitionOut.model_validate(t) for t in version.transitions],
        created_by=version.created_by,
        created_at=version.created_at,
        updated_at=version.updated_at,
        published_at=version.published_at,
        status_message=version.status_message,
    )


def create_version(
    session: Session, actor: Principal, server_name: str, body: VersionCreate, requirements: ReviewRequirements
) -> VersionOut:
    server = get_server(session, server_name)
    require_owner_or_admin(actor, server, "add versions to this server")
    check_tool_names_fit(server, [t.name for t in body.tools])
    lint_tools(body.tools)
    parsed = semver.parse(body.version)
    version = ServerVersion(
        server=server,
        version=body.version,
        version_key=parsed.sort_key,
        status=VersionStatus.DRAFT.value,
        server_json=body.server_json,
        created_by=actor.subject,
        tools=_tools_from(body.tools),
    )
    version.tool_summary = tool_summary(sorted(version.tools, key=lambda t: t.name))
    _set_items(server, version, body.prompts, body.resources, body.resource_templates)
    version.transitions.append(
        VersionTransition(from_status=None, to_status=VersionStatus.DRAFT.value, actor=actor.subject)
    )
    session.add(version)
    try:
        session.flush()
    except IntegrityError:
        # The unique (server, version) constraint decides races between concurrent submitters.
        session.rollback()
        raise Conflict(f"version {body.version} of {server_name} already exists", field="version") from None
    return version_out(version, requirements)


def update_version(
    session: Session,
    actor: Principal,
    server_name: str,
    version_str: str,
    body: VersionUpdate,
    requirements: ReviewRequirements,
) -> VersionOut:
    server = get_server(session, server_name)
    require_owner_or_admin(actor, server, "edit versions of this server")
    version = get_version(session, server, version_str)
    if VersionStatus(version.status) not in EDITABLE:
        raise Conflict(
            f"version {version_str} is {version.status}; a version is immutable once submitted — create a new version",
            field="version",
        )
    if body.tools is not None:
        check_tool_names_fit(server, [t.name for t in body.tools])
        lint_tools(body.tools)
        version.tools.clear()
        session.flush()
        version.tools.extend(_tools_from(body.tools))
        version.tool_summary = tool_summary(sorted(version.tools, key=lambda t: t.name))
    _set_items(server, version, body.prompts, body.resources, body.resource_templates)
    if body.server_json is not None:
        version.server_json = body.server_json
    version.updated_at = datetime.now(UTC)
    return version_out(version, requirements)


def load_version(session: Session, server: Server, version_str: str) -> ServerVersion:
    row = session.scalar(
        select(ServerVersion)
        .where(ServerVersion.server_id == server.id, ServerVersion.version == version_str)
        .options(
            selectinload(ServerVersion.tools),
            selectinload(ServerVersion.reviews),
            selectinload(ServerVersion.transitions),
        )
    )
    if row is None:
        raise NotFound(f"server {server.name!r} has no version {version_str!r}", field="version")
    return row


def read_version(
    session: Session, actor: Principal, server_name: str, version_str: str, requirements: ReviewRequirements
) -> VersionOut:
    server = visible_server_or_404(session, actor, server_name)
    return version_out(load_version(session, server, version_str), requirements)


def list_versions(
    session: Session, actor: Principal, server_name: str, limit: int, cursor: str | None
) -> Page[VersionSummary]:
    limit = check_limit(limit)
    server = visible_server_or_404(session, actor, server_name)
    tool_count = (
        select(func.count(Tool.id))
        .where(Tool.version_id == ServerVersion.id)
        .correlate(ServerVersion)
        .scalar_subquery()
    )
    stmt = (
        select(ServerVersion, tool_count)
        .where(ServerVersion.server_id == server.id)
        .order_by(ServerVersion.version_key.desc())
        .limit(limit + 1)
    )
    after = decode_cursor(cursor, str)
    if after:
        stmt = stmt.where(ServerVersion.version_key < after[0])
    rows, next_cursor = page_of(list(session.execute(stmt).all()), limit, lambda r: [r[0].version_key])
    return Page[VersionSummary](
        items=[
            VersionSummary(
                server=server.name,
                version=v.version,
                status=VersionStatus(v.status),
                is_latest=v.is_latest,
                tool_count=count,
                prompt_count=len(v.prompts or []),
                resource_count=len(v.resources or []) + len(v.resource_templates or []),
                created_at=v.created_at,
                updated_at=v.updated_at,
            )
            for v, count in rows
        ],
        next_cursor=next_cursor,
    )


def _authorise_transition(actor: Principal, server: Server, current: VersionStatus, target: VersionStatus) -> None:
    if target is VersionStatus.IN_REVIEW:
        require_owner_or_admin(actor, server, "submit versions of this server for review")
    elif target is VersionStatus.APPROVED and current is VersionStatus.DEPRECATED:
        require_owner_or_admin(actor, server, "reinstate a deprecated version")
    elif target in (VersionStatus.APPROVED, VersionStatus.REJECTED):
        require_reviewer(actor, f"mark a version {target.value}")
    elif target is VersionStatus.DEPRECATED:
        require_owner_or_admin(actor, server, "deprecate versions of this server")
    elif target is VersionStatus.REVOKED and not (actor.is_reviewer or is_owner(actor, server)):
        raise Forbidden("only reviewers, admins or the owning team may revoke a version")


def _apply_transition(
    session: Session,
    actor: Principal,
    version: ServerVersion,
    target: VersionStatus,
    reason: str | None,
    requirements: ReviewRequirements,
) -> None:
    current = VersionStatus(version.status)
    try:
        check_transition(current, target)
    except TransitionError as exc:
        raise Conflict(str(exc), field="status") from None
    server = version.server
    if target is VersionStatus.APPROVED and current is VersionStatus.IN_REVIEW:
        missing = requirements.missing(Classification(server.classification), decisions(version))
        if missing:
            raise Invalid(
                f"cannot approve: a {server.classification} server needs approving reviews of kind "
                f"{', '.join(k.value for k in missing)} (missing)",
                field="status",
                details=[{"field": "reviews", "reason": f"missing {k.value} approval"} for k in missing],
            )
    now = datetime.now(UTC)
    version.status = target.value
    version.status_changed_at = now
    version.status_message = reason
    version.updated_at = now
    if target is VersionStatus.IN_REVIEW:
        version.submitted_at = now
    if target is VersionStatus.APPROVED and version.published_at is None:
        version.published_at = now
    version.transitions.append(
        VersionTransition(from_status=current.value, to_status=target.value, actor=actor.subject, reason=reason)
    )
    session.flush()
    recompute_latest(session, server)


def change_status(
    session: Session,
    actor: Principal,
    server_name: str,
    version_str: str,
    target: VersionStatus,
    reason: str | None,
    requirements: ReviewRequirements,
) -> VersionOut:
    server = get_server(session, server_name, lock=True)
    if not can_see_unpublished(actor, server):
        raise NotFound(f"server {server_name!r} does not exist", field="name")
    version = load_version(session, server, version_str)
    _authorise_transition(actor, server, VersionStatus(version.status), target)
    if target is VersionStatus.IN_REVIEW and not (
        version.tools or version.prompts or version.resources or version.resource_templates
    ):
        raise Invalid(
            "a version must declare at least one tool, prompt, resource or resource template before review",
            field="tools",
        )
    _apply_transition(session, actor, version, target, reason, requirements)
    return version_out(version, requirements)


def require_may_review(session: Session, actor: Principal, server: Server, version: ServerVersion) -> None:
    """Separation of duties: no member of the owning team, nor of a team that owned the server during the
    review, reviews it (Forbidden says why; the review queue shows the same reason)."""
    if is_owner(actor, server):
        raise Forbidden(f"separation of duties: members of team {server.team.name} cannot review its servers")
    require_separation(session, actor, server, version)


def add_review(
    session: Session,
    actor: Principal,
    server_name: str,
    version_str: str,
    body: ReviewCreate,
    requirements: ReviewRequirements,
) -> VersionOut:
    """Record a review. The last required approval approves the version; a rejection rejects it."""
    server = get_server(session, server_name, lock=True)
    require_reviewer(actor, "review versions")
    version = load_version(session, server, version_str)
    require_may_review(session, actor, server, version)
    if version.status != VersionStatus.IN_REVIEW.value:
        raise Conflict(
            f"version {version_str} is {version.status}; only versions in_review take reviews", field="version"
        )
    version.reviews.append(
        Review(kind=body.kind.value, decision=body.decision.value, reviewer=actor.subject, notes=body.notes)
    )
    session.flush()
    if body.decision is ReviewDecision.REJECT:
        _apply_transition(
            session, actor, version, VersionStatus.REJECTED, f"{body.kind.value} review rejected", requirements
        )
    elif not requirements.missing(Classification(server.classification), decisions(version)):
        _apply_transition(
            session, actor, version, VersionStatus.APPROVED, "all required reviews approved", requirements
        )
    record_event(
        session, actor, "review.add", f"{server_name}@{version_str}", kind=body.kind.value, decision=body.decision.value
    )
    return version_out(version, requirements)
