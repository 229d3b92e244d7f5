"""Runtime normalization: the four layers combined, an in-memory lookup per URL.

Each layer says keep, drop or nothing about a parameter; a parameter is kept if any layer keeps
it, dropped if a layer drops it and none keeps it, and kept when no layer has an opinion (an
unknown parameter is never stripped on a guess). The learned layer is keyed by the URL's query
pattern *after* the priors and rules, so `utm_*` noise does not multiply the patterns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from tools.dedupe import priors
from tools.dedupe.model import DomainMap, PatternRule
from tools.dedupe.rules import RegexRule, RulesFile
from tools.dedupe.syntax import (
    MAX_URL_LENGTH,
    SIMPLE_URL,
    URLError,
    clip,
    normalize_path,
    parse_query,
    quote,
    split,
    unsplit,
)

Param = tuple[str, str | None]
Layer = Literal["syntax", "prior", "rule", "learned"]
_KEEP, _DROP, _NONE = 1, 0, 2
_CACHE_LIMIT = 50_000
_PLATFORM_MARKERS = re.compile("|".join(re.escape(m) for p in priors.PLATFORMS for m in p.path_markers))


class LayerVerdict(BaseModel):
    layer: Layer
    action: Literal["keep", "drop"]
    reason: str


class ParamDecision(BaseModel):
    name: str
    value: str | None
    kept: bool
    decided_by: Layer | Literal["default"]
    reason: str
    verdicts: list[LayerVerdict] = Field(default_factory=list)


class URLProblem(BaseModel):
    code: str = Field(description="empty, too_long, too_many_params, unsupported_scheme, malformed, invalid_port, "
                      "invalid_host, idn_homograph, invalid_percent_encoding, control_characters")  # fmt: skip
    message: str


class Explanation(BaseModel):
    url: str  # when the URL is refused: at most 200 characters of it, then its length (see syntax.clip)
    normalized: str | None
    error: URLProblem | None = None
    syntax: list[str] = Field(default_factory=list, description="What the syntax layer changed")
    pattern: list[str] = Field(default_factory=list, description="The query pattern the learned map is keyed by")
    map_version: int | None = Field(None, description="The learned map version consulted, if the domain has one")
    pattern_learned: bool = False
    params: list[ParamDecision] = Field(default_factory=list)


class NormalizeResult(BaseModel):
    url: str  # when the URL is refused: at most 200 characters of it, then its length (see syntax.clip)
    normalized: str | None
    error: URLProblem | None = None


@dataclass(slots=True)
class Prepared:
    """A URL after syntax, priors and rules: what the learner renders and tests."""

    host: str
    base: str  # scheme://host[:port]/path
    fixed: list[Param]  # kept by a prior or rule: tested only for default values
    candidates: list[Param]  # no verdict yet: the learned layer decides
    pattern: tuple[str, ...]

    def url(self, without: frozenset[str] = frozenset()) -> str:
        params = sorted((p for p in [*self.fixed, *self.candidates] if p[0] not in without), key=_param_key)
        return unsplit(self.base, "", params)


@dataclass(slots=True)
class _Learned:
    important: frozenset[str]
    defaults: dict[str, frozenset[str]]


@dataclass(slots=True)
class _Fallback:
    """Domain-wide verdicts for query patterns the map has no rule for."""

    neutral: frozenset[str]
    defaults: dict[str, frozenset[str]]


class _Host:
    """Everything about one host that does not depend on the rest of the URL, computed once."""

    __slots__ = ("domain_map", "fallback", "host", "host_platforms", "learned", "name_rules", "names", "other_rules")

    def __init__(self, host: str, rules: Sequence[RegexRule], configured: dict[str, str], domain_map: DomainMap | None):
        self.host = host
        self.host_platforms = tuple(priors.platforms_for(host, "", configured))
        applicable = [r for r in rules if r.applies_to_host(host)]
        self.name_rules = [r for r in applicable if r.name_only]
        self.other_rules = [r for r in applicable if not r.name_only]
        self.names: dict[tuple[priors.Platform, ...], dict[str, int]] = {}
        self.domain_map = domain_map
        self.learned: dict[tuple[str, ...], _Learned] | None = None
        self.fallback = _Fallback(frozenset(), {})
        if domain_map is not None:
            self.learned = {rule.key: _learned(rule, domain_map) for rule in domain_map.patterns}
            self.fallback = _Fallback(
                frozenset(name for name, p in domain_map.params.items() if p.neutral),
                {name: frozenset(p.defaults) for name, p in domain_map.params.items() if p.defaults},
            )

    def verdicts(self, platforms: tuple[priors.Platform, ...]) -> dict[str, int]:
        """The verdict cache for URLs served by `platforms` (almost always just the host's)."""
        names = self.names.get(platforms)
        if names is None:
            names = self.names[platforms] = {}
        return names

    def name_verdict(self, name: str, platforms: tuple[priors.Platform, ...]) -> int:
        """Prior + name-only rules, cached: keep if any keeps, drop if any drops, else none."""
        names = self.verdicts(platforms)
        verdict = names.get(name)
        if verdict is None:
            keep = any(p.keeps(name) for p in platforms) or any(
                r.action == "keep" and r.matches_name(name) for r in self.name_rules
            )
            drop = priors.tracking_reason(name) is not None or any(
                r.action == "drop" and r.matches_name(name) for r in self.name_rules
            )
            verdict = _KEEP if keep else _DROP if drop else _NONE
            if len(names) < _CACHE_LIMIT:
                names[name] = verdict
        return verdict


class Normalizer:
    """Syntax + priors + regex rules + learned maps. Thread-compatible; rebuild to pick up new maps.

    Learned default values (`page=1`) are not a verdict on the parameter but a spelling of "absent":
    they are removed even where a prior or rule keeps the parameter.
    """

    def __init__(
        self,
        maps: Iterable[DomainMap] = (),
        rules: RulesFile | None = None,
        max_length: int = MAX_URL_LENGTH,
    ) -> None:
        self.rules = rules or RulesFile()
        self.maps = {m.domain: m for m in maps}
        self.max_length = max_length
        self._hosts: dict[str, _Host] = {}
        self._origins: dict[str, tuple[str, _Host]] = {}

    def _host(self, host: str) -> _Host:
        ctx = self._hosts.get(host)
        if ctx is None:
            ctx = _Host(host, self.rules.rules, self.rules.platforms, self.maps.get(host))
            if len(self._hosts) >= _CACHE_LIMIT:
                self._hosts.clear()
            self._hosts[host] = ctx
        return ctx

    def _origin(self, raw_origin: str) -> tuple[str, _Host]:
        parts = split(raw_origin, max_length=self.max_length)  # raises URLError for a bad host or port
        entry = (parts.origin, self._host(parts.host))
        if len(self._origins) >= _CACHE_LIMIT:
            self._origins.clear()
        self._origins[raw_origin] = entry
        return entry

    def _platforms(self, ctx: _Host, path: str) -> tuple[priors.Platform, ...]:
        extra = tuple(
            p for p in priors.PLATFORMS if p not in ctx.host_platforms and any(m in path for m in p.path_markers)
        )
        return ctx.host_platforms + extra if extra else ctx.host_platforms

    def _partition(self, ctx: _Host, params: list[Param], path: str) -> tuple[list[Param], list[Param]]:
        platforms = self._platforms(ctx, path)
        fixed: list[Param] = []
        open_: list[Param] = []
        for param in params:
            verdict = ctx.name_verdict(param[0], platforms)
            if ctx.other_rules:
                verdict = _with_value_rules(verdict, ctx.other_rules, param, path)
            if verdict == _KEEP:
                fixed.append(param)
            elif verdict == _NONE:
                open_.append(param)
        return fixed, open_

    # -- the hot path -------------------------------------------------------------------------

    def normalize(self, url: str) -> str:
        """The canonical URL; raises URLError for a URL it refuses."""
        simple = SIMPLE_URL.fullmatch(url) if len(url) <= self.max_length else None
        if simple is not None:
            # Fast path: one cache hit maps the raw "scheme://authority" to its origin and host.
            raw_origin = url[: simple.end(2)]
            entry = self._origins.get(raw_origin)
            if entry is None:
                entry = self._origin(raw_origin)
            origin, ctx = entry
            path = simple.group(3)
            if not path:
                path = "/"
            elif "//" in path or "/." in path:
                path = normalize_path(path)
            query = simple.group(4)
            params = parse_query(query) if query else []
        else:
            parts = split(url, max_length=self.max_length)
            origin, path, params = parts.origin, parts.path, parts.params
            ctx = self._hosts.get(parts.host) or self._host(parts.host)
        if ";" in path:
            path = priors.SESSION_PATH_PARAM.sub("", path)
        if not params:
            return origin + path
        platforms = ctx.host_platforms if _PLATFORM_MARKERS.search(path) is None else self._platforms(ctx, path)
        names = ctx.verdicts(platforms)
        other_rules = ctx.other_rules
        # One pass: each parameter's verdict from priors and rules, and the query pattern (params
        # arrive sorted by name, so repeats of a multi-valued name are adjacent).
        verdicts: list[int] = []
        pattern: list[str] = []
        for param in params:
            name = param[0]
            verdict = names.get(name)
            if verdict is None:
                verdict = ctx.name_verdict(name, platforms)
            if other_rules:
                verdict = _with_value_rules(verdict, other_rules, param, path)
            verdicts.append(verdict)
            if verdict != _DROP and (not pattern or pattern[-1] != name):
                pattern.append(name)
        learned = ctx.learned
        if learned is None:
            kept = [p for p, v in zip(params, verdicts, strict=True) if v != _DROP]
            return unsplit(origin, path, kept)
        rule = learned.get(tuple(pattern))
        if rule is not None:
            important, neutral, defaults = rule.important, None, rule.defaults
        else:
            important, neutral, defaults = None, ctx.fallback.neutral, ctx.fallback.defaults
        kept = []
        for param, verdict in zip(params, verdicts, strict=True):
            if verdict == _DROP:
                continue
            if defaults and (param[1] or "") in defaults.get(param[0], ()):
                continue  # a default value is the parameter left out
            if verdict == _NONE and (param[0] not in important if important is not None else param[0] in neutral):  # type: ignore[operator]
                continue
            kept.append(param)
        return unsplit(origin, path, kept)

    def normalize_many(self, urls: Iterable[str]) -> list[NormalizeResult]:
        """One result per URL, in order; a bad URL gets an error, never fails the batch."""
        results: list[NormalizeResult] = []
        for url in urls:
            try:
                results.append(NormalizeResult(url=url, normalized=self.normalize(url)))
            except URLError as exc:
                problem = URLProblem(code=exc.code, message=exc.message)
                results.append(NormalizeResult(url=clip(url), normalized=None, error=problem))
        return results

    # -- for the learner ----------------------------------------------------------------------

    def prepare(self, url: str) -> Prepared:
        """Apply every layer but the learned one; raises URLError."""
        parts = split(url, max_length=self.max_length)
        ctx = self._host(parts.host)
        path = priors.SESSION_PATH_PARAM.sub("", parts.path) if ";" in parts.path else parts.path
        fixed, open_ = self._partition(ctx, parts.params, path)
        return Prepared(parts.host, parts.origin + path, fixed, open_, _pattern(fixed, open_))

    # -- explain ------------------------------------------------------------------------------

    def explain(self, url: str) -> Explanation:
        """Which layer kept or dropped each parameter, and what the syntax layer changed."""
        notes: list[str] = []
        try:
            parts = split(url, notes=notes, max_length=self.max_length)
        except URLError as exc:
            return Explanation(url=clip(url), normalized=None, error=URLProblem(code=exc.code, message=exc.message))
        ctx = self._host(parts.host)
        path = parts.path
        if ";" in path:
            stripped = priors.SESSION_PATH_PARAM.sub("", path)
            if stripped != path:
                notes.append("session token removed from the path (prior)")
            path = stripped
        platforms = self._platforms(ctx, path)
        decisions = [
            ParamDecision(
                name=name, value=value, kept=True, decided_by="default", reason="",
                verdicts=_explain_pre_learned(ctx, platforms, name, value, path),
            )
            for name, value in parts.params
        ]  # fmt: skip
        in_pattern = [d for d in decisions if not d.verdicts or any(v.action == "keep" for v in d.verdicts)]
        pattern = tuple(sorted({d.name for d in in_pattern}))
        rule = ctx.learned.get(pattern) if ctx.learned is not None else None
        domain_map = ctx.domain_map
        if domain_map is not None:
            for d in in_pattern:
                verdict = _explain_learned(domain_map, rule, pattern, d)
                if verdict is not None:
                    d.verdicts.append(verdict)
        for d in decisions:
            default = next((v for v in d.verdicts if v.reason.startswith("default value")), None)
            keeps = [v for v in d.verdicts if v.action == "keep"]
            drops = [v for v in d.verdicts if v.action == "drop"]
            if default is not None:
                d.kept, d.decided_by, d.reason = False, "learned", default.reason
            elif keeps:
                d.kept, d.decided_by, d.reason = True, keeps[0].layer, keeps[0].reason
            elif drops:
                d.kept, d.decided_by, d.reason = False, drops[0].layer, drops[0].reason
            elif domain_map is None:
                d.kept, d.decided_by = True, "default"
                d.reason = "no layer has an opinion and the domain has no learned map: kept"
            else:
                d.kept, d.decided_by = True, "default"
                d.reason = "not learned for this domain: kept"
        return Explanation(
            url=url,
            normalized=self.normalize(url),
            syntax=notes,
            pattern=list(pattern),
            map_version=domain_map.version if domain_map is not None else None,
            pattern_learned=rule is not None,
            params=decisions,
        )


def _learned(rule: PatternRule, domain_map: DomainMap) -> _Learned:
    """A pattern's rule; its defaults include the domain's, unless this pattern saw that value matter."""
    defaults = {name: set(values) for name, values in rule.defaults.items()}
    for name, param in domain_map.params.items():
        if param.defaults and name in rule.params:
            evidence = rule.evidence.get(name)
            changed = set(evidence.changed_values) if evidence else set()
            defaults.setdefault(name, set()).update(set(param.defaults) - changed)
    return _Learned(frozenset(rule.important), {k: frozenset(v) for k, v in defaults.items() if v})


def _explain_learned(
    domain_map: DomainMap, rule: _Learned | None, pattern: tuple[str, ...], d: ParamDecision
) -> LayerVerdict | None:
    value = d.value or ""
    pre_kept = any(v.action == "keep" for v in d.verdicts)
    if rule is not None:
        if value in rule.defaults.get(d.name, ()):
            return LayerVerdict(
                layer="learned", action="drop", reason=f"default value {quote(value)}: the same page as leaving it out"
            )
        if pre_kept:
            return None
        if d.name in rule.important:
            return LayerVerdict(
                layer="learned",
                action="keep",
                reason=_evidence(domain_map, pattern, d.name, "important: changes the page"),
            )
        return LayerVerdict(
            layer="learned",
            action="drop",
            reason=_evidence(domain_map, pattern, d.name, "neutral: the page is the same without it"),
        )
    summary = domain_map.params.get(d.name)
    if summary is None:
        return None
    if value in summary.defaults:
        return LayerVerdict(
            layer="learned",
            action="drop",
            reason=f"default value {quote(value)} across the domain: the same page as leaving it out",
        )
    if summary.neutral and not pre_kept:
        return LayerVerdict(
            layer="learned", action="drop",
            reason=f"pattern not learned; neutral in all {summary.patterns} learned pattern(s) with it "
            f"({summary.changes}/{summary.tests} renders changed, map v{domain_map.version})",
        )  # fmt: skip
    return None


def _param_key(param: Param) -> tuple[str, str]:
    return param[0], param[1] or ""


def _pattern(fixed: list[Param], open_: list[Param]) -> tuple[str, ...]:
    names = [p[0] for p in fixed] + [p[0] for p in open_] if fixed else [p[0] for p in open_]
    if fixed:
        return tuple(sorted(set(names)))
    # Params arrive sorted by name: drop repeats of a multi-valued name without a set + sort.
    out: list[str] = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return tuple(out)


def _with_value_rules(verdict: int, rules: list[RegexRule], param: Param, path: str) -> int:
    keep = verdict == _KEEP
    drop = verdict == _DROP
    for rule in rules:
        if rule.matches(param[0], param[1], path):
            if rule.action == "keep":
                keep = True
            else:
                drop = True
    return _KEEP if keep else _DROP if drop else _NONE


def _explain_pre_learned(
    ctx: _Host, platforms: tuple[priors.Platform, ...], name: str, value: str | None, path: str
) -> list[LayerVerdict]:
    verdicts: list[LayerVerdict] = []
    reason = priors.tracking_reason(name)
    if reason:
        verdicts.append(LayerVerdict(layer="prior", action="drop", reason=reason))
    for platform in platforms:
        if platform.keeps(name):
            verdicts.append(LayerVerdict(layer="prior", action="keep", reason=f"{platform.name} allowlist"))
    for rule in [*ctx.name_rules, *ctx.other_rules]:
        if rule.matches(name, value, path):
            verdicts.append(LayerVerdict(layer="rule", action=rule.action, reason=rule.describe()))
    return verdicts


def _evidence(domain_map: DomainMap, pattern: tuple[str, ...], name: str, verdict: str) -> str:
    rule = domain_map.pattern(pattern)
    evidence = rule.evidence.get(name) if rule else None
    where = f"map v{domain_map.version}, pattern [{', '.join(pattern)}]"
    if evidence is None:
        return f"{verdict} ({where})"
    return f"{verdict} ({where}: {evidence.changes}/{evidence.tests} renders changed; {evidence.reason})"
