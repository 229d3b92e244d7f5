"""What a result was produced from: the code's commit, the seeds and the data's version.

Every evaluation writes `provenance(...)` into its JSON, so a figure in the README can be traced to
the commit that produced it, re-run with the same seeds, and checked against the same data.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def git(*args: str) -> str:
    """`git ARGS` in this source tree; empty when git or the checkout is missing."""
    try:
        run = subprocess.run(["git", *args], capture_output=True, text=True, check=False, cwd=_HERE)
    except OSError:
        return ""
    return run.stdout.strip() if run.returncode == 0 else ""


def commit() -> str:
    """The checkout's commit, `+dirty` when it has uncommitted changes; `unknown` outside git."""
    rev = git("rev-parse", "HEAD")
    if not rev:
        return "unknown"
    return rev[:12] + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def data_version(paths: Iterable[Path]) -> str:
    """A digest of the files' names and bytes: equal digests, equal data."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def provenance(seeds: Iterable[int], data: dict[str, str], **settings: Any) -> dict[str, Any]:
    """The block every result JSON carries: commit, seeds, data version(s) and the run's settings."""
    return {
        "commit": commit(),
        "seeds": list(seeds),
        "data": data,
        "settings": settings,
        "python": platform.python_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
