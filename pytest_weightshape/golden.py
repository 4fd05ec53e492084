"""Golden files: their JSON format, paths and safe writes (the check documents they hold are
validated by :mod:`.document`).

One file per test (and parameter set) under the top-level ``golden/`` folder, mirroring the test's
path: ``tests/models/test_lstm.py::test_hidden[cpu]`` -> ``golden/tests/models/test_lstm/
test_hidden[cpu].json``. The file holds each ``check`` of the test under its name (``default``
for an unnamed check). Standard JSON only (no NaN/Infinity tokens), stable key order, floats
written with ``repr`` so they round-trip. Nothing in a golden is ever executed.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .document import DEFAULT_CHECK as DEFAULT_CHECK  # re-exported: moved to document
from .document import DIGEST_PREFIX as DIGEST_PREFIX  # re-exported: moved to document
from .document import SCHEMA_VERSION, check_problem
from .document import same_digest as same_digest  # re-exported: moved to document
from .errors import GoldenError, NewerGoldenError

FILE_EXTENSION = "json"
#: Longest file stem we write; longer test ids are cut and made unique with a digest.
MAX_STEM = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+\-\[\]()@]")


def _render(value: Any, indent: str) -> str:
    if isinstance(value, dict) and value:
        inner = indent + "  "
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_render(v, inner)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + _render(v, inner) for v in value) + "\n" + indent + "]"
    # scalars, empty containers and flat lists (shapes) stay on one line
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def render(document: Mapping[str, Any]) -> str:
    """Canonical JSON text: 2-space indent, flat lists on one line, keys in document order,
    floats written with ``repr`` (they round-trip), no NaN/Infinity tokens."""
    try:
        return _render(dict(document), "") + "\n"
    except ValueError as exc:  # a NaN/Inf slipped into a float field
        raise GoldenError(f"internal error: non-finite number in a golden ({exc})") from None


def render_file(test: str, checks: Mapping[str, Mapping[str, Any]]) -> str:
    return render({"schema_version": SCHEMA_VERSION, "test": test, "checks": dict(checks)})


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):  # linear: a set of the keys seen so far
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return found


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON token {token}")


def _bounded_int(token: str) -> int:
    """A JSON integer; one beyond the float range is refused (every number in a golden is a
    count or a statistic, and statistics are compared as floats)."""
    if len(token.lstrip("-")) > 308:
        raise ValueError(f"number {token[:20]}... ({len(token)} digits) is out of the float range")
    return int(token)


def _finite_float(token: str) -> float:
    """A JSON number as a float; one out of float range (``1e999``) is refused, as NaN and
    Infinity are: no statistic is ever recorded so."""
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token} is out of the float range")
    return value


def parse_file(text: str, path: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """Parse and validate a golden file -> (test name, checks). Raises :class:`GoldenError`."""
    fix = (
        "Restore it from version control, or delete it and record it again with "
        "`pytest --snapshot-update`."
    )
    try:
        data = json.loads(
            text.removeprefix("\ufeff"),  # a byte-order mark, as Windows editors write one
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except ValueError as exc:
        raise GoldenError(f"golden {path} is not valid JSON ({exc}). {fix}") from None
    except RecursionError:
        raise GoldenError(f"golden {path} is nested too deeply to be a golden. {fix}") from None
    if not isinstance(data, dict):
        raise GoldenError(f"golden {path} is not a JSON object. {fix}")
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise NewerGoldenError(
            f"golden {path} was written by a newer pytest-weightshape (schema_version {version}; "
            f"this one reads {SCHEMA_VERSION}). Upgrade pytest-weightshape; it is not "
            "overwritten, even with --snapshot-update."
        )
    if version != SCHEMA_VERSION:
        raise GoldenError(
            f"golden {path} has schema_version {version!r}; this pytest-weightshape reads "
            f"version {SCHEMA_VERSION}. Record it again with `pytest --snapshot-update`."
        )
    test, checks = data.get("test"), data.get("checks")
    if not isinstance(test, str) or not isinstance(checks, dict):
        raise GoldenError(f"golden {path} lacks 'test' (string) or 'checks' (object). {fix}")
    for name, check in checks.items():
        problem = check_problem(check)
        if problem:
            raise GoldenError(f"golden {path}, check {name!r}: {problem}. {fix}")
    return test, checks


# -- paths ----------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()


def safe_stem(name: str) -> str:
    """A file stem for a test id that is safe on every OS and unique per id.

    Characters outside a portable set (path separators, ``..``, ``:``, ``*``, control and
    non-ASCII characters) are replaced; when anything was replaced or cut, a digest of the
    original id is appended so two ids never share a file.
    """
    stem = _UNSAFE.sub("_", name).lstrip(".") or "_"
    if stem != name or len(stem) > MAX_STEM:
        stem = f"{stem[: MAX_STEM - 12]}~{_digest(name)}"
    return stem


#: The folder, under the golden root, of the goldens of test files outside rootdir.
OUTSIDE_ROOTDIR = "_outside_rootdir"


def golden_dir(rootdir: Path, golden_root: Path, test_file: Path, module: str) -> Path:
    """``golden/<test file's path relative to rootdir, without .py>``.

    A test file outside rootdir goes to ``golden/_outside_rootdir/<name>`` (see
    :func:`outside_name`), so the folder does not depend on where the checkout lives.
    """
    try:
        rel = Path(os.path.relpath(test_file.resolve(), rootdir.resolve()))
    except ValueError:  # another drive on Windows
        rel = Path("..")
    if rel.parts and rel.parts[0] == "..":
        return golden_root / OUTSIDE_ROOTDIR / safe_stem(outside_name(rootdir, test_file, module))
    return golden_root / rel.parent / rel.stem


def outside_name(rootdir: Path, test_file: Path, module: str) -> str:
    """The name of a test file outside rootdir: ``module``, pytest's import name, which the
    default import mode (and ``--pyargs``, and ``--import-mode=importlib`` for a file in a
    package) takes from the packages the file sits in. ``--import-mode=importlib`` names a file
    in no package from its absolute path, which differs per machine: such a file is named by its
    path relative to rootdir instead, ``..`` as ``_up`` (two such files with one stem get two
    folders)."""
    if module and module not in _absolute_names(test_file):
        return module
    try:
        rel = Path(os.path.relpath(test_file.resolve(), rootdir.resolve())).with_suffix("")
    except ValueError:  # another drive on Windows: no relative path
        return test_file.stem
    return ".".join("_up" if part == ".." else part.replace(".", "_") for part in rel.parts)


def _absolute_names(test_file: Path) -> set[str]:
    """The names ``--import-mode=importlib`` builds from a file's absolute path (its parts
    after the root, dots as underscores), for the path as given and resolved."""
    names = set()
    for path in {Path(os.path.abspath(test_file)), test_file.resolve()}:
        parts = path.with_suffix("").parts[1:]
        names.add(".".join(part.replace(".", "_") for part in parts))
    return names


# -- writing --------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise read-merge-write of goldens in ``path``'s folder across processes.

    The folder itself is locked (``flock`` on its descriptor), so no lock files are left
    beside the goldens. Where ``fcntl`` is missing (Windows) writes stay atomic but
    concurrent merges into one file are not serialised.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _file_mode(path: Path) -> int:
    """The mode a new file gets from the umask; an existing file keeps its own."""
    try:
        found = path.stat()
        if stat.S_ISREG(found.st_mode):  # not a folder's mode, through a link to one
            return stat.S_IMODE(found.st_mode)
    except OSError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never a part.

    A golden that is a symbolic link to a regular file is written where it points: the link
    stays (goldens shared between projects by links keep being shared). A link to anything
    else (a missing file, a folder) is replaced by the file."""
    if path.is_symlink() and path.is_file():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp's 0600 would hide goldens from a team
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: Parsed goldens, by absolute path, with the file's stat when read: each golden is parsed
#: once per session however many times a check, syrupy and session end ask for it.
_PARSED: collections.OrderedDict[str, tuple[tuple[int, ...], str, dict[str, dict[str, Any]]]] = (
    collections.OrderedDict()
)
#: Goldens kept parsed at once (the least recently read are dropped first).
PARSED_KEPT = 64


def read_checks(path: Path) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The checks in an existing, valid golden file; an absent file has none.

    A file that cannot be read (no permission, not UTF-8, a folder at its path) is a corrupt
    golden (:class:`GoldenError`), like one that is not valid JSON.
    """
    try:
        stat_result = path.stat()
    except FileNotFoundError:
        error = broken_link(path)  # a link whose target is gone is no absent golden
        if error is not None:
            raise error from None
        return None, {}
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if not stat.S_ISREG(stat_result.st_mode):  # a folder, a FIFO (reading it would block)...
        raise _unreadable(path, None)
    key = os.path.abspath(path)
    signature = (stat_result.st_ino, stat_result.st_size, stat_result.st_mtime_ns)
    cached = _PARSED.get(key)
    if cached is not None and cached[0] == signature:
        _PARSED.move_to_end(key)
        return cached[1], dict(cached[2])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from None
    test, checks = parse_file(text, str(path))
    _PARSED[key] = (signature, test, checks)
    while len(_PARSED) > PARSED_KEPT:
        _PARSED.popitem(last=False)
    return test, dict(checks)


def _dangling_link(path: Path) -> Path | None:
    """The symbolic link, ``path`` or a folder above it, whose target is gone and that keeps
    ``path`` from existing; ``None`` when nothing is there (no golden yet)."""
    for at in (path, *path.parents):
        if os.path.lexists(at):
            return at if at.is_symlink() and not at.exists() else None
    return None


def broken_link(path: Path) -> GoldenError | None:
    """The error for a golden behind a symbolic link to nothing (``path`` or a folder above
    it); ``None`` when no such link stands in the way."""
    link = _dangling_link(path)
    return None if link is None else _dangling(path, link)


def _dangling(path: Path, link: Path) -> GoldenError:
    """A golden behind a symbolic link to nothing (its target moved or was deleted)."""
    try:
        target = os.readlink(link)
    except OSError:
        target = "a path"
    final = os.path.realpath(link)
    if os.path.normpath(os.path.join(os.path.realpath(link.parent), target)) != final:
        target = f"{target} (which leads to {os.path.relpath(final, link.parent)})"  # a chain
    where = "is a symbolic link" if link == path else f"is under {link.name}/, a symbolic link"
    return GoldenError(
        f"golden {path} {where} to {target}, which does not exist. Restore what it points to, "
        "or remove the link and record the golden with `pytest --snapshot-update` (recording "
        "over a link to a missing file replaces the link with a regular file)."
    )


def _unreadable(path: Path, exc: BaseException | None) -> GoldenError:
    """``exc`` None: the path holds no regular file (a folder, a pipe ...)."""
    if (isinstance(exc, IsADirectoryError) or path.is_dir()) and path.is_symlink():
        return GoldenError(
            f"golden {path} cannot be read (it is a symbolic link to the folder "
            f"{os.readlink(path)}). Remove the link (not the folder it points to), then record "
            "the golden with `pytest --snapshot-update`."
        )
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return GoldenError(
            f"golden {path} cannot be read (a folder stands at its path). Move or remove the "
            "folder, then record the golden with `pytest --snapshot-update`."
        )
    if exc is None:
        why = "it is not a regular file (a pipe, socket or device stands at its path)"
    elif isinstance(exc, UnicodeDecodeError):
        why = f"it is not UTF-8 text ({exc.reason} at byte {exc.start})"
    else:
        why = f"{type(exc).__name__}: {exc.strerror if isinstance(exc, OSError) else exc}"
    return GoldenError(
        f"golden {path} cannot be read ({why}). Fix or remove it, or record it again with "
        "`pytest --snapshot-update`."
    )


def merge_write(path: Path, test: str, updates: Mapping[str, dict[str, Any]]) -> None:
    """Set ``updates`` (check name -> document) in the golden at ``path``, keeping other checks.

    A file that cannot be read (corrupt, other schema) is replaced by the updated checks: this
    runs only under ``--snapshot-update``, where re-recording is what was asked for.
    """
    with locked(path):
        remove_stale_temporaries(path.parent)
        try:
            _, checks = read_checks(path)
        except NewerGoldenError:
            raise
        except GoldenError:
            checks = {}
        checks.update(updates)
        write_atomic(path, render_file(test, checks))


#: The end of the names of :func:`write_atomic`'s temporary files (``.<name>.<random>`` before).
TEMP_SUFFIX = ".weightshape-tmp"
#: Age after which a temporary file in a golden folder is left over, not being written.
STALE_SECONDS = 60.0


def remove_stale_temporaries(folder: Path) -> None:
    """Remove temporary files :func:`write_atomic` left in a golden folder when its process was
    killed mid-write (``.<golden>.json.<random>.weightshape-tmp``; ``git add golden`` would
    stage them).
    Called with the folder locked (:func:`locked`): no live writer of ours can be using one."""
    now = time.time()
    with contextlib.suppress(OSError):
        for stale in folder.glob(f".*.{FILE_EXTENSION}.*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                if now - stale.stat().st_mtime > STALE_SECONDS:  # also where flock is missing
                    stale.unlink()


def delete_checks(path: Path, names: set[str]) -> None:
    """Remove checks from a golden; remove the file when none is left."""
    with locked(path):
        remove_stale_temporaries(path.parent)
        try:
            test, checks = read_checks(path)
        except GoldenError:
            return
        remaining = {k: v for k, v in checks.items() if k not in names}
        if remaining and test is not None:
            write_atomic(path, render_file(test, remaining))
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


# -- goldens of deleted test files ----------------------------------------------------------


def test_file_of(rootdir: Path, golden_root: Path, golden_file: Path) -> Path | None:
    """The test file whose goldens live in ``golden_file``'s folder (the inverse of
    :func:`golden_dir`); None for goldens of files outside rootdir (named by module)."""
    try:
        rel = golden_file.parent.relative_to(golden_root)
    except ValueError:
        return None
    if not rel.parts or rel.parts[0] == OUTSIDE_ROOTDIR:
        return None
    return rootdir / rel.parent / f"{rel.name}.py"


def orphans(rootdir: Path, golden_root: Path, scopes: list[Path]) -> list[Path]:
    """Golden files whose test file no longer exists and lies in one of ``scopes``.

    Only valid goldens count: a file this plugin cannot read is never called unused (so never
    deleted), and other JSON files in the folder are not ours.
    """
    if not golden_root.is_dir():
        return []
    found = []
    for path in sorted(golden_root.rglob(f"*.{FILE_EXTENSION}")):
        if path.name.startswith(".") or not path.is_file():
            continue
        test_file = test_file_of(rootdir, golden_root, path)
        if test_file is None or test_file.exists():
            continue
        if not any(test_file.resolve().is_relative_to(scope) for scope in scopes):
            continue
        try:
            read_checks(path)
        except GoldenError:
            continue
        found.append(path)
    return found


def unused_tests(
    rootdir: Path, golden_root: Path, modules: Mapping[Path, Iterable[str]]
) -> list[Path]:
    """Golden files of tests that no longer exist: ``modules`` maps each test file collected
    whole to the names of its tests (syrupy's: ``Class.test_x[param]``); a golden file in its
    folder that none of them names is unused. Unreadable files are never called unused."""
    found = []
    for module, names in modules.items():
        folder = golden_dir(rootdir, golden_root, module, "")
        if folder.relative_to(golden_root).parts[:1] == (OUTSIDE_ROOTDIR,) or not folder.is_dir():
            continue  # goldens of files outside rootdir are named by module: not ours to judge
        names = set(names)
        expected = {safe_stem(name) for name in names}
        for path in sorted(folder.glob(f"*.{FILE_EXTENSION}")):
            if path.name.startswith(".") or path.stem in expected or not path.is_file():
                continue
            try:
                test, _ = read_checks(path)
            except GoldenError:
                continue
            if test is not None and test in names:
                continue
            found.append(path)
    return found


def remove_files(paths: list[Path], golden_root: Path) -> list[tuple[Path, OSError]]:
    """Delete golden files, then the folders they leave empty (up to ``golden_root``); those
    that could not be deleted (a read-only folder), with the error, the others deleted."""
    failed: list[tuple[Path, OSError]] = []
    for path in paths:
        try:
            with locked(path), contextlib.suppress(FileNotFoundError):
                path.unlink()
        except OSError as exc:
            failed.append((path, exc))
            continue
        folder = path.parent
        while folder != golden_root and folder.is_relative_to(golden_root):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
            folder = folder.parent
    return failed
