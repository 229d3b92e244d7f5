"""The conversion evaluation cannot flatter the model: no feature sees the test period, baselines
and paired tests are computed, and the embedding initialisation comparison runs from a flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tools.inference.contracts import ModelConfig
from tools.inference.data import movielens
from tools.inference.evaluation import baselines, paired_difference, verdict
from tools.inference.features import FeatureSchema
from tools.inference.model import ConversionModel
from tools.inference.training import TrainSettings, split_by_time
from tools.provenance import commit, data_version, provenance


def _movielens(folder: Path, ratings: list[tuple[int, int, int, int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in ratings]
    (folder / "ml-100k.inter").write_text("\n".join(lines) + "\n")
    genres = ("Drama", "Comedy", "Action")
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    items += [f"{i}\tFilm {i}\t{1950 + i}\t{genres[i % 3]}" for i in range(1, 61)]
    (folder / "ml-100k.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    users = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
    users += [f"{u}\t{20 + u}\t{'MF'[u % 2]}\tjob{u % 4}\t0000{u}" for u in range(1, 41)]
    (folder / "ml-100k.user").write_text("\n".join(users) + "\n")
    return folder


def _ratings(seed: int = 0, n: int = 3000) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, int]] = set()
    out = []
    for t in np.sort(rng.integers(880_000_000, 890_000_000, n)):
        u, i = int(rng.integers(1, 41)), int(rng.integers(1, 61))
        if (u, i) not in seen:
            seen.add((u, i))
            out.append((u, i, int(rng.integers(1, 6)), int(t)))
    return out


FEATURES = ("user_cat", "user_dense", "history", "surface", "item_cat", "item_dense")


def test_no_feature_uses_an_event_from_the_test_period_or_the_rows_future(tmp_path: Path) -> None:
    funnel = movielens(_movielens(tmp_path / "ml", _ratings()))
    assert len(funnel.test) > 100 and funnel.test.click.sum() > 10
    # The provenance of every row's features: strictly before min(its own time, the split).
    assert (funnel.feature_latest_event < np.minimum(funnel.row_ts, funnel.split_ts)).all()
    assert (funnel.feature_latest_event[len(funnel.train) :] >= 0).any()  # test rows do use training events
    # A test row's popularity is the item's clicks over the training period, nothing later.
    clicks = np.concatenate([funnel.train.item_cat[:, 0][funnel.train.click > 0]])
    expected = np.log1p(np.bincount(clicks, minlength=61)[funnel.test.item_cat[:, 0]]) / 6
    np.testing.assert_allclose(funnel.test.item_dense[:, 0], expected, rtol=1e-6)


def test_rewriting_the_test_period_changes_no_feature(tmp_path: Path) -> None:
    """The earlier funnel counted popularity over every impression and fed test-period clicks into
    histories: changing what users did after the split changed the features of test rows."""
    ratings = _ratings()
    before = movielens(_movielens(tmp_path / "a", ratings))
    flipped = [(u, i, 6 - r if t >= before.split_ts else r, t) for u, i, r, t in ratings]
    after = movielens(_movielens(tmp_path / "b", flipped))
    assert after.split_ts == before.split_ts
    assert not np.array_equal(before.test.click, after.test.click)  # the labels did change
    for name in FEATURES:
        np.testing.assert_array_equal(getattr(before.train, name), getattr(after.train, name), err_msg=name)
        np.testing.assert_array_equal(getattr(before.test, name), getattr(after.test, name), err_msg=name)


def test_rows_sharing_a_timestamp_do_not_see_each_others_clicks(tmp_path: Path) -> None:
    ratings = [(1, 1, 5, 880_000_000), (1, 2, 5, 880_000_000), (1, 3, 5, 880_000_100)]
    ratings += [(u, i, 2, 880_000_200 + u * 60 + i) for u in range(2, 9) for i in range(10, 20)]
    ratings += [(40, 60, 1, 880_001_000)]  # the highest ids, as the files list them
    funnel = movielens(_movielens(tmp_path / "ml", ratings))
    first = [n for n in range(len(funnel.train)) if funnel.train.ts[n] == 880_000_000]
    assert first and all(funnel.train.history[n].sum() == 0 for n in first)
    assert all(funnel.train.item_dense[n, 0] == 0 for n in first)
    later = [n for n in range(len(funnel.train)) if funnel.train.ts[n] == 880_000_100]
    assert sorted(funnel.train.history[later[0]][-2:].tolist()) == [1, 2]


def test_baselines_are_scored_and_logistic_regression_is_selected_on_validation(tmp_path: Path) -> None:
    funnel = movielens(_movielens(tmp_path / "ml", _ratings(1, 6000)))
    fit, validation = split_by_time(funnel.train, TrainSettings().calibration_share)
    out = baselines(funnel.schema, fit, validation, funnel.test)
    assert set(out) == {"popularity only", "logistic regression, same features"}
    for result in out.values():
        assert 0.0 <= result["conversion"]["auc"] <= 1.0 and result["conversion"]["logloss"] > 0
    chosen = out["logistic regression, same features"]["selected"]
    assert chosen["validation_auc"] == max(score for _, score in chosen["grid"])


def test_paired_difference_says_when_it_is_not_significant() -> None:
    tie = paired_difference([0.761, 0.764, 0.760, 0.763, 0.762], [0.762, 0.761, 0.763, 0.761, 0.762])
    assert not tie["significant"] and tie["p"] > 0.05 and "not significant" in verdict(tie)
    ahead = paired_difference([0.770, 0.771, 0.769, 0.772, 0.770], [0.760, 0.762, 0.759, 0.761, 0.760])
    assert ahead["significant"] and ahead["p"] < 0.01 and ahead["wins"] == 5
    assert verdict(ahead).startswith("significant")
    few = paired_difference([0.8, 0.9], [0.1, 0.2])
    assert not few["significant"]  # two seeds never make a claim


@pytest.mark.parametrize(("init", "low", "high"), [("uniform", 0.0, 0.05), ("normal", 1.0, 10.0)])
def test_the_embedding_initialisation_is_a_setting(init: str, low: float, high: float) -> None:
    torch.manual_seed(0)
    schema = FeatureSchema(user_categorical={"user_id": 50}, item_categorical={"item_id": 80})
    model = ConversionModel(schema, ModelConfig(embedding_init=init))  # type: ignore[arg-type]
    spread = float(model.item_embeddings[0].weight.detach().abs().max())
    assert low < spread <= high  # U(±0.05) stays within 0.05; N(0, 1) over 80×16 draws exceeds 1


def test_results_carry_commit_seeds_and_data_version(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one")
    b.write_text("two")
    version = data_version([a, b])
    assert version == data_version([b, a]) and version.startswith("sha256:")
    b.write_text("TWO")
    assert data_version([a, b]) != version
    stamp = provenance([0, 1, 2], {"x": version}, epochs=3)
    assert stamp["seeds"] == [0, 1, 2] and stamp["data"] == {"x": version} and stamp["settings"] == {"epochs": 3}
    assert stamp["commit"] == commit() and stamp["commit"] != ""
