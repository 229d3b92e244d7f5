"""`make bench` / `python -m bench [NAME ...]`: run the benchmarks and print their tables."""

from __future__ import annotations

import sys

from bench import (
    chat_bench,
    dedup_fullpath_bench,
    dedupe_bench,
    dedupe_learning_bench,
    embeddings_bench,
    fullpath_bench,
    gateway_bench,
    identity_bench,
    inference_bench,
    parity_bench,
    registry_bench,
    rerank_bench,
    scale_bench,
    sql_bench,
)

BENCHMARKS = {
    "registry": registry_bench.main,
    "gateway": gateway_bench.main,
    "rerank": rerank_bench.main,
    "dedupe": dedupe_bench.main,
    "dedupe_learning": dedupe_learning_bench.main,
    "embeddings": embeddings_bench.main,
    "sql": sql_bench.main,
    "parity": parity_bench.main,
    "inference": inference_bench.main,
    "fullpath": fullpath_bench.main,
    "dedup_fullpath": dedup_fullpath_bench.main,
    "chat": chat_bench.main,
    "identity": identity_bench.main,
    "scale": scale_bench.main,
}


def main(argv: list[str]) -> None:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    for name in names:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
