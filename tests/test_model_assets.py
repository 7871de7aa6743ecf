"""Training, promotion and batch scoring as Dagster assets, on real replayed days."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest

from flightops.modeling import promotion, tracking
from tests.platform_harness import Platform, failure_messages, private_platform

# The code location (assets/, sensors/, flightops.jobs) is imported inside the tests that use it: collecting
# the suite loads no definitions, and a broken definition fails those tests, not the collection.

FIRST, LAST = "2013-01-01", "2013-02-20"
QUICK_TRAINING = {"ops": {"models__flight_delay_model": {"config": {"tuning_trials": 0, "catboost_iterations": 150}}}}


def metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == key)
    return {name: value.value for name, value in event.materialization.metadata.items()}


def served_window(result: dg.ExecuteInProcessResult) -> str:
    """The oldest day the online store keeps after the run: FLIGHTOPS_ONLINE_FEATURE_DAYS (30) days up to LAST."""
    from assets.features import ONLINE

    online = metadata(result, ONLINE)
    assert (online["keeps_days"], online["newest_day"]) == (30, LAST)
    assert online["oldest_day"] == "2013-01-22" and online["rows"] > 20 * 500
    return online["oldest_day"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[tuple[Platform, dg.ExecuteInProcessResult]]:
    with private_platform(tmp_path_factory.mktemp("models")) as platform:
        platform.replay(LAST)
        result = platform.run(FIRST, LAST, run_config=QUICK_TRAINING)
        assert result.success, failure_messages(result)
        yield platform, result


def test_the_main_job_ends_with_a_registered_champion(deployed):
    from assets.models import CHAMPION, MODEL

    platform, result = deployed
    trained = metadata(result, MODEL)
    assert trained["model_version"] == "1"
    client = tracking.mlflow_client(platform.settings)
    assert promotion.alias_version(client, promotion.CHAMPION_ALIAS) == "1"
    assert promotion.alias_version(client, promotion.CHALLENGER_ALIAS) == "1"
    decided = metadata(result, CHAMPION)
    assert decided["promoted"] is True and decided["champion_version"] == "1"
    # The model learned something real: better than the constant predictor on the test window.
    assert trained["test_catboost_roc_auc"] > trained["test_constant_roc_auc"] + 0.1
    assert trained["test_catboost_log_loss"] < trained["test_constant_log_loss"]
    # Lineage of the run: the Dagster run id and the feature range are tags of the MLflow run.
    run = client.get_run(trained["mlflow_run_id"])
    assert result.run_id in run.data.tags.values()
    assert "![roc](data:image/png;base64," in trained["evaluation_plots"]


def test_the_model_assets_link_to_the_mlflow_ui(deployed):
    """http links a browser opens from the Dagster UI (never file:// paths), built from the MLflow UI's address."""
    from assets.models import CHAMPION, MODEL

    platform, result = deployed
    ui = platform.settings.mlflow_ui_url
    trained, decided = metadata(result, MODEL), metadata(result, CHAMPION)
    run = tracking.mlflow_client(platform.settings).get_run(trained["mlflow_run_id"])
    run_page = f"{ui}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert ui.startswith("http") and trained["mlflow_run"] == run_page
    version_page = f"{ui}/#/models/{tracking.REGISTERED_MODEL_NAME}/versions/1"
    assert trained["mlflow_model_version"] == version_page
    assert decided["champion_model_version"] == decided["challenger_model_version"] == version_page
    plots = {name: url for name, url in trained.items() if name.startswith("plot_")}
    assert plots["plot_roc"] == f"{run_page}/artifacts/evaluation/roc.png"
    assert set(plots) == {"plot_roc", "plot_precision_recall", "plot_calibration", "plot_feature_importance"}
    assert not [name for name, value in trained.items() if isinstance(value, str) and "file://" in value]
    described = tracking.mlflow_client(platform.settings).get_registered_model(tracking.REGISTERED_MODEL_NAME)
    assert described.description == tracking.REGISTERED_MODEL_DESCRIPTION


def test_every_flight_is_scored_by_the_champion_version(deployed):
    platform, _ = deployed
    features = platform.query("SELECT count(*) FROM features.flight_features")[0][0]
    rows, versions, bad = platform.query(
        "SELECT count(*), list(DISTINCT model_version), count(*) FILTER (WHERE probability NOT BETWEEN 0 AND 1) "
        "FROM predictions.flight_delay"
    )[0]
    assert rows == features and versions == ["1"] and bad == 0
    # The stored probability is the champion's own prediction for that flight.
    model, version = promotion.load_champion(platform.settings)
    sample = platform.query(
        "SELECT p.probability, f.* FROM predictions.flight_delay p JOIN features.flight_features f USING (flight_id) "
        "ORDER BY flight_id LIMIT 5"
    )
    columns = [c for (c,) in platform.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'features' "
        "AND table_name = 'flight_features' ORDER BY ordinal_position")]
    frame = pd.DataFrame([row[1:] for row in sample], columns=columns)
    assert model.predict_proba(frame)[:, 1] == pytest.approx([row[0] for row in sample], rel=1e-9)


def test_batch_scoring_chunk_by_chunk_scores_every_flight_as_before(deployed, monkeypatch):
    import assets.models as models

    platform, _ = deployed
    query = "SELECT flight_id, probability FROM predictions.flight_delay WHERE flight_date BETWEEN '2013-01-01' AND '2013-01-10'"
    before = dict(platform.query(query))
    monkeypatch.setattr(models, "SCORING_VECTORS", 1)  # 2,048 rows a chunk: the ten days' rows take several
    result = platform.run(FIRST, "2013-01-10", [models.PREDICTIONS])
    assert result.success, failure_messages(result)
    after = dict(platform.query(query))
    assert len(before) > 3 * 2048 and sorted(after) == sorted(before)
    assert [after[flight] for flight in before] == pytest.approx(list(before.values()), rel=1e-12)
    assert metadata(result, models.PREDICTIONS)["rows"] == len(before)


def test_the_service_scores_a_flight_by_id_exactly_as_batch_scoring_did(deployed):
    """Training/serving parity: POST /predict/flight reads the online store the features asset wrote."""
    from fastapi.testclient import TestClient

    from flightops.serving.app import create_app

    platform, result = deployed
    oldest = served_window(result)
    sample = platform.query(
        "SELECT flight_id, probability, model_version FROM predictions.flight_delay WHERE flight_date >= ? "
        "ORDER BY hash(flight_id) LIMIT 25", [oldest])
    assert len(sample) == 25
    client = TestClient(create_app(platform.settings))
    for flight_id, probability, version in sample:
        answer = client.post("/predict/flight", json={"flight_id": flight_id})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == int(version)
        assert answer.json()["probability"] == pytest.approx(probability, rel=1e-12, abs=1e-15), flight_id
    unknown = client.post("/predict/flight", json={"flight_id": "2014-01-01_XX1_EWR"})
    assert unknown.status_code == 404
    assert "not in the online feature store" in unknown.json()["detail"]
    # A flight older than the serving window has a batch prediction but is no longer served by id.
    (expired,), = platform.query("SELECT min(flight_id) FROM predictions.flight_delay WHERE flight_date = DATE '2013-01-02'")
    answer = client.post("/predict/flight", json={"flight_id": expired})
    assert answer.status_code == 404
    assert f"flights of {oldest}..{LAST}" in answer.json()["detail"]
    assert "predictions.flight_delay" in answer.json()["detail"]


def test_a_batch_by_ids_scores_each_flight_as_batch_scoring_did_and_logs_each(deployed):
    """POST /predict/flights: one request, one model call, the same probabilities as the batch
    predictions in the request's order; unknown ids listed as missing; one log row per flight."""
    import sqlite3
    from contextlib import closing

    from fastapi.testclient import TestClient

    from flightops.serving.app import create_app
    from flightops.serving.prediction_log import REQUEST_LOG_TABLE, prediction_log_path
    from flightops.serving.schema import MAX_BATCH_FLIGHTS

    platform, result = deployed
    sample = platform.query(
        "SELECT flight_id, probability FROM predictions.flight_delay WHERE flight_date >= ? "
        "ORDER BY hash(flight_id) LIMIT 120", [served_window(result)])
    unknown = "2014-01-01_XX1_EWR"
    ids = [flight_id for flight_id, _ in sample[:60]] + [unknown] + [flight_id for flight_id, _ in sample[60:]]
    client = TestClient(create_app(platform.settings))
    answer = client.post("/predict/flights", json={"flight_ids": ids})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [p["flight_id"] for p in body["predictions"]] == [flight_id for flight_id, _ in sample]
    assert [p["probability"] for p in body["predictions"]] == pytest.approx([p for _, p in sample], rel=1e-12, abs=1e-15)
    assert body["missing"] == [unknown] and "1 of 121 flights are not in the online feature store" in body["detail"]
    with closing(sqlite3.connect(prediction_log_path(platform.settings.data_dir))) as con:
        rows = con.execute(f"SELECT flight_id, status_code, probability IS NOT NULL, batch_id FROM {REQUEST_LOG_TABLE} "
                           "WHERE batch_id IS NOT NULL").fetchall()
    assert sorted((f, s, p) for f, s, p, _ in rows) == sorted([(f, 200, 1) for f, _ in sample] + [(unknown, 404, 0)])
    assert len({batch for *_, batch in rows}) == 1 and rows[0][3] is not None
    too_many = client.post("/predict/flights", json={"flight_ids": [ids[0]] * (MAX_BATCH_FLIGHTS + 1)})
    assert too_many.status_code == 422 and "flight_ids" in too_many.text


def test_a_worse_challenger_is_refused_and_the_champion_stays(deployed):
    from assets.models import CHAMPION, MODEL

    platform, _ = deployed
    worse = {"ops": {"models__flight_delay_model": {"config": {"tuning_trials": 0, "catboost_iterations": 2}}}}
    result = platform.run(FIRST, LAST, [MODEL, CHAMPION], worse)
    assert result.success, failure_messages(result)
    decided = metadata(result, CHAMPION)
    assert decided["challenger_version"] == "2" and decided["promoted"] is False
    assert decided["champion_version"] == "1"
    assert "does not beat champion v1" in decided["reasons"]
    client = tracking.mlflow_client(platform.settings)
    assert promotion.alias_version(client, promotion.CHAMPION_ALIAS) == "1"
    tags = client.get_model_version(tracking.REGISTERED_MODEL_NAME, "2").tags
    assert tags["promotion.decision"] == "rejected"
