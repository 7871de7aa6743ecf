"""Time-based train / validation / test split.

Flights on one day share weather and congestion, so rows are never shuffled across the
split: whole days go to one window, train days come first, test days last. The windows
are a value that training records (MLflow params), so every score says which days it is on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

DATE_COLUMN = "flight_date"


@dataclass(frozen=True)
class SplitConfig:
    """Which of the available days go to validation and test.

    By fractions of the distinct days (the last `test_fraction` test, the `valid_fraction` before
    them validation), or with a fixed test window by date: `test_start` (and optionally
    `test_end`, default the last day) name the test days, so scores compare across runs and with
    other tools; the days before `test_start` are then split into train and the last
    `valid_fraction` of them for validation (the final model is refit on both).
    """

    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    test_start: date | None = None
    test_end: date | None = None

    def __post_init__(self) -> None:
        if not (0 < self.valid_fraction < 1 and 0 < self.test_fraction < 1
                and self.valid_fraction + self.test_fraction < 1):
            raise ValueError(
                f"SplitConfig fractions must be in (0, 1) and sum below 1 so that training keeps days; "
                f"got valid_fraction={self.valid_fraction}, test_fraction={self.test_fraction}."
            )
        if self.test_end is not None and (self.test_start is None or self.test_end < self.test_start):
            raise ValueError(
                f"SplitConfig test_end {self.test_end} needs a test_start on or before it (got {self.test_start})."
            )


@dataclass(frozen=True)
class SplitWindows:
    """Inclusive day ranges of the three windows, in time order without overlap."""

    train_start: date
    train_end: date
    valid_start: date
    valid_end: date
    test_start: date
    test_end: date

    def __post_init__(self) -> None:
        ordered = (self.train_start <= self.train_end < self.valid_start <= self.valid_end
                   < self.test_start <= self.test_end)
        if not ordered:
            raise ValueError(
                f"Split windows overlap or are out of order: {self.as_params()}. Each window must end "
                "before the next one starts (train, then valid, then test)."
            )

    def as_params(self) -> dict[str, str]:
        """The windows as ISO strings, the form MLflow params and tags take."""
        return {f"split_{name}": value.isoformat() for name, value in asdict(self).items()}


@dataclass(frozen=True)
class DataSplit:
    """The rows of each window (rows outside every window are dropped), and train with validation: the
    final model is refit on both. Slices of one day-ordered frame, not copies (see split_by_time)."""

    windows: SplitWindows
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    train_and_valid: pd.DataFrame

    def row_counts(self) -> dict[str, int]:
        return {"rows_train": len(self.train), "rows_valid": len(self.valid), "rows_test": len(self.test)}


def flight_days(frame: pd.DataFrame) -> pd.Series:
    """The flight_date column as datetime.date values, whatever type the reader produced."""
    return pd.to_datetime(_date_column(frame)).dt.date


def _day_numbers(frame: pd.DataFrame) -> np.ndarray:
    """The flight_date column as numpy days (datetime64[D]), without a date object per row (converting
    flight_days' objects took 0.49 s of a year's split)."""
    return np.asarray(pd.to_datetime(_date_column(frame)), dtype="datetime64[D]")


def _date_column(frame: pd.DataFrame) -> pd.Series:
    if DATE_COLUMN not in frame.columns:
        raise KeyError(f"Frame lacks {DATE_COLUMN!r}; the time split needs each flight's date.")
    return frame[DATE_COLUMN]


def plan_windows(frame: pd.DataFrame, config: SplitConfig) -> SplitWindows:
    """Cut the distinct days of `frame` into train / valid / test as configured (fractions or a fixed test window)."""
    days = sorted(flight_days(frame).unique())
    if config.test_start is not None:
        return _fixed_test_window(days, config)
    n_test = max(1, round(len(days) * config.test_fraction))
    n_valid = max(1, round(len(days) * config.valid_fraction))
    n_train = len(days) - n_valid - n_test
    if n_train < 1:
        raise ValueError(
            f"Only {len(days)} distinct days to split; need at least one day each for train, valid and "
            "test. Load a longer date range."
        )
    return SplitWindows(
        train_start=days[0],
        train_end=days[n_train - 1],
        valid_start=days[n_train],
        valid_end=days[n_train + n_valid - 1],
        test_start=days[n_train + n_valid],
        test_end=days[-1],
    )


def _fixed_test_window(days: list[date], config: SplitConfig) -> SplitWindows:
    """Test on config.test_start..test_end (default: the last day); train and validate on the days before."""
    assert config.test_start is not None
    test_end = config.test_end or days[-1]
    test_days = [day for day in days if config.test_start <= day <= test_end]
    before = [day for day in days if day < config.test_start]
    n_valid = max(1, round(len(before) * config.valid_fraction))
    if not test_days or len(before) - n_valid < 1:
        raise ValueError(
            f"The test window {config.test_start}..{test_end} leaves {len(test_days)} test day(s) and "
            f"{len(before)} earlier day(s) of {days[0]}..{days[-1]} with data; it needs at least one test day "
            "and two earlier days (train and validation). Choose a test window inside the loaded days, "
            "after their start."
        )
    return SplitWindows(
        train_start=before[0],
        train_end=before[-n_valid - 1],
        valid_start=before[-n_valid],
        valid_end=before[-1],
        test_start=test_days[0],
        test_end=test_days[-1],
    )


def split_by_time(frame: pd.DataFrame, windows: SplitWindows) -> DataSplit:
    """Rows of each window in day order (stable within a day); raises if a window ends up empty.

    Each window is a slice of the frame in day order, numbered from 0, sharing the frame's memory: the
    warehouse returns the rows in that order, so training holds its rows once (a frame out of order is
    reordered, once). Train and validation are one slice too when no row lies between them.
    """
    days = _day_numbers(frame)
    if not (days[1:] >= days[:-1]).all():
        order = np.argsort(days, kind="stable")
        frame, days = frame.iloc[order], days[order]

    def rows(start: date, end: date) -> slice:
        return slice(days.searchsorted(np.datetime64(start, "D"), "left"), days.searchsorted(np.datetime64(end, "D"), "right"))

    def piece(where: slice) -> pd.DataFrame:
        part = frame.iloc[where]
        part.index = pd.RangeIndex(len(part))
        return part

    train, valid = rows(windows.train_start, windows.train_end), rows(windows.valid_start, windows.valid_end)
    both = piece(slice(train.start, valid.stop)) if train.stop == valid.start else \
        pd.concat([piece(train), piece(valid)], ignore_index=True)
    split = DataSplit(windows=windows, train=piece(train), valid=piece(valid),
                      test=piece(rows(windows.test_start, windows.test_end)), train_and_valid=both)
    empty = [name for name, count in split.row_counts().items() if count == 0]
    if empty:
        raise ValueError(f"Split windows {windows.as_params()} leave {empty} empty; choose windows with data.")
    return split
