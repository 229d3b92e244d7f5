"""The operator's first hour: `make run`'s steps say what they do and how long they took, pip's noise about this
machine's configuration stays out of the way, and the long commands show bars with counts and time left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from embeddings.settings import DEMO_DIR
from tests.knowledge_fixtures import Demo

ROOT = Path(__file__).parent.parent
STEPS = [sys.executable, str(ROOT / "scripts" / "steps.py")]

FAKE_PIP = """
import sys
print("Collecting alpha==1.0")
print("Collecting beta==2.0")
for n in range(120):
    print(f"WARNING: Location 'file:///opt/pypi-more/simple/p{n}/' is ignored: it is neither a file nor a directory.",
          file=sys.stderr)
print("WARNING: beta 2.0 is yanked: a reason worth reading", file=sys.stderr)
print("Installing collected packages: alpha, beta")
print("Successfully installed alpha-1.0 beta-2.0")
"""


def _steps(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STEPS, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_each_step_says_its_name_and_duration(tmp_path: Path) -> None:
    done = _steps("--title", "run", "database migrations", "echo migrated", "registry seed", "sleep 0.3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "▶ [1/2] run: database migrations"
    assert lines[1] == "migrated"  # the command's own output, as it writes it
    assert re.fullmatch(r"✓ \[1/2\] run: database migrations done in \d+\.\d s", lines[2])
    assert re.fullmatch(r"✓ \[2/2\] run: registry seed done in 0\.[3-9] s", lines[4]), lines[4]
    assert re.fullmatch(r"run: 2 steps in \d+\.\d s", lines[-1])


def test_a_failing_step_stops_the_run_with_its_status() -> None:
    done = _steps("first", "exit 3", "second", "echo never")
    assert done.returncode == 3
    assert "✗ [1/2] first failed (exit status 3)" in done.stdout
    assert "never" not in done.stdout


def test_pip_steps_count_the_machines_missing_index_locations_instead_of_printing_each(tmp_path: Path) -> None:
    fake = tmp_path / "fake.py"
    fake.write_text(FAKE_PIP)
    done = _steps("dependencies", f"{sys.executable} {fake} -m pip install -e .")
    assert done.returncode == 0, done.stderr
    assert "is ignored: it is neither a file nor a directory" not in done.stdout + done.stderr
    assert "Collecting alpha" not in done.stdout  # pip's running commentary is the status line's, not the log's
    assert "WARNING: beta 2.0 is yanked: a reason worth reading" in done.stdout  # other warnings are shown
    summary = done.stdout.splitlines()[-1]
    assert summary.startswith("✓ [1/1] dependencies done in ")
    assert "(2 packages installed, 120 index locations in this machine's pip configuration do not exist" in summary


def test_the_projects_own_packaging_builds_without_warnings(tmp_path: Path) -> None:
    """setuptools warned on every install: `project.license` as a table is deprecated; and the editable install's
    import finder came with an "Editable installation" notice."""
    script = (
        "import warnings\n"
        "from setuptools import build_meta\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    build_meta.build_editable({str(tmp_path)!r})\n"
        "for w in caught:\n"
        "    print('warned:', w.category.__name__, str(w.message).strip().splitlines()[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "warned:" not in done.stdout, done.stdout
    with zipfile.ZipFile(next(tmp_path.glob("bastion-*.whl"))) as wheel:
        metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata


def test_index_shows_bars_with_counts_and_time_left(demo: Demo, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update({
        "BASTION_DATA_DIR": str(tmp_path / "data"),
        "BASTION_WAREHOUSE_URL": str(demo.warehouse),
        "BASTION_CATALOG_METADATA": str(DEMO_DIR / "metadata.yaml"),
        "BASTION_QUERY_LOG": str(demo.query_log),
        # What a terminal is (rich draws live bars only there); the bars go to stderr.
        "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "160",
    })  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "bastion", "index"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    frames = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", done.stderr).replace("\r", "\n")
    for stage, total in [("mining queries", 420), ("embedding schema", 35), ("embedding governance", None)]:
        shown = [line for line in frames.splitlines() if line.startswith(stage)]
        assert shown, f"no bar for {stage}"
        last = shown[-1]
        count = str(total) if total else r"\d+"
        assert re.search(rf"\b{count}/{count}\b", last), last  # done / total
        assert "ETA" in last and re.search(r"\d:\d\d:\d\d", last), last  # elapsed and time left
    assert "Loading weights" not in done.stderr
    summary = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", done.stdout)
    assert "━" not in summary  # stdout is the summary alone
    assert summary.startswith("index: 35 tables, 420 queries")
