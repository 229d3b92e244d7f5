"""`bastion eval chat` with the scripted LLM: the figures, and that a wrong tool choice is counted as one."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.chat import scenarios
from bastion.chat_eval import _matches, evaluate


def test_matching_counts_alternatives_and_extras() -> None:
    assert _matches(["a|b", "c"], ["b", "c"]) == (2, 0, 0)
    assert _matches(["a"], ["a", "a"]) == (1, 1, 0)
    assert _matches(["a", "c"], ["x"]) == (0, 1, 2)
    assert _matches([], []) == (0, 0, 0)


def test_eval_chat_scripted_run(tmp_path: Path) -> None:
    result = evaluate(tmp_path, only="approval")
    assert result["llm"] == "scripted" and "not a model" in result["label"]
    assert result["scenarios"] == 2 and result["task_success"] == 1.0
    assert result["approvals_honoured"] == 1.0 and result["approvals_decided"] == 2
    assert result["commit"] and "scenarios" in result["data"]


def test_eval_chat_counts_a_wrong_tool_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = scenarios.Step(
        user="Rerank these candidates.",
        script=[scenarios._call("dedupe__normalize_urls", {"urls": ["https://example.com/"]}), "Done."],
        expect=["rerank__rerank"],
    )
    monkeypatch.setattr(scenarios, "SCENARIOS", [scenarios.Scenario(name="rerank, answered wrongly", steps=[wrong])])
    monkeypatch.setattr("bastion.chat_eval.SCENARIOS", scenarios.SCENARIOS)
    result = evaluate(tmp_path)
    assert result["task_success"] == 0.0
    assert result["tool_precision"] == 0.0 and result["tool_recall"] == 0.0


def test_eval_chat_accepts_an_alternative_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`a|b` accepts either tool, and the status check reads the one that was called (it read `a` only)."""
    step = scenarios.Step(
        user="Which of these are the same page?",
        script=[scenarios._call("dedupe__dedupe_urls", {"urls": ["https://example.com/", "https://Example.com/"]}),
                "Both are one page."],
        expect=["dedupe__normalize_urls|dedupe__dedupe_urls"],
    )  # fmt: skip
    monkeypatch.setattr(scenarios, "SCENARIOS", [scenarios.Scenario(name="dedupe, the other way", steps=[step])])
    monkeypatch.setattr("bastion.chat_eval.SCENARIOS", scenarios.SCENARIOS)
    result = evaluate(tmp_path)
    assert result["task_success"] == 1.0 and result["tool_precision"] == 1.0
