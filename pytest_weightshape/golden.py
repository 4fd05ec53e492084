"""The golden document: JSON format, schema validation, file paths and safe writes.

One file per test (and parameter set) under the top-level ``golden/`` folder, mirroring the test's
path: ``tests/models/test_lstm.py::test_hidden[cpu]`` -> ``golden/tests/models/test_lstm/
test_hidden[cpu].json``. The file holds each ``check`` of the test under its name (``default``
for an unnamed check). Standard JSON only (no NaN/Infinity tokens), stable key order, floats
written with ``repr`` so they round-trip. Nothing in a golden is ever executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import GoldenError, NewerGoldenError

SCHEMA_VERSION = 1
#: How fingerprint digests (of inputs and initial weights) are made: the prefix names the
#: method, so a digest is only compared with one made the same way (goldens recorded by earlier
#: versions hold unprefixed blake2b digests).
DIGEST_PREFIX = "crc32:"
DEFAULT_CHECK = "default"
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
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate key {duplicate!r}")
    return dict(pairs)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON token {token}")


def parse_file(text: str, path: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """Parse and validate a golden file -> (test name, checks). Raises :class:`GoldenError`."""
    fix = (
        "Restore it from version control, or delete it and record it again with "
        "`pytest --snapshot-update`."
    )
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise GoldenError(f"golden {path} is not valid JSON ({exc}). {fix}") from None
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


# -- schema ---------------------------------------------------------------------------------

_NUM = (int, float)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shape_problem(v: Any) -> bool:
    return not isinstance(v, list) or not all(_is_int(d) and d >= 0 for d in v)


def _tensors_problem(where: str, tensors: Any, value_key: str) -> str | None:
    if not isinstance(tensors, dict):
        return f"{where} must be an object"
    for name, info in tensors.items():
        if not isinstance(info, dict):
            return f"{where}.{name} must be an object"
        if _shape_problem(info.get("shape")):
            return f"{where}.{name}.shape must be a list of non-negative integers"
        if not isinstance(info.get("dtype"), str):
            return f"{where}.{name}.dtype must be a string"
        if not isinstance(info.get(value_key), dict):
            return f"{where}.{name}.{value_key} must be an object"
        for key, val in info[value_key].items():
            if key in ("count", "nan_count", "inf_count"):
                if not _is_int(val) or val < 0:
                    return f"{where}.{name}.{value_key}.{key} must be a non-negative integer"
            elif key == "digest":
                if not isinstance(val, str):
                    return f"{where}.{name}.{value_key}.digest must be a string"
            elif isinstance(val, bool) or not (val is None or isinstance(val, _NUM)):
                return f"{where}.{name}.{value_key}.{key} must be a number or null"
    return None


def _divergence_problem(where: str, div: Any) -> str | None:
    if not isinstance(div, dict):
        return f"{where} must be an object"
    par = div.get("parameters")
    if not isinstance(par, dict):
        return f"{where}.parameters must be an object"
    for key in ("changed_shapes", "added", "removed"):
        if not isinstance(par.get(key), list):
            return f"{where}.parameters.{key} must be a list"
    ratio = par.get("parameter_count_ratio", "missing")
    if ratio is not None and (not isinstance(ratio, _NUM) or isinstance(ratio, bool)):
        return f"{where}.parameters.parameter_count_ratio must be a number or null"
    for key in ("outputs_added", "outputs_removed"):
        if not isinstance(div.get(key), list):
            return f"{where}.{key} must be a list"
    outs = div.get("outputs")
    if not isinstance(outs, dict) or not all(isinstance(o, dict) for o in outs.values()):
        return f"{where}.outputs must be an object of objects"
    noise = div.get("noise", {})
    if not isinstance(noise, dict) or not all(
        isinstance(n, dict)
        and all(isinstance(v, _NUM) and not isinstance(v, bool) for v in n.values())
        for n in noise.values()
    ):
        return f"{where}.noise must be an object of objects of numbers"
    for oname, measures in outs.items():
        for key, val in measures.items():
            text = key == "shape_change"  # the only text measure
            wanted: tuple[type, ...] = (str,) if text else _NUM
            if isinstance(val, bool) or not (val is None or isinstance(val, wanted)):
                kind = "a string or null" if text else "a number or null"
                return f"{where}.outputs.{oname}.{key} must be {kind}"
    return None


def check_problem(check: Any) -> str | None:
    """What is wrong with a check document's structure, or ``None`` if it is well-formed."""
    if not isinstance(check, dict):
        return "the check must be an object"
    if check.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version must be {SCHEMA_VERSION}"
    if not _is_int(check.get("seed")):
        return "seed must be an integer"
    if check.get("weights") not in ("framework", "portable"):
        return "weights must be 'framework' or 'portable'"
    if not isinstance(check.get("environment"), dict):
        return "environment must be an object"
    variants = check.get("variants")
    if not isinstance(variants, dict) or not variants:
        return "variants must be a non-empty object"
    for name, var in variants.items():
        where = f"variants[{name!r}]"
        if not isinstance(var, dict):
            return f"{where} must be an object"
        if not isinstance(var.get("base"), bool):
            return f"{where}.base must be true or false"
        if not isinstance(var.get("kwargs"), dict):
            return f"{where}.kwargs must be an object"
        if not _is_int(var.get("parameter_count")):
            return f"{where}.parameter_count must be an integer"
        for key, value_key in (("parameters", "fingerprint"), ("inputs", "fingerprint")):
            problem = _tensors_problem(f"{where}.{key}", var.get(key), value_key)
            if problem:
                return problem
        problem = _tensors_problem(f"{where}.outputs", var.get("outputs"), "stats")
        if problem:
            return problem
        for oname, out in var["outputs"].items():
            noise = out.get("noise", {})
            if not isinstance(noise, dict) or not all(
                isinstance(v, _NUM) and not isinstance(v, bool) for v in noise.values()
            ):
                return f"{where}.outputs.{oname}.noise must be an object of numbers"
        if "divergence" in var:
            problem = _divergence_problem(f"{where}.divergence", var["divergence"])
            if problem:
                return problem
    if sum(1 for v in variants.values() if v["base"]) != 1:
        return "exactly one variant must have base: true"
    return None


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


def golden_dir(rootdir: Path, golden_root: Path, test_file: Path, module: str) -> Path:
    """``golden/<test file's path relative to rootdir, without .py>``.

    A test file outside rootdir goes to ``golden/_outside_rootdir/<module name>``: named from
    its import name, so the folder does not depend on where the checkout lives.
    """
    try:
        rel = Path(os.path.relpath(test_file.resolve(), rootdir.resolve()))
    except ValueError:  # another drive on Windows
        rel = Path("..")
    if rel.parts and rel.parts[0] == "..":
        return golden_root / "_outside_rootdir" / safe_stem(module or test_file.stem)
    return golden_root / rel.parent / rel.stem


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
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def read_checks(path: Path) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The checks in an existing, valid golden file; an absent file has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}
    return parse_file(text, str(path))


def merge_write(path: Path, test: str, updates: Mapping[str, dict[str, Any]]) -> None:
    """Set ``updates`` (check name -> document) in the golden at ``path``, keeping other checks.

    A file that cannot be read (corrupt, other schema) is replaced by the updated checks: this
    runs only under ``--snapshot-update``, where re-recording is what was asked for.
    """
    with locked(path):
        try:
            _, checks = read_checks(path)
        except NewerGoldenError:
            raise
        except GoldenError:
            checks = {}
        checks.update(updates)
        write_atomic(path, render_file(test, checks))


def delete_checks(path: Path, names: set[str]) -> None:
    """Remove checks from a golden; remove the file when none is left."""
    with locked(path):
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

OUTSIDE_ROOTDIR = "_outside_rootdir"


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


def remove_files(paths: list[Path], golden_root: Path) -> None:
    """Delete golden files, then the folders they leave empty (up to ``golden_root``)."""
    for path in paths:
        with locked(path), contextlib.suppress(FileNotFoundError):
            path.unlink()
        folder = path.parent
        while folder != golden_root and folder.is_relative_to(golden_root):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
            folder = folder.parent


def same_digest(a: Any, b: Any) -> bool | None:
    """Whether two fingerprint digests show the same bytes; ``None`` when they cannot tell
    (one is missing, or they were made by different methods, e.g. by an older version)."""
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    if a.startswith(DIGEST_PREFIX) != b.startswith(DIGEST_PREFIX):
        return None
    return a == b
