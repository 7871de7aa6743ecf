"""Watch the landing folder: what was delivered and is not loaded yet starts its ingestion.

A file's version is its content hash (`assets.ingestion.file_version`). The ingestion assets record
the versions they loaded in their materialization metadata, so the sensor learns what is loaded
from Dagster's event log, also with an empty cursor (turned on after `make run`). It never opens
the DuckDB warehouse: a running job holds that file. Daily exports whose version is not loaded
(new days, redelivered files) become one run of the daily job per contiguous range of days, at
most FLIGHTOPS_LANDING_MAX_RANGE_DAYS days each, so a backlog pays dbt's start-up once per range,
not once per day. Changed reference files become one run of the reference assets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets.ingestion import FILE_VERSIONS, file_version, flights_exports, reference_assets
from flightops.contracts import REFERENCE_CONTRACTS
from flightops.jobs import REFERENCE_KEYS, daily_job
from flightops.partitions import DAILY, days
from flightops.resources import LandingZoneResource
from flightops.settings import Settings
from flightops.simulated_sources import landing

# Materializations read per event-log query; the sensor pages until it has read them all.
PAGE_SIZE = 1000
# The assets whose metadata says which file versions are loaded: the exports and the reference tables.
WATCHED_KEYS = [flights_exports.key, *(asset.key for asset in reference_assets)]


@dataclass
class Cursor:
    """What the sensor knows between evaluations, per slot (an export's day, a reference table).

    `after`: per watched asset, the storage id of the last materialization read.
    `loaded`: the version the event log last recorded as loaded.
    `requested`: the version this sensor asked for and has not seen loaded yet, so that a run
    still in flight is not requested again when new days land beside it.
    """

    after: dict[str, int] = field(default_factory=dict)
    loaded: dict[str, str] = field(default_factory=dict)
    requested: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """The stored cursor; an empty one, or one of the old per-file mtime format, starts afresh."""
        data = json.loads(text) if text else {}
        return cls(after=data.get("after", {}), loaded=data.get("loaded", {}), requested=data.get("requested", {}))

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def learn_loaded(self, instance: dg.DagsterInstance, watched: list[dg.AssetKey], entry: str) -> None:
        """Fold in the versions (metadata `entry`) of every materialization of `watched` recorded
        since the last evaluation."""
        for key in watched:
            name = key.to_user_string()
            while True:
                result = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, after_storage_id=self.after.get(name)),
                    limit=PAGE_SIZE,
                    ascending=True,
                )
                for record in result.records:
                    self.loaded.update(_recorded_versions(record, entry))
                    self.after[name] = record.storage_id
                if not result.has_more:
                    break
        self.requested = {slot: v for slot, v in self.requested.items() if self.loaded.get(slot) != v}

    def take_pending(self, delivered: dict[str, str]) -> dict[str, str]:
        """The delivered versions neither loaded nor requested yet; they count as requested from now on."""
        pending = {
            slot: version
            for slot, version in delivered.items()
            if version not in (self.loaded.get(slot), self.requested.get(slot))
        }
        self.requested.update(pending)
        return pending


def _recorded_versions(record: dg.EventLogRecord, entry: str) -> dict[str, str]:
    """Slot -> version of one materialization; one recorded before versions were kept gives none."""
    value = record.asset_materialization.metadata.get(entry)
    return dict(value.value) if value is not None else {}


def delivered_exports(root: Path, log: dg.DagsterLogManager) -> dict[str, str]:
    """Day -> version of every daily export in the landing folder whose day is a partition."""
    versions = {}
    for path in landing.export_files(root):
        day = landing.export_day(path)
        if day is None:
            continue
        if not DAILY.has_partition_key(day.isoformat()):
            log.warning(f"Ignoring {path}: {day} is outside the daily partitions of the platform's calendar.")
            continue
        versions[day.isoformat()] = file_version(path)
    return versions


def delivered_reference(root: Path) -> dict[str, str]:
    """Table -> version of every reference file present."""
    paths = {c.source: landing.reference_path(root, c.source) for c in REFERENCE_CONTRACTS}
    return {name: file_version(path) for name, path in paths.items() if path.exists()}


def day_ranges(pending_days: list[date], max_days: int) -> list[tuple[date, date]]:
    """Consecutive days as ranges of at most `max_days`; a gap starts a new range, so the
    untouched days in between are not ingested again."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(pending_days):
        if ranges and day - ranges[-1][1] == timedelta(days=1) and (day - ranges[-1][0]).days < max_days:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _digest(versions: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16]


def range_request(first: date, last: date, versions: dict[str, str], why: str = "flights") -> dg.RunRequest:
    """One run of the daily job over first..last, keyed by the range and its files' versions.

    `dg.RunRequest` in Dagster 1.13 takes no partition range (an unknown keyword is silently
    dropped); the range tags are what Dagster's own backfills set and what the daemon launches as
    one run over the range, which the single-run backfill policy of the daily assets accepts.
    """
    keys = [d.isoformat() for d in days(first, last)]
    return dg.RunRequest(
        run_key=f"{why} {keys[0]}..{keys[-1]} {_digest({k: versions[k] for k in keys})}",
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
    )


def reference_request(versions: dict[str, str]) -> dg.RunRequest:
    """One run of the reference assets, keyed by every reference file's current version."""
    return dg.RunRequest(run_key=f"reference {_digest(versions)}", asset_selection=REFERENCE_KEYS)


@dg.sensor(job=daily_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_zone_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource
) -> dg.SensorResult | dg.SkipReason:
    root = landing_zone.root
    if not root.is_dir():
        return dg.SkipReason(
            f"The landing folder {root} does not exist. Deliver files into it (`flightops sources replay`) "
            "or point FLIGHTOPS_LANDING_DIR at the folder the sources write to."
        )
    max_days = Settings.current().landing_max_range_days  # read at each evaluation, like the resources
    cursor = Cursor.parse(context.cursor)
    cursor.learn_loaded(context.instance, WATCHED_KEYS, FILE_VERSIONS)
    exports, reference = delivered_exports(root, context.log), delivered_reference(root)
    new_days = [date.fromisoformat(day) for day in cursor.take_pending(exports)]
    requests = [range_request(first, last, exports) for first, last in day_ranges(new_days, max_days)]
    if cursor.take_pending(reference):
        requests.append(reference_request(reference))
    if not requests:
        return dg.SensorResult(
            skip_reason=f"All {len(exports)} daily exports and {len(reference)} reference files in {root} "
            "are loaded (per the event log) or already requested.",
            cursor=cursor.dump(),
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump())
