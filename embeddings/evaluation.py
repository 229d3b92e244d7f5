"""`bastion eval retrieval`: table retrieval on BIRD mini-dev and on the demo warehouse.

BIRD: the 11 databases' 75 tables pooled into one catalog (descriptions, value descriptions and
sample values from `dev_metadata.json`, foreign keys as join keys; no query history), the question
plus its evidence as the query, and the all-gold-tables recall@k (every table the gold SQL uses in
the top k). Baselines in the same run: plain BM25 over table and column names, BM25 over our
documents, and vector similarity alone.

Demo: the labelled questions in `embeddings/demo/questions.yaml` (written before tuning) against
the real index; recall@5 and how often a deprecated or Tier-3 table with a Tier-1 successor is
ranked first.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table as RichTable

from embeddings.bm25 import BM25
from embeddings.documents import table_document
from embeddings.embedder import Embedder
from embeddings.index import IndexSummary, Progress, Snapshot, documents
from embeddings.retrieval import Retriever
from embeddings.settings import DEMO_DIR
from embeddings.store import VectorStore, client_for
from governance.catalog import Catalog, Column, JoinKey, Table

KS = (1, 3, 5, 10)
BIRD_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "text2sql" / "bird_minidev"


class Labelled(BaseModel):
    id: str
    question: str
    tables: list[str]
    sql: str | None = None
    group: str | None = Field(None, description="Paraphrases of one need share a group")


def bird_dir() -> Path:
    for candidate in (BIRD_DIR, Path.cwd().parent / "shared" / "data" / "text2sql" / "bird_minidev"):
        if (candidate / "mini_dev_refs.json").exists():
            return candidate
    raise FileNotFoundError(f"BIRD mini-dev not found (looked in {BIRD_DIR})")


def bird_catalog(directory: Path) -> Catalog:
    catalog = Catalog()
    for database in json.loads((directory / "dev_metadata.json").read_text()):
        db = database["name"]
        catalog.domains[db] = db.replace("_", " ")
        for table in database["tables"]:
            name = f"{db}.{table['name']}".lower()
            columns = []
            for column in table["columns"]:
                parts = [
                    column.get("original_name"),
                    column.get("description"),
                    column.get("value_description"),
                    (column.get("ai_description") or "").split("\nStats:")[0],
                ]
                text = ". ".join(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
                samples = column.get("sample_values") or []
                values = None
                if column.get("type") == "text" and 0 < (column.get("unique_count") or 99) <= 30:
                    values = [str(v) for v in samples][:30]
                columns.append(Column(name=column["name"], type=column.get("type", ""), description=text or None,
                                      values=values))  # fmt: skip
            description = (table.get("ai_description") or "").split("\n")[0]
            catalog.tables[name] = Table(
                name=name, domain=db, description=description, columns=columns, row_count=table.get("row_count")
            )
        for table in database["tables"]:
            name = f"{db}.{table['name']}".lower()
            for column in table["columns"]:
                for fk in column.get("foreign_keys") or []:
                    other = f"{db}.{fk['reference_table']}".lower()
                    if other in catalog.tables and other != name:
                        left, right = f"{name}.{column['name'].lower()}", f"{other}.{fk['reference_column'].lower()}"
                        catalog.tables[name].join_keys.append(JoinKey(left=left, right=right, queries=1))
                        catalog.tables[other].join_keys.append(JoinKey(left=right, right=left, queries=1))
    return catalog


def bird_questions(directory: Path) -> list[Labelled]:
    refs = json.loads((directory / "mini_dev_refs.json").read_text())
    return [
        Labelled(
            id=str(r["question_id"]),
            question=f"{r['question']} {r.get('evidence') or ''}".strip(),
            tables=[f"{r['db_id']}.{t}".lower() for t in r["sql_refs"]["tables"]],
        )
        for r in refs
    ]


def demo_questions(file: str = "questions.yaml") -> list[Labelled]:
    data = yaml.safe_load((DEMO_DIR / file).read_text())
    return [Labelled.model_validate(q) for q in data["questions"]]


METADATA_QUESTIONS = "questions_metadata.yaml"  # written from metadata alone; measured, never a pass/fail test


def recall_at(rankings: list[list[str]], gold: list[list[str]]) -> dict[int, float]:
    return {k: sum(set(g) <= set(r[:k]) for r, g in zip(rankings, gold, strict=True)) / len(gold) for k in KS}


def _retriever_for(
    catalog: Catalog, embedder: Embedder, workdir: Path, namespace: str, progress: Progress | None = None
) -> Retriever:
    store = VectorStore(client_for(None, workdir), embedder, namespace=namespace)
    for name, docs in documents(catalog, []).items():
        store.sync(name, docs, progress=_stage(progress, f"embedding {name}", len(docs)))
    summary = IndexSummary(
        built_at=datetime.now(UTC), source=namespace, tables=len(catalog.tables), queries=0, intents=0,
        unparsed_queries=0, describer="none", embedder=embedder.name,
    )  # fmt: skip
    return Retriever(Snapshot(catalog, [], summary), store, embedder)


def _stage(progress: Progress | None, stage: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    report = progress
    return lambda n: report(stage, n, total)


def evaluate_bird(embedder: Embedder, progress: Progress | None = None) -> dict[str, Any]:
    """Recall@k of table retrieval on BIRD mini-dev, ours beside BM25 and vectors alone.

    `progress(stage, advance, total)` as the documents are embedded and the questions answered."""
    directory = bird_dir()
    catalog = bird_catalog(directory)
    questions = bird_questions(directory)
    gold = [q.tables for q in questions]
    names = list(catalog.tables)
    # Baseline 1: the README's plain BM25 over table names + column names.
    plain = BM25([f"{n.split('.', 1)[1]} " + " ".join(c.name for c in catalog.tables[n].columns) for n in names])
    # Baseline 2: BM25 over our table documents (descriptions, values).
    rich = BM25([table_document(catalog.tables[n], catalog) for n in names])
    with tempfile.TemporaryDirectory() as workdir:
        retriever = _retriever_for(catalog, embedder, Path(workdir), "bird", progress)
        vectors = embedder.embed([q.question for q in questions])
        table_vectors = embedder.embed([table_document(catalog.tables[n], catalog) for n in names])
        runs: dict[str, list[list[str]]] = {"BM25, names only (README baseline)": [], "BM25, our documents": [],
                                            "vectors only (MiniLM)": [], "ours: hybrid + joins": []}  # fmt: skip
        for q, vector in zip(questions, vectors, strict=True):
            runs["BM25, names only (README baseline)"].append(
                [names[i] for i in np.argsort(-plain.scores(q.question))[:10]]
            )
            runs["BM25, our documents"].append([names[i] for i in np.argsort(-rich.scores(q.question))[:10]])
            runs["vectors only (MiniLM)"].append([names[i] for i in np.argsort(-(table_vectors @ vector))[:10]])
            runs["ours: hybrid + joins"].append([h.table for h in retriever.search_tables(q.question, k=10)])
            if progress is not None:
                progress("BIRD questions", 1, len(questions))
    return {name: recall_at(rankings, gold) for name, rankings in runs.items()} | {"_questions": len(questions),
                                                                                   "_tables": len(names)}  # fmt: skip


def evaluate_demo(
    retriever: Retriever, file: str = "questions.yaml", progress: Progress | None = None
) -> dict[str, Any]:
    questions = demo_questions(file)
    rankings = []
    bad_first: list[str] = []
    misses: list[str] = []
    for q in questions:
        hits = retriever.search_tables(q.question, k=10)
        if progress is not None:
            progress(f"demo questions ({file})", 1, len(questions))
        names = [h.table for h in hits]
        rankings.append(names)
        first = retriever.catalog.tables.get(names[0]) if names else None
        if first is not None and (first.deprecated or first.tier == 3) and first.successor:
            successor = retriever.catalog.tables.get(first.successor)
            if successor is not None and successor.tier == 1:
                bad_first.append(f"{q.id}: {names[0]} first, {first.successor} exists")
        if not set(q.tables) <= set(names[:5]):
            misses.append(f"{q.id} {q.question!r}: gold {q.tables}, got {names[:5]}")
    multi = [n for n, q in enumerate(questions) if len(q.tables) > 1]
    return {"recall": recall_at(rankings, [q.tables for q in questions]), "questions": len(questions),
            "multi_table": len(multi),
            "recall_multi_table": recall_at([rankings[n] for n in multi], [questions[n].tables for n in multi])
            if multi else None,
            "bad_first": bad_first, "misses": misses}  # fmt: skip


def report(bird: dict[str, Any] | None, demo: dict[str, Any] | None, out_dir: Path, console: Console,
           note: Callable[[str], None] | None = None, metadata: dict[str, Any] | None = None,
           stamp: dict[str, Any] | None = None) -> None:  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    if bird is not None:
        table = RichTable(title=f"BIRD mini-dev: all gold tables in the top k ({bird['_questions']} questions, "
                                f"{bird['_tables']} tables pooled)")  # fmt: skip
        table.add_column("method")
        for k in KS:
            table.add_column(f"recall@{k}", justify="right")
        for name, values in bird.items():
            if not name.startswith("_"):
                table.add_row(name, *[f"{100 * values[k]:.1f}%" for k in KS])
        console.print(table)
        console.print("Target: ≥ 97% at k=10.")
    if demo is not None:
        table = RichTable(title=f"Demo warehouse: {demo['questions']} labelled questions")
        for col in ("recall@1", "recall@3", "recall@5", "recall@10", "deprecated/Tier-3 first (Tier-1 exists)"):
            table.add_column(col, justify="right")
        table.add_row(*[f"{100 * demo['recall'][k]:.1f}%" for k in KS], str(len(demo["bad_first"])))
        console.print(table)
        console.print("Targets: recall@5 ≥ 95%; deprecated or Tier-3 first where a Tier-1 successor exists: 0.")
        for line in demo["bad_first"] + demo["misses"]:
            console.print(f"  {line}", markup=False)
    if metadata is not None:
        table = RichTable(title=f"Demo warehouse, {metadata['questions']} questions written from metadata alone "
                                f"({metadata['multi_table']} multi-table; measured, not a pass/fail test)")  # fmt: skip
        for col in ("set", *(f"recall@{k}" for k in KS)):
            table.add_column(col, justify="right")
        table.add_row("all", *[f"{100 * metadata['recall'][k]:.1f}%" for k in KS])
        if metadata["recall_multi_table"]:
            table.add_row("multi-table", *[f"{100 * metadata['recall_multi_table'][k]:.1f}%" for k in KS])
        console.print(table)
        for line in metadata["misses"]:
            console.print(f"  {line}", markup=False)
    payload = {"bird": bird, "demo": demo, "demo_metadata_questions": metadata, "provenance": stamp}
    (out_dir / "retrieval_eval.json").write_text(json.dumps(payload, indent=2, default=str))
    _plot(bird, demo, out_dir / "retrieval_recall.png")
    console.print(f"wrote {out_dir / 'retrieval_eval.json'} and {out_dir / 'retrieval_recall.png'}")


def _plot(bird: dict[str, Any] | None, demo: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    if bird is not None:
        for name, values in bird.items():
            if not name.startswith("_"):
                ax.plot(KS, [values[k] for k in KS], marker="o", label=f"BIRD: {name}")
    if demo is not None:
        ax.plot(KS, [demo["recall"][k] for k in KS], marker="s", linestyle="--", color="black", label="demo: ours")
    ax.axhline(0.97, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(KS)
    ax.set_xlabel("k")
    ax.set_ylabel("all-gold-tables recall@k")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Table retrieval")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
