"""The keyed-diff baseline: a plain pandas merge on the keys, compared column by column.

What a data engineer writes first (and what data-comparison libraries such as datacompy do): join
the two logs on the keys, count per feature the joined rows whose values differ beyond a relative
tolerance (a null on one side only counts as a difference), and flag a feature whose mismatch rate
is above a threshold, or which one side lacks. It sees every key-level bug our audit sees; it has no
notion of precision, distributions, or likely causes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, Field


class KeyedDiff(BaseModel):
    rtol: float = Field(0.0, ge=0, description="Relative tolerance for numeric equality")
    atol: float = Field(1e-9, ge=0)
    min_mismatch_rate: float = Field(0.0, ge=0, le=1, description="Flag a feature above this mismatch rate")

    def flagged(self, training: Any, serving: Any, keys: list[str], features: list[str]) -> list[str]:
        return self.over_threshold(self.mismatch_rates(join(training, serving, keys, features), features))

    def mismatch_rates(self, joined: Any, features: list[str]) -> dict[str, float]:
        """Per feature, the share of joined rows that differ beyond the tolerance (inf: one side lacks it,
        flagged at any threshold)."""
        import pandas as pd

        rates: dict[str, float] = {}
        for feature in features:
            if f"{feature}_t" not in joined.columns or f"{feature}_s" not in joined.columns:
                rates[feature] = math.inf
                continue
            if joined.empty:
                rates[feature] = 0.0
                continue
            a, b = joined[f"{feature}_t"], joined[f"{feature}_s"]
            null_a, null_b = a.isna().to_numpy(), b.isna().to_numpy()
            if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
                x, y = a.to_numpy(dtype=np.float64, na_value=np.nan), b.to_numpy(dtype=np.float64, na_value=np.nan)
                close = np.isclose(x, y, rtol=self.rtol, atol=self.atol, equal_nan=True)
            else:
                close = (a.astype(str).to_numpy() == b.astype(str).to_numpy()) | (null_a & null_b)
            rates[feature] = float((~close | (null_a != null_b)).mean())
        return rates

    def over_threshold(self, rates: dict[str, float]) -> list[str]:
        return sorted(f for f, rate in rates.items() if rate > self.min_mismatch_rate)


def join(training: Any, serving: Any, keys: list[str], features: list[str]) -> Any:
    """The two logs merged on the keys, `feature_t`/`feature_s` for the features both sides have."""
    import pandas as pd

    shared = [f for f in features if f in training.columns and f in serving.columns]
    return pd.merge(training[[*keys, *shared]], serving[[*keys, *shared]], on=keys, suffixes=("_t", "_s"), how="inner")


# The baseline's tuning budget: every pair of these is scored on the validation pairs, and the best
# F1 (ties: fewer false alarms, then the stricter setting) is what runs on the test pairs.
RTOLS = (0.0, 1e-9, 1e-6, 1e-4, 1e-3, 1e-2)
RATES = (0.0, 0.0005, 0.001, 0.005, 0.01)
