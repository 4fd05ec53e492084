"""The check document's contract: what a check records, in what vocabulary, and its validation.

A check document is what one ``shape_variant.check`` observes (``run``), what a golden keeps per
check (``golden``), what ``compare`` judges and what reports show. This module names its parts,
schema version, statistic names and the digest method of fingerprints, and says whether a
document is well-formed; every other module takes that vocabulary from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCHEMA_VERSION = 1
#: How fingerprint digests (of inputs and initial weights) are made: the prefix names the
#: method, so a digest is only compared with one made the same way (goldens recorded by earlier
#: versions hold unprefixed blake2b digests).
DIGEST_PREFIX = "crc32:"
DEFAULT_CHECK = "default"

# -- statistics -----------------------------------------------------------------------------

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99)
QUANTILE_KEYS: tuple[str, ...] = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)

#: Output statistics measured in the output's own units.
VALUE_STATS: tuple[str, ...] = ("mean", "std", "min", "max", "mean_abs", *QUANTILE_KEYS)
#: Output statistics that are fractions of the element count.
FRACTION_STATS: tuple[str, ...] = ("zero_fraction", "sparsity", "sparsity_change")
#: Integer statistics: compared exactly.
COUNT_STATS: tuple[str, ...] = ("count", "nan_count", "inf_count")
#: Divergence measures in the output's units.
DIVERGENCE_VALUE: tuple[str, ...] = ("mean_difference", "max_abs_difference")
#: Divergence ratios of two statistics (each carries its own rounding, hence 2x rtol).
DIVERGENCE_RATIO: tuple[str, ...] = (
    "std_ratio",
    "mean_abs_ratio",
    "max_ratio",
    "parameter_count_ratio",
    "nonzero_parameter_count_ratio",
    "flops_ratio",
)
#: Bounded dimensionless similarity measures.
DIVERGENCE_UNIT: tuple[str, ...] = ("cosine", "cka")
#: Training checks (``check_training``): statistics in the units of what they measure (a
#: gradient's or update's norm and max |g|, a loss); their ``atol`` follows that quantity's scale.
TRAINING_VALUE: tuple[str, ...] = ("norm", "max_abs", "loss")
#: Training checks: an update's norm relative to its weight's (dimensionless).
TRAINING_UNIT: tuple[str, ...] = ("relative",)
#: Training divergence: a variant's loss, gradient norm and update norm over the base's
#: (ratios of two statistics, like ``DIVERGENCE_RATIO``).
TRAINING_RATIO: tuple[str, ...] = ("loss_ratio", "gradient_norm_ratio", "update_norm_ratio")
#: The ``kind`` of a training check's document (a forward check's document has no ``kind``).
TRAINING_KIND = "training"

FLOAT_STATS: frozenset[str] = frozenset(
    VALUE_STATS
    + FRACTION_STATS
    + DIVERGENCE_VALUE
    + DIVERGENCE_RATIO
    + DIVERGENCE_UNIT
    + TRAINING_VALUE
    + TRAINING_UNIT
    + TRAINING_RATIO
)
ALL_STATS: frozenset[str] = FLOAT_STATS | frozenset(COUNT_STATS)

#: The statistics of a layer output (``layers``), in the order a golden's entries hold them.
LAYER_STATS: tuple[str, ...] = ("count", "mean", "std", "mean_abs", "min", "max")
#: A recorded layer output's fields, in order (a variant's optional ``layers``).
LAYER_FIELDS: tuple[str, ...] = ("type", "dtype", "shape", *LAYER_STATS)


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


def _pruning_problem(where: str, var: dict[str, Any]) -> str | None:
    """The optional fields of issue 14: buffers, sparsity, nonzero parameters, FLOPs."""
    if "buffers" in var:
        problem = _tensors_problem(f"{where}.buffers", var["buffers"], "fingerprint")
        if problem:
            return problem
    sparsity = var.get("sparsity")
    if sparsity is not None and (isinstance(sparsity, bool) or not isinstance(sparsity, _NUM)):
        return f"{where}.sparsity must be a number or null"
    for key in ("nonzero_parameter_count", "flops"):
        if key in var and (not _is_int(var[key]) or var[key] < 0):
            return f"{where}.{key} must be a non-negative integer"
    return None


def layers_problem(where: str, layers: Any) -> str | None:
    """What is wrong with a variant's ``layers`` in a golden, or ``None``."""
    if not isinstance(layers, dict):
        return f"{where} must be an object"
    if "unrecorded" in layers:
        if not isinstance(layers["unrecorded"], str):
            return f"{where}.unrecorded must be a string"
        return None
    fields = layers.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        return f"{where}.fields must be a list of names"
    missing = [f for f in ("type", "dtype", "shape") if f not in fields]
    if missing:
        return f"{where}.fields must name {', '.join(missing)}"
    entries = layers.get("entries")
    if not isinstance(entries, dict):
        return f"{where}.entries must be an object"
    for name, entry in entries.items():
        if not isinstance(entry, list) or len(entry) != len(fields):
            return f"{where}.entries[{name!r}] must be a list of {len(fields)} values"
        for key, value in zip(fields, entry, strict=True):
            if key in ("type", "dtype", "shape"):
                if not isinstance(value, str):
                    return f"{where}.entries[{name!r}].{key} must be a string"
            elif isinstance(value, bool) or not (value is None or isinstance(value, (int, float))):
                return f"{where}.entries[{name!r}].{key} must be a number or null"
    total = layers.get("total", 0)
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        return f"{where}.total must be a non-negative integer"
    return None


def _number_problem(where: str, value: Any) -> str | None:
    if isinstance(value, bool) or not (value is None or isinstance(value, _NUM)):
        return f"{where} must be a number or null"
    return None


def _numbers_problem(where: str, table: Any, keys: tuple[str, ...]) -> str | None:
    """An object of objects holding (at most) ``keys``, each a number or null."""
    if not isinstance(table, dict):
        return f"{where} must be an object"
    for name, stats in table.items():
        if not isinstance(stats, dict):
            return f"{where}.{name} must be an object"
        for key, value in stats.items():
            if key not in keys:
                return f"{where}.{name} has an unknown field {key!r}"
            problem = _number_problem(f"{where}.{name}.{key}", value)
            if problem:
                return problem
    return None


#: Per parameter: step 0's gradient statistics, and the update after the last step.
GRADIENT_STATS: tuple[str, ...] = ("norm", "mean", "std", "max_abs", "zero_fraction")
UPDATE_STATS: tuple[str, ...] = ("norm", "relative")


def training_problem(where: str, section: Any) -> str | None:
    """What is wrong with a variant's ``training`` section (``check_training``), or ``None``."""
    if not isinstance(section, dict):
        return f"{where} must be an object"
    for key in ("loss", "optimizer"):
        if not isinstance(section.get(key), str):
            return f"{where}.{key} must be a string"
    problem = _number_problem(f"{where}.lr", section.get("lr"))
    if problem:
        return problem
    steps = section.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        return f"{where}.steps must be a positive integer"
    losses = section.get("losses")
    if not isinstance(losses, list) or len(losses) != steps:
        return f"{where}.losses must be a list of {steps} numbers (one per step)"
    for i, value in enumerate(losses):
        problem = _number_problem(f"{where}.losses[{i}]", value)
        if problem:
            return problem
    problem = _tensors_problem(f"{where}.forward", section.get("forward"), "stats")
    if problem:
        return problem
    problem = _numbers_problem(f"{where}.gradients", section.get("gradients"), GRADIENT_STATS)
    if problem:
        return problem
    frozen = section.get("no_gradient")
    if not isinstance(frozen, list) or not all(isinstance(n, str) for n in frozen):
        return f"{where}.no_gradient must be a list of parameter names"
    if "gradients_missing" in section and not isinstance(section["gradients_missing"], str):
        return f"{where}.gradients_missing must be a string"
    return _numbers_problem(f"{where}.updates", section.get("updates"), UPDATE_STATS)


def _training_divergence_problem(where: str, div: Any) -> str | None:
    if not isinstance(div, dict):
        return f"{where} must be an object"
    ratios = div.get("loss_ratio")
    if not isinstance(ratios, list):
        return f"{where}.loss_ratio must be a list"
    for i, value in enumerate(ratios):
        problem = _number_problem(f"{where}.loss_ratio[{i}]", value)
        if problem:
            return problem
    for key in ("gradient_norm_ratio", "update_norm_ratio"):
        table = div.get(key)
        if not isinstance(table, dict):
            return f"{where}.{key} must be an object"
        for name, value in table.items():
            problem = _number_problem(f"{where}.{key}[{name!r}]", value)
            if problem:
                return problem
    return None


def check_problem(check: Any) -> str | None:
    """What is wrong with a check document's structure, or ``None`` if it is well-formed."""
    if not isinstance(check, dict):
        return "the check must be an object"
    if check.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version must be {SCHEMA_VERSION}"
    if check.get("kind", TRAINING_KIND) != TRAINING_KIND:  # absent: a forward check
        return f"kind must be {TRAINING_KIND!r} (a training check) or absent (a forward check)"
    training = check.get("kind") == TRAINING_KIND
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
        problem = _pruning_problem(where, var)
        if problem:
            return problem
        problem = _tensors_problem(f"{where}.outputs", var.get("outputs"), "stats")
        if problem:
            return problem
        for oname, out in var["outputs"].items():
            for key in ("noise", "response", "floor"):  # optional: calibration, sensitivity
                numbers = out.get(key, {})
                if not isinstance(numbers, dict) or not all(
                    isinstance(v, _NUM) and not isinstance(v, bool) for v in numbers.values()
                ):
                    return f"{where}.outputs.{oname}.{key} must be an object of numbers"
        if "layers" in var:  # optional: goldens recorded before layers were have none
            problem = layers_problem(f"{where}.layers", var["layers"])
            if problem:
                return problem
        if "divergence" in var:
            problem = _divergence_problem(f"{where}.divergence", var["divergence"])
            if problem:
                return problem
        problem = _variant_training_problem(where, var, training)
        if problem:
            return problem
    if sum(1 for v in variants.values() if v["base"]) != 1:
        return "exactly one variant must have base: true"
    return None


def _variant_training_problem(where: str, var: dict[str, Any], training: bool) -> str | None:
    """A training check's variant holds ``targets`` and ``training`` (and, off the base,
    ``divergence.training``); a forward check's holds none of them."""
    if not training:
        if "training" in var:
            return f"{where}.training is only in a training check (kind 'training')"
        return None
    problem = _tensors_problem(f"{where}.targets", var.get("targets"), "fingerprint")
    if problem:
        return problem
    problem = training_problem(f"{where}.training", var.get("training"))
    if problem:
        return problem
    if "divergence" in var:
        return _training_divergence_problem(
            f"{where}.divergence.training", var["divergence"].get("training")
        )
    return None


def same_digest(a: Any, b: Any) -> bool | None:
    """Whether two fingerprint digests show the same bytes; ``None`` when they cannot tell
    (one is missing, or they were made by different methods, e.g. by an older version)."""
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    if a.startswith(DIGEST_PREFIX) != b.startswith(DIGEST_PREFIX):
        return None
    return a == b


#: Parts of a check that a newer recording never fills in: the environment is the one the
#: golden was recorded under, and a variant's layers are one record (or why there are none).
_RECORDED_AS_A_WHOLE = frozenset({"environment", "layers"})


def with_missing(golden: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The golden check with what ``current`` measured and the golden does not hold yet (a
    golden recorded by an older pytest-weightshape: layers, sensitivity, buffers, sparsity,
    zero fractions, FLOPs) added; every value the golden holds is kept as it is. Keys come in
    the order a recording writes them. ``--snapshot-update`` writes this for a golden that
    still matches, so an older golden gains the new fields once and nothing else churns."""
    out: dict[str, Any] = {}
    for key, value in current.items():
        if key not in golden:
            out[key] = value
            continue
        kept = golden[key]
        both = isinstance(kept, Mapping) and isinstance(value, Mapping)
        out[key] = with_missing(kept, value) if both and key not in _RECORDED_AS_A_WHOLE else kept
    for key, value in golden.items():
        out.setdefault(key, value)
    return out
