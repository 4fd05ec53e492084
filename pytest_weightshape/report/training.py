"""Training checks (``shape_variant.check_training``) in the reports: a record's compact
``training`` part, built from the check documents, and the words every rendering uses for it.

A training check's document is a ``check`` document with ``"kind": "training"``, a
``training`` section per variant (losses per step, step 0's gradient statistics, the update
of each parameter, the parameters that took no gradient) and ``divergence["training"]`` per
non-base variant (loss ratios per step, gradient and update norm ratios per parameter). The
record keeps what a report shows of it, in bounded size whatever the model's parameter count
or the number of steps: losses of at most :data:`KEPT_STEPS` steps (to
:data:`PLOT_DIGITS` digits, for the pictures), the
:data:`KEPT_PARAMETERS` parameters whose gradient or update moved most, at most
:data:`KEPT_NAMES` names of parameters without a gradient (with their count).

Documents are read defensively: a field that is missing or of an unexpected type is left out
of the record, never a traceback in a report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .text import text_table, value_text

#: A training check's document says so at its top level (a ``check`` document has no kind).
TRAINING_KIND = "training"
#: Losses kept per variant in a record (more steps: evenly spaced ones, first and last kept).
KEPT_STEPS = 100
#: Significant digits of the losses a record keeps for plotting (its final losses, and the
#: compared values, keep every digit).
PLOT_DIGITS = 6
#: Parameters listed per variant as moved most, and as the largest norm ratios to the base.
KEPT_PARAMETERS = 5
#: The relative change of a gradient or update norm below which a parameter is not listed
#: as moved (float rounding moves every norm a little; a real change moves some by far more).
MOVED_FLOOR = 1e-4
#: Names of parameters without a gradient kept per variant (their count is kept too).
KEPT_NAMES = 20
#: Training checks listed one by one in the terminal summary.
SUMMARY_CHECKS = 10


def is_training(document: Mapping[str, Any] | None) -> bool:
    """Whether ``document`` is a training check's (``"kind": "training"``)."""
    return isinstance(document, Mapping) and document.get("kind") == TRAINING_KIND


def _float(value: Any) -> float | None:
    """A float from a document's or record's number (also 'nan'/'inf' strings), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def _variants(document: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _mapping(_mapping(document).get("variants"))


def _section(document: Mapping[str, Any] | None, variant: str) -> Mapping[str, Any] | None:
    found = _mapping(_variants(document).get(variant)).get("training")
    return found if isinstance(found, Mapping) else None


def _losses(section: Mapping[str, Any] | None) -> list[float | None] | None:
    """A section's losses; a ``null`` loss is one that was not a finite number (documents
    write NaN and Inf as ``null``), kept as NaN so that reports say so."""
    if section is None or not isinstance(section.get("losses"), (list, tuple)):
        return None
    return [math.nan if v is None else _float(v) for v in section["losses"]]


def kept_steps(count: int, limit: int = KEPT_STEPS) -> list[int] | None:
    """The steps a record keeps of ``count``: None for all of them, else ``limit`` evenly
    spaced ones, the first and the last included."""
    if count <= limit:
        return None
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def _rounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return value
    return float(f"{value:.{PLOT_DIGITS}g}")


def _pick(values: Sequence[float | None] | None, steps: list[int] | None) -> list[Any] | None:
    """The values at the kept ``steps`` (all: None), rounded for plotting."""
    if values is None:
        return None
    if steps is None:
        return [_rounded(v) for v in values]
    return [_rounded(values[i]) if i < len(values) else None for i in steps]


def _last(values: Sequence[float | None] | None) -> float | None:
    return values[-1] if values else None


def _change(golden: float | None, current: float | None) -> float | None:
    """|current - golden| / |golden| (inf when a zero became nonzero, or a value became
    NaN/Inf); None when either side has none."""
    if golden is None or current is None:
        return None
    if math.isnan(golden) or math.isnan(current):
        return 0.0 if math.isnan(golden) and math.isnan(current) else math.inf
    if golden == current:
        return 0.0
    if not (math.isfinite(golden) and math.isfinite(current)) or not golden:
        return math.inf
    return abs(current - golden) / abs(golden)


def moved_parameters(
    golden: Mapping[str, Any] | None, current: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], int]:
    """The parameters of one variant whose step-0 gradient norm or update norm moved most
    between a golden's training section and the current one (relative change, largest first,
    at most :data:`KEPT_PARAMETERS`), and how many moved by :data:`MOVED_FLOOR` or more.
    Gradients are left out when either side says they are missing (a backend without them)."""
    if golden is None or current is None:
        return [], 0
    gradients = (_mapping(golden.get("gradients")), _mapping(current.get("gradients")))
    if golden.get("gradients_missing") or current.get("gradients_missing"):
        gradients = ({}, {})  # a backend without gradients on one side: compare updates only
    updates = (_mapping(golden.get("updates")), _mapping(current.get("updates")))
    names = list(dict.fromkeys([*gradients[1], *updates[1], *gradients[0], *updates[0]]))
    found = []
    for name in names:
        entry: dict[str, Any] = {"parameter": name}
        changes = []
        for key, (g, c) in (("gradient_norm", gradients), ("update_norm", updates)):
            g_norm = _float(_mapping(g.get(name)).get("norm"))
            c_norm = _float(_mapping(c.get(name)).get("norm"))
            change = _change(g_norm, c_norm)
            if change is None:  # on one side only: a gradient that vanished or came back is
                continue  # listed by name (no_gradient_new, gradient_back), a new parameter
                # by the comparison's rows
            entry[key] = [g_norm, c_norm]
            entry[f"{key}_change"] = change
            changes.append(change)
        if changes and max(changes) >= MOVED_FLOOR:
            entry["change"] = max(changes)
            found.append(entry)
    found.sort(key=lambda e: -e["change"])
    return found[:KEPT_PARAMETERS], len(found)


def _extreme_ratios(ratios: Any) -> tuple[dict[str, Any], int]:
    """The :data:`KEPT_PARAMETERS` ratios farthest from 1 (in either direction), in their
    order, and how many there were; None (a base norm of 0) counts as farthest."""
    found = {str(k): _float(v) for k, v in _mapping(ratios).items()}

    def distance(value: float | None) -> float:
        if value is None or not math.isfinite(value) or value <= 0:
            return math.inf
        return abs(math.log(value))

    top = sorted(found, key=lambda k: -distance(found[k]))[:KEPT_PARAMETERS]
    return {k: found[k] for k in found if k in top}, len(found)


def part(
    document: Mapping[str, Any] | None,
    recorded: Mapping[str, Any] | None,
    *,
    failed: bool = False,
) -> dict[str, Any] | None:
    """A record's ``training`` part: per variant its settings (loss, optimizer, lr, steps),
    the losses per step (this run's and the golden's), the final loss, the parameters
    without a gradient, why gradients are missing, and for a non-base variant its loss ratio
    to the base per step and its most extreme gradient/update norm ratios; for a ``failed``
    check, the parameters whose gradient or update moved most against the golden, and the
    parameters whose gradient appeared or vanished. None when neither document is a training
    check's."""
    current = document if is_training(document) else None
    golden = recorded if is_training(recorded) else None
    if current is None and golden is None:
        return None
    names = list(dict.fromkeys([*_variants(current), *_variants(golden)]))
    base = next(
        (n for n in names if _mapping(_variants(current or golden).get(n)).get("base")), None
    )
    variants: dict[str, Any] = {}
    for name in names:
        now, then = _section(current, name), _section(golden, name)
        info = now or then
        if info is None:
            continue
        losses, golden_losses = _losses(now), _losses(then)
        count = max(len(losses or []), len(golden_losses or []))
        steps = kept_steps(count)
        no_gradient = _names(info.get("no_gradient"))
        entry: dict[str, Any] = {
            "loss": info.get("loss"),
            "optimizer": info.get("optimizer"),
            "lr": _float(info.get("lr")),
            "steps": info.get("steps") if isinstance(info.get("steps"), int) else count,
            "step_index": steps,
            "losses": _pick(losses, steps),
            "golden_losses": _pick(golden_losses, steps),
            "final_loss": _last(losses),
            "golden_final_loss": _last(golden_losses),
            "gradient_count": len(_mapping(info.get("gradients"))),
            "no_gradient": no_gradient[:KEPT_NAMES],
            "no_gradient_count": len(no_gradient),
            "gradients_missing": info.get("gradients_missing"),
        }
        divergence = _mapping(
            _mapping(_mapping(_variants(current or golden).get(name)).get("divergence")).get(
                "training"
            )
        )
        if divergence:
            ratio = divergence.get("loss_ratio")
            if isinstance(ratio, (list, tuple)):
                entry["loss_ratio"] = _pick([_float(v) for v in ratio], kept_steps(len(ratio)))
            for key in ("gradient_norm_ratio", "update_norm_ratio"):
                if key in divergence:
                    kept, total = _extreme_ratios(divergence[key])
                    entry[key] = kept
                    entry[f"{key}_count"] = total
        if failed and now is not None and then is not None:
            moved, total = moved_parameters(then, now)
            entry["moved"] = moved
            entry["moved_count"] = total
            before, after = set(_names(then.get("no_gradient"))), _names(now.get("no_gradient"))
            lost = [p for p in after if p not in before]
            gained = [p for p in _names(then.get("no_gradient")) if p not in set(after)]
            entry["no_gradient_new"] = lost[:KEPT_NAMES]
            entry["no_gradient_new_count"] = len(lost)
            entry["gradient_back"] = gained[:KEPT_NAMES]
            entry["gradient_back_count"] = len(gained)
        variants[name] = entry
    return {"base": base, "variants": variants}


def without_training(divergence: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's divergence without its ``training`` part (the record's ``training`` part
    keeps a bounded summary of it)."""
    return {k: v for k, v in divergence.items() if k != "training"}


# -- words ----------------------------------------------------------------------------------


def number_text(value: Any, digits: int = 6) -> str:
    """A loss or ratio as reports write it in prose: ``digits`` significant digits."""
    found = _float(value)
    if found is None:
        return "none"
    return f"{found:.{digits}g}"


def description(training: Mapping[str, Any]) -> str:
    """``training, 3 steps, adam lr=0.001, mse loss``: the settings of a record's training
    part (of its base variant; variants share them)."""
    variants = _mapping(training.get("variants"))
    base = training.get("base")
    first = _mapping(variants.get(str(base)) if base in variants else None) or _mapping(
        next(iter(variants.values()), None)
    )
    return settings_text(first)


def settings_text(settings: Mapping[str, Any]) -> str:
    """``training, 3 steps, adam lr=0.001, mse loss`` from a mapping with ``steps``,
    ``optimizer``, ``lr`` and ``loss`` (a record's entry or a document's training section)."""
    steps = settings.get("steps")
    parts = ["training"]
    if isinstance(steps, int) and not isinstance(steps, bool):
        parts.append(f"{steps} step{'s' if steps != 1 else ''}")
    optimizer = settings.get("optimizer")
    if optimizer:
        lr = _float(settings.get("lr"))
        parts.append(f"{optimizer} lr={lr:.3g}" if lr is not None else str(optimizer))
    if settings.get("loss"):
        parts.append(f"{settings['loss']} loss")
    return ", ".join(parts)


def final_losses(training: Mapping[str, Any]) -> str:
    """``final loss units=10 0.512, units=5 0.498 (golden 0.497)``: each variant's loss at
    its last step, and the golden's where it differs."""
    shown = []
    for name, entry in _mapping(training.get("variants")).items():
        now, then = entry.get("final_loss"), entry.get("golden_final_loss")
        if now is None and then is None:
            continue
        if now is None:
            text = f"{name} (not run; golden {number_text(then)})"
        else:
            text = f"{name} {number_text(now)}"
            if then is not None and number_text(then) != number_text(now):
                text += f" (golden {number_text(then)})"
        shown.append(text)
    return "final loss " + ", ".join(shown) if shown else "no losses recorded"


def moved_lines(training: Mapping[str, Any]) -> list[str]:
    """What moved in a failing training check: per variant a line naming it, then one line
    per finding, indented by two spaces: parameters whose gradient vanished or came back,
    and the parameters whose gradient norm (step 0) or update norm (after the last step)
    moved most, largest relative change first."""
    lines = []
    for name, entry in _mapping(training.get("variants")).items():
        said = []
        new = _names(entry.get("no_gradient_new"))
        if new:
            said.append(
                f"no gradient now: {_listed(new, entry.get('no_gradient_new_count'))} "
                "(frozen, or off the loss's path)"
            )
        back = _names(entry.get("gradient_back"))
        if back:
            said.append(f"gradient again: {_listed(back, entry.get('gradient_back_count'))}")
        moved = entry.get("moved") or []
        said += [f"moved {moved_text(m)}" for m in moved]
        more = (entry.get("moved_count") or 0) - len(moved)
        if more > 0:
            said.append(f"... and {more} more moved parameter{'s' if more != 1 else ''}")
        if said:
            lines.append(f"{name}:")
            lines += [f"  {line}" for line in said]
    return lines


def moved_text(moved: Mapping[str, Any]) -> str:
    """``lstm.weight_hh_l0: gradient norm 0.12 -> 0.15 (+25%)``."""
    parts = []
    for key, title in (("gradient_norm", "gradient norm"), ("update_norm", "update norm")):
        values = moved.get(key)
        change = _float(moved.get(f"{key}_change"))
        if not isinstance(values, (list, tuple)) or len(values) != 2 or not change:
            continue
        golden, current = (_float(v) for v in values)
        if golden is None:
            parts.append(f"{title} new ({number_text(current, 4)})")
        elif current is None:
            parts.append(f"{title} gone (was {number_text(golden, 4)})")
        else:
            parts.append(
                f"{title} {number_text(golden, 4)} -> {number_text(current, 4)}"
                + (f" ({_percent(golden, current)})" if golden else "")
            )
    return f"{moved.get('parameter')}: " + ", ".join(parts)


def _percent(golden: float, current: float) -> str:
    change = (current - golden) / abs(golden) * 100
    return f"{change:+.3g}%"


def _listed(names: Sequence[str], count: Any) -> str:
    more = (count if isinstance(count, int) else len(names)) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def no_gradient_text(entry: Mapping[str, Any]) -> str:
    """``fc.weight, fc.bias`` (the parameters without a gradient), or ''."""
    names = _names(entry.get("no_gradient"))
    return _listed(names, entry.get("no_gradient_count")) if names else ""


def summary_lines(
    records: Sequence[Mapping[str, Any]], label: Callable[[Mapping[str, Any]], str]
) -> list[str]:
    """The terminal summary's lines for training checks (failing ones first, at most
    :data:`SUMMARY_CHECKS`): what each trained and its final loss per variant, and for a
    failing one what moved. ``label`` names a record (``records.label``)."""
    trained = [r for r in records if isinstance(r.get("training"), Mapping)]
    if not trained:
        return []
    count = len(trained)
    lines = [f"{count} training check{'s' if count != 1 else ''} (final loss per variant):"]
    for record in trained[:SUMMARY_CHECKS]:
        part = record["training"]
        lines.append(
            f"  {label(record)} ({record['status']}): {description(part)}; {final_losses(part)}"
        )
        if record["status"] not in ("passed", "recorded", "updated"):
            lines += [f"    {line}" for line in moved_lines(part)]
        missing: dict[str, list[str]] = {}
        for name, entry in _mapping(part.get("variants")).items():
            if entry.get("gradients_missing"):
                missing.setdefault(str(entry["gradients_missing"]), []).append(name)
        for why, names in missing.items():
            lines.append(f"    no gradient statistics ({', '.join(names)}): {why}")
    if count > SUMMARY_CHECKS:
        lines.append(f"  ... and {count - SUMMARY_CHECKS} more (the report lists them)")
    return lines


def markdown_rows(training: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Per variant: name (base marked), final loss, the golden's, the loss ratio to the base
    at the last step, the parameters without a gradient (or why gradients are missing)."""
    rows = []
    base = training.get("base")
    for name, entry in _mapping(training.get("variants")).items():
        ratio = entry.get("loss_ratio")
        last_ratio = number_text(ratio[-1], 4) if isinstance(ratio, list) and ratio else ""
        missing = entry.get("gradients_missing")
        rows.append(
            (
                f"{name} (base)" if name == base else str(name),
                number_text(entry.get("final_loss")) if entry.get("final_loss") is not None else "",
                number_text(entry.get("golden_final_loss"))
                if entry.get("golden_final_loss") is not None
                else "",
                last_ratio,
                f"gradients missing: {missing}" if missing else no_gradient_text(entry),
            )
        )
    return rows


# -- ``show`` -------------------------------------------------------------------------------

#: Steps ``show`` lists one by one; beyond, the first and last half of them.
SHOW_STEPS = 60
#: A parameter's gradient statistics, as the document records them.
GRADIENT_STATS = ("norm", "mean", "std", "max_abs", "zero_fraction")


def _cell(value: Any) -> str:
    return value_text(value, none="null")


def show_lines(check: Mapping[str, Any]) -> list[str]:
    """A training check's golden as ``show`` prints it: the settings, the losses per step
    per variant (and each variant's over the base's), step 0's training-mode forward, each
    parameter's gradient at step 0 and update after the last step, the parameters without a
    gradient, missing gradients, and the gradient/update norm ratios to the base."""
    variants = _variants(check)
    sections = {n: s for n in variants if (s := _section(check, n)) is not None}
    if not sections:
        return ["", "training: not recorded in this golden"]
    base = next((n for n in variants if _mapping(variants[n]).get("base")), None)
    names = list(sections)
    first = sections[base] if base in sections else next(iter(sections.values()))
    lines = ["", f"{settings_text(first)} (every variant from the same seed, in training mode)"]
    lines += _loss_table(sections, base)
    lines += _forward_tables(sections)
    lines += _parameter_table(sections)
    for name, section in sections.items():
        missing = section.get("gradients_missing")
        if missing:
            lines.append(f"  gradients missing ({name}): {missing}")
    frozen = [
        f"  {name}: {', '.join(_names(s.get('no_gradient')))}"
        for name, s in sections.items()
        if _names(s.get("no_gradient"))
    ]
    if frozen:
        lines += ["", "no gradient (frozen, or off the loss's path)", *frozen]
    else:
        lines += ["", "no gradient: none (every parameter took a gradient)"]
    lines += _ratio_table(variants, base, names)
    return lines


def _loss_table(sections: Mapping[str, Mapping[str, Any]], base: str | None) -> list[str]:
    losses = {n: _losses(s) or [] for n, s in sections.items()}
    count = max((len(v) for v in losses.values()), default=0)
    names = list(sections)
    others = [n for n in names if n != base and base in losses]
    header = (
        "step",
        *(f"{n} (base)" if n == base else n for n in names),
        *(f"{n} / base" for n in others),
    )
    if count <= SHOW_STEPS:
        steps: list[int | None] = list(range(count))
    else:
        half = SHOW_STEPS // 2
        steps = [*range(half), None, *range(count - half, count)]
    rows = []
    for step in steps:
        if step is None:
            rows.append((f"... {count - SHOW_STEPS} steps", *("" for _ in header[1:])))
            continue
        values = [losses[n][step] if step < len(losses[n]) else None for n in names]
        shown = [_cell(v) for v in values]
        base_value = losses[base][step] if base in losses and step < len(losses[base]) else None
        ratios = []
        for n in others:
            value = losses[n][step] if step < len(losses[n]) else None
            ratios.append(_cell(value / base_value) if value is not None and base_value else "null")
        rows.append((str(step), *shown, *ratios))
    return ["", "losses per step (each before that step's update)"] + [
        "  " + line for line in text_table(header, rows)
    ]


def _forward_tables(sections: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = []
    for name, section in sections.items():
        for output, info in _mapping(section.get("forward")).items():
            stats = _mapping(_mapping(info).get("stats"))
            rows.append(
                (
                    name,
                    str(output),
                    _cell(_mapping(info).get("shape")),
                    *(_cell(stats.get(k)) for k in ("mean", "std", "min", "max")),
                )
            )
    if not rows:
        return []
    header = ("variant", "output", "shape", "mean", "std", "min", "max")
    return ["", "forward at step 0 (training mode, before any update)"] + [
        "  " + line for line in text_table(header, rows)
    ]


def _parameter_table(sections: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = []
    for name, section in sections.items():
        gradients = _mapping(section.get("gradients"))
        updates = _mapping(section.get("updates"))
        frozen = set(_names(section.get("no_gradient")))
        for parameter in dict.fromkeys([*gradients, *updates, *sorted(frozen - set(updates))]):
            g = _mapping(gradients.get(parameter))
            u = _mapping(updates.get(parameter))
            if g:
                grad = [_cell(g.get(k)) for k in GRADIENT_STATS]
            elif parameter in frozen:
                grad = ["no gradient", "", "", "", ""]
            else:
                grad = ["missing" if section.get("gradients_missing") else "", "", "", "", ""]
            update = [_cell(u.get("norm")), _cell(u.get("relative"))] if u else ["", ""]
            rows.append((name, str(parameter), *grad, *update))
    if not rows:
        return []
    header = (
        "variant",
        "parameter",
        "grad norm",
        "grad mean",
        "grad std",
        "max |grad|",
        "zero fraction",
        "update norm",
        "relative",
    )
    return ["", "gradients at step 0, updates after the last step"] + [
        "  " + line for line in text_table(header, rows)
    ]


def _ratio_table(variants: Mapping[str, Any], base: str | None, names: list[str]) -> list[str]:
    divergences = {
        n: _mapping(_mapping(_mapping(variants.get(n)).get("divergence")).get("training"))
        for n in names
    }
    others = [n for n in names if divergences[n]]
    if not others:
        return []
    lines = ["", f"training divergence from the base ({base})"]
    keys = ("gradient_norm_ratio", "update_norm_ratio")
    parameters = list(
        dict.fromkeys(p for n in others for k in keys for p in _mapping(divergences[n].get(k)))
    )
    header = (
        "parameter",
        *(
            f"{n} {k.replace('_norm_ratio', '').replace('gradient', 'grad')} norm ratio"
            for n in others
            for k in keys
        ),
    )
    rows = [
        (
            p,
            *(
                _cell(_mapping(divergences[n].get(k)).get(p))
                if p in _mapping(divergences[n].get(k))
                else ""
                for n in others
                for k in keys
            ),
        )
        for p in parameters
    ]
    if rows:
        lines += ["  " + line for line in text_table(header, rows)]
    return lines
