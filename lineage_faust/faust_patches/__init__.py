"""Every use of faust-streaming, aiokafka or mode beyond their public API, and nothing else.

Each module says what it works around and how it is guarded; docs/faust-workarounds.md has
one row per patch (what it fixes, the upstream issue, the version checked, the guard test,
when it can go). ``tests/test_boundaries.py`` fails on a private name of those packages used
anywhere outside this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

# the versions every patch here was read against and is guarded for (pinned in pyproject)
TESTED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}


def installed() -> dict[str, str]:
    found = {}
    for package in TESTED:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def version_problem(found: Mapping[str, str]) -> str | None:
    """Why these versions cannot be used, or None."""
    wrong = [f"{p} {found[p]}" for p, tested in TESTED.items() if found.get(p, tested) != tested]
    if not wrong:
        return None
    expected = ", ".join(f"{p}=={v}" for p, v in TESTED.items())
    return (
        f"untested versions: {', '.join(wrong)}. lineage-faust's Faust workarounds are tested "
        f"with {expected}; install those (see docs/faust-workarounds.md before upgrading)"
    )


def check_versions() -> None:
    """Raise ``RuntimeError`` unless the installed versions are the tested ones."""
    problem = version_problem(installed())
    if problem:
        raise RuntimeError(problem)
