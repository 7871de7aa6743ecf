"""Time-based train / validation / test split.

Flights on one day share weather and congestion, so rows are never shuffled across the
split: whole days go to one window, train days come first, test days last. The windows
are a value that training records (MLflow params), so every score says which days it is on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

DATE_COLUMN = "flight_date"


@dataclass(frozen=True)
class SplitConfig:
    """How many of the available days go to validation and test (fractions of distinct days)."""

    valid_fraction: float = 0.15
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        if not (0 < self.valid_fraction < 1 and 0 < self.test_fraction < 1
                and self.valid_fraction + self.test_fraction < 1):
            raise ValueError(
                f"SplitConfig fractions must be in (0, 1) and sum below 1 so that training keeps days; "
                f"got valid_fraction={self.valid_fraction}, test_fraction={self.test_fraction}."
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
    """The rows of each window (rows outside every window are dropped)."""

    windows: SplitWindows
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    def train_and_valid(self) -> pd.DataFrame:
        """Train and validation rows together: the final model is refit on both."""
        return pd.concat([self.train, self.valid], ignore_index=True)

    def row_counts(self) -> dict[str, int]:
        return {"rows_train": len(self.train), "rows_valid": len(self.valid), "rows_test": len(self.test)}


def flight_days(frame: pd.DataFrame) -> pd.Series:
    """The flight_date column as datetime.date values, whatever type the reader produced."""
    if DATE_COLUMN not in frame.columns:
        raise KeyError(f"Frame lacks {DATE_COLUMN!r}; the time split needs each flight's date.")
    return pd.to_datetime(frame[DATE_COLUMN]).dt.date


def plan_windows(frame: pd.DataFrame, config: SplitConfig) -> SplitWindows:
    """Cut the distinct days of `frame` into train / valid / test by the configured fractions."""
    days = sorted(flight_days(frame).unique())
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


def split_by_time(frame: pd.DataFrame, windows: SplitWindows) -> DataSplit:
    """Rows of each window in day order (stable within a day); raises if a window ends up empty."""
    days = flight_days(frame)

    def rows_between(start: date, end: date) -> pd.DataFrame:
        in_window = (days >= start) & (days <= end)
        order = days[in_window].sort_values(kind="stable").index
        return frame.loc[order].reset_index(drop=True)

    split = DataSplit(
        windows=windows,
        train=rows_between(windows.train_start, windows.train_end),
        valid=rows_between(windows.valid_start, windows.valid_end),
        test=rows_between(windows.test_start, windows.test_end),
    )
    empty = [name for name, count in split.row_counts().items() if count == 0]
    if empty:
        raise ValueError(f"Split windows {windows.as_params()} leave {empty} empty; choose windows with data.")
    return split
