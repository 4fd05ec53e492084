"""Faults a hostile machine or user brings: unreadable goldens, and models that change
process-wide numeric settings."""

import importlib.util
import json
import os
import textwrap

import pytest

from .helpers import (
    BODY,
    TEST,
    assert_clean_failure,
    golden_of,
    load_for_inline,
    run,
    run_inline,
    run_module,
)

load_for_inline()  # the NumPy sessions here run in this process

OTHER = BODY.replace("def test_dense(", "def test_other(")


def _needs(framework):
    """Skip without ``framework``; found, not imported: only the inner sessions import it (an
    in-process pytester session elsewhere may have unloaded numpy from this worker)."""
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")


UNREADABLE = {
    "not-utf8": (lambda p: p.write_bytes(b"\xff\xfe not utf-8"), "not UTF-8 text"),
    "deeply-nested": (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    "folder": (lambda p: (p.unlink(), p.mkdir()), "a folder stands at its path"),
    "symlink-loop": (lambda p: (p.unlink(), p.symlink_to(p)), "Too many levels of symbolic"),
    # a link whose target moved was read as "no golden"
    "dangling-link": (
        lambda p: (p.unlink(), p.symlink_to("moved.json")),
        "is a symbolic link to moved.json, which does not exist",
    ),
    "pipe": (lambda p: (p.unlink(), os.mkfifo(p)), "it is not a regular file"),
    "link-chain": (
        lambda p: (p.unlink(), p.with_name("l2").symlink_to("gone.json"), p.symlink_to("l2")),
        "is a symbolic link to l2 (which leads to gone.json), which does not exist",
    ),
    "link-to-folder": (
        lambda p: (p.unlink(), p.with_name("shared").mkdir(), p.symlink_to("shared")),
        "it is a symbolic link to the folder shared). Remove the link (not the folder",
    ),
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_an_unreadable_golden_fails_its_test_only_and_is_left_untouched(pytester, case):
    """The test whose golden cannot be read fails with the corrupt-golden message, the others
    run, and session end (syrupy reads every golden of the folder) does not crash; ``show``
    names it too."""
    spoil, message = UNREADABLE[case]
    pytester.makepyfile(test_dense=TEST + OTHER)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    path = golden_of(pytester)
    spoil(path)
    before = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    result = run_inline(pytester)
    out = assert_clean_failure(result)
    result.assert_outcomes(passed=1, failed=1)
    assert message in out and "golden/test_dense/test_dense.json" in out
    assert f"{pytester.path}/golden" not in out  # shown from where pytest started, as elsewhere
    assert "INTERNALERROR" not in out
    assert (path.read_bytes() if path.is_file() and not path.is_symlink() else None) == before
    shown = run_module("show", "golden", cwd=pytester.path)
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert message in shown.stderr


@pytest.mark.parametrize("case", ["not-utf8", "deeply-nested", "dangling-link"])
def test_an_update_records_a_golden_it_cannot_read_again(pytester, case):
    spoil, _ = UNREADABLE[case]
    pytester.makepyfile(test_dense=TEST + OTHER)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    spoil(golden_of(pytester))
    result = run_inline(pytester, "--snapshot-update")
    result.assert_outcomes(passed=2)
    assert "Traceback" not in result.stdout.str()
    assert json.loads(golden_of(pytester).read_text())["checks"]["default"]
    assert not golden_of(pytester).is_symlink()  # a dangling link is replaced by the golden
    run_inline(pytester).assert_outcomes(passed=2)


def test_goldens_behind_symbolic_links(pytester, monkeypatch):
    """A link to a golden is written through (the link stays); a link to a folder is replaced
    by a file with a file's mode; a folder that is a link to nothing is named in plain, strict
    and update runs; an unused link to nothing is named, never deleted."""
    pytester.makepyfile(test_dense=TEST + OTHER)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    path, store = golden_of(pytester), pytester.mkdir("store")
    path.rename(store / "shared.json")
    path.symlink_to(os.path.relpath(store / "shared.json", path.parent))
    pytester.makepyfile(test_dense=(TEST + OTHER).replace("units=[10, 5]", "units=[10, 4]"))
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    assert path.is_symlink() and "units=4" in (store / "shared.json").read_text()
    run_inline(pytester).assert_outcomes(passed=2)

    path.unlink()
    path.with_name("a_folder").mkdir(mode=0o755)
    path.symlink_to("a_folder")
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    assert not path.is_symlink() and path.stat().st_mode & 0o111 == 0  # no folder's x bits

    folder = path.parent
    os.rename(folder, pytester.path / "moved_goldens")
    folder.symlink_to("gone")  # golden/test_dense -> golden/gone
    runs = ([], {}), (["--snapshot-update"], {"CI": "1"}), (["--weightshape-update-failing"], {})
    for args, env in runs:
        monkeypatch.delenv("CI", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        result = run_inline(pytester, *args)
        result.assert_outcomes(failed=2)
        out = assert_clean_failure(result)
        assert "is under test_dense/, a symbolic link to gone, which does not exist" in out
        assert "no golden" not in out
    monkeypatch.delenv("CI", raising=False)
    result = run_inline(pytester, "--snapshot-update")
    assert "not written" in result.stdout.str() and "a symbolic link to gone" in result.stdout.str()
    assert folder.is_symlink() and not folder.exists()

    folder.unlink()
    os.rename(pytester.path / "moved_goldens", folder)
    (folder / "test_removed.json").symlink_to("nowhere.json")  # of no test: unused
    result = run_inline(pytester)
    result.assert_outcomes(passed=2)
    assert result.ret == 1 and "1 snapshot unused" in result.stdout.str()
    out = run_inline(pytester, "--snapshot-update").stdout.str()
    assert "golden/test_dense/test_removed.json: not removed although unused" in out
    assert "a symbolic link to nowhere.json, which does not exist" in out
    assert (folder / "test_removed.json").is_symlink()  # named, never deleted


def test_a_golden_with_a_byte_order_mark_is_read(pytester):
    pytester.makepyfile(test_dense=TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    path = golden_of(pytester)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    run_inline(pytester).assert_outcomes(passed=1)


LEAKY = textwrap.dedent(
    """
    import pytest
    import torch

    class Leaky(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = torch.nn.Linear(8, width)

        def forward(self, x):
            torch.set_default_dtype(torch.float64)  # and never set back
            return self.linear(x)

    @pytest.mark.shape_variant(width=[4, 2])
    def test_a_leaky(shape_variant):
        shape_variant.check(Leaky, inputs=(3, 8))

    @pytest.mark.shape_variant(width=[4, 2])
    def test_b_after(shape_variant):
        shape_variant.check(lambda width: torch.nn.Linear(8, width), inputs=(3, 8))
        shape_variant.check(
            lambda width: torch.nn.Linear(8, width), inputs=lambda: torch.zeros(3, 8), name="t"
        )
    """
)


def test_a_model_that_changes_the_default_dtype_changes_no_other_check(pytester):
    """A forward that sets torch's default dtype and never sets it back: it is put back after
    each variant (so the next variant and later tests record float32 as before) and the
    warning names the check that changed it."""
    _needs("torch")
    pytester.makepyfile(test_leak=LEAKY)
    result = run(pytester, "--snapshot-update", "-W", "default")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "test_leak.py::test_a_leaky [default]: variant width=4 set the torch default " in out
    assert "torch.float32 -> torch.float64" in out
    checks = json.loads(golden_of(pytester, "test_leak", "test_b_after").read_text())["checks"]
    for check in checks.values():
        for variant in check["variants"].values():
            assert {p["dtype"] for p in variant["parameters"].values()} == {"float32"}
    leaky = json.loads(golden_of(pytester, "test_leak", "test_a_leaky").read_text())
    variants = leaky["checks"]["default"]["variants"]
    assert variants["width=2"]["parameters"]["linear.weight"]["dtype"] == "float32"
    run(pytester, "-W", "default").assert_outcomes(passed=2)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_a_golden_that_cannot_be_written_fails_the_run_and_the_others_are_written(
    pytester, workers
):
    """A file where the golden folder should be (as a read-only folder or a full disk would):
    every golden that can be written is, the run fails, each golden not written is named
    with its error, and its check says ``not written`` (under xdist too, where the workers
    write)."""
    pytester.makepyfile(test_a=TEST, test_b=TEST, test_c=TEST)
    (pytester.path / "golden").mkdir()
    (pytester.path / "golden" / "test_b").write_text("not a folder")
    result = run(pytester, "--snapshot-update", "--weightshape-report=r.json", *workers)
    out = result.stdout.str()
    assert result.ret == 1, out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert (pytester.path / "golden" / "test_a" / "test_dense.json").is_file()
    assert (pytester.path / "golden" / "test_c" / "test_dense.json").is_file()
    assert "1 golden not written (the run fails):" in out
    assert "  golden/test_b/test_dense.json: FileExistsError: File exists" in out
    assert "3 checks: 1 not written, 2 recorded" in out
    report = json.loads((pytester.path / "r.json").read_text())
    (failed,) = [c for c in report["checks"] if c["status"] == "not written"]
    assert failed["golden_path"] == "golden/test_b/test_dense.json"
    assert "FileExistsError" in failed["message"]


def test_without_syrupy_the_check_says_what_it_needs(pytester):
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")  # no syrupy options
    pytester.makepyfile(test_dense=TEST)
    result = run(pytester, "-p", "no:syrupy")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "pytest-weightshape keeps its goldens with syrupy" in out and "-p no:syrupy" in out
    assert "fixture 'snapshot' not found" not in out


COUNT_PARSES = textwrap.dedent(
    """
    import pytest
    from pytest_weightshape import golden

    PARSED = []
    original = golden.parse_file

    def counting(text, path):
        PARSED.append(path)
        return original(text, path)

    golden.parse_file = counting

    def pytest_unconfigure(config):
        print("PARSED", len(PARSED), len(set(PARSED)))
    """
)


def test_each_golden_is_parsed_once_per_session(pytester):
    """A check, syrupy's discovery and comparison, and session end all read the same golden:
    one parse each."""
    pytester.makepyfile(test_dense=TEST + OTHER)
    run(pytester, "--snapshot-update").assert_outcomes(passed=2)
    pytester.makeconftest(COUNT_PARSES)
    result = run(pytester, "-s")
    result.assert_outcomes(passed=2)
    assert "PARSED 2 2" in result.stdout.str()  # two goldens, each parsed once


def test_the_leak_warning_as_an_error_fails_the_test_with_it(pytester):
    """``-W error::...WeightShapeWarning``: the test fails with the warning, not with an
    "internal error", and the globals are put back all the same."""
    _needs("torch")
    pytester.makepyfile(test_leak=LEAKY)
    result = run(
        pytester, "--snapshot-update", "-W", "error::pytest_weightshape.plugin.WeightShapeWarning"
    )
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "WeightShapeWarning: test_leak.py::test_a_leaky [default]: variant width=4" in out
    assert "internal error" not in out and "INTERNALERROR" not in out


def test_an_unreadable_golden_of_a_removed_test_is_named_not_silently_kept(pytester):
    """syrupy would call it deleted, keep it (we never delete what we cannot read) and call it
    unused again on the next run, forever: the update names it instead."""
    pytester.makepyfile(test_dense=TEST + OTHER)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    gone = golden_of(pytester, test="test_other")
    gone.write_bytes(b"\xff not utf-8")
    pytester.makepyfile(test_dense=TEST)
    result = run_inline(pytester, "--snapshot-update")
    out = result.stdout.str()
    assert result.ret == 1 and "Traceback" not in out
    assert "golden/test_dense/test_other.json: not removed although unused" in out
    assert "not UTF-8 text" in out and gone.exists()


def test_diff_exit_code_counts_goldens_that_were_not_written(pytester):
    pytester.makeini("[pytest]\naddopts = --snapshot-no-colors\n")  # with the cache
    pytester.makepyfile(test_a=TEST, test_b=TEST)
    (pytester.path / "golden").mkdir()
    (pytester.path / "golden" / "test_b").write_text("not a folder")
    assert run_inline(pytester, "--snapshot-update").ret == 1
    diff = run_module("diff", "--exit-code", cwd=pytester.path)
    assert diff.returncode == 1, diff.stdout
    assert "not written, rerun pytest --snapshot-update" in diff.stdout


def test_a_folder_at_a_goldens_path_says_to_move_it_not_to_record_again(pytester):
    """``--snapshot-update`` cannot write over a folder: the plain run's message says to move
    or remove it, and the update's not-written line says so too (not "IsADirectoryError")."""
    pytester.makepyfile(test_dense=TEST + OTHER)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=2)
    path = golden_of(pytester)
    path.unlink()
    path.mkdir()
    out = assert_clean_failure(run_inline(pytester))
    assert "a folder stands at its path). Move or remove the folder, then record" in out
    update = run_inline(pytester, "--snapshot-update")
    assert update.ret != 0 and "IsADirectoryError" not in update.stdout.str()
    update.stdout.fnmatch_lines(
        [
            "1 golden not written (the run fails):",
            "  golden/test_dense/test_dense.json: a folder stands at its path: move or remove "
            "it, then run --snapshot-update again",
        ]
    )
    assert path.is_dir()
