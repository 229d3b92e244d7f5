"""The `dedupe` MCP server: a thin adapter over the library and the service.

Read-only tools normalize, cluster and explain; `learn_rules` fetches pages and writes a new map
version, so it is annotated as not read-only and open-world (the gateway asks for approval).
"""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from bastion_sdk import current_caller
from tools.dedupe.fingerprint import Fingerprinter
from tools.dedupe.model import LearnSettings, MapDiff
from tools.dedupe.normalizer import Explanation, Normalizer, NormalizeResult, URLProblem
from tools.dedupe.sampling import LogSource
from tools.dedupe.service import DedupeError, DedupeService, DedupeSettings, LearnOutcome
from tools.dedupe.store import MapNotFound, MapVersion
from tools.dedupe.syntax import URLError
from tools.wire import lean

MAX_URLS = 10_000
MAX_INLINE_LOG = 100_000

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class NormalizeResponse(BaseModel):
    results: list[NormalizeResult]
    errors: int
    maps: dict[str, int] = Field(description="Learned map version used per domain (domains in the input only)")


class Cluster(BaseModel):
    canonical: str
    urls: list[str]


class DedupeResponse(BaseModel):
    clusters: list[Cluster] = Field(description="Largest first; every input URL is in exactly one cluster or in errors")
    errors: list[NormalizeResult]
    urls: int
    reduction: float = Field(description="1 − clusters / valid URLs: the share of fetches dedupe saves")


def _maps_used(normalizer: Normalizer, results: list[NormalizeResult]) -> dict[str, int]:
    """The learned map version per host of the input that has one (the normalizer that produced `results`)."""
    hosts = {r.normalized.split("/", 3)[2].rsplit(":", 1)[0] for r in results if r.normalized is not None}
    return {host: normalizer.maps[host].version for host in sorted(hosts) if host in normalizer.maps}


def build(settings: DedupeSettings | None = None) -> MCPServer[Any]:
    service = DedupeService(settings)
    server: MCPServer[Any] = MCPServer(
        "dev.bastion/dedupe",
        title="URL dedupe",
        description="Normalize and deduplicate URLs with learned per-domain rules (MIQPS), and learn new rules.",
    )

    def check_batch(urls: list[str]) -> None:
        if len(urls) > MAX_URLS:
            raise ToolError(f"{len(urls)} URLs; at most {MAX_URLS} per call")

    @server.tool(annotations=READ_ONLY)
    def normalize_urls(urls: list[str] = Field(description="URLs to normalize (at most 10,000)")) -> NormalizeResponse:
        """Canonical form of each URL: syntax, known tracking parameters, rules and the learned maps.

        A URL that cannot be normalized gets an error (code and message) in its result; the others still succeed.
        """
        check_batch(urls)
        normalizer = service.normalizer()
        results = normalizer.normalize_many(urls)
        return NormalizeResponse(
            results=results, errors=sum(r.error is not None for r in results), maps=_maps_used(normalizer, results)
        )

    @server.tool(annotations=READ_ONLY)
    def dedupe_urls(urls: list[str] = Field(description="URLs to group (at most 10,000)")) -> DedupeResponse:
        """Group URLs that show the same content; each cluster has the canonical URL to fetch once."""
        check_batch(urls)
        results = service.normalizer().normalize_many(urls)
        clusters: dict[str, list[str]] = {}
        errors: list[NormalizeResult] = []
        for result in results:
            if result.normalized is None:
                errors.append(result)
            else:
                clusters.setdefault(result.normalized, []).append(result.url)
        valid = len(results) - len(errors)
        ordered = sorted(clusters.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        return DedupeResponse(
            clusters=[Cluster(canonical=c, urls=u) for c, u in ordered],
            errors=errors,
            urls=len(urls),
            reduction=round(1 - len(clusters) / valid, 6) if valid else 0.0,
        )

    @server.tool(annotations=READ_ONLY)
    def explain_url(url: str = Field(max_length=100_000)) -> Explanation:
        """Why the URL normalizes as it does: what the syntax layer changed and which layer kept or
        dropped each parameter (prior, rule, learned map with its evidence, or no opinion)."""
        return service.normalizer().explain(url)

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
        )
    )
    async def learn_rules(
        ctx: Context,
        domain: str = Field(min_length=1, max_length=253, description="The host to learn, e.g. www.example.com"),
        source: str | None = Field(
            None, description="A log file in the server's log directory (.txt, .csv or .parquet with a `url` column)"
        ),
        urls: list[str] | None = Field(None, description="Or the log itself, inline (at most 100,000 URLs)"),
        fingerprint: Literal["simhash", "dom", "title_og", "table"] = Field(
            "simhash", description="How pages are compared; `table` uses the log's `fingerprint` column, no fetching"
        ),
        method: Literal["group", "fixed"] = "group",
        top_patterns: int = Field(50, ge=1, le=10_000, description="K"),
        max_samples: int = Field(20, ge=1, le=1000, description="S"),
        threshold: float = Field(0.1, gt=0, le=1, description="T"),
        min_samples: int = Field(5, ge=1, le=1000, description="N"),
        override_gate: bool = Field(False, description="Publish even if the anomaly gate rejects the map"),
    ) -> LearnOutcome:
        """Learn which query parameters change page content on `domain` and publish a new map version.

        Fetches pages (rate-limited per domain) unless fingerprints come from the log. The new version
        becomes active unless the anomaly gate rejects it; the result includes a diff against the
        previous version.
        """
        if (source is None) == (urls is None):
            raise ToolError("give exactly one of `source` (a log file) or `urls` (an inline log)")
        if urls is not None and len(urls) > MAX_INLINE_LOG:
            raise ToolError(f"{len(urls)} inline URLs; at most {MAX_INLINE_LOG} (put bigger logs in a file)")
        try:
            log: LogSource
            fingerprints: dict[str, str] | None = None
            if source is not None and fingerprint == "table":
                log, fingerprints = service.read_log(source)
            elif source is not None:
                log = service.log_source(source)  # a .csv/.parquet log is read by the engine, all of it
            else:
                log = list(urls or [])
            fingerprinter: Fingerprinter
            fingerprinter, close = service.fingerprinter(fingerprint, fingerprints)
        except DedupeError as exc:
            raise ToolError(str(exc)) from None
        settings = LearnSettings(
            method=method,
            top_patterns=top_patterns,
            max_samples=max_samples,
            threshold=threshold,
            min_samples=min_samples,
        )
        caller = current_caller()

        try:
            ctx.request_context  # noqa: B018 - raises outside a request (a direct call_tool)
            in_request = True
        except ValueError:
            in_request = False

        async def progress(done: int, total: int) -> None:
            if in_request:
                await ctx.report_progress(done, total, f"{done}/{total} query patterns tested")

        try:
            outcome = await service.learn(
                domain,
                log,
                fingerprinter,
                settings,
                source=source or f"inline ({len(urls or [])} URLs)",
                created_by=caller.subject if caller else None,
                override_gate=override_gate,
                progress=progress,
            )
        except (DedupeError, URLError) as exc:
            raise ToolError(str(exc)) from None
        finally:
            if close is not None:
                await close()
        return outcome

    @server.tool(annotations=READ_ONLY)
    def rules_diff(
        domain: str = Field(min_length=1, max_length=253),
        v1: int = Field(ge=1),
        v2: int = Field(ge=1),
    ) -> MapDiff:
        """What changed between two map versions of a domain: patterns added or removed, parameters
        that became important or neutral, default values."""
        try:
            return service.diff(domain.strip().lower(), v1, v2)
        except MapNotFound as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=READ_ONLY)
    def rule_versions(domain: str | None = Field(None, max_length=253)) -> list[MapVersion]:
        """The learned map versions (all domains, or one): status, size, renders and the gate's verdict."""
        return service.store.versions(domain.strip().lower() if domain else None)

    return lean(server)


__all__ = ["URLProblem", "build"]
