"""The data contract of each source: the one declaration used by validation and docs.

A contract names the columns a source must deliver, their types, which are required,
their allowed ranges or values, foreign keys into the cleaned reference tables, the
key that identifies a record and the version column that decides which duplicate wins.
`flightops.validation` turns a contract into SQL; `flightops contracts` prints it as docs.
"""

from __future__ import annotations

from dataclasses import dataclass

ORIGIN_AIRPORTS = ("EWR", "JFK", "LGA")
# A version stamped this long after its row was loaded is from the future (a margin for source
# clocks and time-zone offsets, at most 14 hours): it would hide every later correction.
FUTURE_VERSION_MARGIN = "1 day"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type: VARCHAR, INTEGER, DOUBLE, DATE, TIMESTAMP
    description: str
    required: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    references: tuple[str, str] | None = None  # (clean table, column)

    def rules(self) -> list[str]:
        """The column's rules in words, for docs and error messages."""
        rules = [self.type, "required" if self.required else "nullable"]
        if self.min is not None or self.max is not None:
            rules.append(f"in [{self.min}, {self.max}]")
        if self.allowed:
            rules.append("one of " + "/".join(self.allowed))
        if self.references:
            rules.append(f"must exist in clean.{self.references[0]}.{self.references[1]}")
        return rules


@dataclass(frozen=True)
class Contract:
    source: str  # also the name of the clean and quarantine tables
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    version_column: str | None = None  # the newest valid version of a key wins (flightops.validation)
    partition_column: str | None = None  # the DATE column a daily partition covers

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _flight_columns() -> tuple[Column, ...]:
    c = Column
    return (
        c("flight_id", "VARCHAR", "Stable flight id: date, carrier+flight number, origin.", required=True),
        c("flight_date", "DATE", "Local date of scheduled departure.", required=True),
        c("year", "INTEGER", "Year of departure.", required=True, min=2013, max=2013),
        c("month", "INTEGER", "Month of departure.", required=True, min=1, max=12),
        c("day", "INTEGER", "Day of month of departure.", required=True, min=1, max=31),
        c("dep_time", "INTEGER", "Actual departure, local hhmm; null when cancelled.", min=1, max=2400),
        c("sched_dep_time", "INTEGER", "Scheduled departure, local hhmm.", required=True, min=1, max=2359),
        c("dep_delay", "DOUBLE", "Departure delay in minutes (negative: early).", min=-120, max=1800),
        c("arr_time", "INTEGER", "Actual arrival, local hhmm.", min=1, max=2400),
        c("sched_arr_time", "INTEGER", "Scheduled arrival, local hhmm.", required=True, min=1, max=2400),
        c("arr_delay", "DOUBLE", "Arrival delay in minutes; null when cancelled or diverted.", min=-120, max=1800),
        c("carrier", "VARCHAR", "Two-letter carrier code.", required=True, references=("airlines", "carrier")),
        c("flight", "INTEGER", "Flight number.", required=True, min=1, max=9999),
        c("tailnum", "VARCHAR", "Plane tail number; may be missing or unknown to planes (real quirk)."),
        c("origin", "VARCHAR", "Origin airport (the three NYC airports).", required=True, allowed=ORIGIN_AIRPORTS),
        c("dest", "VARCHAR", "Destination FAA code (a few are missing from airports: real quirk).", required=True),
        c("air_time", "DOUBLE", "Minutes in the air.", min=1, max=900),
        c("distance", "DOUBLE", "Distance between airports in miles.", required=True, min=1, max=6000),
        c("hour", "INTEGER", "Hour of scheduled departure.", required=True, min=0, max=23),
        c("minute", "INTEGER", "Minute of scheduled departure.", required=True, min=0, max=59),
        c("time_hour", "TIMESTAMP", "Scheduled departure hour in UTC.", required=True),
        c("updated_at", "TIMESTAMP", "When the source last changed this row.", required=True),
    )


FLIGHTS = Contract(
    source="flights",
    description="Flights from the operational database and the daily export files (one contract, two channels).",
    key=("flight_id",),
    columns=_flight_columns(),
    version_column="updated_at",
    partition_column="flight_date",
)

WEATHER = Contract(
    source="weather",
    description="Hourly weather observations at the origin airports, from the weather HTTP API.",
    key=("origin", "time_hour"),
    columns=(
        Column("origin", "VARCHAR", "Airport of the observation.", required=True, allowed=ORIGIN_AIRPORTS),
        Column("obs_date", "DATE", "Local date of the observation.", required=True),
        Column("year", "INTEGER", "Local year.", required=True, min=2013, max=2013),
        Column("month", "INTEGER", "Local month.", required=True, min=1, max=12),
        Column("day", "INTEGER", "Local day.", required=True, min=1, max=31),
        Column("hour", "INTEGER", "Local hour.", required=True, min=0, max=23),
        Column("temp", "DOUBLE", "Temperature, F.", min=-40, max=130),
        Column("dewp", "DOUBLE", "Dew point, F.", min=-60, max=100),
        Column("humid", "DOUBLE", "Relative humidity, %.", min=0, max=100),
        Column("wind_dir", "DOUBLE", "Wind direction, degrees.", min=0, max=360),
        Column("wind_speed", "DOUBLE", "Wind speed, mph.", min=0, max=150),
        Column("wind_gust", "DOUBLE", "Gust speed, mph (mostly null: optional).", min=0, max=200),
        Column("precip", "DOUBLE", "Precipitation, inches.", min=0, max=10),
        Column("pressure", "DOUBLE", "Sea level pressure, millibars.", min=900, max=1100),
        Column("visib", "DOUBLE", "Visibility, miles.", min=0, max=20),
        Column("time_hour", "TIMESTAMP", "Observation hour in UTC.", required=True),
        Column("updated_at", "TIMESTAMP", "When the API published this observation.", required=True),
    ),
    version_column="updated_at",
    partition_column="obs_date",
)

AIRPORTS = Contract(
    source="airports",
    description="Airport reference data (FAA code, name, location, time zone).",
    key=("faa",),
    columns=(
        Column("faa", "VARCHAR", "FAA airport code.", required=True),
        Column("name", "VARCHAR", "Airport name.", required=True),
        Column("lat", "DOUBLE", "Latitude.", required=True, min=-90, max=90),
        Column("lon", "DOUBLE", "Longitude.", required=True, min=-180, max=180),
        Column("alt", "DOUBLE", "Altitude, feet.", min=-1500, max=30000),
        Column("tz", "DOUBLE", "Offset from GMT, hours.", min=-12, max=14),
        Column("dst", "VARCHAR", "Daylight saving time zone code.", allowed=("A", "U", "N")),
        Column("tzone", "VARCHAR", "IANA time zone."),
    ),
)

AIRLINES = Contract(
    source="airlines",
    description="Carrier reference data.",
    key=("carrier",),
    columns=(
        Column("carrier", "VARCHAR", "Two-letter carrier code.", required=True),
        Column("name", "VARCHAR", "Carrier name.", required=True),
    ),
)

PLANES = Contract(
    source="planes",
    description="Plane reference data (FAA aircraft registry).",
    key=("tailnum",),
    columns=(
        Column("tailnum", "VARCHAR", "Tail number.", required=True),
        Column("year", "INTEGER", "Year manufactured.", min=1900, max=2013),
        Column("type", "VARCHAR", "Type of plane."),
        Column("manufacturer", "VARCHAR", "Manufacturer."),
        Column("model", "VARCHAR", "Model."),
        Column("engines", "INTEGER", "Number of engines.", min=0, max=8),
        Column("seats", "INTEGER", "Number of seats.", min=1, max=1000),
        Column("speed", "INTEGER", "Average cruising speed, mph.", min=0, max=1000),
        Column("engine", "VARCHAR", "Type of engine."),
    ),
)

def as_markdown(contracts: tuple[Contract, ...]) -> str:
    """The contracts as documentation (`flightops contracts`)."""
    lines = []
    for contract in contracts:
        lines += [f"## {contract.source}", "", contract.description, "",
                  f"Key: {', '.join(contract.key)}"
                  + (f"; the newest valid `{contract.version_column}` wins among a key's versions (converted to UTC; "
                     f"a version stamped more than {FUTURE_VERSION_MARGIN} after its load is quarantined)" if contract.version_column else ""),
                  "", "| column | rules | description |", "|---|---|---|"]
        lines += [f"| {c.name} | {', '.join(c.rules())} | {c.description} |" for c in contract.columns]
        lines.append("")
    return "\n".join(lines)


REFERENCE_CONTRACTS = (AIRLINES, AIRPORTS, PLANES)
ALL_CONTRACTS = (FLIGHTS, WEATHER, *REFERENCE_CONTRACTS)
