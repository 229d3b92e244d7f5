"""Normalize 1,000,000 URLs with learned maps loaded, beside w3lib.url.canonicalize_url.

The URLs come from the site simulator: 1,000 hosts (so per-host state is not one hot handful), with
tracking/session/cache-buster noise, default values, fragments, case and port variants. Maps are
learned first for 200 of the hosts (group testing, S=5, K=20); the rest run on syntax and priors,
as most hosts of a crawl would (learning all 1,000 would add ~5 minutes to `make bench`).
Methods run interleaved in chunks of 50,000 so drift on this shared machine hits both alike; the
figure of merit is the throughput ratio. Memory: the normalizer's state (maps and caches) after
the run, measured with tracemalloc on a fresh normalizer over the same URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import time
import tracemalloc
from collections.abc import Callable

from rich.progress import Progress
from w3lib.url import canonicalize_url

from bench.common import console, render, save
from tools.dedupe.evaluation import DomainRun, _learn, safe_normalizer
from tools.dedupe.model import DomainMap, LearnSettings
from tools.dedupe.normalizer import Normalizer
from tools.dedupe.simulator import World
from tools.dedupe.syntax import URLError, canonicalize

TOTAL = int(os.environ.get("BASTION_BENCH_DEDUPE_URLS", "1000000"))
DOMAINS = int(os.environ.get("BASTION_BENCH_DEDUPE_HOSTS", "1000"))
LEARNED = min(DOMAINS, int(os.environ.get("BASTION_BENCH_DEDUPE_LEARNED", "200")))
CHUNK = 50_000


def _maps(world: World, progress: Progress) -> list[DomainMap]:
    task = progress.add_task("learning maps", total=LEARNED)
    maps = []
    for site in world.sites[:LEARNED]:
        run = DomainRun(site, site.urls(3000, 1), [])
        maps.append(asyncio.run(_learn(run, LearnSettings(max_samples=5, top_patterns=20), world)))
        progress.advance(task)
    return maps


def _state_bytes(maps: list[DomainMap], urls: list[str]) -> int:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    normalizer = Normalizer(maps)
    for url in urls:
        with contextlib.suppress(URLError):
            normalizer.normalize(url)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del normalizer
    return size


def main() -> None:
    world = World.generate(DOMAINS, 11)
    with Progress(console=console, transient=True) as progress:
        maps = _maps(world, progress)
        task = progress.add_task("generating URLs", total=TOTAL)
        urls: list[str] = []
        per_site = TOTAL // len(world.sites)
        for i, site in enumerate(world.sites):
            count = per_site if i < len(world.sites) - 1 else TOTAL - len(urls)
            urls.extend(site.urls(count, 2))
            progress.advance(task, count)
        random.Random(0).shuffle(urls)

        normalizer = Normalizer(maps)
        methods: dict[str, Callable[[str], str | None]] = {
            "bastion (syntax + priors + learned maps)": safe_normalizer(normalizer.normalize),
            "bastion syntax layer only": safe_normalizer(canonicalize),
            "w3lib canonicalize_url": safe_normalizer(canonicalize_url),
        }
        seconds = dict.fromkeys(methods, 0.0)
        errors = dict.fromkeys(methods, 0)
        chunks = [urls[i : i + CHUNK] for i in range(0, len(urls), CHUNK)]
        task = progress.add_task("normalizing (interleaved)", total=len(chunks) * len(methods))
        for index, chunk in enumerate(chunks):
            order = list(methods) if index % 2 == 0 else list(reversed(methods))
            for name in order:
                fn = methods[name]
                start = time.perf_counter()
                failed = sum(1 for url in chunk if fn(url) is None)
                seconds[name] += time.perf_counter() - start
                errors[name] += failed
                progress.advance(task)
    state = _state_bytes(maps, urls[:200_000])
    baseline = len(urls) / seconds["w3lib canonicalize_url"]
    rows = []
    for name in methods:
        rate = len(urls) / seconds[name]
        rows.append([name, f"{rate:,.0f}", rate / baseline, f"{seconds[name]:.1f}", errors[name]])
    patterns = sum(len(m.patterns) for m in maps)
    render(
        f"Normalizing {len(urls):,} URLs ({DOMAINS} hosts, maps for {LEARNED}: {patterns} learned patterns loaded)",
        ["case", "URLs/s", "× w3lib", "seconds", "errors"],
        rows,
        note=f"normalizer state (maps + caches) after 200,000 URLs: {state / 1e6:.1f} MB; target ≥ 3.0× w3lib",
    )
    path = save(
        "dedupe",
        {
            "urls": len(urls),
            "domains": DOMAINS,
            "learned_domains": LEARNED,
            "patterns": patterns,
            "rows": [dict(zip(["case", "urls_per_s", "ratio", "seconds", "errors"], r, strict=True)) for r in rows],
            "state_bytes": state,
        },
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
