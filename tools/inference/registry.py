"""The inference tool's model registry (versioned artifacts), importable without torch.

The MCP server is built at every `bastion serve` start and `registry seed`; it needs these types
for its schemas, and the registry's index for `list_models`/`model_info`. Torch loads only when a
model is trained, saved, loaded or scored.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tools.inference.contracts import Calibration, ModelConfig
from tools.inference.features import FeatureSchema, InferenceError

if TYPE_CHECKING:
    from tools.inference.model import ConversionModel


class Artifact(BaseModel):
    version: str
    created_at: datetime
    schema_: FeatureSchema = Field(alias="schema")
    schema_hash: str
    config: ModelConfig
    calibration: Calibration
    metrics: dict[str, Any] = Field(default_factory=dict)
    code_version: str
    training_rows: int

    model_config = {"populate_by_name": True}


def code_version() -> str:
    from importlib.metadata import version

    from tools.provenance import commit

    rev = commit()
    return f"bastion {version('bastion')}" + (f" @ {rev}" if rev != "unknown" else "")


class ModelRegistry:
    """Versions under one directory; `registry.json` names the serving one. Writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _index(self) -> dict[str, Any]:
        path = self.root / "registry.json"
        return json.loads(path.read_text()) if path.exists() else {"serving": None, "versions": []}

    def _write_index(self, index: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "registry.json.tmp"
        tmp.write_text(json.dumps(index, indent=2))
        tmp.replace(self.root / "registry.json")

    def save(
        self, model: ConversionModel, calibration: Calibration, metrics: dict[str, Any], rows: int, serve: bool = True
    ) -> Artifact:
        index = self._index()
        version = f"v{len(index['versions']) + 1}"
        artifact = Artifact(
            version=version,
            created_at=datetime.now(UTC),
            schema_=model.schema,
            schema_hash=model.schema.hash(),
            config=model.config,
            calibration=calibration,
            metrics=metrics,
            code_version=code_version(),
            training_rows=rows,
        )
        staging = self.root / f".{version}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        import torch

        torch.save(model.state_dict(), staging / "weights.pt")
        (staging / "artifact.json").write_text(artifact.model_dump_json(by_alias=True, indent=2))
        staging.rename(self.root / version)
        index["versions"].append(version)
        if serve or index["serving"] is None:
            index["serving"] = version
        self._write_index(index)
        return artifact

    def versions(self) -> list[str]:
        return list(self._index()["versions"])

    def serving(self) -> str | None:
        serving: str | None = self._index()["serving"]
        return serving

    def promote(self, version: str) -> None:
        index = self._index()
        if version not in index["versions"]:
            raise InferenceError("unknown_version", f"model version {version!r} does not exist")
        index["serving"] = version
        self._write_index(index)

    def artifact(self, version: str | None = None) -> Artifact:
        chosen = version or self.serving()
        if chosen is None:
            raise InferenceError("no_model", f"no model in {self.root}: run `bastion train conversion` first")
        if chosen not in self.versions():
            raise InferenceError(
                "unknown_version",
                f"model version {chosen!r} does not exist; known: {', '.join(self.versions()) or 'none'}",
            )
        return Artifact.model_validate_json((self.root / chosen / "artifact.json").read_text())

    def load(self, version: str | None = None) -> tuple[ConversionModel, Artifact]:
        artifact = self.artifact(version)
        if artifact.schema_.hash() != artifact.schema_hash:
            raise InferenceError(
                "schema_mismatch",
                f"model {artifact.version}: its feature schema does not match its hash {artifact.schema_hash}",
            )
        import torch

        from tools.inference.model import ConversionModel

        model = ConversionModel(artifact.schema_, artifact.config)
        model.load_state_dict(torch.load(self.root / artifact.version / "weights.pt", weights_only=True))
        model.eval()
        return model, artifact
