"""Two runs at once: each run's promotion step judges the model version its own training registered.

A run trains and promotes (models/flight_delay_model -> models/champion); the moment its training
step's materialization is stored, a rival run registers another version in the same MLflow registry
and points the `challenger` alias at it, as a training step does, before the first run's promotion
starts. The rival's version is a copy of the run's model (a second training would only add time:
the test is about which version number is judged). The features are synthetic rows in the
warehouse's tables (tests/feature_frames.py), so no ingestion runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pytest

from flightops.modeling import promotion, tracking
from flightops.pipeline import materialize
from flightops.warehouse_connections import connect
from tests.feature_frames import feature_tables
from tests.platform_harness import Platform, failure_messages, private_platform

FIRST, DAYS = date(2013, 2, 1), 24
QUICK_TRAINING = {"ops": {"models__flight_delay_model": {"config": {"tuning_trials": 0, "catboost_iterations": 60}}}}
RIVAL_RUN_ID = "rival-run"


def metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == key)
    return {name: value.value for name, value in event.materialization.metadata.items()}


def decision_tags(platform: Platform, version: str) -> dict[str, str]:
    tags = tracking.mlflow_client(platform.settings).get_model_version(tracking.REGISTERED_MODEL_NAME, version).tags
    return {k: v for k, v in tags.items() if k.startswith(promotion.DECISION_TAG_PREFIX)}


@pytest.fixture(scope="module")
def featured(tmp_path_factory) -> Iterator[Platform]:
    """A private platform whose warehouse holds DAYS days of synthetic labelled features."""
    with private_platform(tmp_path_factory.mktemp("promotion")) as platform:
        features, labels = feature_tables(FIRST, days=DAYS, flights_per_day=300)
        with connect(platform.settings.warehouse) as con:
            con.execute("CREATE SCHEMA features")
            con.register("features_frame", features)
            con.register("labels_frame", labels)
            con.execute("CREATE TABLE features.flight_features AS SELECT * FROM features_frame")
            con.execute("CREATE TABLE features.flight_labels AS SELECT * FROM labels_frame")
        yield platform


@pytest.fixture(scope="module")
def interleaved(featured: Platform) -> tuple[dg.ExecuteInProcessResult, str]:
    """The run trained and promoted while the rival registered its version in between; the rival's version."""
    from assets.models import CHAMPION, MODEL

    run_id, rival = str(uuid.uuid4()), []

    def rival_registers_once_this_run_has_trained(entry) -> None:
        trained = entry.asset_materialization
        if rival or trained is None or trained.asset_key != MODEL:
            return
        client = tracking.mlflow_client(featured.settings)
        own = client.get_model_version(tracking.REGISTERED_MODEL_NAME, trained.metadata["model_version"].value)
        version = client.create_model_version(tracking.REGISTERED_MODEL_NAME, own.source, run_id=own.run_id,
                                              tags={"registered_by": RIVAL_RUN_ID}).version
        promotion.mark_challenger(client, str(version))
        rival.append(str(version))

    featured.instance.add_event_listener(run_id, rival_registers_once_this_run_has_trained)
    result = materialize(FIRST, FIRST, featured.instance, [MODEL, CHAMPION], QUICK_TRAINING, run_id=run_id)
    assert result.success, failure_messages(result)
    assert rival, "the rival run did not register its version during the run"
    return result, rival[0]


def test_the_promotion_judges_the_version_its_own_run_trained(featured: Platform, interleaved):
    from assets.models import CHAMPION, MODEL

    result, rival = interleaved
    trained, decided = metadata(result, MODEL), metadata(result, CHAMPION)
    client = tracking.mlflow_client(featured.settings)
    assert (trained["model_version"], rival) == ("1", "2")
    # The alias names the newest candidate (the rival's, for the UI), yet the run judged its own.
    assert promotion.alias_version(client, promotion.CHALLENGER_ALIAS) == "2"
    assert decided["challenger_version"] == "1", decided
    assert decided["challenger_judged"].startswith("v1, trained in this run"), decided["challenger_judged"]
    assert decided["promoted"] is True and decided["champion_version"] == "1"
    assert promotion.alias_version(client, promotion.CHAMPION_ALIAS) == "1"
    # The decision is recorded on the run's own version, none on the rival's.
    assert decision_tags(featured, "1")["promotion.decision"] == "promoted"
    assert decision_tags(featured, "2") == {}


def test_a_promotion_without_training_in_its_run_judges_the_challenger_alias_and_says_so(featured: Platform, interleaved):
    from assets.models import CHAMPION

    _, rival = interleaved
    result = featured.run(FIRST.isoformat(), FIRST.isoformat(), [CHAMPION])
    assert result.success, failure_messages(result)
    decided = metadata(result, CHAMPION)
    assert decided["challenger_version"] == rival == "2"
    assert decided["challenger_judged"] == (
        "v2, the 'challenger' alias: this run trained no model (models/flight_delay_model was not materialized in it)")
    assert decided["previous_champion_version"] == "1"
    assert decision_tags(featured, "2")["promotion.decision"] in ("promoted", "rejected")
    assert decision_tags(featured, "2")["promotion.champion_version"] == "1"


def test_the_version_trained_in_a_run_is_found_among_later_runs_models(monkeypatch):
    """The model's materializations are read newest first, a page at a time: a run's own version is
    found behind later runs' (more than a page of them), and a run that trained nothing gets None."""
    import assets.models as models

    @dg.asset(key=models.MODEL, config_schema={"version": str})
    def model(context):  # unannotated: the module's annotations are strings, unresolvable in this scope
        return dg.MaterializeResult(metadata={"model_version": context.op_config["version"]})

    @dg.asset
    def something_else():
        return None

    def train(instance: dg.DagsterInstance, version: str) -> str:
        run_config = {"ops": {"models__flight_delay_model": {"config": {"version": version}}}}
        return dg.materialize([model], instance=instance, run_config=run_config).run_id

    monkeypatch.setattr(models, "MODEL_RECORDS_PAGE", 2)
    with dg.DagsterInstance.ephemeral() as instance:
        first = train(instance, "7")
        later = [train(instance, str(version)) for version in range(8, 13)]  # 5 newer: three pages
        untrained = dg.materialize([something_else], instance=instance).run_id
        assert models.version_trained_in_run(instance, first) == "7"
        assert [models.version_trained_in_run(instance, run_id) for run_id in later] == ["8", "9", "10", "11", "12"]
        assert models.version_trained_in_run(instance, untrained) is None
