"""When the monitoring figures warrant retraining: the rule the retraining sensor applies, as a pure function.

Drift is evidence, not the trigger. A trigger is either
- a sustained realized drop: the realized window is degraded (log loss past its threshold, and on
  enough of its individual days) on `sustained_days` consecutive monitored days, or
- an estimated drop together with drift of the stable inputs on the same day (the model is less
  sure and it is seeing flights unlike its training data), before any label arrives.
Weather drift and cumulative-rate drift never trigger. Gates then hold a trigger back: a cool-down
counted in data days since the last trigger, a minimum of new labelled days since the champion's
training data ended, and no retraining run already queued or running. A trigger consumes its
streak, so one sustained degradation gives one request.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date

from flightops.monitoring.policy import MonitoringPolicy


@dataclass
class LoopState:
    """What the sensor remembers between evaluations (its JSON cursor)."""

    after_storage_id: int | None = None  # event-log position already read
    last_day: str | None = None  # newest monitored day already judged
    model_version: str | None = None  # the champion the streak counts for
    streak: int = 0  # consecutive degraded days so far
    last_trigger_day: str | None = None

    def to_cursor(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "LoopState":
        """The saved state; keys of an older or newer version of this class are ignored, not fatal."""
        saved = json.loads(cursor) if cursor else {}
        return cls(**{k: v for k, v in saved.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Trigger:
    day: date
    model_version: str
    labelled_through: date
    reasons: tuple[str, ...]
    figures: dict

    @property
    def run_key(self) -> str:
        return f"retrain-v{self.model_version}-{self.day.isoformat()}"


@dataclass(frozen=True)
class Judgement:
    triggers: list[Trigger] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)  # triggers a gate held back, with the gate


def _reasons(summary: dict, streak: int, policy: MonitoringPolicy) -> list[str]:
    reasons = []
    if streak >= policy.sustained_days:
        reasons.append(
            f"realized performance degraded {streak} days running (7-day log loss {summary.get('realized_log_loss')}, "
            f"rise {summary.get('realized_log_loss_rise')} > {policy.realized_log_loss_rise_threshold} on "
            f"{summary.get('days_past_threshold')} of the window's days)"
        )
    checks = summary.get("checks", {})
    if checks.get("estimated_auc_drop") and checks.get("stable_feature_drift"):
        reasons.append(
            f"estimated ROC AUC drop {summary.get('estimated_auc_drop')} > {policy.estimated_auc_drop_threshold} with "
            f"importance-weighted stable drift {summary.get('weighted_stable_drift')} > "
            f"{policy.stable_drift_share_threshold} ({', '.join(summary.get('drifted_stable', []))})"
        )
    return reasons


def judge(days: dict[str, dict], state: LoopState, policy: MonitoringPolicy, *, champion_version: str,
          champion_data_end: date, active_retrain_run: str | None) -> Judgement:
    """Judge the monitored days newer than `state.last_day`, in day order; `state` is updated in place.

    `days` maps ISO day -> the monitoring summary of that day (flightops.monitoring.daily). Days of
    another model version than the champion's are skipped (figures of a replaced model).
    """
    judgement = Judgement()
    for iso in sorted(days):
        if state.last_day is not None and iso <= state.last_day:
            continue
        summary = days[iso]
        if summary.get("model_version") != champion_version:
            continue
        if state.model_version != champion_version:
            state.model_version, state.streak = champion_version, 0
        state.last_day = iso
        state.streak = state.streak + 1 if summary.get("realized_degraded") else 0
        reasons = _reasons(summary, state.streak, policy)
        if not reasons:
            continue
        day = date.fromisoformat(iso)
        labelled_through = date.fromisoformat(summary["labelled_through"])
        gate = None
        if state.last_trigger_day is not None and \
                (day - date.fromisoformat(state.last_trigger_day)).days < policy.cooldown_days:
            gate = f"cool-down of {policy.cooldown_days} data days since the trigger of {state.last_trigger_day}"
        elif (labelled_through - champion_data_end).days < policy.min_new_labelled_days:
            gate = (f"only {(labelled_through - champion_data_end).days} labelled days since the champion's data "
                    f"ended on {champion_data_end} (minimum {policy.min_new_labelled_days})")
        elif active_retrain_run is not None:
            gate = f"retraining run {active_retrain_run} is already queued or running"
        if gate is not None:
            judgement.held_back.append(f"{iso}: {'; '.join(reasons)}; held back: {gate}")
            continue
        trigger = Trigger(day, champion_version, labelled_through, tuple(reasons), summary)
        judgement.triggers.append(trigger)
        state.last_trigger_day, state.streak = iso, 0
        active_retrain_run = f"requested by this evaluation ({trigger.run_key})"
    return judgement
