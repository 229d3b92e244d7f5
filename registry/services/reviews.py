"""What a reviewer needs: the queue of versions waiting for reviews, and what changed in a version.

The queue says, per version, whether *this* reviewer may review it (and why not: separation of duties),
so the console can explain a refusal before the reviewer writes a note. The diff compares each tool's
definition — and each prompt, resource and resource template — with the previous approved version (the one
clients get today) and re-runs the poisoning lint on the texts as they are now, so rules added since the
submission are seen too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from governance import Classification, Principal, ReviewRequirements, VersionStatus, lint_description
from registry.db.models import Server, ServerVersion, Tool
from registry.errors import Forbidden
from registry.schemas.admin import (
    FieldChange,
    ItemChange,
    ItemKind,
    LintFindingOut,
    ReviewQueueItem,
    ToolChange,
    VersionDiff,
)
from registry.services.common import require_reviewer, visible_server_or_404
from registry.services.lifecycle import decisions
from registry.services.versions import item_texts, load_version, require_may_review, schema_texts

# The parts of a tool definition a reviewer compares; the hash changes when any of them does.
COMPARED = ("title", "description", "input_schema", "output_schema", "annotations")
# The same for prompts, resources and resource templates, in their (stored) wire names.
ITEM_COMPARED: dict[str, tuple[str, ...]] = {
    "prompt": ("title", "description", "arguments"),
    "resource": ("title", "description", "uri", "mimeType"),
    "resourceTemplate": ("title", "description", "uriTemplate", "mimeType"),
}


def review_queue(session: Session, actor: Principal, requirements: ReviewRequirements) -> list[ReviewQueueItem]:
    """Versions in review, oldest first, each with the kinds it still needs and whether `actor` may review it."""
    require_reviewer(actor, "see the review queue")
    rows = session.scalars(
        select(ServerVersion)
        .where(ServerVersion.status == VersionStatus.IN_REVIEW.value)
        .options(selectinload(ServerVersion.reviews), selectinload(ServerVersion.tools))
        .order_by(ServerVersion.submitted_at, ServerVersion.created_at)
    )
    items = []
    for version in rows:
        server = version.server
        classification = Classification(server.classification)
        reason = _why_not(session, actor, server, version)
        items.append(
            ReviewQueueItem(
                server=server.name,
                version=version.version,
                team=server.team.name,
                classification=classification,
                tool_count=len(version.tools),
                prompt_count=len(version.prompts or []),
                resource_count=len(version.resources or []) + len(version.resource_templates or []),
                submitted_by=version.created_by,
                submitted_at=version.submitted_at or version.created_at,
                required_reviews=requirements.required_for(classification),
                missing_reviews=requirements.missing(classification, decisions(version)),
                reviewed_by=sorted({r.reviewer for r in version.reviews}),
                can_review=reason is None,
                cannot_review_reason=reason,
            )
        )
    return items


def _why_not(session: Session, actor: Principal, server: Server, version: ServerVersion) -> str | None:
    """The reason `actor` may not review this version (the check `add_review` makes), or None."""
    try:
        require_may_review(session, actor, server, version)
    except Forbidden as exc:
        return exc.message
    return None


def version_diff(session: Session, actor: Principal, server_name: str, version_str: str) -> VersionDiff:
    """Each tool of a version against the previous approved version, with lint findings on its texts."""
    server = visible_server_or_404(session, actor, server_name)
    version = load_version(session, server, version_str)
    baseline = _previous_approved(server, version)
    before = {t.name: t for t in baseline.tools} if baseline else {}
    after = {t.name: t for t in version.tools}
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if new is None:
            assert old is not None
            changes.append(ToolChange(name=name, change="removed", before_hash=old.content_hash))
            continue
        fields = [] if old is None else _field_changes(old, new)
        change = "added" if old is None else ("changed" if fields else "unchanged")
        changes.append(
            ToolChange(
                name=name,
                change=change,
                before_hash=old.content_hash if old else None,
                after_hash=new.content_hash,
                fields=fields,
                lint=_lint(new),
            )
        )
    return VersionDiff(
        server=server.name,
        version=version.version,
        status=VersionStatus(version.status),
        against=baseline.version if baseline else None,
        tools=changes,
        prompts=_item_changes("prompt", baseline.prompts if baseline else [], version.prompts),
        resources=_item_changes("resource", baseline.resources if baseline else [], version.resources),
        resource_templates=_item_changes(
            "resourceTemplate", baseline.resource_templates if baseline else [], version.resource_templates
        ),
    )


def _item_changes(
    kind: ItemKind, baseline: list[dict[str, Any]] | None, current: list[dict[str, Any]] | None
) -> list[ItemChange]:
    """Prompts, resources or templates (stored wire shapes with their pins) by name, as tools are diffed."""
    before = {d["name"]: d for d in baseline or []}
    after = {d["name"]: d for d in current or []}
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if new is None:
            assert old is not None
            changes.append(ItemChange(kind=kind, name=name, change="removed", before_hash=old.get("contentHash")))
            continue
        fields = [] if old is None else _item_field_changes(kind, old, new)
        change = "added" if old is None else ("changed" if fields else "unchanged")
        changes.append(
            ItemChange(
                kind=kind,
                name=name,
                change=change,
                before_hash=old.get("contentHash") if old else None,
                after_hash=new.get("contentHash"),
                fields=fields,
                lint=[
                    LintFindingOut(field=field, rule=f.rule, message=f.message)
                    for field, text in item_texts(kind, new)
                    for f in lint_description(text)
                ],
            )
        )
    return changes


def _item_field_changes(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    changes = []
    for field in ITEM_COMPARED[kind]:
        was, now = old.get(field), new.get(field)
        if _norm(was) != _norm(now):
            changes.append(FieldChange(field=field, before=was, after=now))
    return changes


def _previous_approved(server: Server, version: ServerVersion) -> ServerVersion | None:
    """The highest approved (or deprecated: it was approved) version below this one."""
    earlier = [
        v
        for v in server.versions
        if v.status in (VersionStatus.APPROVED.value, VersionStatus.DEPRECATED.value)
        and v.version_key < version.version_key
    ]
    return max(earlier, key=lambda v: v.version_key, default=None)


def _field_changes(old: Tool, new: Tool) -> list[FieldChange]:
    changes = []
    for field in COMPARED:
        was, now = getattr(old, field), getattr(new, field)
        if _norm(was) != _norm(now):
            changes.append(FieldChange(field=_camel(field), before=was, after=now))
    return changes


def _norm(value: Any) -> Any:
    return None if value in ({}, [], "", None) else value


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def _lint(tool: Tool) -> list[LintFindingOut]:
    texts = [("description", tool.description), ("title", tool.title or "")]
    texts += schema_texts(tool.input_schema, "inputSchema")
    texts += schema_texts(tool.output_schema or {}, "outputSchema")
    texts += schema_texts(tool.annotations or {}, "annotations")
    return [
        LintFindingOut(field=field.removesuffix("(name)"), rule=f.rule, message=f.message)
        for field, text in texts
        for f in lint_description(text)
    ]


__all__ = ["review_queue", "version_diff"]
