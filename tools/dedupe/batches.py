"""The normalizer over Arrow batches: for the engines' `map_batches` / `with_columns` (Arrow UDFs on Spark).

Each class is a picklable function of one pyarrow.RecordBatch: Spark ships it to its Python workers, which build
the normalizer once per task from the rules and maps it carries. Nothing here knows which engine runs it.

- `PrepareBatches`: step 0 of learning (every layer but the learned one), a log's URLs → PREPARED_COLUMNS rows;
- `NormalizeBatches`: the runtime normalizer, a column of URLs → their canonical form (or the refusal's code).
"""

from __future__ import annotations

from typing import Any

from tools.dedupe.model import DomainMap
from tools.dedupe.normalizer import Normalizer
from tools.dedupe.rules import RulesFile
from tools.dedupe.syntax import URLError
from tools.engines import Engine

# One row per log URL (param and value NULL; error set when the syntax layer refused it, host then NULL), and
# one row per untested parameter of a URL of the domain learned (candidates NULL).
PREPARED_COLUMNS = [
    ("host", "VARCHAR"),
    ("url", "VARCHAR"),
    ("pattern", "VARCHAR"),
    ("candidates", "INTEGER"),
    ("param", "VARCHAR"),
    ("value", "VARCHAR"),
    ("error", "VARCHAR"),
]
NORMALIZED_COLUMNS = [("normalized", "VARCHAR"), ("normalize_error", "VARCHAR")]


def pattern_key(pattern: tuple[str, ...]) -> str:
    return "&".join(pattern)


class _Batches:
    """The normalizer a batch function runs, built where it runs (pickled: its rules and maps, not its caches)."""

    def __init__(self, rules: RulesFile, max_length: int, maps: list[DomainMap]) -> None:
        self.rules, self.max_length, self.maps = rules, max_length, maps
        self._normalizer: Normalizer | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_normalizer"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._normalizer = None

    def normalizer(self) -> Normalizer:
        if self._normalizer is None:
            self._normalizer = Normalizer(self.maps, self.rules, self.max_length)
        return self._normalizer


class PrepareBatches(_Batches):
    """A batch with a `url` column → PREPARED_COLUMNS rows. Parameter rows only for `domain` (all hosts if None):
    the other hosts are counted, not learned. NULL URLs are skipped."""

    def __init__(self, rules: RulesFile, max_length: int, domain: str | None) -> None:
        super().__init__(rules, max_length, [])
        self.domain = domain

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        normalizer = self.normalizer()
        columns: list[list[Any]] = [[] for _ in PREPARED_COLUMNS]
        host_, url_, pattern_, candidates_, param_, value_, error_ = columns

        def add(host: Any, url: Any, pattern: Any, candidates: Any, param: Any, value: Any, error: Any) -> None:
            host_.append(host)
            url_.append(url)
            pattern_.append(pattern)
            candidates_.append(candidates)
            param_.append(param)
            value_.append(value)
            error_.append(error)

        for raw in batch.column("url").to_pylist():
            if raw is None:
                continue
            try:
                prep = normalizer.prepare(str(raw))
            except URLError as exc:
                add(None, None, None, None, None, None, exc.code)
                continue
            url, key = prep.url(), pattern_key(prep.pattern)
            add(prep.host, url, key, len(prep.candidates), None, None, None)
            if self.domain is None or prep.host == self.domain:
                for name, value in prep.candidates:
                    add(prep.host, url, key, None, name, value or "", None)
        types = [pa.int32() if kind == "INTEGER" else pa.string() for _, kind in PREPARED_COLUMNS]
        arrays = [pa.array(c, type=t) for c, t in zip(columns, types, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, names=[n for n, _ in PREPARED_COLUMNS])


class NormalizeBatches(_Batches):
    """A batch with a URL column → NORMALIZED_COLUMNS: the canonical URL, or NULL and the refusal's code (NULL in,
    NULL out). The same normalizer as `Normalizer.normalize`, with the same maps and rules."""

    def __init__(self, maps: list[DomainMap], rules: RulesFile, max_length: int, column: str = "url") -> None:
        super().__init__(rules, max_length, maps)
        self.column = column

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        normalize = self.normalizer().normalize
        normalized: list[str | None] = []
        errors: list[str | None] = []
        for raw in batch.column(self.column).to_pylist():
            if raw is None:
                normalized.append(None)
                errors.append(None)
                continue
            try:
                normalized.append(normalize(str(raw)))
                errors.append(None)
            except URLError as exc:
                normalized.append(None)
                errors.append(exc.code)
        return pa.RecordBatch.from_arrays(
            [pa.array(normalized, pa.string()), pa.array(errors, pa.string())], names=[n for n, _ in NORMALIZED_COLUMNS]
        )


def normalize_relation(engine: Engine, name: str, relation: str, normalizer: Normalizer, column: str = "url") -> None:
    """The view `name`: `relation` with NORMALIZED_COLUMNS added for its URL column, as `normalizer` gives them.

    The engine computes them: on Spark an Arrow UDF in the cluster's Python workers, so a whole log is normalized
    where it lives (lazily, whenever the view is read); on DuckDB here, at once.
    """
    function = NormalizeBatches(list(normalizer.maps.values()), normalizer.rules, normalizer.max_length, column)
    engine.with_columns(name, relation, function, NORMALIZED_COLUMNS)
