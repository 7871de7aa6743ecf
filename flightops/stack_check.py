"""Fail loudly if pip resolved a mismatched stack.

Unpinned, pip can fall back to 2021-era dagster integrations (0.11.x) and dbt-core 1.5
with `pip check` still passing; imports then fail far from the cause. The dagster
integrations share dagster's patch number and carry minor = dagster minor + 16.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

INTEGRATIONS = ("dagster-dbt", "dagster-postgres", "dagster-mlflow")


def expected_integration_version(dagster_version: str) -> str:
    major, minor, patch = dagster_version.split(".")[:3]
    return f"0.{int(minor) + 16}.{patch}"


def problems() -> list[str]:
    found = []
    dagster_version = version("dagster")
    expected = expected_integration_version(dagster_version)
    for name in ("dagster-webserver",):
        if version(name) != dagster_version:
            found.append(f"{name} {version(name)} does not match dagster {dagster_version}")
    for name in INTEGRATIONS:
        try:
            installed = version(name)
        except PackageNotFoundError:
            found.append(f"{name} is not installed")
            continue
        if installed != expected:
            found.append(f"{name} {installed} is not the release of dagster {dagster_version} ({expected})")
    dbt_core = tuple(int(p) for p in version("dbt-core").split(".")[:2])
    if not (1, 11) <= dbt_core < (1, 12):
        found.append(f"dbt-core {version('dbt-core')} is outside >=1.11,<1.12")
    return found


def main() -> None:
    found = problems()
    if found:
        raise SystemExit(
            "Dependency stack mismatch: " + "; ".join(found)
            + ". Reinstall with the lock file: `pip install -c requirements.lock -e .[dev]`."
        )
    print(f"stack ok: dagster {version('dagster')}, integrations {expected_integration_version(version('dagster'))}, "
          f"dbt-core {version('dbt-core')}")


if __name__ == "__main__":
    main()
