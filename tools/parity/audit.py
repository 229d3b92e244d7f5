"""The training/serving parity audit, as a handful of vectorised SQL queries (DuckDB, or Spark by URL).

1. coverage of keys both ways and duplicate keys; 2. per-feature equality on joined keys within
tolerances that know reduced precision; 3. null/default rates per side and features present on one
side only; 4. distribution distances (PSI, Wasserstein, Jensen–Shannon, L∞); then, for flagged
features only, a diagnosis that names the likely cause: unit scaling, nulls served as a default,
values from the previous day, a categorical remap, values swapped with another feature, values
belonging to other keys. Distribution checks alone miss the last three; equality on keys does not.

All per-feature aggregates of a step run in one scan (one SELECT with a column per feature and
statistic), so cost grows with rows × features, not with queries.

The SQL is DuckDB's dialect; `engine` (BASTION_PARITY_ENGINE) picks where it runs — embedded DuckDB by
default, Spark for `sc://` / `spark://` URLs (tools/engines). Where the dialects differ (one row per key,
samples, quantiles, histograms, the ASOF join of the staleness check) the audit asks the engine.
Findings are the same on both: counts and equality checks exactly; quantiles of a sample are exact on
both (identical below SAMPLE_ROWS rows, else each engine draws its own sample); quantiles over a whole
join (the diagnosis's median ratio, prediction p99) are approximate on Spark, within a rank error of
1/QUANTILE_ACCURACY (0.01%) of the rows.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from tools.engines import Engine, EngineError, Histogram
from tools.parity.model import (
    SEVERITY_ORDER,
    AuditReport,
    Coverage,
    FeatureStats,
    Finding,
    ParityError,
    Redactor,
    Tolerances,
)
from tools.parity.sources import open_engine, register
from tools.parity.sources import quote_identifier as _q

_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "REAL",
    "DECIMAL",
)
_QUANTILES = [i / 20 for i in range(1, 20)]
SAMPLE_ROWS = 100_000


def _kind(duck_type: str) -> str:
    upper = duck_type.upper()
    if upper.endswith("[]") or upper.startswith(("LIST", "STRUCT", "MAP")) or "[" in upper:
        return "vector"
    return "numeric" if upper.startswith(_NUMERIC) else "categorical"


class _Audit:
    def __init__(self, engine: Engine, keys: list[str], tolerances: Tolerances, redactor: Redactor) -> None:
        self.engine = engine
        self.keys = keys
        self.tol = tolerances
        self.redact = redactor
        self.findings: list[Finding] = []
        self.problems: list[str] = []

    def one(self, sql: str) -> tuple[Any, ...]:
        return self.engine.one(sql)

    def find(
        self, check: str, severity: str, summary: str, cause: str, feature: str | None = None, **evidence: Any
    ) -> Finding:
        finding = Finding(
            check=check,
            severity=severity,
            feature=feature,
            summary=summary,
            likely_cause=cause,
            evidence=evidence,
        )
        self.findings.append(finding)
        return finding


def audit(
    training: Any,
    serving: Any,
    keys: list[str],
    features: list[str] | None = None,
    tolerances: Tolerances | None = None,
    time_column: str | None = None,
    engine: str | None = None,
    prediction: str | None = None,
    version_columns: list[str] | None = None,
    redactor: Redactor | None = None,
) -> AuditReport:
    """Compare a training feature log with a serving feature log joined on `keys`.

    `version_columns` name model/embedding version stamps: compared as stamps (version skew), not as
    features. Values of columns the `redactor` covers (personal data by default) are shown as digests."""
    started = time.perf_counter()
    tol = tolerances or Tolerances()
    if not keys:
        raise ParityError("keys", "give at least one join key")
    con = open_engine(engine, training, serving)
    try:
        training_cols = dict(register(con, "training", training))
        serving_cols = dict(register(con, "serving", serving))
        run = _Audit(con, keys, tol, redactor or Redactor())
        for side, cols in (("training", training_cols), ("serving", serving_cols)):
            for key in keys:
                if key not in cols:
                    raise ParityError(side, "the join key is missing", key)
        for key in keys:
            if _kind(training_cols[key]) != _kind(serving_cols[key]):
                raise ParityError(
                    "serving", f"key type {serving_cols[key]} conflicts with training's {training_cols[key]}", key
                )
        stamps = version_columns or []
        for stamp in stamps:
            for side, cols in (("training", training_cols), ("serving", serving_cols)):
                if stamp not in cols:
                    raise ParityError(side, "the version column is missing", stamp)
        wanted = features or [
            c for c in dict.fromkeys([*training_cols, *serving_cols]) if c not in keys and c not in stamps
        ]
        for feature in wanted:
            if feature not in training_cols and feature not in serving_cols:
                raise ParityError("features", "not in either input", feature)
        coverage = _coverage(run)
        if coverage.training_rows == 0 or coverage.serving_rows == 0:
            empty = "training" if coverage.training_rows == 0 else "serving"
            raise ParityError(empty, "the input has no rows")
        compared = _one_sided(run, wanted, training_cols, serving_cols)
        kinds = {}
        for feature in compared:
            kind_t, kind_s = _kind(training_cols[feature]), _kind(serving_cols[feature])
            if "vector" in (kind_t, kind_s):
                run.problems.append(f"{feature}: list/array column skipped here; use compare_embeddings")
                continue
            if kind_t != kind_s:
                run.find(
                    "type_conflict",
                    "high",
                    f"{feature} is {training_cols[feature]} in training but {serving_cols[feature]} in serving",
                    "the serving pipeline encodes the feature differently (string vs number)",
                    feature,
                    training_type=training_cols[feature],
                    serving_type=serving_cols[feature],
                )
                kinds[feature] = "categorical"
            else:
                kinds[feature] = kind_t
        _join(run, coverage)
        for stamp in stamps:
            _versions(run, stamp)
        stats = _compare(run, kinds, coverage)
        _distributions(run, stats, (coverage.training_rows, coverage.serving_rows))
        _missing_rates(run, stats)
        _diagnose(run, stats, time_column if time_column in training_cols and time_column in serving_cols else None)
        if prediction is not None:
            _prediction(run, prediction, training_cols, serving_cols)
    finally:
        con.close()
    flagged = sorted({f.feature for f in run.findings if f.feature and SEVERITY_ORDER[f.severity] >= 2})
    run.findings.sort(key=lambda f: (-SEVERITY_ORDER[f.severity], f.feature or ""))
    return AuditReport(
        keys=keys,
        coverage=coverage,
        features=list(stats.values()),
        findings=run.findings,
        flagged_features=flagged,
        partial=bool(run.problems),
        problems=run.problems,
        tolerances=tol,
        elapsed_s=round(time.perf_counter() - started, 3),
    )


# -- 1. coverage and duplicates --------------------------------------------------------------------------


def _coverage(run: _Audit) -> Coverage:
    keys = ", ".join(_q(k) for k in run.keys)
    on = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in run.keys)
    t_rows, t_distinct = run.one(f"SELECT count(*), count(DISTINCT ({keys})) FROM training")
    s_rows, s_distinct = run.one(f"SELECT count(*), count(DISTINCT ({keys})) FROM serving")
    both = run.one(
        f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM training) t "
        f"JOIN (SELECT DISTINCT {keys} FROM serving) s ON {on}"
    )[0]
    coverage = Coverage(
        training_rows=t_rows,
        serving_rows=s_rows,
        joined_rows=both,
        training_only_keys=t_distinct - both,
        serving_only_keys=s_distinct - both,
        training_duplicate_keys=t_rows - t_distinct,
        serving_duplicate_keys=s_rows - s_distinct,
    )
    gaps = (
        (coverage.training_only_keys, t_distinct, "training keys ({share:.1%}) were never served",
         "serving logs are sampled or dropped for some traffic, or the join keys differ in format"),
        (coverage.serving_only_keys, s_distinct, "served keys ({share:.1%}) are missing from training",
         "training data is filtered (e.g. by label availability) or keys are rewritten before logging"),
    )  # fmt: skip
    for missing, distinct, what, cause in gaps:
        share = missing / distinct if distinct else 0.0
        if share > run.tol.min_mismatch_rate:
            run.find("coverage", "high" if share > 0.05 else "medium", f"{missing:,} " + what.format(share=share),
                     cause, share=round(share, 6))  # fmt: skip
    for side, dupes in (("training", coverage.training_duplicate_keys), ("serving", coverage.serving_duplicate_keys)):
        if dupes:
            run.find(
                "duplicates",
                "high",
                f"{dupes:,} duplicate keys in {side}",
                f"the {side} log writes some rows twice (retries) or the keys are not unique",
                duplicates=dupes,
                side=side,
            )
    return coverage


def _join(run: _Audit, coverage: Coverage) -> None:
    keys = ", ".join(_q(k) for k in run.keys)
    using = ", ".join(_q(k) for k in run.keys)
    # One row per key on each side (duplicates are reported above, not multiplied here).
    for side in ("training", "serving"):
        dupes = coverage.training_duplicate_keys if side == "training" else coverage.serving_duplicate_keys
        if dupes:
            run.engine.first_per_key(f"{side}_unique", side, run.keys)
        else:
            run.engine.execute(f"CREATE OR REPLACE TEMP VIEW {side}_unique AS SELECT * FROM {side}")
    run.engine.execute(
        f"CREATE OR REPLACE TEMP VIEW joined_keys AS SELECT {keys} FROM training_unique "
        f"JOIN serving_unique USING ({using})"
    )


# -- 2/3. features on one side, equality, null/default rates -----------------------------------------------


def _one_sided(run: _Audit, wanted: list[str], training: dict[str, str], serving: dict[str, str]) -> list[str]:
    compared = []
    for feature in wanted:
        if feature not in serving:
            run.find(
                "missing_feature",
                "critical",
                f"{feature} is in the training log but not served",
                "the feature was never wired into the serving path: the model sees a default there",
                feature,
            )
        elif feature not in training:
            run.find(
                "missing_feature",
                "low",
                f"{feature} is served but absent from the training log",
                "a new feature not yet logged for training, or a leftover",
                feature,
            )
        else:
            compared.append(feature)
    return compared


def _mismatch(feature: str, kind: str, tol: Tolerances) -> str:
    t, s = f"t.{_q(feature)}", f"s.{_q(feature)}"
    if kind == "numeric":
        t, s = f"CAST({t} AS DOUBLE)", f"CAST({s} AS DOUBLE)"
        return (
            f"coalesce(({t} IS NULL) <> ({s} IS NULL) OR abs({t} - {s}) > {tol.atol!r} + "
            f"{tol.relative()!r} * greatest(abs({t}), abs({s})), false)"
        )
    return f"CAST({t} AS VARCHAR) IS DISTINCT FROM CAST({s} AS VARCHAR)"


def _default(column: str, kind: str) -> str:
    return f"CAST({column} AS DOUBLE) = 0" if kind == "numeric" else f"CAST({column} AS VARCHAR) = ''"


def _compare(run: _Audit, kinds: dict[str, str], coverage: Coverage) -> dict[str, FeatureStats]:
    if not kinds:
        return {}
    using = ", ".join(_q(k) for k in run.keys)
    parts = [f"sum(CASE WHEN {_mismatch(f, k, run.tol)} THEN 1 ELSE 0 END)" for f, k in kinds.items()]
    joined = run.one(
        f"SELECT count(*), {', '.join(parts)} FROM training_unique t JOIN serving_unique s USING ({using})"
    )
    n = int(joined[0])
    stats: dict[str, FeatureStats] = {}
    for i, (feature, kind) in enumerate(kinds.items()):
        mismatches = int(joined[1 + i] or 0)
        stats[feature] = FeatureStats(
            feature=feature,
            kind=kind,
            compared=n,
            mismatches=mismatches,
            mismatch_rate=round(mismatches / n, 6) if n else 0.0,
            null_rate_training=0.0,
            null_rate_serving=0.0,
            default_rate_training=0.0,
            default_rate_serving=0.0,
        )  # null/default rates: filled by the per-side scan in _distributions
    return stats


def _missing_rates(run: _Audit, stats: dict[str, FeatureStats]) -> None:
    for stat in stats.values():
        if stat.null_rate_training < 1 and stat.null_rate_serving == 1:
            run.find(
                "never_populated",
                "critical",
                f"{stat.feature} is always null in serving",
                "the feature was never wired into the serving path",
                stat.feature,
            )
            continue
        null_gap = stat.null_rate_serving - stat.null_rate_training
        default_gap = stat.default_rate_serving - stat.default_rate_training
        if max(abs(null_gap), abs(default_gap)) > run.tol.missing_rate_delta:
            run.find(
                "missing_rate",
                "medium",
                f"{stat.feature}: nulls {stat.null_rate_training:.1%} → {stat.null_rate_serving:.1%}, "
                f"defaults {stat.default_rate_training:.1%} → {stat.default_rate_serving:.1%} "
                "(training → serving)",
                "a missing value is filled differently on one side (null vs a default such as 0)",
                stat.feature,
                null_gap=round(null_gap, 6),
                default_gap=round(default_gap, 6),
            )


# -- 4. distributions ------------------------------------------------------------------------------------


def _psi(expected: np.ndarray[Any, Any], actual: np.ndarray[Any, Any]) -> float:
    e = np.clip(expected / max(expected.sum(), 1), 1e-6, None)
    a = np.clip(actual / max(actual.sum(), 1), 1e-6, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _js(p: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> float:
    p = p / max(p.sum(), 1e-12)
    q = q / max(q.sum(), 1e-12)
    m = (p + q) / 2

    def kl(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / y[mask])))

    return (kl(p, m) + kl(q, m)) / 2


def _distributions(run: _Audit, stats: dict[str, FeatureStats], coverage_rows: tuple[int, int]) -> None:
    if not stats:
        return
    numeric = [f for f, s in stats.items() if s.kind == "numeric"]
    categorical = [f for f, s in stats.items() if s.kind == "categorical"]
    try:
        # Quantiles (bin edges, Wasserstein) from a ~100k-row sample of each side: accurate to
        # well under a percentile, and it spares sorting every column of a large log. Bin counts and
        # category frequencies are then exact, in one full scan per side.
        rows = {"training": coverage_rows[0], "serving": coverage_rows[1]}
        for side in ("training", "serving"):
            run.engine.sample(f"{side}_sample", side, [*numeric, *categorical], SAMPLE_ROWS, rows[side], 7)
        quantiles: dict[str, tuple[Any, ...]] = {}
        if numeric:
            # On a bounded sample: exact on every engine.
            quant = ", ".join(run.engine.quantiles(f"CAST({_q(f)} AS DOUBLE)", _QUANTILES, exact=True) for f in numeric)
            for side in ("training", "serving"):
                quantiles[side] = run.one(f"SELECT {quant} FROM {side}_sample")
        low_card = []
        if categorical:
            distinct = run.one(
                "SELECT " + ", ".join(f"approx_count_distinct({_q(f)})" for f in categorical) + " FROM training_sample"
            )
            # An id-like or temporal column: a histogram over raw values says nothing.
            low_card = [f for f, d in zip(categorical, distinct, strict=True) if (d or 0) <= 200]
        # One scan per side: null and default counts for every feature, then bins and histograms.
        parts: list[str | Histogram] = ["count(*)"]
        for f, stat in stats.items():
            parts += [f"count({_q(f)})", f"sum(CASE WHEN {_default(_q(f), stat.kind)} THEN 1 ELSE 0 END)"]
        edges: dict[str, list[float]] = {}
        for f, tq in zip(numeric, quantiles.get("training", ()), strict=False):
            edges[f] = sorted({float(v) for v in (tq or [])[1::2]})  # the deciles
            parts += [f"sum(CASE WHEN CAST({_q(f)} AS DOUBLE) < {edge!r} THEN 1 ELSE 0 END)" for edge in edges[f]]
            parts.append(f"count({_q(f)})")
        parts += [Histogram(f"CAST({_q(f)} AS VARCHAR)") for f in low_card]
        counts = {side: run.engine.aggregate(side, parts) for side in ("training", "serving")}
        for i, stat in enumerate(stats.values()):
            for side in ("training", "serving"):
                total, present, defaults = counts[side][0], counts[side][1 + 2 * i], counts[side][2 + 2 * i] or 0
                setattr(stat, f"null_rate_{side}", round(1 - present / total, 6) if total else 0.0)
                setattr(stat, f"default_rate_{side}", round(defaults / total, 6) if total else 0.0)
        pos = 1 + 2 * len(stats)
        for i, f in enumerate(numeric):
            width = len(edges[f]) + 1
            cum_t = np.array(counts["training"][pos : pos + width], float)
            cum_s = np.array(counts["serving"][pos : pos + width], float)
            pos += width
            stat = stats[f]
            stat.psi = round(_psi(np.diff(cum_t, prepend=0), np.diff(cum_s, prepend=0)), 6)
            tq, sq = quantiles["training"][i], quantiles["serving"][i]
            if tq is not None and sq is not None:
                tq_a, sq_a = np.array(tq, float), np.array(sq, float)
                scale = float(tq_a[14] - tq_a[4]) or float(np.abs(tq_a).max()) or 1.0  # IQR, else magnitude
                stat.wasserstein = round(float(np.mean(np.abs(tq_a - sq_a))) / scale, 6)
        for j, f in enumerate(low_card):
            t_hist = dict(counts["training"][pos + j] or {})
            s_hist = dict(counts["serving"][pos + j] or {})
            values = sorted(set(t_hist) | set(s_hist), key=str)
            p = np.array([t_hist.get(v, 0) for v in values], float)
            q = np.array([s_hist.get(v, 0) for v in values], float)
            stats[f].js_divergence = round(_js(p, q), 6)
            stats[f].linf = round(float(np.max(np.abs(p / max(p.sum(), 1) - q / max(q.sum(), 1)))), 6)
            stats[f].psi = round(_psi(p, q), 6)
    except EngineError as exc:
        run.problems.append(f"distribution distances not computed: {str(exc).splitlines()[0][:200]}")
        return
    for stat in stats.values():
        if stat.psi is not None and stat.psi > run.tol.psi_threshold:
            run.find(
                "drift",
                "medium",
                f"{stat.feature}: distribution differs (PSI {stat.psi:.3f})",
                "serving sees a different population or a different encoding",
                stat.feature,
                psi=stat.psi,
                wasserstein=stat.wasserstein,
                js=stat.js_divergence,
            )


# -- diagnosis of value mismatches ----------------------------------------------------------------------


def _diagnose(run: _Audit, stats: dict[str, FeatureStats], time_column: str | None) -> None:
    using = ", ".join(_q(k) for k in run.keys)
    flagged = [s for s in stats.values() if s.mismatch_rate > run.tol.min_mismatch_rate]
    base = f"FROM training_unique t JOIN serving_unique s USING ({using})"
    for stat in flagged:
        f, kind = stat.feature, stat.kind
        mismatch = _mismatch(f, kind, run.tol)
        t, s = f"t.{_q(f)}", f"s.{_q(f)}"
        evidence: dict[str, Any] = {
            "mismatch_rate": stat.mismatch_rate,
            "mismatches": stat.mismatches,
            "compared": stat.compared,
        }
        cause = "values differ beyond tolerance on the same keys"
        # Most specific first: values that are exactly another feature's are a swap, whatever their ratio.
        swapped = _swapped(run, stat, stats, base, mismatch)
        if swapped is not None:
            cause = swapped
        elif kind == "numeric":
            median = run.engine.quantile(f"CAST({s} AS DOUBLE) / nullif(CAST({t} AS DOUBLE), 0)", 0.5, exact=False)
            ratio, nulls_to_default = run.one(
                f"SELECT {median} FILTER (WHERE {mismatch}), "
                f"count(*) FILTER (WHERE {t} IS NULL AND CAST({s} AS DOUBLE) = 0) {base}"
            )
            if (
                ratio is not None
                and ratio > 0
                and abs(round(math.log10(ratio))) >= 1
                and abs(math.log10(ratio) - round(math.log10(ratio))) < 0.02
            ):
                factor = 10 ** round(math.log10(ratio))
                cause = f"unit scaling: serving values are ×{factor:g} the training values"
                evidence["ratio"] = round(float(ratio), 6)
            elif nulls_to_default and nulls_to_default >= 0.5 * stat.mismatches:
                cause = "nulls served as 0: serving fills a missing value with a default"
                evidence["nulls_served_as_default"] = int(nulls_to_default)
        else:
            pairs = run.engine.rows(
                f"SELECT CAST({t} AS VARCHAR), CAST({s} AS VARCHAR), count(*) {base} WHERE {mismatch} "
                "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 20"
            )
            sources = [p[0] for p in pairs]
            covered = sum(p[2] for p in pairs)
            if (
                pairs
                and len(set(sources)) == len(sources)
                and covered >= 0.9 * stat.mismatches
                and (stat.linf or 0) > 0
            ):
                shown = [(run.redact.value(f, p[0]), run.redact.value(f, p[1])) for p in pairs[:10]]
                mapping = ", ".join(f"{a!r}→{b!r}" for a, b in shown[:5])
                cause = f"categorical remap: {mapping}"
                evidence["remap"] = {str(a): b for a, b in shown}
        if cause.startswith("values differ") and time_column is not None:
            cause = _stale(run, stat, time_column) or cause
        if cause.startswith("values differ") and (stat.psi or 0) < 0.05 and stat.mismatch_rate >= 0.2:
            cause = (
                "values belong to other keys: the distribution is unchanged but rows disagree "
                "(shuffled join, key remapping or misaligned batch)"
            )
        severity = "critical" if stat.mismatch_rate >= 0.5 else "high" if stat.mismatch_rate >= 0.05 else "medium"
        finding = run.find(
            "value_mismatch", severity, f"{f}: {stat.mismatch_rate:.2%} of joined rows differ", cause, f, **evidence
        )
        keys = ", ".join(f"t.{_q(k)}" for k in run.keys)
        examples = run.engine.rows(f"SELECT {keys}, {t}, {s} {base} WHERE {mismatch} LIMIT 5")
        finding.examples = [
            {
                **{k: run.redact.value(k, _plain(v)) for k, v in zip(run.keys, row, strict=False)},
                "training": run.redact.value(f, _plain(row[-2])),
                "serving": run.redact.value(f, _plain(row[-1])),
            }
            for row in examples
        ]


def _plain(value: Any) -> Any:
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def _swapped(run: _Audit, stat: FeatureStats, stats: dict[str, FeatureStats], base: str, mismatch: str) -> str | None:
    s = f"s.{_q(stat.feature)}"
    for other in stats.values():
        if other.feature == stat.feature or other.kind != stat.kind or other.mismatch_rate <= run.tol.min_mismatch_rate:
            continue
        t_other = f"t.{_q(other.feature)}"
        same = (
            f"abs(CAST({s} AS DOUBLE) - CAST({t_other} AS DOUBLE)) <= {run.tol.atol!r} + {run.tol.relative()!r} * "
            f"abs(CAST({t_other} AS DOUBLE))"
            if stat.kind == "numeric"
            else f"CAST({s} AS VARCHAR) = CAST({t_other} AS VARCHAR)"
        )
        matched = run.one(f"SELECT count(*) FILTER (WHERE {same}) {base} WHERE {mismatch}")[0]
        if matched >= 0.9 * stat.mismatches:
            return f"feature order: serving's {stat.feature} holds training's {other.feature} (columns swapped)"
    return None


def _stale(run: _Audit, stat: FeatureStats, time_column: str) -> str | None:
    """Serving equals the training value of the latest record at least one day earlier."""
    using = ", ".join(_q(k) for k in run.keys)
    entity = [k for k in run.keys if k != time_column] if time_column in run.keys else []
    f, tc = _q(stat.feature), _q(time_column)
    cast = "CAST({} AS DOUBLE)" if stat.kind == "numeric" else "CAST({} AS VARCHAR)"
    carried = "".join(f", t.{_q(k)}" for k in entity)
    try:
        # Each differing row, a day back in time, against the training rows (of the same entity) before it.
        served = (
            f"(SELECT s.{f} AS served, t.{tc} - INTERVAL 1 DAY AS ts{carried} FROM training_unique t "
            f"JOIN serving_unique s USING ({using}) WHERE {_mismatch(stat.feature, stat.kind, run.tol)})"
        )
        earlier = f"(SELECT {tc} AS ts, {f} AS value{''.join(f', {_q(k)}' for k in entity)} FROM training_unique)"
        joined = run.engine.asof_join(served, earlier, "ts", entity, ["value"])
        share = run.one(
            f"SELECT avg(CASE WHEN {cast.format('j.served')} = {cast.format('j.value')} THEN 1 ELSE 0 END) "
            f"FROM {joined} j"
        )[0]
    except EngineError as exc:
        run.problems.append(f"{stat.feature}: staleness check failed: {str(exc).splitlines()[0][:200]}")
        return None
    if share is not None and share >= 0.5:
        return f"stale values: serving holds the value from one day earlier ({share:.0%} of differing rows)"
    return None


def _versions(run: _Audit, stamp: str) -> None:
    using = ", ".join(_q(k) for k in run.keys)
    c = _q(stamp)
    pairs = run.engine.rows(
        f"SELECT CAST(t.{c} AS VARCHAR), CAST(s.{c} AS VARCHAR), count(*) FROM training_unique t "
        f"JOIN serving_unique s USING ({using}) GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
    )
    skewed = [(a, b, n) for a, b, n in pairs if a != b]
    if skewed:
        total = sum(n for *_, n in pairs)
        share = sum(n for *_, n in skewed) / total
        shown = ", ".join(
            f"{run.redact.value(stamp, a)}→{run.redact.value(stamp, b)} ({n:,})" for a, b, n in skewed[:5]
        )
        run.find(
            "version_skew",
            "critical",
            f"{stamp}: {share:.1%} of joined rows were served by another version than trained ({shown})",
            "the serving model or embedding index was built from a different "
            "version than the training data (version skew)",
            stamp,
            share=round(share, 6),
        )


# -- 6. prediction parity -------------------------------------------------------------------------------


def _prediction(run: _Audit, column: str, training: dict[str, str], serving: dict[str, str]) -> None:
    if column not in training or column not in serving:
        run.problems.append(f"prediction column {column!r} must be on both sides")
        return
    using = ", ".join(_q(k) for k in run.keys)
    c = _q(column)
    mean_diff, p99, spearman = _prediction_stats(run, c, using)
    if (p99 or 0) > 1e-3 or (spearman is not None and spearman < 0.99):
        run.find(
            "prediction",
            "high",
            f"{column}: offline and served scores differ (p99 |Δ| {p99:.4g}, Spearman {spearman:.4f})",
            "the model sees different features (see the findings above) or a different model version serves",
            column,
            mean_abs_diff=mean_diff,
            p99_abs_diff=p99,
            spearman=spearman,
        )


def _prediction_stats(run: _Audit, c: str, using: str) -> tuple[Any, ...]:
    p99 = run.engine.quantile("abs(a - b)", 0.99, exact=False)
    return run.one(
        f"WITH j AS (SELECT CAST(t.{c} AS DOUBLE) a, CAST(s.{c} AS DOUBLE) b FROM training_unique t "
        f"JOIN serving_unique s USING ({using})), r AS (SELECT a, b, rank() OVER (ORDER BY a) ra, "
        f"rank() OVER (ORDER BY b) rb FROM j) SELECT avg(abs(a - b)), {p99}, corr(ra, rb) FROM r"
    )
