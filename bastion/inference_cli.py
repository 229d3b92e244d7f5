"""`bastion train conversion`, `bastion models …` and `bastion eval inference`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bastion.console import err, fail, out

train_app = typer.Typer(no_args_is_help=True, help="Train models.")
models_app = typer.Typer(no_args_is_help=True, help="The conversion model registry.")


def _registry_dir(out_dir: Path | None) -> Path:
    from embeddings.settings import IndexSettings
    from tools.inference.server import InferenceSettings

    settings = InferenceSettings().under(IndexSettings().data_dir)
    assert settings.models is not None
    return out_dir or settings.models


@train_app.command("conversion")
def train_conversion(
    data: Annotated[
        str, typer.Option(help="`movielens` (the funnel from MovieLens-100K) or an impressions .parquet")
    ] = "movielens",
    schema: Annotated[Path | None, typer.Option(help="Feature schema JSON for a .parquet --data")] = None,
    registry: Annotated[Path | None, typer.Option("--out", help="Model registry directory")] = None,
    structure: Annotated[str, typer.Option(help="parallel | stacked")] = "parallel",
    heads: Annotated[str, typer.Option(help="esmm | shared | single")] = "esmm",
    experts: Annotated[int, typer.Option(help="Low-rank experts per cross layer")] = 1,
    embedding_init: Annotated[str, typer.Option(help="uniform (U(±0.05)) | normal (PyTorch's N(0, 1))")] = "uniform",
    epochs: Annotated[int, typer.Option()] = 3,
    serve: Annotated[bool, typer.Option(help="Make the new version the serving one")] = True,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing if a model already serves")] = False,
) -> None:
    """Train the multi-task conversion model and write a versioned artifact to the registry."""
    from tools.inference.registry import ModelRegistry as _Registry

    if if_missing and _Registry(_registry_dir(registry)).serving() is not None:
        out.print(f"a conversion model already serves from {_registry_dir(registry)} (omit --if-missing to retrain)")
        return
    from embeddings.settings import IndexSettings
    from tools.inference.contracts import ModelConfig
    from tools.inference.data import arrays_from_parquet, movielens_funnel
    from tools.inference.evaluation import fetch
    from tools.inference.features import FeatureSchema, InferenceError
    from tools.inference.registry import ModelRegistry
    from tools.inference.training import TrainSettings, evaluate, train
    from tools.progress import bar

    try:
        config = ModelConfig(structure=structure, heads=heads, experts=experts, embedding_init=embedding_init)
    except ValueError as exc:
        fail(str(exc))
    try:
        if data == "movielens":
            with err.status("MovieLens-100K: the funnel's features (the data is fetched once)"):
                feature_schema, train_set, test_set, rates = movielens_funnel(fetch(IndexSettings().datasets_dir))
        else:
            if schema is None:
                raise InferenceError("bad_data", "--schema is required with a .parquet --data")
            feature_schema = FeatureSchema.model_validate_json(schema.read_text())
            everything = arrays_from_parquet(Path(data), feature_schema)
            cut = int(len(everything) * 0.8)
            train_set, test_set = everything.take(slice(0, cut)), everything.take(slice(cut, None))
            rates = {"conversion_rate": float(everything.conversion.mean())}
    except (InferenceError, OSError) as exc:
        fail(str(exc))
    progress = bar(err)

    def batches(epoch: int, step: int, steps: int) -> None:
        progress.update(task, completed=epoch * steps + step + 1, total=epochs * steps,
                        description=f"training, epoch {epoch + 1}/{epochs} (batches)")  # fmt: skip

    with progress:
        task = progress.add_task(f"training, epoch 1/{epochs} (batches)", total=None)
        model, calibration = train(feature_schema, config, train_set, TrainSettings(epochs=epochs), progress=batches)
    metrics = {"test": evaluate(model, calibration, test_set), "rates": rates}
    artifact = ModelRegistry(_registry_dir(registry)).save(model, calibration, metrics, len(train_set), serve=serve)
    out.print(
        f"model {artifact.version} (schema {artifact.schema_hash}, {artifact.code_version}) → "
        f"{_registry_dir(registry) / artifact.version}"
    )
    out.print_json(json.dumps(metrics["test"]))


@models_app.command("list")
def models_list(registry: Annotated[Path | None, typer.Option()] = None) -> None:
    """Model versions and the serving one."""
    from tools.inference.registry import ModelRegistry

    reg = ModelRegistry(_registry_dir(registry))
    for version in reg.versions():
        out.print(f"{'*' if version == reg.serving() else ' '} {version}")


@models_app.command("promote")
def models_promote(version: str, registry: Annotated[Path | None, typer.Option()] = None) -> None:
    """Make VERSION the serving model."""
    from tools.inference.features import InferenceError
    from tools.inference.registry import ModelRegistry

    try:
        ModelRegistry(_registry_dir(registry)).promote(version)
    except InferenceError as exc:
        fail(exc.message)
    out.print(f"{version} now serves")


def eval_inference(
    max_epochs: Annotated[
        int, typer.Option(help="Epoch budget: each learning rate trains this long, scored per epoch")
    ] = 4,
    seeds: Annotated[
        int, typer.Option(help="Train every configuration with this many seeds (≥ 5 for the t-tests)")
    ] = 5,
    embedding_init: Annotated[
        str, typer.Option(help="uniform: U(±0.05), as DCN v2's reference; normal: PyTorch's N(0, 1) default")
    ] = "uniform",
    only: Annotated[list[str] | None, typer.Option(help="Run only these configurations (repeatable)")] = None,
    results: Annotated[Path, typer.Option("--out", help="Where the JSON and the plot go")] = Path("bench/results"),
    tune_structures: Annotated[
        bool, typer.Option(help="Instead: parallel vs stacked, each tuned on the same grid (selected on validation)")
    ] = False,
    epochs: Annotated[int, typer.Option(help="With --tune-structures: epochs per training")] = 3,
) -> None:
    """Multi- vs single-task, parallel vs stacked DCN v2, deepctr-torch and two baselines on the
    MovieLens-100K funnel; every model's learning rate and epochs selected on validation (+ plot)."""
    from embeddings.settings import IndexSettings
    from tools.inference import evaluation
    from tools.inference.evaluation import fetch, render, run

    if embedding_init not in ("uniform", "normal"):
        fail("--embedding-init must be uniform or normal")
    folder = fetch(IndexSettings().datasets_dir)
    results.mkdir(parents=True, exist_ok=True)
    if tune_structures:
        tuned = evaluation.tune_structures(folder, seeds=tuple(range(seeds)), epochs=epochs, console=err)
        evaluation.render_tuning(tuned, out)
        (results / "inference_structures.json").write_text(json.dumps(tuned, indent=2))
        out.print(f"wrote {results / 'inference_structures.json'}")
        return
    report = run(
        folder, seeds=tuple(range(seeds)), max_epochs=max_epochs, embedding_init=embedding_init,
        configs=tuple(only) if only else None, console=err,
    )  # fmt: skip
    suffix = "" if embedding_init == "uniform" else f"_{embedding_init}_init"
    render(report, out, results / f"inference_calibration{suffix}.png")
    (results / f"inference_eval{suffix}.json").write_text(json.dumps(report, indent=2))
    out.print(f"wrote {results / f'inference_eval{suffix}.json'}")
