"""Every use of syrupy beyond its extension API, as named functions, in this one file.

syrupy is our storage and update engine, and a few of its behaviours we need are reachable only
through its internals: its session object (``config._syrupy``), the outcome it keeps per selected
test (``_selected_items``, ``ran_item``), the xdist workers' reports the controller merges
(``_worker_reports``), the lock sidecars of its writes under xdist
(``_written_snapshot_locations``), an assertion's update flags, its execution results, and the
options it registers. ``tests/unit/test_syrupy_bridge.py`` names each of them against the
installed syrupy, so a release that moves one fails there first (``pyproject.toml`` pins syrupy
below its next major version). The extension (``extension.py``) also guards syrupy's
``write_snapshot``, which that test names too.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion
    from syrupy.extensions.base import AbstractSyrupyExtension


# -- the session ----------------------------------------------------------------------------


def _session(config: pytest.Config) -> Any:
    """syrupy's session object, or None (syrupy disabled, or not configured yet)."""
    return getattr(config, "_syrupy", None)


def active(config: pytest.Config) -> bool:
    """Whether syrupy runs in this session (not disabled with ``-p no:syrupy``)."""
    return _session(config) is not None


def mark_not_run(config: pytest.Config, nodeid: str) -> None:
    """Tell syrupy that a test did not run (it failed, so its goldens are neither "unused" nor
    deleted by ``--snapshot-update``, and its deferred writes are not trusted)."""
    session = _session(config)
    if session is not None:
        session.ran_item(nodeid, "skipped")


def protect_unrun(config: pytest.Config) -> None:
    """Tests that were selected but never ran (``-x``, ``--maxfail``, Ctrl-C) keep their
    goldens: syrupy is told they were skipped, so ``--snapshot-update`` does not delete them as
    unused.

    On an xdist controller the decision waits for every worker's report: a test counts as not
    run only if no worker ran it. Workers leave it to the controller.
    """
    session = _session(config)
    if session is None or hasattr(config, "workerinput"):
        return
    reports = getattr(session, "_worker_reports", None)
    if reports:
        ran = {n for r in reports for n, status in r.get("selected", {}).items() if status}
        first = reports[0].get("selected", {})
        for r in reports:
            for nodeid in r.get("selected", {}):
                if nodeid not in ran:
                    first[nodeid] = "skipped"
        return
    for nodeid, status in list(getattr(session, "_selected_items", {}).items()):
        if not status.value:
            session.ran_item(nodeid, "skipped")


def dropped(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests a hook removed from the session without deselecting them: syrupy is told they
    were collected (a conftest's hook ran before syrupy's, which then saw only what was
    left), so it does not take the run for one of every test and delete their goldens as
    unused."""
    found = getattr(config, "_syrupy", None)
    collect = getattr(found, "collect_items", None)
    if collect is not None:
        collect(items)


def workers_used(config: pytest.Config, extension: str) -> bool:
    """Whether an xdist worker reported using the extension class named ``extension``
    (``module.Class``): the controller then judges unused goldens with it."""
    return any(
        member == extension
        for report in getattr(_session(config), "_worker_reports", None) or ()
        for member in report.get("extensions", {}).values()
    )


def release_failed_writes(config: pytest.Config, locations: list[str]) -> None:
    """syrupy's lock and temp sidecars of goldens that were not written (under xdist): removed
    where they can be, and not left to syrupy's own clean-up, which raises at the first it
    cannot remove (a file where the golden's folder should be) and hides the run's results."""
    written = getattr(_session(config), "_written_snapshot_locations", None)
    if not written or not locations:
        return
    from syrupy.utils import cleanup_snapshot_write_sidecars

    for location in locations:
        with contextlib.suppress(OSError):
            cleanup_snapshot_write_sidecars(location)
        written.discard(location)


# -- syrupy's options -----------------------------------------------------------------------


def updating(config: pytest.Config) -> bool:
    """``--snapshot-update`` was given."""
    return bool(getattr(config.option, "update_snapshots", False))


def warn_unused(config: pytest.Config) -> bool:
    """``--snapshot-warn-unused``: unused goldens only warn."""
    return bool(getattr(config.option, "warn_unused_snapshots", False))


def unused_disabled(config: pytest.Config) -> bool:
    """``--snapshot-disable-unused``: no search for unused goldens."""
    return bool(getattr(config.option, "disable_unused_snapshots", False))


# -- one assertion --------------------------------------------------------------------------


def use_extension(
    snapshot: SnapshotAssertion,
    extension: type[AbstractSyrupyExtension],
    *,
    update_drifted: bool,
) -> SnapshotAssertion:
    """The test's assertion with our extension; ``update_drifted`` rewrites goldens that moved
    even without ``--snapshot-update`` (``--weightshape-update-failing``; new goldens are
    refused by the caller)."""
    assertion = snapshot.use_extension(extension)
    if update_drifted:
        assertion.update_snapshots = True
    return assertion


def may_update(assertion: SnapshotAssertion) -> bool:
    """Whether this assertion may rewrite a golden (so a corrupt one may be replaced)."""
    return bool(assertion.update_snapshots)


class Location:
    """Where a check's golden lives: the file, and syrupy's name for the test."""

    __slots__ = ("path", "test")

    def __init__(self, path: str, test: str) -> None:
        self.path = path
        self.test = test


def location(assertion: SnapshotAssertion, node: pytest.Item, check: str) -> Location:
    """The golden file of ``check`` in the test of ``node``."""
    from syrupy.location import PyTestLocation

    test_location = PyTestLocation(node)
    path = assertion.extension.get_location(test_location=test_location, index=check)
    return Location(str(path), test_location.snapshot_name)


class Outcome:
    """What one assertion did: matched, created or updated a golden, or failed.

    (Plain classes here, not named tuples: this module loads with the plugin, and a named
    tuple class costs a few hundred microseconds to create.)"""

    __slots__ = ("absent", "created", "exception", "success", "updated")

    def __init__(
        self,
        *,
        success: bool,
        absent: bool,  # no golden to compare with, and none recorded
        created: bool,
        updated: bool,
        exception: BaseException | None,
    ) -> None:
        self.success = success
        self.absent = absent
        self.created = created
        self.updated = updated
        self.exception = exception


def assert_match(
    assertion: SnapshotAssertion, check: str, candidate: Any, *, may_record: bool
) -> Outcome:
    """Compare ``candidate`` with the golden of ``check`` (our extension's ``matches``);
    ``may_record`` False keeps syrupy from recording a missing golden, even under an update
    flag (so its summary counts the check as failed, not as generated)."""
    saved = (assertion.update_snapshots, assertion.update_new_snapshots_only)
    if not may_record:
        assertion.update_snapshots = assertion.update_new_snapshots_only = False
    try:
        assertion(name=check) == candidate  # noqa: B015  (syrupy's assertion protocol)
    finally:
        assertion.update_snapshots, assertion.update_new_snapshots_only = saved
    result = assertion.executions[assertion.num_executions - 1]
    return Outcome(
        success=bool(result.success),
        absent=not result.success and result.recalled_data is None,
        created=bool(result.created),
        updated=bool(result.updated),
        exception=result.exception,
    )
