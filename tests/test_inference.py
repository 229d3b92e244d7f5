"""The conversion model: dedup equals naive scoring, artifacts and registry, serving errors, the feature log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import duckdb
import numpy as np
import pytest
import torch
from mcp import Client

from tools.inference.features import Candidate, Context, FeatureSchema, InferenceError, User, encode
from tools.inference.model import ConversionModel
from tools.inference.registry import ModelConfig, ModelRegistry
from tools.inference.server import InferenceSettings, build
from tools.inference.serving import InferenceService, Scorer
from tools.inference.training import Arrays, TrainSettings, apply_platt, auc, evaluate, platt, train
from tools.parity import audit

SCHEMA = FeatureSchema(
    user_categorical={"user_id": 200, "segment": 5},
    user_dense=["tenure"],
    item_categorical={"item_id": 300, "category": 8},
    item_dense=["price"],
    history_length=5,
)


def synthetic(n: int = 12000, seed: int = 0) -> Arrays:
    """Clicks depend on the user's segment matching the item's category; conversions on price too."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(1, 200, n), rng.integers(1, 300, n)
    segment, category = users % 5, items % 8
    price = rng.random(n).astype(np.float32)
    affinity = (segment == category % 5).astype(float)
    click = (rng.random(n) < 0.05 + 0.4 * (segment <= 1) + 0.4 * affinity).astype(np.float32)
    conversion = (click * (rng.random(n) < 0.6 - 0.5 * price)).astype(np.float32)
    history = rng.integers(0, 300, (n, 5))
    return Arrays(
        user_cat=np.column_stack([users, segment]).astype(np.int64),
        user_dense=rng.random((n, 1)).astype(np.float32),
        history=history.astype(np.int64),
        surface=rng.integers(0, 3, n).astype(np.int64),
        item_cat=np.column_stack([items, category]).astype(np.int64),
        item_dense=price.reshape(-1, 1),
        click=click,
        conversion=conversion,
        ts=np.arange(n),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, Arrays]:
    data = synthetic()
    small = ModelConfig(embedding_dim=8, mlp=[32, 16], user_encoder=[32, 16])
    model, calibration = train(SCHEMA, small, data.take(slice(0, 10000)), TrainSettings(epochs=4, batch_size=256))
    registry = ModelRegistry(tmp_path_factory.mktemp("models"))
    registry.save(model, calibration, {"test": evaluate(model, calibration, data.take(slice(10000, None)))}, 10000)
    return registry, data


def request(n: int, **user: Any) -> tuple[User, Context, list[Candidate]]:
    features = {"user_id": 7, "segment": 2, "tenure": 0.5, **user}
    candidates = [
        Candidate(id=f"c{i}", features={"item_id": i + 1, "category": i % 8, "price": (i % 10) / 10}) for i in range(n)
    ]
    return User(features=features, history=[3, 4, 5]), Context(surface="search"), candidates


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(structure="stacked"),
        ModelConfig(experts=3),
        ModelConfig(heads="shared"),
        ModelConfig(heads="single"),
    ],
)
def test_request_level_dedup_equals_naive_scoring(config: ModelConfig) -> None:
    torch.manual_seed(1)
    model = ConversionModel(SCHEMA, config).eval()
    user, context, candidates = request(257)
    e = encode(SCHEMA, user, context, candidates)
    t = [
        torch.as_tensor(getattr(e, k))
        for k in ("user_cat", "user_dense", "history", "surface", "item_cat", "item_dense")
    ]
    n = len(candidates)
    with torch.inference_mode():
        naive = model(t[0].expand(n, -1), t[1].expand(n, -1), t[2].expand(n, -1), t[3].expand(n), t[4], t[5])
        dedup = model.score_request(*t)
        model.freeze_split()
        frozen = model.score_request(*t)
    assert torch.allclose(naive, dedup, atol=1e-5) and torch.allclose(naive, frozen, atol=1e-5)


def test_training_learns_and_calibration_fits(trained: tuple[ModelRegistry, Arrays]) -> None:
    registry, _ = trained
    metrics = registry.artifact().metrics["test"]
    assert metrics["click"]["auc"] > 0.7 and metrics["conversion"]["auc"] > 0.65
    rng = np.random.default_rng(3)
    p = rng.random(20_000) * 0.8 + 0.1
    y = (rng.random(20_000) < apply_platt(p, (0.5, -1.0))).astype(float)
    a, b = platt(p, y)
    assert abs(a - 0.5) < 0.1 and abs(b + 1.0) < 0.1
    assert auc(np.array([0, 0, 1, 1.0]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75


def test_embeddings_start_small_as_in_dcn_v2_reference_code() -> None:
    # N(0, 1) rows (PyTorch's default) swamp x₀ in the cross layers; Keras' U(±0.05) does not.
    model = ConversionModel(SCHEMA, ModelConfig())
    tables = [*model.user_embeddings, *model.item_embeddings, model.surface_embedding]
    assert all(float(t.weight.abs().max()) <= 0.05 for t in tables)
    assert all(float(t.weight.std()) > 0.02 for t in tables if t.weight.numel() > 20)  # still random


def test_structure_tuning_reports_the_paired_difference() -> None:
    from rich.console import Console

    from tools.inference.evaluation import paired_difference, render_tuning

    delta = paired_difference([0.765, 0.768, 0.762], [0.765, 0.763, 0.761])
    assert delta["per_seed"] == pytest.approx([0.0, 0.005, 0.001])
    assert delta["mean"] == pytest.approx(0.002) and delta["se"] == pytest.approx(0.0015275, abs=1e-6)
    chosen = {"cross_layers": 1, "mlp": [128, 64], "validation_auc": 0.8}
    results = {s: {"selected": chosen, "mean": 0.76, "sd": 0.002, "test_auc": [0.76]} for s in ("parallel", "stacked")}
    console = Console(record=True, width=200)
    render_tuning({**results, "parallel_minus_stacked": delta}, console)
    assert "parallel − stacked, paired by seed: +0.0020 ± 0.0015 (s.e.); per seed +0.0000, +0.0050, +0.0010" in (
        console.export_text()
    )


def test_artifact_registry_and_schema_hash(trained: tuple[ModelRegistry, Arrays], tmp_path: Path) -> None:
    registry, _ = trained
    artifact = registry.artifact()
    assert artifact.version == "v1" and registry.serving() == "v1" and artifact.schema_hash == SCHEMA.hash()
    assert artifact.code_version.startswith("bastion ") and artifact.training_rows == 10000
    with pytest.raises(InferenceError, match="does not exist"):
        registry.artifact("v9")
    # A tampered schema no longer matches the hash the model was trained with.
    copy = ModelRegistry(tmp_path)
    model, _ = registry.load()
    copy.save(model, artifact.calibration, {}, 1)
    path = tmp_path / "v1" / "artifact.json"
    raw = json.loads(path.read_text())
    raw["schema"]["item_dense"] = ["price", "discount"]
    path.write_text(json.dumps(raw))
    with pytest.raises(InferenceError) as mismatch:
        copy.load("v1")
    assert mismatch.value.code == "schema_mismatch"


def test_serving_scores_calibrated_and_logs_features(trained: tuple[ModelRegistry, Arrays], tmp_path: Path) -> None:
    registry, _ = trained
    service = InferenceService(registry.root, tmp_path / "log.duckdb", max_candidates=100)
    user, context, candidates = request(50)
    response = service.score(user, context, candidates)
    assert response.runtime == "torchscript" and len(response.candidates) == 50 and response.logged
    assert all(0 <= c.p_conversion <= 1 and c.p_click is not None for c in response.candidates)
    scorer = service.scorer()
    raw_conv, _ = scorer.raw(encode(SCHEMA, user, context, candidates))
    assert not np.allclose(raw_conv, [c.p_conversion for c in response.candidates])  # calibration applied
    service.score(user, Context(surface="home_feed"), candidates)
    service.close()  # the log is written off the request path; a graceful stop writes what is queued
    con = duckdb.connect(str(tmp_path / "log.duckdb"))
    table = f"served_{SCHEMA.hash()}"
    rows = con.execute(f"SELECT count(*), count(DISTINCT request_id), min(model_version) FROM {table}").fetchone()
    assert rows == (100, 2, "v1")
    logged = con.execute(
        f"SELECT candidate_id, surface, history, p_conversion FROM {table} WHERE surface = 'search' ORDER BY rowid"
    ).fetchall()
    assert [r[0] for r in logged] == [c.id for c in candidates]  # row per candidate, as served
    assert {(r[1], tuple(r[2])) for r in logged} == {("search", (3, 4, 5))}  # request-level columns on every row
    assert [r[3] for r in logged] == pytest.approx([c.p_conversion for c in response.candidates], abs=1e-6)
    # The log is what the parity tool audits: against itself, nothing to report.
    con.execute(f"COPY (SELECT * EXCLUDE (history) FROM {table}) TO '{tmp_path / 'served.parquet'}' (FORMAT parquet)")
    con.close()
    report = audit(str(tmp_path / "served.parquet"), str(tmp_path / "served.parquet"), ["request_id", "candidate_id"])
    assert report.findings == []


def test_the_feature_log_never_makes_a_request_wait_and_loses_nothing(
    trained: tuple[ModelRegistry, Arrays], tmp_path: Path
) -> None:
    """Old code inserted row by row inside the request: 1.3 s of a 1.3 s request at N = 500. Here another process
    holds the log file for 3 s (as an audit writing to it would): requests go on at their own speed, the rows
    wait, and all of them are written once the file is free."""
    import subprocess
    import sys
    import time

    registry, _ = trained
    path = tmp_path / "log.duckdb"
    script = f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(3)"
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    service = InferenceService(registry.root, path, max_candidates=600)
    user, context, candidates = request(500)
    service.score(user, context, candidates)  # warm (TorchScript load)
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        service.score(user, context, candidates)
        latencies.append(time.perf_counter() - started)
    assert service.log is not None and service.log.pending == 21 * 500  # nothing could be written yet
    assert sorted(latencies)[10] < 0.05, latencies  # p50 of a 500-candidate request, the disk out of the way
    holder.wait(timeout=20)
    service.close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM served_{SCHEMA.hash()}").fetchone() == (21 * 500,)


def test_a_full_feature_log_queue_drops_and_counts_but_serves(
    trained: tuple[ModelRegistry, Arrays], tmp_path: Path
) -> None:
    from tools.inference.featurelog import FeatureLog

    registry, _ = trained
    service = InferenceService(registry.root, None, max_candidates=100)
    service.log = FeatureLog(tmp_path / "log.duckdb", interval=60, max_rows=120)  # the writer sleeps
    for _ in range(4):
        assert len(service.score(*request(50)).candidates) == 50
    assert service.log.pending == 100 and service.log.dropped == 100
    service.close()
    assert service.log.written == 100


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda u, c, cs: (User(features={"user_id": 1}, history=[]), c, cs), "missing_feature"),
        (lambda u, c, cs: (User(features={**u.features, "age": 3}, history=[]), c, cs), "extra_feature"),
        (lambda u, c, cs: (User(features={**u.features, "segment": 1.5}, history=[]), c, cs), "wrong_type"),
        (lambda u, c, cs: (u, Context(surface="email"), cs), "unknown_surface"),
        (lambda u, c, cs: (u, c, []), "no_candidates"),
        (lambda u, c, cs: (u, c, cs * 30), "too_many_candidates"),
        (lambda u, c, cs: (u, c, [Candidate(id="x", features={"item_id": 1, "category": 2})]), "missing_feature"),
    ],
)
def test_bad_requests_are_named(trained: tuple[ModelRegistry, Arrays], mutate: Any, code: str) -> None:
    registry, _ = trained
    service = InferenceService(registry.root, None, max_candidates=100)
    user, context, candidates = mutate(*request(5))
    with pytest.raises(InferenceError) as error:
        service.score(user, context, candidates)
    assert error.value.code == code
    with pytest.raises(InferenceError) as unknown:
        service.score(*request(5), version="v7")
    assert unknown.value.code == "unknown_version"
    with pytest.raises(InferenceError) as stale:
        service.score(*request(5), schema_hash="0123456789abcdef")
    assert stale.value.code == "schema_mismatch"


def test_scorer_batches_any_size(trained: tuple[ModelRegistry, Arrays]) -> None:
    registry, _ = trained
    model, artifact = registry.load()
    scorer = Scorer(model, artifact)
    for n in (1, 3, 700):
        user, context, candidates = request(n)
        encoded = encode(SCHEMA, user, context, candidates)
        dedup, _ = scorer.raw(encoded, dedup=True)
        naive, _ = scorer.raw(encoded, dedup=False)
        assert dedup.shape == (n,) and np.allclose(dedup, naive, atol=1e-5)


def test_the_service_can_score_without_dedup_for_an_a_b(trained: tuple[ModelRegistry, Arrays]) -> None:
    registry, _ = trained
    user, context, candidates = request(40)
    scored = {
        dedup: InferenceService(registry.root, None, dedup=dedup).score(user, context, candidates, log=False)
        for dedup in (True, False)
    }
    assert [c.id for c in scored[True].candidates] == [c.id for c in scored[False].candidates]
    assert np.allclose([c.p_conversion for c in scored[True].candidates],
                       [c.p_conversion for c in scored[False].candidates], atol=1e-5)  # fmt: skip
    assert InferenceSettings().dedup and not InferenceSettings(dedup=False).dedup


def test_mcp_server(trained: tuple[ModelRegistry, Arrays], tmp_path: Path) -> None:
    registry, _ = trained
    server = build(InferenceSettings(models=registry.root, feature_log=tmp_path / "log.duckdb"), tmp_path)
    user, context, candidates = request(3)

    async def scenario() -> dict[str, Any]:
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            scored = await client.call_tool(
                "score_candidates",
                {
                    "user": user.model_dump(),
                    "context": context.model_dump(),
                    "candidates": [c.model_dump() for c in candidates],
                },
            )
            empty = await client.call_tool(
                "score_candidates", {"user": user.model_dump(), "context": context.model_dump(), "candidates": []}
            )
            info = await client.call_tool("model_info", {})
            listed = await client.call_tool("list_models", {})
            return {"tools": tools, "scored": scored, "empty": empty, "info": info, "listed": listed}

    result = anyio.run(scenario)
    assert set(result["tools"]) == {"score_candidates", "model_info", "list_models"}
    assert all(t.annotations.read_only_hint for t in result["tools"].values())
    assert not result["scored"].is_error and len(result["scored"].structured_content["candidates"]) == 3
    assert result["empty"].is_error and "no_candidates" in result["empty"].content[0].text
    assert result["listed"].structured_content == {"serving": "v1", "versions": ["v1"]}
    assert not result["info"].is_error


def test_a_graceful_stop_of_the_server_writes_every_served_row(
    trained: tuple[ModelRegistry, Arrays], tmp_path: Path
) -> None:
    """Through a real `bastion serve`: scored requests, then SIGTERM; every candidate is in the log."""
    from tests.security.clients import connect
    from tests.security.conftest import base_env, serve

    registry, _ = trained
    log_path = tmp_path / "served.duckdb"
    live = serve(tmp_path / "data", base_env(tmp_path / "data", BASTION_INFERENCE_MODELS=str(registry.root),
                                             BASTION_INFERENCE_FEATURE_LOG=str(log_path)))  # fmt: skip
    user, context, candidates = request(40)
    arguments = {"user": user.model_dump(), "context": context.model_dump(),
                 "candidates": [c.model_dump() for c in candidates]}  # fmt: skip
    try:

        async def scenario() -> None:
            async with connect(live.base, live.token("ann", ["analysts"])) as client:
                for _ in range(12):
                    result = await client.call_tool("inference__score_candidates", arguments)
                    assert not result.is_error, result.content

        anyio.run(scenario)
        import httpx

        metrics = httpx.get(f"{live.base}/metrics", headers=live.admin).text  # the writer's lag and counts
        assert "bastion_feature_log_lag_seconds" in metrics and "bastion_feature_log_rows_dropped_total 0.0" in metrics
    finally:
        live.stop()
    with duckdb.connect(str(log_path), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM served_{SCHEMA.hash()}").fetchone() == (12 * 40,)


def test_the_vectorised_encoder_gives_the_checked_arrays_and_the_same_errors() -> None:
    """Item features are read in one pass when the request is well-formed; every other request takes the
    per-value path. Same arrays on the edge values (unseen, negative and float-written ids), same codes."""
    from tools.inference.features import _items, _items_checked

    rng = np.random.default_rng(3)
    values: list[Any] = [0, 1, 299, 300, 10**6, -4, 7.0, 2.0**60, 10**30]
    candidates = [
        Candidate.model_construct(
            id=f"c{i}",
            features={
                "item_id": values[i % len(values)],
                "category": int(rng.integers(0, 12)),
                "price": float(rng.normal()),
            },
        )
        for i in range(200)
    ]
    fast, checked = _items(SCHEMA, candidates), _items_checked(SCHEMA, candidates)
    assert fast[0].dtype == np.int64 and fast[1].dtype == np.float32
    assert np.array_equal(fast[0], checked[0]) and np.array_equal(fast[1], checked[1])
    assert fast[0][:, 0].tolist()[:9] == [0, 1, 299, 0, 0, 0, 7, 0, 0]  # unknown ids read as 0, 'unknown'
    user, context, _ = request(1)
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({"item_id": 1.5, "category": 1, "price": 0.1}, "wrong_type", "'item_id' must be an integer id"),
        ({"item_id": float("nan"), "category": 1, "price": 0.1}, "wrong_type", "'item_id' must be an integer id"),
        ({"item_id": float("inf"), "category": 1, "price": 0.1}, "wrong_type", "'item_id' must be an integer id"),
        ({"item_id": True, "category": 1, "price": 0.1}, "wrong_type", "'item_id' must be an integer id"),
        ({"item_id": 1, "category": 1, "price": float("nan")}, "wrong_type", "'price' must be a finite number"),
        ({"item_id": 1, "category": 1, "price": "0.1"}, "wrong_type", "'price' must be a finite number"),
        ({"item_id": 1, "category": 1}, "missing_feature", "features missing: price"),
        ({"item_id": 1, "category": 1, "price": 0.1, "colour": 2}, "extra_feature", "not in the model's schema"),
    ]
    for features, code, message in bad:
        one = [*candidates[:5], Candidate.model_construct(id="bad", features=features)]
        with pytest.raises(InferenceError) as error:
            encode(SCHEMA, user, context, one)
        assert (error.value.code, "candidate 'bad'") == (code, error.value.message[:15]), error.value.message
        assert message in error.value.message


def test_the_feature_log_keeps_writing_after_its_file_is_moved_away(
    trained: tuple[ModelRegistry, Arrays], tmp_path: Path
) -> None:
    """An operator archives the log while the server runs: the next write starts a new file with the table (the
    writer used to remember the table and fail every write after, keeping rows until the queue dropped them)."""
    from tools.inference.featurelog import FeatureLog

    registry, _ = trained
    service = InferenceService(registry.root, None, max_candidates=100)
    service.log = log = FeatureLog(tmp_path / "log.duckdb", interval=3600)
    service.score(*request(10))
    log.flush()
    (tmp_path / "log.duckdb").rename(tmp_path / "archived.duckdb")
    service.score(*request(20))
    log.flush()
    assert log.pending == 0 and log.written == 30
    service.close()
    table = f"served_{SCHEMA.hash()}"
    for name, rows in (("archived.duckdb", 10), ("log.duckdb", 20)):
        with duckdb.connect(str(tmp_path / name), read_only=True) as con:
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (rows,)


def test_the_feature_log_batch_is_the_requests_rows_in_order() -> None:
    """The writer builds one Arrow table per batch, column by column: each row still carries its own request's
    id, time, user features and history, and a model without a click head writes NULL, not a number."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from tools.inference.featurelog import Served, batch_table

    rng = np.random.default_rng(0)

    def served(i: int, n: int, click: bool) -> Served:
        return Served(
            table="served_x", request_id=f"r{i}", logged_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
            model_version="v1", surface=["search", "home_feed"][i % 2], ids=pa.array([f"r{i}c{j}" for j in range(n)]),
            user_columns=[("user_id", "BIGINT", 100 + i), ("tenure", "DOUBLE", i / 10)],
            item_cat=rng.integers(0, 9, (n, 2)), item_dense=rng.random((n, 1)), item_names=(["item_id", "category"],
            ["price"]), history=np.arange(1, i + 2), click=rng.random(n) if click else None, conversion=rng.random(n),
        )  # fmt: skip

    requests = [served(0, 3, True), served(1, 1, False), served(2, 4, True)]
    table = batch_table(requests)
    assert table.num_rows == 8
    assert table.column_names == [c for c, _ in requests[0].columns()]
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows] == ["r0"] * 3 + ["r1"] + ["r2"] * 4
    assert [r["candidate_id"] for r in rows][:4] == ["r0c0", "r0c1", "r0c2", "r1c0"]
    assert [r["user_id"] for r in rows] == [100] * 3 + [101] + [102] * 4
    assert rows[3]["history"] == [1, 2] and rows[7]["history"] == [1, 2, 3]
    assert rows[3]["logged_at"] == datetime(2026, 1, 1, 0, 0, 1) and rows[3]["surface"] == "home_feed"
    assert rows[3]["p_click"] is None and rows[0]["p_click"] == float(requests[0].click[0])  # type: ignore[index]
    assert [r["item_id"] for r in rows][4:] == requests[2].item_cat[:, 0].tolist()
    assert [r["p_conversion"] for r in rows][4:] == requests[2].conversion.tolist()


def test_dense_values_the_model_cannot_read_are_refused_on_both_paths() -> None:
    """An integer beyond float64 (a 500 before), or a value beyond float32 (the model's input type: it became
    infinite), is `wrong_type` whether or not the request takes the vectorised path; 2**64 is a number."""
    from tools.inference.features import _items, _items_checked

    user, context, _ = request(1)
    fine = Candidate.model_construct(id="ok", features={"item_id": 1, "category": 1, "price": 2**64})
    assert _items(SCHEMA, [fine])[1][0, 0] == np.float32(2**64) == _items_checked(SCHEMA, [fine])[1][0, 0]
    broken = Candidate.model_construct(id="other", features={"item_id": 1, "category": 1})  # the per-value path
    for value in (10**400, 1e300, -3.5e38):
        bad = Candidate.model_construct(id="bad", features={"item_id": 1, "category": 1, "price": value})
        for candidates in ([bad], [bad, broken]):
            with pytest.raises(InferenceError) as error:
                encode(SCHEMA, user, context, candidates)
            assert error.value.code == "wrong_type" and "'price' must be a finite number" in error.value.message
            assert len(error.value.message) < 200
