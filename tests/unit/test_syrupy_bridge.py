"""The syrupy internals ``plugin/syrupy_bridge.py`` relies on, each named against the installed
syrupy: a syrupy release that moves one fails here first, with the name of what moved."""

import dataclasses
import inspect
import textwrap

import pytest
from syrupy import assertion as syrupy_assertion
from syrupy import session as syrupy_session
from syrupy.location import PyTestLocation


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


def test_the_session_keeps_selected_items_worker_reports_and_takes_ran_item():
    fields = _fields(syrupy_session.SnapshotSession)
    assert "_selected_items" in fields  # nodeid -> ItemStatus, read by protect_unrun
    assert "_worker_reports" in fields  # xdist workers' reports, read and amended
    assert "_written_snapshot_locations" in fields  # sidecars of goldens we could not write
    from syrupy.utils import cleanup_snapshot_write_sidecars

    assert list(inspect.signature(cleanup_snapshot_write_sidecars).parameters) == ["filepaths"]
    assert list(inspect.signature(syrupy_session.SnapshotSession.ran_item).parameters) == [
        "self",
        "nodeid",
        "outcome",
    ]
    status = syrupy_session.ItemStatus
    assert not status.NOT_RUN.value  # "not run" is the falsy status protect_unrun looks for
    assert status("skipped") is status.SKIPPED  # what mark_not_run and protect_unrun set


def test_a_worker_report_names_selected_items_and_extensions_by_class_path():
    source = inspect.getsource(syrupy_session.SnapshotSession._publish_worker_report)
    assert '"selected"' in source and "status.value" in source
    assert '"extensions"' in source and "__qualname__" in source and "__module__" in source


def test_an_assertion_has_update_flags_and_execution_results():
    fields = _fields(syrupy_assertion.SnapshotAssertion)
    assert {"update_snapshots", "update_new_snapshots_only"} <= fields
    for name in ("executions", "num_executions"):
        assert isinstance(getattr(syrupy_assertion.SnapshotAssertion, name), property), name
    assert callable(syrupy_assertion.SnapshotAssertion.use_extension)
    result = _fields(syrupy_assertion.AssertionResult)
    assert {"success", "created", "updated", "recalled_data", "exception"} <= result


def test_an_extension_writes_through_write_snapshot_with_these_keywords():
    """The extension guards syrupy's ``write_snapshot`` (which makes the golden's folder) so a
    golden that cannot be written fails the run instead of stopping syrupy's flush."""
    from syrupy.extensions.base import SnapshotCollectionStorage

    keywords = inspect.signature(SnapshotCollectionStorage.write_snapshot).parameters
    assert list(keywords) == ["snapshot_location", "snapshots", "name_order"]
    flush = inspect.getsource(syrupy_session.SnapshotSession._flush_snapshot_write_queue_key)
    assert "write_snapshot(" in flush


def test_a_location_names_its_test_and_file():
    """The bridge builds one from a test item; the extension reads its file and module."""
    assert next(iter(inspect.signature(PyTestLocation).parameters)) == "item"
    assert {"filepath", "modulename"} <= _fields(PyTestLocation)
    assert isinstance(PyTestLocation.snapshot_name, property)


def test_a_live_session_exposes_the_internals_to_the_bridge(pytester):
    """In a real session: ``config._syrupy``, its selected items and options, and one
    assertion through ``assert_match`` (recorded under an update flag, refused without one)."""
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest
            from pytest_weightshape.plugin import syrupy_bridge

            SEEN = {}

            @pytest.hookimpl(trylast=True)
            def pytest_collection_modifyitems(config, items):
                session = config._syrupy
                SEEN["selected"] = type(session._selected_items).__name__
                SEEN["reports"] = type(session._worker_reports).__name__

            def pytest_terminal_summary(terminalreporter, config):
                terminalreporter.write_line(f"SEEN {sorted(SEEN.items())}")
                terminalreporter.write_line(
                    f"OPTIONS {syrupy_bridge.updating(config)} "
                    f"{syrupy_bridge.warn_unused(config)} {syrupy_bridge.unused_disabled(config)}"
                )
            """
        )
    )
    pytester.makepyfile(
        test_one=textwrap.dedent(
            """
            import json
            from syrupy.extensions.json import JSONSnapshotExtension
            from pytest_weightshape.plugin import syrupy_bridge

            def test_one(snapshot, request):
                assertion = syrupy_bridge.use_extension(
                    snapshot, JSONSnapshotExtension, update_drifted=False
                )
                where = syrupy_bridge.location(assertion, request.node, "first")
                assert where.test == "test_one" and where.path.endswith(".json")
                refused = syrupy_bridge.assert_match(
                    assertion, "first", {"a": 1}, may_record=False
                )
                assert refused.absent and not refused.success and not refused.created
                taken = syrupy_bridge.assert_match(
                    assertion, "second", {"a": 1}, may_record=True
                )
                print("OUTCOME", taken.success, taken.created, taken.absent)
            """
        )
    )
    result = pytester.runpytest_inprocess("--snapshot-update", "-s", "-p", "no:weightshape")
    out = result.stdout.str()
    assert "SEEN [('reports', 'list'), ('selected', 'dict')]" in out
    assert "OPTIONS True False False" in out
    assert "OUTCOME True True False" in out  # recorded under --snapshot-update


@pytest.mark.parametrize(
    "name",
    [
        "_syrupy",
        "ran_item",
        "_selected_items",
        "_worker_reports",
        "_written_snapshot_locations",
        "cleanup_snapshot_write_sidecars",
        "update_snapshots",
    ],
)
def test_the_bridge_is_the_only_module_naming_each_internal(name):
    """Everything else goes through the bridge's named functions."""
    from pathlib import Path

    import pytest_weightshape

    package = Path(pytest_weightshape.__file__).parent
    users = sorted(
        str(p.relative_to(package)) for p in package.rglob("*.py") if name in p.read_text()
    )
    assert users == ["plugin/syrupy_bridge.py"]
