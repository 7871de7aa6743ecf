"""A new SQLite tracking store is a copy of MLflow's empty, migrated schema (flightops.modeling.tracking).

The copy must be the store MLflow itself would create (same tables, columns, indexes, schema version
and rows), must never replace a store that exists, and must give way to MLflow's own creation when
the template cannot be made.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from flightops.modeling import tracking

pytestmark = pytest.mark.unit


@pytest.fixture
def templates(tmp_path, monkeypatch) -> Path:
    """A template folder of the test's own, so the checkout's .cache is neither read nor written."""
    folder = tmp_path / "templates"
    monkeypatch.setattr(tracking, "STORE_TEMPLATES", folder)
    return folder


def shape(database: Path) -> dict:
    """What a store is made of: each table's columns and indexes, the schema version, each table's row count.

    Columns and indexes rather than the CREATE statements: MLflow's migrations list a table's
    constraints in an order that differs from one creation to the next.
    """
    with sqlite3.connect(database) as con:
        tables = [name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        shape = {
            table: {
                "columns": con.execute(f'PRAGMA table_info("{table}")').fetchall(),
                "indexes": sorted((name, unique) for _, name, unique, *_ in con.execute(f'PRAGMA index_list("{table}")')),
                "rows": con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0],
            }
            for table in tables
        }
        shape["schema version"] = con.execute("SELECT version_num FROM alembic_version").fetchall()
    con.close()
    return shape


def experiments(database: Path) -> list[tuple[str, str, str]]:
    client = MlflowClient(tracking_uri=f"sqlite:///{database}")
    return sorted((e.experiment_id, e.name, e.artifact_location) for e in client.search_experiments())


def test_a_seeded_store_is_the_store_mlflow_creates_and_works_as_one(tmp_path, templates):
    seeded, native = tmp_path / "seeded" / "mlflow.db", tmp_path / "native" / "mlflow.db"
    tracking.seed_sqlite_store(seeded)
    native.parent.mkdir()
    assert experiments(native) == [("0", "Default", str(Path.cwd() / "mlruns" / "0"))]  # MLflow's own creation
    assert seeded.stat().st_size > 0 and shape(seeded) != {}

    # Before either is used beyond creation, and after: the default experiment is each store's own, not the template's.
    assert experiments(seeded) == experiments(native)
    assert shape(seeded) == shape(native)
    client = MlflowClient(tracking_uri=f"sqlite:///{seeded}")
    experiment = client.create_experiment("seeded", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "auc", 0.75)
    assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.75}


def test_the_template_is_made_once_per_mlflow_version_and_each_store_is_its_copy(tmp_path, templates):
    tracking.seed_sqlite_store(tmp_path / "a" / "mlflow.db")
    template = tracking.store_template(mlflow.__version__)
    made = template.stat().st_mtime_ns
    tracking.seed_sqlite_store(tmp_path / "b" / "mlflow.db")

    assert sorted(p.name for p in templates.iterdir()) == [f"empty-store-mlflow-{mlflow.__version__}.db"]
    assert template.stat().st_mtime_ns == made
    for store in ("a", "b"):
        assert (tmp_path / store / "mlflow.db").read_bytes() == template.read_bytes()
        assert sorted(p.name for p in (tmp_path / store).iterdir()) == ["mlflow.db"]  # no staged copy left behind
    assert shape(template)["experiments"]["rows"] == 0


def test_an_existing_store_is_never_replaced(tmp_path, templates):
    store = tmp_path / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{store}").create_experiment("kept", artifact_location=tmp_path.as_uri())
    before = store.read_bytes()

    tracking.seed_sqlite_store(store)

    assert store.read_bytes() == before
    assert "kept" in [name for _, name, _ in experiments(store)]
    assert not templates.exists()  # nothing to seed: no template made either


def test_without_a_template_mlflow_creates_the_store_and_the_log_says_why(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the template folder would be")
    monkeypatch.setattr(tracking, "STORE_TEMPLATES", blocked / "mlflow")
    store = tmp_path / "store" / "mlflow.db"

    with caplog.at_level(logging.INFO, logger=tracking.__name__):
        tracking.seed_sqlite_store(store)

    assert not store.exists()
    assert f"MLflow creates the store {store} itself" in caplog.text and "not-a-folder" in caplog.text
    assert experiments(store) == [("0", "Default", str(Path.cwd() / "mlruns" / "0"))]


def test_a_store_another_process_creates_meanwhile_is_kept(tmp_path, templates, monkeypatch):
    store = tmp_path / "mlflow.db"
    tracking.seed_sqlite_store(tmp_path / "first" / "mlflow.db")  # the template exists from here on
    copy = tracking.shutil.copyfile

    def copy_while_another_process_creates_the_store(source, target):
        MlflowClient(tracking_uri=f"sqlite:///{store}").create_experiment("theirs", artifact_location=tmp_path.as_uri())
        return copy(source, target)

    monkeypatch.setattr(tracking.shutil, "copyfile", copy_while_another_process_creates_the_store)
    tracking.seed_sqlite_store(store)

    # Read from the file: MLflow keeps one engine per store URI, whose open connection would still see a replaced file.
    with sqlite3.connect(store) as con:
        assert con.execute("SELECT name FROM experiments ORDER BY experiment_id").fetchall() == [("Default",), ("theirs",)]
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "mlflow.db", "templates"]  # no staged copy left
