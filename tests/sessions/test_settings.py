"""What a test sets up and how a wrong setup is told: marker, fixture and builder errors,
tolerance settings from ini, command line, marker and check, the golden folder option, and
warnings for setups that check nothing."""

import textwrap

import pytest

from .helpers import DENSE, TEST, assert_clean_failure, load_for_inline, run, run_inline

load_for_inline()  # the NumPy sessions here run in this process


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "units=[10, 5], padding=[1]",
            "axes are zipped and must have equal length (units: 2, padding: 1)",
        ),
        ("units=10", "axis 'units' must be a list of values"),
        ("units=[]", "axis 'units' is empty"),
        ("units=[10, 10]", "same name 'units=10'"),
        ("", "needs at least one axis"),
        ("units=[10, 5], tolerance={'sdt': 1}", "unknown statistic 'sdt'"),
    ],
)
def test_marker_errors_are_clear(pytester, marker, message):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            f"""
            @pytest.mark.shape_variant({marker})
            def test_dense(shape_variant):
                shape_variant.check(Dense, inputs=(8, 16))
            """
        )
    )
    result = run_inline(pytester)
    result.assert_outcomes(errors=1)
    out = assert_clean_failure(result)
    assert "test_dense.py::test_dense: invalid shape_variant marker" in out
    assert message in out


def test_fixture_without_marker_and_builder_errors(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            def test_no_marker(shape_variant):
                pass

            def broken(units):
                if units == 5:
                    raise RuntimeError("cannot build five")
                return Dense(units)

            @pytest.mark.shape_variant(units=[10, 5])
            def test_builder_raises(shape_variant):
                shape_variant.check(broken, inputs=(8, 16))

            @pytest.mark.shape_variant(units=[10, 5])
            def test_wrong_inputs(shape_variant):
                shape_variant.check(Dense, inputs=(8, 3))
            """
        )
    )
    result = run_inline(pytester)
    result.assert_outcomes(errors=1, failed=2)
    out = assert_clean_failure(result)
    assert "the shape_variant fixture needs a marker" in out
    assert "variant units=5: the builder raised" in out and "RuntimeError: cannot build five" in out
    assert "variant units=10: the model rejected the inputs (input [8, 3] float32)" in out


def test_tolerance_settings_from_ini_command_line_marker_and_check(pytester):
    pytester.makepyfile(test_dense=TEST)
    run_inline(pytester, "--snapshot-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_dense=TEST.replace("SCALE = 1.0", "SCALE = 1.001"))
    run_inline(pytester).assert_outcomes(failed=1)
    run_inline(pytester, "--weightshape-rtol=0.01").assert_outcomes(passed=1)
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider --snapshot-no-colors\nweightshape_rtol = 0.01\n"
    )
    result = run_inline(pytester)
    result.assert_outcomes(passed=1)
    assert (
        "weightshape: goldens in golden/ (default); tolerance rtol=0.01 (ini)"
        in result.stdout.str()
    )
    # command line beats ini, marker beats command line, check beats marker
    run_inline(pytester, "--weightshape-rtol=1e-6").assert_outcomes(failed=1)
    strict_marker = TEST.replace("SCALE = 1.0", "SCALE = 1.001").replace(
        "units=[10, 5])", "units=[10, 5], rtol=1e-6)"
    )
    pytester.makepyfile(test_dense=strict_marker)
    run_inline(pytester, "--weightshape-rtol=0.01").assert_outcomes(failed=1)
    pytester.makepyfile(
        test_dense=strict_marker.replace("inputs=(8, 16))", "inputs=(8, 16), rtol=0.01)")
    )
    run_inline(pytester).assert_outcomes(passed=1)


def test_golden_dir_option(pytester):
    pytester.makepyfile(test_dense=TEST)
    run_inline(
        pytester, "--snapshot-update", "--weightshape-golden-dir=expectations"
    ).assert_outcomes(passed=1)
    assert (pytester.path / "expectations" / "test_dense" / "test_dense.json").exists()
    assert not (pytester.path / "golden").exists()


def test_setups_that_check_nothing_warn(pytester):
    pytester.makepyfile(
        test_dense=DENSE
        + textwrap.dedent(
            """
            @pytest.mark.shape_variant(units=[10, 5])
            def test_marker_only():
                pass

            @pytest.mark.shape_variant(units=[10, 5])
            def test_no_check(shape_variant):
                pass
            """
        )
    )
    result = run(pytester)  # warnings are counted as a fresh process counts them
    result.assert_outcomes(passed=2, warnings=2)
    out = result.stdout.str()
    assert "marked shape_variant but does not use the shape_variant fixture" in out
    assert "test_no_check uses the shape_variant fixture but ran no check" in out
