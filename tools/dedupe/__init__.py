"""URL dedupe by learned normalization (MIQPS: the minimal important query-parameter set).

Runtime: `Normalizer` — syntax, priors, regex rules and learned maps; `explain` per URL.
Learning: `sample` (DuckDB SQL steps) then `learn_domain` (group testing, sequential stopping,
default values) against any `Fingerprinter`; `MapStore` versions maps behind the anomaly gate.
The MCP server lives in `server`, the I/O glue in `service`.
"""

from tools.dedupe.fingerprint import Fingerprint, Fingerprinter, HttpFetcher, PageFingerprinter, TableFingerprinter
from tools.dedupe.learning import learn_domain
from tools.dedupe.maps import anomaly_gate, diff_maps
from tools.dedupe.model import DomainMap, LearnSettings, MapDiff, PatternRule
from tools.dedupe.normalizer import Explanation, Normalizer, NormalizeResult
from tools.dedupe.rules import RegexRule, RulesFile, load_rules
from tools.dedupe.sampling import sample, statements
from tools.dedupe.store import MapStore
from tools.dedupe.syntax import URLError, canonicalize

__all__ = [
    "DomainMap",
    "Explanation",
    "Fingerprint",
    "Fingerprinter",
    "HttpFetcher",
    "LearnSettings",
    "MapDiff",
    "MapStore",
    "NormalizeResult",
    "Normalizer",
    "PageFingerprinter",
    "PatternRule",
    "RegexRule",
    "RulesFile",
    "TableFingerprinter",
    "URLError",
    "anomaly_gate",
    "canonicalize",
    "diff_maps",
    "learn_domain",
    "load_rules",
    "sample",
    "statements",
]
