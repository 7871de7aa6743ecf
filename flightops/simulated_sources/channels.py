"""Which source system delivers which flights.

The regional carriers send daily CSV exports to the landing folder; every other
carrier's flights live in the operational database. Together the two channels
hold every flight exactly once.
"""

from __future__ import annotations

import pandas as pd

EXPORT_CARRIERS = frozenset({"EV", "9E", "MQ", "YV", "OO"})


def exported(flights: pd.DataFrame) -> pd.Series:
    """True for the flights that arrive as CSV exports, False for the operational database's."""
    return flights["carrier"].isin(EXPORT_CARRIERS)


def split_by_channel(flights: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(operational database flights, export flights)."""
    mask = exported(flights)
    return flights.loc[~mask], flights.loc[mask]
