"""Watch the landing folder: a new or changed file starts its ingestion.

A daily flight export launches the daily job (ingestion to predictions) for its day; a changed
reference file launches the reference assets. The cursor remembers each file's
modification time, so a redelivered file is ingested again and an old one is not.
"""


import json

import dagster as dg

from flightops.jobs import REFERENCE_KEYS, daily_job
from flightops.resources import LandingZoneResource
from flightops.sources import landing


@dg.sensor(job=daily_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_zone_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource) -> dg.SensorResult:
    root = landing_zone.root
    seen: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
    current = {str(p.relative_to(root)): p.stat().st_mtime for p in sorted(root.glob("**/*.csv"))}
    requests: list[dg.RunRequest] = []
    changed_reference = []
    for name, mtime in current.items():
        if seen.get(name) == mtime:
            continue
        day = landing.export_day(root / name)
        if day is None:
            changed_reference.append(name)
        else:
            requests.append(dg.RunRequest(run_key=f"{name}@{mtime}", partition_key=day.isoformat()))
    if changed_reference:
        stamp = max(current[n] for n in changed_reference)
        requests.append(dg.RunRequest(run_key=f"reference@{stamp}", asset_selection=REFERENCE_KEYS))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current))
