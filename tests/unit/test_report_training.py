"""Training checks in every report (issue 17, part 6): the record's training part, the
terminal summary, JSON, Markdown, the HTML loss plot, and ``show``/``diff``, from training
check documents built here in the format the three engineers of issue 17 share."""

import copy
import json
import math
import re
from pathlib import Path

import pytest

from pytest_weightshape import golden
from pytest_weightshape.compare import Difference, Verdict
from pytest_weightshape.report import cli, formats, html, last_run, records, training
from pytest_weightshape.report.formats import summary_lines, to_json, to_markdown
from pytest_weightshape.report.html import loss_plot, to_html

from ..browser import chromium, near, screenshot

ENV = {"python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0", "device": "cpu", "threads": 2}
#: A forward check's divergence of a variant from its base (as ``check`` records it).
DIVERGENCE = {
    "parameters": {
        "changed_shapes": [],
        "added": [],
        "removed": [],
        "parameter_count_ratio": 0.5,
    },
    "outputs_added": [],
    "outputs_removed": [],
    "outputs": {"output": {"std_ratio": 1.0}},
}
STATS = {"count": 12, "mean": 0.1, "std": 1.0, "min": -2.0, "max": 2.0, "mean_abs": 0.8}


def _tensor(shape, mean=0.0):
    return {
        "shape": list(shape),
        "dtype": "float32",
        "fingerprint": {"digest": "crc32:00000000", "mean": mean, "std": 1.0},
    }


def _losses(steps, start, rate=0.9):
    return [start * rate**k for k in range(steps)]


def training_document(
    widths=(10, 5),
    *,
    axis="units",
    steps=3,
    loss="mse",
    optimizer="adam",
    lr=0.001,
    losses=None,
    parameters=2,
    no_gradient=(),
    gradients_missing=None,
    scale=1.0,
):
    """A ``check_training`` document: ``parameters`` parameters per variant (``p0`` ...), the
    last ``no_gradient`` of them frozen; ``losses`` maps a variant to its losses (default: a
    decay from 1.0, the base's and the variant's differing); ``scale`` multiplies every
    gradient and update norm (a changed training step)."""
    names = [f"{axis}={w}" for w in widths]
    base = names[0]
    variants = {}
    for i, (name, width) in enumerate(zip(names, widths, strict=True)):
        params = {f"p{k}": _tensor((width, 4), 0.01 * k) for k in range(parameters)}
        frozen = [p for p in params if p in no_gradient]
        gradients = {
            p: {
                "norm": scale * (1.0 + k / 10 + i / 100),
                "mean": 0.001 * k,
                "std": 0.1,
                "max_abs": 0.5,
                "zero_fraction": 0.0,
            }
            for k, p in enumerate(params)
            if p not in frozen
        }
        updates = {
            p: {"norm": 0.0, "relative": 0.0}
            if p in frozen
            else {"norm": scale * 0.01 * (1 + k / 10), "relative": 0.001}
            for k, p in enumerate(params)
        }
        mine = (losses or {}).get(name) or _losses(steps, 1.0 + i / 10)
        section = {
            "loss": loss,
            "optimizer": optimizer,
            "lr": lr,
            "steps": steps,
            "losses": mine,
            "forward": {"output": {"shape": [3, width], "dtype": "float32", "stats": STATS}},
            "gradients": {} if gradients_missing else gradients,
            "no_gradient": frozen,
            "updates": updates,
        }
        if gradients_missing:
            section["gradients_missing"] = gradients_missing
        variant = {
            "base": name == base,
            "kwargs": {axis: width},
            "framework": "torch",
            "model": "Sequential",
            "device": "cpu",
            "parameter_count": parameters * width * 4,
            "parameters": params,
            "buffers": {},
            "inputs": {"input": _tensor((3, 4))},
            "targets": {"target": _tensor((3, width))},
            "outputs": {"output": {"shape": [3, width], "dtype": "float32", "stats": STATS}},
            "training": section,
        }
        variants[name] = variant
    for name in names[1:]:
        mine, theirs = variants[name]["training"], variants[base]["training"]
        variants[name]["divergence"] = {
            **DIVERGENCE,
            "training": {
                "loss_ratio": [
                    a / b if isinstance(a, float) and isinstance(b, float) and b else None
                    for a, b in zip(mine["losses"], theirs["losses"], strict=False)
                ],
                "gradient_norm_ratio": {
                    p: mine["gradients"][p]["norm"] / theirs["gradients"][p]["norm"]
                    for p in mine["gradients"]
                    if p in theirs["gradients"]
                },
                "update_norm_ratio": {
                    p: mine["updates"][p]["norm"] / theirs["updates"][p]["norm"]
                    if theirs["updates"][p]["norm"]
                    else None
                    for p in mine["updates"]
                },
            },
        }
    return {
        "schema_version": 1,
        "kind": "training",
        "seed": 0,
        "weights": "framework",
        "environment": ENV,
        "variants": variants,
    }


def forward_document():
    """The same document without its training parts: a plain ``check`` document."""
    document = training_document()
    del document["kind"]
    for variant in document["variants"].values():
        del variant["training"], variant["targets"]
        variant.get("divergence", {}).pop("training", None)
    return document


def _verdict(moved=()):
    rows = [Difference("units=5", "output", "std", 1.0, 1.0 + 1e-7, 1e-5)]
    rows += [Difference("units=5", where, stat, 1.0, 2.0, 1e-5) for where, stat in moved]
    worst = max(r.excess for r in rows)
    return Verdict(
        compared=len(rows),
        differences=[r for r in rows if not r.ok],
        rows=rows,
        worst=worst,
        causes=["the training step changed while the forward pass at step 0 held"] if moved else [],
    )


def build(document, recorded=None, status="passed", verdict=None, check="training"):
    return records.build(
        nodeid="tests/test_train.py::test_units",
        test="test_units",
        check=check,
        golden_path="golden/tests/test_train/test_units.json",
        status=status,
        document=document,
        recorded=recorded,
        verdict=verdict if verdict is not None else _verdict(),
    )


# -- the record -----------------------------------------------------------------------------


def test_a_training_record_carries_each_variants_losses_settings_and_final_loss():
    document = training_document(steps=3, no_gradient=("p1",))
    record = build(document, recorded=copy.deepcopy(document))
    part = record["training"]
    assert part["base"] == "units=10"
    assert list(part["variants"]) == ["units=10", "units=5"]
    base, other = part["variants"]["units=10"], part["variants"]["units=5"]
    assert base["losses"] == pytest.approx([1.0, 0.9, 0.81])
    assert base["golden_losses"] == base["losses"] and base["step_index"] is None
    assert base["final_loss"] == pytest.approx(0.81)
    assert other["final_loss"] == pytest.approx(1.1 * 0.81)
    assert (base["loss"], base["optimizer"], base["lr"], base["steps"]) == ("mse", "adam", 0.001, 3)
    assert base["no_gradient"] == ["p1"] and base["no_gradient_count"] == 1
    assert base["gradient_count"] == 1 and base["gradients_missing"] is None
    assert other["loss_ratio"] == pytest.approx([1.1, 1.1, 1.1])
    assert set(other["gradient_norm_ratio"]) == {"p0"}
    assert "loss_ratio" not in base  # the base has no divergence from itself
    assert "moved" not in base  # a passing check lists no moved parameters
    # the per-parameter divergence is summarised in the training part, not copied
    assert record["divergence"]["units=5"] == DIVERGENCE
    json.dumps(record, allow_nan=False)  # plain JSON, as records travel


def test_a_forward_check_record_is_as_before_without_a_training_part():
    document = forward_document()
    record = build(document, recorded=copy.deepcopy(document), check="default")
    assert "training" not in record
    assert record["divergence"]["units=5"] == document["variants"]["units=5"]["divergence"]
    assert training.part(document, document) is None


def test_a_failing_training_record_names_what_moved_most_and_new_frozen_parameters():
    golden_doc = training_document(parameters=12)
    current = training_document(parameters=12, scale=1.0, no_gradient=("p3", "p4"))
    # p7's gradient moved most, p2's update next; the others held
    for variant in current["variants"].values():
        variant["training"]["gradients"]["p7"]["norm"] *= 3.0
        variant["training"]["updates"]["p2"]["norm"] *= 1.5
    record = build(current, golden_doc, "drifted", _verdict([("training/gradients/p7", "norm")]))
    entry = record["training"]["variants"]["units=5"]
    moved = entry["moved"]
    # largest relative change first; a vanished gradient is named once, by no_gradient_new
    assert [m["parameter"] for m in moved] == ["p7", "p3", "p4", "p2"]
    assert entry["moved_count"] == 4
    assert moved[0]["gradient_norm"][1] == pytest.approx(3 * moved[0]["gradient_norm"][0])
    assert "gradient_norm" not in moved[1]
    assert entry["no_gradient_new"] == ["p3", "p4"] and entry["gradient_back"] == []
    lines = training.moved_lines(record["training"])
    assert lines[lines.index("units=5:") + 1 :] == [
        "  no gradient now: p3, p4 (frozen, or off the loss's path)",
        "  moved p7: gradient norm 1.71 -> 5.13 (+200%)",
        "  moved p3: update norm 0.013 -> 0 (-100%)",
        "  moved p4: update norm 0.014 -> 0 (-100%)",
        "  moved p2: update norm 0.012 -> 0.018 (+50%)",
    ]


def test_missing_gradients_on_one_side_are_not_reported_as_moved():
    """A golden recorded where gradients were available, rerun on a backend without them:
    what moved is the updates, not every gradient "gone"."""
    recorded = training_document(parameters=3)
    current = training_document(parameters=3, gradients_missing="the backend gives none")
    current["variants"]["units=5"]["training"]["updates"]["p2"]["norm"] *= 2
    record = build(current, recorded, "drifted", _verdict([("training/updates/p2", "norm")]))
    entry = record["training"]["variants"]["units=5"]
    assert [m["parameter"] for m in entry["moved"]] == ["p2"]
    assert "gradient_norm" not in entry["moved"][0]
    assert entry["gradients_missing"] == "the backend gives none"
    text = "\n".join(summary_lines([record]))
    assert "    no gradient statistics (units=10, units=5): the backend gives none" in text
    assert "      moved p2: update norm 0.012 -> 0.024 (+100%)" in text


def test_a_changed_number_of_steps_plots_both_runs():
    recorded = training_document(steps=3)
    current = training_document(steps=5)
    record = build(current, recorded, "drifted", _verdict([("training", "steps")]))
    entry = record["training"]["variants"]["units=10"]
    assert len(entry["losses"]) == 5 and len(entry["golden_losses"]) == 3
    assert entry["final_loss"] == pytest.approx(0.9**4)
    assert entry["golden_final_loss"] == pytest.approx(0.9**2)
    lines = _polylines(loss_plot(record["training"]))
    assert sorted(len(points.split()) for points, _ in lines) == [3, 3, 5, 5]
    assert "final loss units=10 0.6561 (golden 0.81)" in "\n".join(summary_lines([record]))


def test_a_training_record_stays_small_with_many_parameters_and_steps():
    """A passing training check on a model with 3000 parameters and 1000 steps stays under
    ~20 KB in the JSON report; a failing one keeps every compared value (as any check) but its
    training part stays bounded."""
    steps = 1000
    frozen = tuple(f"p{k}" for k in range(100, 400))
    document = training_document(steps=steps, parameters=3000, no_gradient=frozen)
    record = build(document, recorded=copy.deepcopy(document))
    entry = record["training"]["variants"]["units=10"]
    assert len(entry["losses"]) == training.KEPT_STEPS == len(entry["step_index"])
    assert entry["step_index"][0] == 0 and entry["step_index"][-1] == steps - 1
    assert entry["losses"][-1] == pytest.approx(0.9 ** (steps - 1))  # the final loss is kept
    assert len(entry["no_gradient"]) == training.KEPT_NAMES and entry["no_gradient_count"] == 300
    other = record["training"]["variants"]["units=5"]
    assert len(other["gradient_norm_ratio"]) == training.KEPT_PARAMETERS
    assert other["gradient_norm_ratio_count"] == 2700
    report = json.loads(to_json([record]))
    assert len(json.dumps(report["checks"][0], indent=1)) < 20_000

    changed = training_document(steps=steps, parameters=3000, no_gradient=frozen, scale=2.0)
    failing = build(changed, document, "drifted", _verdict([("training", "loss")]))
    assert len(json.dumps(failing["training"], indent=1)) < 20_000
    assert failing["training"]["variants"]["units=5"]["moved_count"] == 2700  # not the frozen
    assert len(failing["training"]["variants"]["units=5"]["moved"]) == training.KEPT_PARAMETERS


def test_a_document_missing_training_fields_is_reported_without_a_traceback():
    document = training_document()
    section = document["variants"]["units=5"]["training"]
    for key in ("losses", "gradients", "updates", "no_gradient", "lr", "steps"):
        section.pop(key)
    document["variants"]["units=10"]["training"]["losses"] = ["nan", "bad", 0.5]
    document["variants"]["units=5"]["divergence"]["training"] = {"loss_ratio": "bad"}
    record = build(document, recorded=None, status="recorded")
    entry = record["training"]["variants"]["units=5"]
    assert entry["losses"] is None and entry["final_loss"] is None and entry["lr"] is None
    assert record["training"]["variants"]["units=10"]["final_loss"] == 0.5
    assert "units=5 (not run" not in training.final_losses(record["training"])
    summary_lines([record])
    to_markdown([record])
    assert "<svg" in to_html([record])


# -- terminal summary and Markdown -----------------------------------------------------------


def test_the_terminal_summary_says_a_check_trained_and_its_final_loss_per_variant():
    document = training_document(steps=3)
    passing = build(document, recorded=copy.deepcopy(document))
    forward = build(forward_document(), check="default")
    lines = summary_lines([forward, passing])
    text = "\n".join(lines)
    assert "1 training check (final loss per variant):" in text
    assert (
        "  tests/test_train.py::test_units [training] (passed): training, 3 steps, adam "
        "lr=0.001, mse loss; final loss units=10 0.81, units=5 0.891" in lines
    )
    assert not any("training" in line for line in summary_lines([forward]))

    changed = training_document(steps=3, losses={"units=5": [1.1, 0.95, 0.9]}, no_gradient=("p1",))
    failing = build(changed, document, "drifted", _verdict([("training", "loss")]))
    text = "\n".join(summary_lines([failing]))
    assert "final loss units=10 0.81, units=5 0.9 (golden 0.891)" in text
    assert "    units=5:\n      no gradient now: p1 (frozen, or off the loss's path)" in text


def test_the_summary_does_not_say_every_value_held_when_a_loss_went_nan():
    """A loss that became NaN (golden 5, now null) moved only in a value compared exactly: the
    record's worst excess is 0, and the summary must not claim every value equals its golden."""
    document = training_document(steps=3)
    failing = build(document, copy.deepcopy(document), "drifted", _verdict())
    failing["worst"] = 0.0
    lines = summary_lines([failing])
    assert "largest drift: none (every value equals its golden's)" not in lines
    assert (
        "largest drift: none within a tolerance; values that compare exactly moved "
        "(tests/test_train.py::test_units [training])" in lines
    )
    passing = build(document, copy.deepcopy(document))
    passing["worst"] = 0.0
    assert "largest drift: none (every value equals its golden's)" in summary_lines([passing])


def test_the_summary_lists_ten_training_checks_failing_first_and_counts_the_rest():
    document = training_document(steps=1, optimizer="sgd", lr=0.01, loss="cross_entropy")
    many = []
    for i in range(12):
        record = build(document, recorded=copy.deepcopy(document))
        record["nodeid"] = f"tests/test_train.py::test_{i:02d}"
        many.append(record)
    many[7]["status"] = "drifted"
    many[7]["worst"] = 3.0
    lines = summary_lines(many)
    listed = [ln for ln in lines if ln.startswith("  tests/")]
    assert len(listed) == training.SUMMARY_CHECKS
    assert listed[0].startswith("  tests/test_train.py::test_07 [training] (drifted): ")
    assert "training, 1 step, sgd lr=0.01, cross_entropy loss" in listed[0]
    assert "  ... and 2 more (the report lists them)" in lines


def test_markdown_says_a_check_trained_and_lists_final_losses_and_what_moved():
    document = training_document(steps=3, optimizer="custom:make_opt", lr=None)
    changed = training_document(steps=3, optimizer="custom:make_opt", lr=None, scale=2.0)
    failing = build(changed, document, "drifted", _verdict([("training/updates/p0", "norm")]))
    forward = build(forward_document(), check="default")
    markdown = to_markdown([failing, forward])
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert rows[1].startswith(
        "| ❌ | `tests/test_train.py::test_units [training]` — training, 3 steps, "
        "custom:make_opt, mse loss | drifted |"
    )
    assert "| ✅ | `tests/test_train.py::test_units` | passed | 0.01 |  |" in markdown  # as before
    assert "**Training checks**: final loss per variant" in markdown
    assert (
        "| `tests/test_train.py::test_units [training]` | units=10 (base) | 0.81 | 0.81 "
        "|  |  |" in markdown
    )
    assert (
        "| `tests/test_train.py::test_units [training]` | units=5 | 0.891 | 0.891 | 1.1 |  |"
        in (markdown)
    )
    moved = markdown[markdown.index("What moved in training:") :].splitlines()
    assert moved[2:5] == [
        "- units=10:",
        "  - moved p0: gradient norm 1 -> 2 (+100%), update norm 0.01 -> 0.02 (+100%)",
        "  - moved p1: gradient norm 1.1 -> 2.2 (+100%), update norm 0.011 -> 0.022 (+100%)",
    ]
    plain = to_markdown([forward])
    assert "Training" not in plain and "training" not in plain


# -- HTML -----------------------------------------------------------------------------------


def _polylines(svg):
    """(points, dashed) of each polyline."""
    tags = re.findall(r"<polyline [^>]*>", svg)
    return [(re.search(r'points="([^"]*)"', t).group(1), "stroke-dasharray" in t) for t in tags]


def test_the_loss_plot_draws_each_variant_and_the_golden_dashed():
    document = training_document(steps=5, widths=(10, 5, 20))
    recorded = training_document(steps=5, widths=(10, 5, 20), scale=1.0)
    record = build(document, recorded)
    svg = loss_plot(record["training"])
    lines = _polylines(svg)
    assert len(lines) == 6  # three variants, each current and golden
    assert sum(1 for _, dashed in lines if dashed) == 3
    assert all(len(points.split()) == 5 for points, _ in lines)
    colors = re.findall(r'<polyline[^>]*stroke="(#[0-9a-f]{6})"', svg)
    assert len(set(colors)) == 3  # one colour per variant, golden and current alike
    assert "units=10 (base)" in svg  # the legend marks the base
    base_width = re.search(r'stroke-width="([\d.]+)"><title>units=10 \(base\)</title>', svg)
    other_width = re.search(r'stroke-width="([\d.]+)"><title>units=5</title>', svg)
    assert float(base_width.group(1)) > float(other_width.group(1))  # the base stands out
    assert "linear scale" in svg and svg.count("<circle") == 15  # a marker per step


def test_one_step_draws_markers_and_a_hundred_steps_draw_lines():
    one = build(training_document(steps=1), training_document(steps=1))
    svg = loss_plot(one["training"])
    assert "<polyline" not in svg  # nothing to join: markers, the golden's as rings
    assert svg.count("<circle") == 4
    assert re.search(
        r'<text x="[\d.]+" y="[\d.]+" font-size="10" text-anchor="middle">0</text>', svg
    )
    hundred = build(training_document(steps=100), training_document(steps=100))
    svg = loss_plot(hundred["training"])
    assert len(_polylines(svg)) == 4 and "<circle" not in svg
    ticks = re.findall(r'text-anchor="middle">(\d+)</text>', svg)
    assert ticks == ["0", "20", "40", "60", "80"]  # a readable axis, not 100 labels


def test_the_loss_plot_is_logarithmic_when_losses_span_decades():
    decaying = {"units=10": _losses(50, 10.0, 0.8), "units=5": _losses(50, 12.0, 0.8)}
    record = build(training_document(steps=50, losses=decaying))
    svg = loss_plot(record["training"])
    assert "log scale" in svg
    labels = re.findall(r'text-anchor="end">([^<]*)</text>', svg)
    assert {"0.001", "0.01", "0.1", "1", "10"} <= set(labels)  # one per decade
    slow = {"units=10": _losses(50, 1.0, 0.99), "units=5": _losses(50, 1.2, 0.98)}
    flat = build(training_document(steps=50, losses=slow))
    assert "linear scale" in loss_plot(flat["training"])
    negative = {"units=10": [-100.0, -1.0, -0.01], "units=5": [-50.0, -2.0, -0.5]}
    assert "linear scale" in loss_plot(build(training_document(losses=negative))["training"])


def test_the_loss_plot_says_which_losses_are_not_finite():
    """A document writes a NaN or infinite loss as null; the plot leaves it out and says so,
    and the summary's final loss reads nan."""
    record = build(training_document(losses={"units=5": [1.0, None, None]}))
    svg = loss_plot(record["training"])
    assert "not drawn (not a finite number): units=5 step 1, units=5 step 2" in svg
    assert "units=5 nan" in "\n".join(summary_lines([record]))
    json.dumps(record, allow_nan=False)


def test_the_html_page_shows_a_training_check_with_its_plot_and_tables_self_contained():
    document = training_document(steps=4, no_gradient=("p1",))
    changed = training_document(steps=4, scale=2.0)
    failing = build(changed, document, "drifted", _verdict([("training/gradients/p0", "norm")]))
    forward = build(forward_document(), check="default")
    page = to_html([failing, forward])
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"\b(src|href)=\"(?!#)", page)
    trained, plain = page.split('<section class="check"')[1:]
    assert "training, 4 steps, adam lr=0.001, mse loss" in trained
    assert 'aria-label="loss per step of each variant' in trained
    assert "loss per step per variant (dashed: golden)" in trained
    assert "training per variant" in trained and "units=10 (base)" in trained
    assert "what moved in training:<ul><li>units=10:<ul><li>gradient again: p1</li>" in trained
    assert "gradient and update norms over the base" in trained
    assert "loss per step" not in plain and "training" not in plain.replace("[training]", "")


def test_a_page_of_a_forward_check_is_as_before():
    forward = build(forward_document(), check="default")
    page = to_html([forward])
    assert "loss per step" not in page and "training per variant" not in page
    assert page == html.to_html([records.build(**_kwargs(forward_document()))])


def _kwargs(document):
    return {
        "nodeid": "tests/test_train.py::test_units",
        "test": "test_units",
        "check": "default",
        "golden_path": "golden/tests/test_train/test_units.json",
        "status": "passed",
        "document": document,
        "recorded": None,
        "verdict": _verdict(),
    }


def test_the_loss_plot_shows_in_a_real_browser(tmp_path):
    """Render a training check's page headless in Chromium: the base's loss line (blue) and
    the variant's (orange) are real areas of pixels."""
    browser = chromium()
    document = training_document(steps=30)
    page = tmp_path / "report.html"
    record = build(document, copy.deepcopy(document))
    record["distributions"] = {"current": {}, "golden": {}}  # the loss plot alone
    record["statistics"] = []
    page.write_text(
        to_html([record]).replace("<details><summary>pictures", "<details open><summary>pictures")
    )
    counts = screenshot(browser, page.as_uri(), tmp_path / "shot.png", "1000,900")
    assert near(counts, (0x1F, 0x77, 0xB4)) > 300  # the base's line and markers
    assert near(counts, (0xFF, 0x7F, 0x0E)) > 200  # the variant's
    assert len(counts) > 50


# -- show and diff --------------------------------------------------------------------------


def test_show_lists_a_training_goldens_losses_gradients_updates_and_frozen_parameters(tmp_path):
    document = training_document(steps=3, no_gradient=("p1",))
    path = tmp_path / "test_units.json"
    golden.write_atomic(path, golden.render_file("test_units", {"training": document}))
    lines = cli.show_check("training", golden.read_checks(path)[1]["training"])
    text = "\n".join(lines)
    assert "parameters (initial weights)" in lines
    assert any(line.startswith("output output after training (") for line in lines)
    assert "training, 3 steps, adam lr=0.001, mse loss (every variant from the same seed" in text
    table = lines[lines.index("losses per step (each before that step's update)") + 1 :][:4]
    assert table[0].split() == ["step", "units=10", "(base)", "units=5", "units=5", "/", "base"]
    assert table[3].split() == ["2", "0.81", "0.891", "1.1"]
    assert "forward at step 0 (training mode, before any update)" in lines
    grads = lines[lines.index("gradients at step 0, updates after the last step") + 1 :]
    assert grads[0].split()[:4] == ["variant", "parameter", "grad", "norm"]
    assert grads[1].split()[:3] == ["units=10", "p0", "1"]
    assert grads[2].split()[:4] == ["units=10", "p1", "no", "gradient"]
    assert "no gradient (frozen, or off the loss's path)" in lines
    assert "  units=10: p1" in lines
    assert "training divergence from the base (units=10)" in lines
    ratios = lines[lines.index("training divergence from the base (units=10)") + 1 :]
    assert ratios[0].split() == [
        "parameter", "units=5", "grad", "norm", "ratio", "units=5", "update", "norm", "ratio"
    ]  # fmt: skip
    assert not any("layers" in line for line in lines)  # none recorded for training checks

    missing = training_document(gradients_missing="the jax backend gives no gradients here")
    text = "\n".join(cli.show_check("training", missing))
    assert "gradients missing (units=5): the jax backend gives no gradients here" in text
    assert "no gradient: none (every parameter took a gradient)" in text


def test_show_marks_a_diverged_loss():
    """A golden whose loss went NaN (recorded as null) says so under its training tables."""
    document = training_document(steps=3)
    document["variants"]["units=5"]["training"]["losses"][2] = None
    lines = cli.show_check("training", document)
    (mark,) = [line for line in lines if line.startswith("  ! loss:")]
    assert "degenerate (units=5): diverged: the loss is NaN or Inf at step 2 of 3" in mark
    assert lines.index(mark) > lines.index("training divergence from the base (units=10)")


def test_show_of_a_forward_check_is_unchanged():
    lines = cli.show_check("default", forward_document())
    assert "parameters" in lines and "parameters (initial weights)" not in lines
    assert not any("training" in line or "after training" in line for line in lines)


def test_show_of_many_steps_lists_the_first_and_last(tmp_path):
    document = training_document(steps=500)
    lines = cli.show_check("training", document)
    start = lines.index("losses per step (each before that step's update)") + 2
    steps = [line.split()[0] for line in lines[start : start + training.SHOW_STEPS + 1]]
    assert steps[: training.SHOW_STEPS // 2] == [str(k) for k in range(training.SHOW_STEPS // 2)]
    assert f"... {500 - training.SHOW_STEPS} steps" in lines[start + training.SHOW_STEPS // 2]
    assert steps[-1] == "499"


def test_diff_names_a_new_training_checks_final_losses_and_lists_its_moved_values(tmp_path, capsys):
    document = training_document(steps=2)
    new = build(document, status="missing")
    new["nodeid"] = "tests/test_train.py::test_new"
    new["golden_path"] = "golden/tests/test_train/test_new.json"
    moved = _verdict([("training/gradients/p0", "norm")])
    drifted = build(training_document(steps=2, scale=2.0), document, "drifted", moved)
    on_disk = tmp_path / drifted["golden_path"]
    on_disk.parent.mkdir(parents=True)
    golden.write_atomic(on_disk, golden.render_file("test_units", {"training": document}))
    source = tmp_path / ".pytest_cache" / "v" / Path(last_run.CACHE_KEY)
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps(last_run.last_run(None, [new, drifted], str(tmp_path))))
    assert cli.main(["diff", "--cache-dir", str(tmp_path / ".pytest_cache")]) == 0
    out = capsys.readouterr().out
    assert "+ tests/test_train.py::test_new [training]: would record" in out
    assert (
        "    training, 2 steps, adam lr=0.001, mse loss; final loss units=10 0.9, units=5 0.99"
        in out
    )
    assert "~ tests/test_train.py::test_units [training]: would rewrite" in out
    assert "training/gradients/p0" in out
    assert (
        "  training, 2 steps, adam lr=0.001, mse loss; final loss units=10 0.9, units=5 0.99" in out
    )
    assert "      moved p0: gradient norm 1.01 -> 2.02 (+100%)" in out


def test_the_json_report_carries_the_training_part():
    document = training_document(steps=2)
    record = build(document, copy.deepcopy(document))
    report = json.loads(to_json([record]))
    assert report["checks"][0]["training"]["variants"]["units=5"]["final_loss"] == pytest.approx(
        0.99
    )
    assert formats.render is not None and math.isfinite(report["checks"][0]["worst"])
