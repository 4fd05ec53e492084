"""The syrupy extension: where goldens live, how they are read and written, and ``matches()``.

syrupy stays the storage and update engine (``--snapshot-update``, unused-golden detection,
xdist report merging); this extension gives it our layout (``golden/<test path>/<test>.json``,
every check of a test in one file), our JSON, and a tolerance-aware ``matches()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from syrupy.data import Snapshot, SnapshotCollection, SnapshotCollections
from syrupy.extensions.base import AbstractSyrupyExtension

from .. import golden
from ..compare import Verdict, compare
from ..document import DEFAULT_CHECK, with_missing
from ..errors import GoldenError
from ..reuse import unverified_dropped
from ..tolerance import Policy

if TYPE_CHECKING:
    from syrupy.location import PyTestLocation
    from syrupy.types import (
        PropertyFilter,
        PropertyMatcher,
        SerializableData,
        SerializedData,
        SnapshotIndex,
    )


class Candidate:
    """What a check hands to syrupy: the observed document and how to judge it."""

    def __init__(
        self,
        document: dict[str, Any],
        policy: Policy,
        test: str,
        check: str,
        write: Callable[[], bool] = lambda: True,
    ) -> None:
        self.document = document
        self.policy = policy
        self.test = test
        self.check = check
        #: Asked when syrupy flushes writes at session end: False drops the write (the test
        #: failed after recording, so its golden is not trusted).
        self.write = write
        self.verdict: Verdict | None = None
        #: Under ``--snapshot-update``: a golden recorded by an older pytest-weightshape gains
        #: what it lacks (layers, sensitivity, buffers ...) even when it matches; ``written`` is
        #: then what is written: the golden's own values with the new fields added (see
        #: ``document.with_missing``), so nothing else churns.
        self.fill_missing = False
        self.written: dict[str, Any] | None = None
        #: The golden's check, once syrupy found one to compare against.
        self.recorded: dict[str, Any] | None = None


class Rendered(str):
    """The serialized check document, still attached to its :class:`Candidate`."""

    candidate: Candidate


class Recalled(str):
    """A golden's check as syrupy hands it to ``matches()``, with the document it was
    rendered from (so the golden is not parsed again)."""

    document: dict[str, Any]


def check_name(index: SnapshotIndex) -> str:
    return index if isinstance(index, str) else DEFAULT_CHECK


def snapshot_name_for(test: str, check: str) -> str:
    """syrupy's name for a check: the test's name, plus ``[check]`` for a named check."""
    return test if check == DEFAULT_CHECK else f"{test}[{check}]"


class WeightShapeExtension(AbstractSyrupyExtension):
    file_extension = golden.FILE_EXTENSION
    #: Writes wait for session end, when the outcome of every test is known.
    write_immediately = False
    #: Set through :func:`configure` (pytest's rootdir and the golden folder).
    rootdir: ClassVar[Path] = Path.cwd()
    golden_root: ClassVar[Path] = Path.cwd() / "golden"
    #: With goldens kept per device kind, entries of other kinds (``default@cuda`` on a CPU
    #: run) are not shown to syrupy: never "unused", never deleted, merged back on write.
    only_device: ClassVar[str | None] = None

    # -- serialising and matching ---------------------------------------------------------

    def serialize(
        self,
        data: SerializableData,
        *,
        exclude: PropertyFilter | None = None,
        include: PropertyFilter | None = None,
        matcher: PropertyMatcher | None = None,
    ) -> Rendered:
        if not isinstance(data, Candidate):
            raise TypeError("the weightshape extension serialises shape_variant checks only")
        rendered = Rendered(golden.render(data.document))
        rendered.candidate = data
        return rendered

    def matches(
        self, *, serialized_data: SerializableData, snapshot_data: SerializableData
    ) -> bool:
        candidate = getattr(serialized_data, "candidate", None)
        if not isinstance(candidate, Candidate):
            return bool(serialized_data == snapshot_data)
        recalled = getattr(snapshot_data, "document", None)
        candidate.recorded = recalled if recalled is not None else json.loads(str(snapshot_data))
        candidate.verdict = compare(candidate.recorded, candidate.document, candidate.policy)
        if candidate.verdict.ok and candidate.fill_missing:
            filled = unverified_dropped(
                candidate.recorded,
                with_missing(candidate.recorded, candidate.document),
                candidate.document,
            )
            if filled != candidate.recorded:
                candidate.written = filled
                return False
        return candidate.verdict.ok

    # -- locations ------------------------------------------------------------------------

    @classmethod
    def get_snapshot_name(cls, *, test_location: PyTestLocation, index: SnapshotIndex = 0) -> str:
        return snapshot_name_for(test_location.snapshot_name, check_name(index))

    @classmethod
    def get_file_basename(cls, *, test_location: PyTestLocation, index: SnapshotIndex) -> str:
        return golden.safe_stem(test_location.snapshot_name)

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(
            golden.golden_dir(
                cls.rootdir,
                cls.golden_root,
                Path(test_location.filepath),
                test_location.modulename,
            )
        )

    @classmethod
    def matches_test_location(
        cls, *, test_location: PyTestLocation, snapshot_location: str
    ) -> bool:
        expected = cls.get_location(test_location=test_location, index=DEFAULT_CHECK)
        return Path(snapshot_location) == Path(expected)

    def discover_snapshots(
        self, *, test_location: PyTestLocation, ignore_extensions: list[str] | None = None
    ) -> SnapshotCollections:
        """The goldens of one test module: the ``.json`` files directly in its folder.

        Subfolders (another module's goldens, as for ``tests/test_a.py`` beside
        ``tests/test_a/``) and files that are not goldens (a README) are never claimed, so
        syrupy never reports or deletes them.
        """
        discovered = SnapshotCollections()
        folder = Path(self.dirname(test_location=test_location))
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                ours = path.suffix == f".{self.file_extension}" and not path.name.startswith(".")
                # a link to nothing is claimed too: an unused one is named, never deleted
                if ours and (path.is_file() or (path.is_symlink() and not path.exists())):
                    location = str(path)
                    discovered.add(self.read_snapshot_collection(snapshot_location=location))
        return discovered

    # -- reading --------------------------------------------------------------------------

    def read_snapshot_collection(self, *, snapshot_location: str) -> SnapshotCollection:
        collection = SnapshotCollection(location=snapshot_location)
        try:
            test, checks = golden.read_checks(Path(snapshot_location))
        except GoldenError:
            # Unreadable: keep it claimed by its test so cleanup never deletes it silently.
            collection.add(Snapshot(name=Path(snapshot_location).stem))
            return collection
        for check in checks:
            _, at, device = check.partition("@")
            if at and self.only_device is not None and device != self.only_device:
                continue
            collection.add(Snapshot(name=snapshot_name_for(test or "", check)))
        return collection

    def read_snapshot_data_from_location(
        self, *, snapshot_location: str, snapshot_name: str, session_id: str
    ) -> str | None:
        try:
            test, checks = golden.read_checks(Path(snapshot_location))
        except GoldenError:
            return None  # the plugin reports corruption before asking; here we may rewrite
        for check, document in checks.items():
            if snapshot_name_for(test or "", check) == snapshot_name:
                recalled = Recalled(golden.render(document))
                recalled.document = document
                return recalled
        return None

    # -- writing --------------------------------------------------------------------------

    @classmethod
    def write_snapshot_collection(
        cls, *, snapshot_collection: SnapshotCollection, name_order: dict[str, int] | None = None
    ) -> None:
        updates: dict[str, dict[str, Any]] = {}
        test = ""
        for snapshot in snapshot_collection:
            candidate = getattr(snapshot.data, "candidate", None)
            if not isinstance(candidate, Candidate):
                raise TypeError("the weightshape extension writes shape_variant checks only")
            if candidate.write():
                test = candidate.test
                written = candidate.written
                updates[candidate.check] = (
                    written if written is not None else json.loads(str(snapshot.data))
                )
        if updates:
            golden.merge_write(Path(snapshot_collection.location), test, updates)

    @classmethod
    def write_snapshot(
        cls,
        *,
        snapshot_location: str,
        snapshots: list[tuple[SerializedData, PyTestLocation, SnapshotIndex]],
        name_order: dict[str, int] | None = None,
    ) -> None:
        """syrupy's own (it makes the golden's folder, then calls
        :meth:`write_snapshot_collection`), guarded: a golden that cannot be written (a
        newer golden, a full disk, a read-only folder, a file where its folder should be) is
        set aside for the session to name and fail the run, and syrupy's flush goes on with
        the other goldens instead of stopping at the first with a traceback."""
        try:
            super().write_snapshot(
                snapshot_location=snapshot_location, snapshots=snapshots, name_order=name_order
            )
        except (OSError, GoldenError, UnicodeError) as exc:
            # making the golden's folder (syrupy's mkdir, then ours) met a link to nothing?
            if isinstance(exc, FileExistsError):
                exc = golden.broken_link(Path(snapshot_location)) or exc
            NOT_WRITTEN.append((snapshot_location, _reason(exc)))

    def delete_snapshots(self, *, snapshot_location: str, snapshot_names: set[str]) -> None:
        path = Path(snapshot_location)
        try:
            test, checks = golden.read_checks(path)
        except GoldenError as exc:  # never delete what we cannot read; say so (syrupy counts
            # it as deleted, and the next run would call it unused again)
            why = f"not removed although unused ({_reason(exc)}): remove it by hand if unused"
            NOT_WRITTEN.append((snapshot_location, why))
            return
        doomed = {c for c in checks if snapshot_name_for(test or "", c) in snapshot_names}
        try:
            golden.delete_checks(path, doomed)
        except OSError as exc:
            NOT_WRITTEN.append((snapshot_location, f"removing unused checks: {_reason(exc)}"))


#: Goldens that syrupy's flush at session end could not write: (path, why), taken by the
#: session (:func:`take_not_written`) to fail the run and name each one.
NOT_WRITTEN: list[tuple[str, str]] = []


def take_not_written() -> list[tuple[str, str]]:
    """The goldens not written since the last call (and forget them)."""
    taken = list(NOT_WRITTEN)
    NOT_WRITTEN.clear()
    return taken


def _reason(exc: BaseException) -> str:
    if isinstance(exc, IsADirectoryError):
        return "a folder stands at its path: move or remove it, then run --snapshot-update again"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    if isinstance(exc, GoldenError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Location(NamedTuple):
    """Where the extension looks for goldens: pytest's rootdir, the golden folder, and, with
    goldens kept per device kind, the kind whose entries it shows to syrupy (None: all)."""

    rootdir: Path
    golden_root: Path
    only_device: str | None


def configure(location: Location) -> Location:
    """Point the extension at ``location``; returns the one it had. The only writer of the
    extension's class attributes (syrupy instantiates the class itself, so they are its
    configuration)."""
    previous = configured()
    ext = WeightShapeExtension
    ext.rootdir, ext.golden_root, ext.only_device = location
    return previous


def configured() -> Location:
    """Where the extension looks for goldens now."""
    ext = WeightShapeExtension
    return Location(ext.rootdir, ext.golden_root, ext.only_device)
