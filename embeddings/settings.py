"""Settings of the knowledge index and of the LLM it may use (BASTION_* environment variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_DIR = Path(__file__).parent / "demo"


class LLMSettings(BaseSettings):
    """An OpenAI-compatible endpoint. Unset base URL or model: no LLM, and features say so."""

    model_config = SettingsConfigDict(env_prefix="BASTION_LLM_", extra="ignore", env_file=".env")

    base_url: str | None = Field(None, description="OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1")
    model: str | None = None
    api_key: SecretStr | None = None
    timeout: float = Field(60.0, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_", extra="ignore", env_file=".env")

    data_dir: Path = Path(".bastion")
    warehouse_url: str | None = Field(
        None,
        description="Schema source: a .duckdb or .sqlite file, an SQLAlchemy URL, or trino://…; "
        "default: the demo warehouse under DATA_DIR/demo",
    )
    catalog_metadata: Path | None = Field(None, description="Metadata YAML (owners, tiers, glossary, PII, …)")
    query_log: Path | None = Field(None, description="Query history, CSV or JSONL")
    query_log_table: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$",
        description="Query history kept as a table of a Spark warehouse (schema.table, the file's columns), "
        "read instead of QUERY_LOG",
    )
    query_log_rows: int = Field(200_000, ge=1, description="Rows of QUERY_LOG_TABLE read at most, latest first")
    query_dialect: str = Field("duckdb", description="SQL dialect of the query log (sqlglot name)")
    chroma_path: Path | None = Field(None, description="Chroma PersistentClient directory; default DATA_DIR/chroma")
    chroma_url: str | None = Field(None, description="A Chroma server (HttpClient), e.g. http://chroma:8000")
    embeddings: Literal["minilm", "openai"] = Field("minilm", description="Embedding provider")
    embeddings_model: str = Field("text-embedding-3-small", description="Model name for OpenAI-compatible embeddings")

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"

    @property
    def datasets_dir(self) -> Path:
        """Where public data fetched for training and evaluations is kept (`tools.datasets`)."""
        return self.data_dir / "datasets"

    @property
    def demo_warehouse(self) -> Path:
        return self.demo_dir / "warehouse.duckdb"

    def source(self) -> str:
        return self.warehouse_url or str(self.demo_warehouse)

    def metadata_file(self) -> Path | None:
        if self.catalog_metadata is not None:
            return self.catalog_metadata
        return DEMO_DIR / "metadata.yaml" if self.warehouse_url is None else None

    def query_log_file(self) -> Path | None:
        if self.query_log is not None:
            return self.query_log
        return self.demo_dir / "query_log.jsonl" if self.warehouse_url is None else None

    def chroma_dir(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"
