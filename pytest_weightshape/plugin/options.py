"""Command line and ini -> :class:`Settings`, each value with where it came from.

One written precedence: command line > ini > default (a marker and a check's keywords rank above
both, see :mod:`.fixture`). Values are plain (picklable for xdist) and shown in the report header.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

from ..errors import SpecError

#: Command-line option -> (ini twin, help). Valued options; flags are below.
OPTIONS: dict[str, tuple[str, str]] = {
    "golden_dir": ("weightshape_golden_dir", "folder of golden files, relative to rootdir"),
    "rtol": ("weightshape_rtol", "relative tolerance for every check (default: per dtype)"),
    "atol": ("weightshape_atol", "absolute tolerance for every check (default: rtol x output rms)"),
    "device": ("weightshape_device", "where checks run: auto, cpu (default), cuda, cuda:N, mps"),
    "device_rtol": (
        "weightshape_device_rtol",
        "device profiles, e.g. 'cuda=1e-3 mps=1e-3 cross=1e-3' (rtol floors per device kind)",
    ),
    "report": (
        "weightshape_report",
        "write a report of every check; the format follows the extension: .json, .md or .html",
    ),
}
#: Flags (store_true) -> (ini twin, help).
FLAGS: dict[str, tuple[str, str]] = {
    "device_strict": (
        "weightshape_device_strict",
        "fail, instead of skip, a check whose device is not available",
    ),
    "deterministic": (
        "weightshape_deterministic",
        "run checks with deterministic algorithms (torch) and op determinism (tensorflow)",
    ),
    "golden_per_device": (
        "weightshape_golden_per_device",
        "keep one golden entry per device kind (cpu, cuda, mps) instead of one for all",
    ),
    "calibrate": (
        "weightshape_calibrate",
        "also run each variant in float64 and store each statistic's float32 rounding noise; "
        "a golden so recorded allows max(tolerance, 10 x noise)",
    ),
    "flops": (
        "weightshape_flops",
        "count each torch variant's FLOPs (torch.utils.flop_counter) and record them with the "
        "divergence's FLOPs ratio; counting makes a forward several times slower",
    ),
    "update_failing": (
        "weightshape_update_failing",
        "rewrite only the goldens of failing checks: missing goldens are not recorded and "
        "unused ones not deleted (the counterpart of --snapshot-update-new-only)",
    ),
}
#: ``--weightshape-strict`` (a flag) and its ini twin, which also takes ``auto`` (the default:
#: strict when the ``CI`` environment variable is set) and ``false`` (never strict).
STRICT_HELP = (
    "CI mode: a missing golden fails and is never recorded, even with --snapshot-update "
    "(default: on when the CI environment variable is set)"
)
REPORT_FORMATS = (".json", ".md", ".html")


class Settings(NamedTuple):
    """Session-wide settings after command line > ini precedence.

    A named tuple (a frozen dataclass takes about a millisecond to create when the plugin
    loads). ``profiles`` is None when none were given: the defaults, resolved by the first
    check.
    """

    golden_root: Path
    rtol: float | None
    atol: float | None
    sources: Mapping[str, str]
    device: str
    profiles: Mapping[str, float] | None
    device_strict: bool
    deterministic: bool
    golden_per_device: bool
    calibrate: bool
    update_failing: bool
    strict: bool
    report: Path | None
    flops: bool = False
    #: Every report file asked for (``--weightshape-report`` may be given more than once:
    #: ``--weightshape-report=run.json --weightshape-report=run.html`` writes both); ``report``
    #: is the first.
    reports: tuple[Path, ...] = ()


def add_options(parser: pytest.Parser) -> None:
    """Every ``--weightshape-*`` option and its ini twin."""
    group = parser.getgroup("weightshape", "pytest-weightshape: weight-shape regression checks")
    for dest, (ini, help_text) in OPTIONS.items():
        repeatable = dest == "report"
        group.addoption(
            f"--weightshape-{dest.replace('_', '-')}",
            dest=f"weightshape_{dest}",
            default=None,
            action="append" if repeatable else "store",
            help=f"{help_text}{'; may be given more than once' if repeatable else ''} (ini: {ini})",
        )
        parser.addini(ini, help_text, default=None)
    for dest, (ini, help_text) in FLAGS.items():
        group.addoption(
            f"--weightshape-{dest.replace('_', '-')}",
            dest=f"weightshape_{dest}",
            action="store_true",
            default=False,
            help=f"{help_text} (ini: {ini} = true)",
        )
        parser.addini(ini, help_text, type="bool", default=False)
    group.addoption(
        "--weightshape-strict",
        dest="weightshape_strict",
        action="store_true",
        default=False,
        help=f"{STRICT_HELP} (ini: weightshape_strict = auto|true|false)",
    )
    parser.addini("weightshape_strict", STRICT_HELP + "; auto, true or false", default="auto")


def read_settings(config: pytest.Config) -> Settings:
    """The session's settings; a bad value is a ``pytest.UsageError`` that names the option."""
    golden_dir, golden_source = _setting(config, "golden_dir")
    rtol, rtol_source = _float_setting(config, "rtol")
    atol, atol_source = _float_setting(config, "atol")
    device, device_source = _setting(config, "device")
    profiles_text, profiles_source = _setting(config, "device_rtol")
    flags = {dest: _flag(config, dest) for dest in FLAGS}
    strict, strict_source = _strict(config)
    reports, report_source = _report_paths(config)
    profiles = None  # the defaults
    if device is not None or profiles_text is not None:
        from ..devices import check_device
        from ..tolerance import parse_profiles

        try:
            check_device(device, f"--weightshape-device ({device_source})")
            if profiles_text is not None:
                where = f"--weightshape-device-rtol ({profiles_source})"
                profiles = parse_profiles(profiles_text, where)
        except SpecError as exc:
            raise pytest.UsageError(str(exc)) from None
    return Settings(
        golden_root=config.rootpath / (golden_dir or "golden"),
        rtol=rtol,
        atol=atol,
        sources={
            "golden_dir": golden_source,
            "rtol": rtol_source,
            "atol": atol_source,
            "device": device_source,
            "device_rtol": profiles_source,
            "strict": strict_source,
            "report": report_source,
            **{dest: source for dest, (_, source) in flags.items()},
        },
        device=device or "cpu",
        profiles=profiles,
        device_strict=flags["device_strict"][0],
        deterministic=flags["deterministic"][0],
        golden_per_device=flags["golden_per_device"][0],
        calibrate=flags["calibrate"][0],
        update_failing=flags["update_failing"][0],
        flops=flags["flops"][0],
        strict=strict,
        report=reports[0] if reports else None,
        reports=reports,
    )


def header_line(config: pytest.Config, settings: Settings) -> str:
    """The report header's line: where goldens live, the tolerance and device in force and
    where each came from, the switches that are on, and the framework versions."""
    from ..environment import framework_versions

    versions = ", ".join(f"{k} {v}" for k, v in framework_versions().items() if v)
    try:
        where = settings.golden_root.relative_to(config.rootpath)
    except ValueError:
        where = settings.golden_root
    tol = (
        ", ".join(
            f"{k}={getattr(settings, k)} ({settings.sources[k]})"
            for k in ("rtol", "atol")
            if getattr(settings, k) is not None
        )
        or "per-dtype defaults"
    )
    extras = [f"device {settings.device} ({settings.sources['device']})"]
    extras += [
        f"{dest.replace('_', '-')} ({settings.sources[dest]})"
        for dest in (*FLAGS, "strict")
        if getattr(settings, dest)
    ]
    for report in settings.reports:
        shown = os.path.relpath(report, config.invocation_params.dir)
        extras.append(f"report {shown} ({settings.sources['report']})")
    return (
        f"weightshape: goldens in {where}/ ({settings.sources['golden_dir']}); "
        f"tolerance {tol}; {', '.join(extras)}; {versions}"
    )


def _strict(config: pytest.Config) -> tuple[bool, str]:
    if config.getoption("weightshape_strict"):
        return True, "command line"
    raw = str(config.getini("weightshape_strict") or "auto").strip().lower()
    if raw in ("true", "1", "yes", "on"):
        return True, "ini"
    if raw in ("false", "0", "no", "off"):
        return False, "ini"
    if raw != "auto":
        raise pytest.UsageError(
            f"weightshape_strict (ini): expected auto, true or false, got {raw!r}"
        )
    ci = os.environ.get("CI", "").strip().lower()
    if ci and ci not in ("0", "false", "no", "off"):
        return True, "CI environment variable"
    return False, "default"


def _report_paths(config: pytest.Config) -> tuple[tuple[Path, ...], str]:
    """Every ``--weightshape-report`` given (in order, each once), else the ini's."""
    given = config.getoption("weightshape_report") or []
    if given:
        raws, source, base = given, "command line", config.invocation_params.dir
    else:
        ini = config.getini(OPTIONS["report"][0])
        if ini in (None, ""):
            return (), "default"
        raws, source, base = [str(ini)], "ini", config.rootpath
    paths: list[Path] = []
    for raw in raws:
        path = Path(raw)
        if path.suffix.lower() not in REPORT_FORMATS:
            raise pytest.UsageError(
                f"--weightshape-report ({source}): {raw!r} has no known format; end the name "
                f"in {', '.join(REPORT_FORMATS)}"
            )
        if (base / path).resolve() not in {p.resolve() for p in paths}:
            paths.append(base / path)
    return tuple(paths), source


def _setting(config: pytest.Config, dest: str) -> tuple[str | None, str]:
    value = config.getoption(f"weightshape_{dest}")
    if value is not None:
        return str(value), "command line"
    ini = config.getini(OPTIONS[dest][0])
    if ini not in (None, ""):
        return str(ini), "ini"
    return None, "default"


def _float_setting(config: pytest.Config, dest: str) -> tuple[float | None, str]:
    raw, source = _setting(config, dest)
    if raw is None:
        return None, source
    from ..tolerance import check_number

    try:
        return check_number(float(raw), f"--weightshape-{dest} ({source})"), source
    except (ValueError, SpecError) as exc:
        raise pytest.UsageError(
            f"--weightshape-{dest} ({source}): expected a number >= 0, got {raw!r}"
        ) from exc


def _flag(config: pytest.Config, dest: str) -> tuple[bool, str]:
    if config.getoption(f"weightshape_{dest}"):
        return True, "command line"
    if config.getini(FLAGS[dest][0]):
        return True, "ini"
    return False, "default"
