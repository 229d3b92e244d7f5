"""Learning which parameters change the content: MIQPS, published and improved.

`fixed` is the published method: per parameter of each top pattern, up to S URLs with different
values; render each with and without the parameter; important when the page changes in ≥ T of the
tests; stop once the verdict cannot change; fewer than N samples keeps the parameter.

`group` goes further, with the same samples and the same decision threshold:
- group testing: strip every undecided parameter at once; only when the page changes, split the
  group in halves (adaptive binary splitting) — one render pair clears many neutral parameters;
- sequential stopping: a parameter is decided as soon as a one-sided binomial test at the given
  confidence puts its change rate above or below T, instead of after a fixed count;
- default values: a value whose removal never changes the page (on ≥ 2 URLs) while other values
  do is a default (`page=1`): treated as absent at runtime, and not counted against the parameter;
- evidence shared across a domain's patterns: a tracking parameter is neutral wherever it appears,
  so once the domain's pooled tests are confident, a pattern needs only N agreeing tests of its own
  (any disagreement falls back to the full per-pattern test).
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tools.dedupe.fingerprint import Fingerprint, Fingerprinter
from tools.dedupe.model import DomainMap, DomainParam, LearnSettings, ParamEvidence, PatternRule
from tools.dedupe.normalizer import Prepared
from tools.dedupe.sampling import PatternSample

POOL_LIMIT = 60  # URLs a pattern's group tests may draw on
DEFAULT_CONFIRMATIONS = 2
# Tests a pattern needs of its own when the domain's pooled evidence already agrees.
CONFIRMATIONS = 3


class RenderCache:
    """Fingerprints by URL, fetched once; counts renders (the cost the learner minimises)."""

    def __init__(self, fingerprinter: Fingerprinter) -> None:
        self.fingerprinter = fingerprinter
        self.cache: dict[str, Fingerprint | None] = {}
        self._pending: dict[str, asyncio.Future[Fingerprint | None]] = {}
        self.renders = 0

    async def get(self, url: str) -> Fingerprint | None:
        if url in self.cache:
            return self.cache[url]
        pending = self._pending.get(url)
        if pending is not None:
            return await pending
        future: asyncio.Future[Fingerprint | None] = asyncio.get_running_loop().create_future()
        self._pending[url] = future
        self.renders += 1
        try:
            # A fingerprinter returns None for a page it cannot get; an exception (say, a refused
            # host) stops learning rather than being mistaken for evidence.
            result = await self.fingerprinter(url)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            del self._pending[url]
            raise
        self.cache[url] = result
        future.set_result(result)
        del self._pending[url]
        return result


def binomial_tail_ge(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def binomial_tail_le(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


@dataclass(slots=True)
class _Stats:
    tests: int = 0
    changes: int = 0
    values: dict[str, list[int]] = field(default_factory=dict)  # value → [tests, changes]
    decided: str | None = None  # important | neutral
    reason: str = ""
    prior_kept: bool = False  # kept by a prior or rule: only its default values are learned

    def record(self, value: str, changed: bool) -> None:
        self.tests += 1
        self.changes += changed
        counts = self.values.setdefault(value, [0, 0])
        counts[0] += 1
        counts[1] += changed

    def defaults(self) -> list[str]:
        """Values whose removal never changed the page on ≥ 2 URLs, while other values did.

        For a parameter a prior keeps, the other values need not have changed: the prior already
        says the parameter matters.
        """
        if self.changes == 0 and not self.prior_kept:
            return []
        return sorted(
            v for v, (tests, changes) in self.values.items() if changes == 0 and tests >= DEFAULT_CONFIRMATIONS
        )

    def rate_without_defaults(self) -> tuple[int, int]:
        defaults = set(self.defaults())
        tests = sum(t for v, (t, _) in self.values.items() if v not in defaults)
        changes = sum(c for v, (_, c) in self.values.items() if v not in defaults)
        return tests, changes


def _value_of(prep: Prepared, name: str) -> str:
    return ",".join(sorted(v or "" for n, v in [*prep.fixed, *prep.candidates] if n == name))


def _usable(base: Fingerprint | None) -> bool:
    """An error page as the base says nothing: removing a parameter from it leaves an error page."""
    return base is not None and base.status < 400


async def _changed(cache: RenderCache, prep: Prepared, name: str | frozenset[str], base: Fingerprint) -> bool | None:
    without = frozenset([name]) if isinstance(name, str) else name
    other = await cache.get(prep.url(without=without))
    return None if other is None else not base.same(other)


# -- the published method ---------------------------------------------------------------------


async def learn_pattern_fixed(sample: PatternSample, cache: RenderCache, settings: LearnSettings) -> PatternRule:
    evidence: dict[str, ParamEvidence] = {}
    important: list[str] = []
    names = sorted({n for preps in sample.by_param.values() for p in preps for n, _ in p.candidates})
    for name in names:
        samples = sample.by_param.get(name, [])[: settings.max_samples]
        planned = len(samples)
        needed = math.ceil(settings.threshold * planned) if planned else 1
        tests = changes = 0
        for i, prep in enumerate(samples):
            base = await cache.get(prep.url())
            changed = None if not _usable(base) else await _changed(cache, prep, name, base)  # type: ignore[arg-type]
            if changed is None:
                continue
            tests += 1
            changes += changed
            remaining = planned - i - 1
            if tests >= settings.min_samples and (changes >= needed or changes + remaining < needed):
                break  # the verdict can no longer change
        if tests < settings.min_samples:
            verdict, reason = "kept_few_samples", f"only {tests} test(s); fewer than N={settings.min_samples}: kept"
        elif changes / tests >= settings.threshold:
            verdict, reason = "important", f"changed the page in {changes}/{tests} ≥ T={settings.threshold:.0%}"
        else:
            verdict, reason = "neutral", f"changed the page in {changes}/{tests} < T={settings.threshold:.0%}"
        evidence[name] = ParamEvidence(tests=tests, changes=changes, verdict=verdict, reason=reason)
        if verdict != "neutral":
            important.append(name)
    return PatternRule(params=list(sample.pattern), urls=sample.urls, important=important, evidence=evidence)


# -- group testing + sequential stopping + default values ---------------------------------------


async def _find_changers(
    cache: RenderCache, prep: Prepared, base: Fingerprint, group: list[str], known_positive: bool = False
) -> set[str] | None:
    """Which members of `group` change the page when removed (adaptive binary splitting)."""
    if not known_positive:
        changed = await _changed(cache, prep, frozenset(group), base)
        if changed is None:
            return None
        if not changed:
            return set()
    if len(group) == 1:
        return set(group)
    half = len(group) // 2
    left = await _find_changers(cache, prep, base, group[:half])
    if left is None:
        return None
    right = await _find_changers(cache, prep, base, group[half:], known_positive=not left)
    if right is None:
        return None
    if not left and not right:
        return set(group)  # only removing them together changes the page: keep them all
    return left | right


class DomainEvidence:
    """Tests of each parameter name pooled over a domain's patterns."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}  # name → [tests, changes]

    def record(self, name: str, changed: bool) -> None:
        counts = self.counts.setdefault(name, [0, 0])
        counts[0] += 1
        counts[1] += changed

    def verdict(self, name: str, settings: LearnSettings) -> str | None:
        n, k = self.counts.get(name, (0, 0))
        return _confident(n, k, settings)


def _confident(n: int, k: int, settings: LearnSettings) -> str | None:
    alpha, t = 1 - settings.confidence, settings.threshold
    if k and binomial_tail_ge(k, n, t) <= alpha:
        return "important"
    if n >= settings.min_samples and binomial_tail_le(k, n, t) <= alpha:
        return "neutral"
    return None


def _sequential(name: str, stats: _Stats, settings: LearnSettings, domain: DomainEvidence) -> None:
    if stats.decided is not None:
        return
    n, k, t = stats.tests, stats.changes, settings.threshold
    verdict = _confident(n, k, settings)
    if verdict is not None:
        stats.decided = verdict
        word = ">" if verdict == "important" else "<"
        stats.reason = f"{k}/{n} changed: rate {word} T={t:.0%} at {settings.confidence:.0%} confidence"
        return
    pooled = domain.verdict(name, settings)
    dn, dk = domain.counts.get(name, (0, 0))
    if pooled == "neutral" and k == 0 and n >= min(settings.min_samples, CONFIRMATIONS):
        stats.decided = "neutral"
        stats.reason = f"0/{n} changed here; neutral across the domain ({dk}/{dn} changed)"
    elif pooled == "important" and k >= 1 and k == n:
        stats.decided = "important"
        stats.reason = f"{k}/{n} changed here; important across the domain ({dk}/{dn} changed)"


async def learn_pattern_group(
    sample: PatternSample, cache: RenderCache, settings: LearnSettings, domain: DomainEvidence | None = None
) -> PatternRule:
    domain = domain if domain is not None else DomainEvidence()
    pool = sample.pool()[:POOL_LIMIT]
    names = sorted({n for p in pool for n, _ in p.candidates})
    stats = {name: _Stats() for name in names}
    # Parameters a prior or rule keeps are not tested for importance, only for default values.
    for name in sorted({n for p in pool for n, _ in p.fixed}):
        stats[name] = _Stats(decided="important", reason="kept by a prior or rule", prior_kept=True)
    value_counts: dict[str, Counter[str]] = {}
    for prep in pool:
        for name in {n for n, _ in [*prep.fixed, *prep.candidates]}:
            value_counts.setdefault(name, Counter())[_value_of(prep, name)] += 1
    for name, counts in sample.value_counts.items():
        value_counts.setdefault(name, Counter()).update({v: c for v, c in counts.items() if c >= 2})
    frequent = {name: {v for v, c in counts.items() if c >= 2} for name, counts in value_counts.items()}
    for prep in pool:
        values = {name: _value_of(prep, name) for name in {n for n, _ in [*prep.fixed, *prep.candidates]}}
        group: list[str] = []
        for name, value in values.items():
            st = stats[name]
            if st.decided is None and st.tests < settings.max_samples:
                group.append(name)
            elif st.decided == "important" and value in frequent.get(name, ()):
                tested = st.values.get(value, [0, 0])
                if tested[1] == 0 and tested[0] < DEFAULT_CONFIRMATIONS:
                    group.append(name)  # a possible default value: confirm it rides along
        if not group:
            continue  # costs nothing: a later URL may still carry a default value to confirm
        base = await cache.get(prep.url())
        if base is None or not _usable(base):
            continue
        changers = await _find_changers(cache, prep, base, sorted(group))
        if changers is None:
            continue
        for name in group:
            stats[name].record(values[name], name in changers)
            domain.record(name, name in changers)
            _sequential(name, stats[name], settings, domain)

    evidence: dict[str, ParamEvidence] = {}
    important: list[str] = []
    defaults: dict[str, list[str]] = {}
    for name, st in stats.items():
        tests, changes = st.rate_without_defaults()
        dn, dk = domain.counts.get(name, (0, 0))
        if st.decided is not None:
            verdict, reason = st.decided, st.reason
        elif st.tests >= 2 and st.changes == 0 and domain.verdict(name, settings) == "neutral":
            verdict = "neutral"
            reason = f"0/{st.tests} changed here (all the samples there were); neutral across the domain ({dk}/{dn})"
        elif st.tests < settings.min_samples:
            verdict, reason = "kept_few_samples", f"only {st.tests} test(s); fewer than N={settings.min_samples}: kept"
        elif tests and changes / tests >= settings.threshold:
            verdict, reason = "important", f"{changes}/{tests} non-default tests changed ≥ T={settings.threshold:.0%}"
        else:
            verdict, reason = (
                "neutral",
                f"{changes}/{max(tests, 0)} non-default tests changed < T={settings.threshold:.0%}",
            )
        if verdict == "neutral" and st.changes and not tests:
            verdict, reason = "important", "changed the page with every non-default value"
        if verdict != "neutral":
            important.append(name)
            if st.defaults():
                defaults[name] = st.defaults()
        changed_values = sorted(v for v, (_, c) in st.values.items() if c)[:50]
        evidence[name] = ParamEvidence(
            tests=st.tests,
            changes=st.changes,
            verdict=verdict,
            reason=reason,
            changed_values=changed_values,
        )
    return PatternRule(
        params=list(sample.pattern), urls=sample.urls, important=important, defaults=defaults, evidence=evidence
    )


# -- a domain -----------------------------------------------------------------------------------


async def learn_domain(
    domain: str,
    samples: list[PatternSample],
    fingerprinter: Fingerprinter,
    settings: LearnSettings,
    *,
    log_urls: int = 0,
    source: str = "",
    progress: Callable[[int, int], Awaitable[None] | None] | None = None,
) -> DomainMap:
    """Learn a domain's map from its sampled patterns, most frequent first.

    Patterns run one after another so the evidence pooled from the frequent ones shortens the
    rare ones; learn several domains at once for throughput (the fetcher rate-limits per domain).
    """
    cache = RenderCache(fingerprinter)
    evidence = DomainEvidence()
    mine = sorted((s for s in samples if s.host == domain), key=lambda s: (-s.urls, s.pattern))
    rules: list[PatternRule] = []
    for done, sample in enumerate(mine, 1):
        if settings.method == "group":
            rules.append(await learn_pattern_group(sample, cache, settings, evidence))
        else:
            rules.append(await learn_pattern_fixed(sample, cache, settings))
        if progress is not None:
            reported = progress(done, len(mine))
            if inspect.isawaitable(reported):
                await reported
    return DomainMap(
        domain=domain,
        source=source,
        settings=settings,
        renders=cache.renders,
        log_urls=log_urls,
        patterns=sorted(rules, key=lambda r: (-r.urls, r.params)),
        params=domain_params(rules, settings) if settings.method == "group" else {},
    )


def domain_params(rules: list[PatternRule], settings: LearnSettings) -> dict[str, DomainParam]:
    """Pool each parameter's evidence over the learned patterns, for patterns the map lacks.

    Neutral domain-wide only when no pattern found it important (or kept it for lack of samples)
    and the pooled tests are confidently below T. A default is a value some pattern learned as one
    and no pattern ever saw change the page (a re-sort of a short list can look like a default).
    """
    pooled: dict[str, DomainParam] = {}
    verdicts: dict[str, set[str]] = {}
    changed: dict[str, set[str]] = {}
    defaults: dict[str, set[str]] = {}
    for rule in rules:
        for name, ev in rule.evidence.items():
            entry = pooled.setdefault(name, DomainParam(neutral=False, patterns=0, tests=0, changes=0))
            entry.patterns += 1
            entry.tests += ev.tests
            entry.changes += ev.changes
            verdicts.setdefault(name, set()).add(ev.verdict)
            changed.setdefault(name, set()).update(ev.changed_values)
        for name, values in rule.defaults.items():
            defaults.setdefault(name, set()).update(values)
    for name, entry in pooled.items():
        seen = verdicts.get(name, set()) - {"kept_few_samples"}  # too few samples is no evidence either way
        entry.neutral = seen == {"neutral"} and _confident(entry.tests, entry.changes, settings) == "neutral"
        entry.defaults = sorted(defaults.get(name, set()) - changed.get(name, set()))
    return pooled
