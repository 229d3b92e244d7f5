"""Re-ranking latency: our SSD, DPP and MMR beside pyversity's SSD, against the floor.

The floor is what a loop over the whole candidate matrix cannot beat: T products of it with a
vector. Pruning (candidates out of reach dropped before the loop) can go below it, so our SSD is
also timed without it.
Each method runs on the same inputs, interleaved request by request. Our SSD's picks are
checked against a float64 by-the-book reference on every input.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pyversity import diversify

from bench.common import console, histogram, render, save, summary
from tools.rerank import dpp, mmr, ssd
from tools.rerank.common import Spacing
from tools.rerank.reference import gram_schmidt_greedy

CASES = [(500, 64, 50), (2000, 128, 100)]
REQUESTS = 200
WINDOW = 10
GAMMA = 1.0
TARGETS = {500: 0.6, 2000: 4.0}


def main(requests: int = REQUESTS) -> None:
    rng = np.random.default_rng(7)
    rows: list[list[Any]] = []
    payload: dict[str, Any] = {}
    series: dict[str, list[float]] = {}
    for n, d, t in CASES:
        inputs = [
            (rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal(n).astype(np.float32))
            for _ in range(16)
        ]
        flags = [rng.random(n) < 0.2 for _ in inputs]  # 20% flagged (spaced out), 8 categories (coverage)
        cats = [rng.integers(0, 8, n) for _ in inputs]
        extras = {id(X): (f, c) for (X, _), f, c in zip(inputs, flags, cats, strict=True)}
        vector = rng.standard_normal(d).astype(np.float32)
        out = np.empty(n, np.float32)

        def floor(X: Any, s: Any, t: int = t, vector: Any = vector, out: Any = out) -> None:
            for _ in range(t):
                np.matmul(X, vector, out=out)

        methods: dict[str, Callable[..., Any]] = {
            "floor (T mat-vecs)": floor,
            "ours SSD": lambda X, s, t=t: ssd(X, s, t, gamma=GAMMA, window=WINDOW),
            "ours SSD, no pruning": lambda X, s, t=t: ssd(X, s, t, gamma=GAMMA, window=WINDOW, prune=False),
            "ours DPP": lambda X, s, t=t: dpp(X, s, t, theta=1.0),
            "ours MMR": lambda X, s, t=t: mmr(X, s, t, lambda_=0.5),
            "ours SSD + spacing + coverage": lambda X, s, t=t, extras=extras: ssd(
                X,
                s,
                t,
                gamma=GAMMA,
                window=WINDOW,
                flagged=extras[id(X)][0],
                spacing=Spacing(1.0, 5),
                categories=extras[id(X)][1],
                coverage=0.3,
            ),
            "pyversity SSD": lambda X, s, t=t: diversify(X, s, t, strategy="ssd", diversity=0.5, window=WINDOW),
        }
        samples: dict[str, list[float]] = {name: [] for name in methods}
        for i in range(requests + 20):
            X, s = inputs[i % len(inputs)]
            for name, method in methods.items():
                started = time.perf_counter()
                method(X, s)
                elapsed = (time.perf_counter() - started) * 1000
                if i >= 20:
                    samples[name].append(elapsed)
        agree = sum(
            ssd(X, s, t, gamma=GAMMA, window=WINDOW).indices
            == ssd(X, s, t, gamma=GAMMA, window=WINDOW, prune=False).indices
            == gram_schmidt_greedy(X, s, t, GAMMA, window=WINDOW)
            for X, s in inputs
        )
        floor_p50 = summary(samples["floor (T mat-vecs)"])["p50"]
        pyversity_p50 = summary(samples["pyversity SSD"])["p50"]
        for name, values in samples.items():
            stats = summary(values)
            target = ""
            if name in ("ours SSD", "ours SSD, no pruning"):
                ok = stats["p50"] <= TARGETS[n] and stats["p50"] <= 1.6 * floor_p50
                target = f"≤ {TARGETS[n]} ms and ≤ 1.6× floor: {'ok' if ok else 'MISSED'}"
            rows.append(
                [
                    f"N={n} d={d} T={t}",
                    name,
                    stats["p50"],
                    stats["p99"],
                    stats["p50"] / floor_p50,
                    pyversity_p50 / stats["p50"],
                    target,
                ]
            )
            payload[f"{n}/{name}"] = stats
            series[f"N={n} {name}"] = values
        payload[f"{n}/identical_picks"] = f"{agree}/{len(inputs)}"
        console.print(
            f"N={n}: our SSD picks (pruned and not) identical to the float64 reference"
            f" on {agree} of {len(inputs)} inputs"
        )
    render(
        "Re-ranking latency per request (ms), same inputs, interleaved",
        ["case", "method", "p50", "p99", "× floor", "pyversity SSD ÷ this", "target"],
        rows,
        note=f"SSD window {WINDOW}, γ {GAMMA}; floor = T products X·v (float32); picks vs a float64 reference",
    )
    plot = histogram("rerank_latency", series)
    console.print(f"results: {save('rerank', payload)}  plot: {plot}")
