"""Golden vs observed -> a verdict that says what moved, by how much, and the likely cause.

Shapes, dtypes, names and counts compare exactly; floats within the policy's tolerance.
Fingerprints (digests of inputs and initial weights) never decide a verdict: they explain it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import environment
from .devices import kind
from .document import FLOAT_STATS, same_digest
from .tolerance import Policy, rms
from .training_compare import (
    compare_training,
    compare_training_divergence,
    kind_cause,
    kind_of,
    noise_gradients,
    training_causes,
)

#: With a calibrated golden, a statistic may move by this many times its own float32 rounding
#: noise (measured against float64 at record time) when that exceeds the policy's tolerance.
CALIBRATION_FACTOR = 10.0


@dataclass(frozen=True)
class Difference:
    """One value that moved: where, the golden and current values, and what was allowed."""

    variant: str
    where: str  # output name, "parameters", "divergence/<output>", ...
    stat: str
    golden: Any
    current: Any
    allowed: float | None = None  # None: compared exactly

    @property
    def difference(self) -> float | None:
        numbers = (self.golden, self.current)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            return float(self.current) - float(self.golden)
        return None

    @property
    def ok(self) -> bool:
        """Within what was allowed (exact comparisons: equal)."""
        diff = self.difference
        if self.allowed is None or diff is None:
            return bool(self.golden == self.current)
        return abs(diff) <= self.allowed

    @property
    def excess(self) -> float:
        """|difference| / allowed: how many tolerances away (inf for exact mismatches, 0 for
        equal values even when nothing was allowed)."""
        diff = self.difference
        if diff is None or self.allowed is None:
            return 0.0 if self.golden == self.current else float("inf")
        if diff == 0:
            return 0.0
        return abs(diff) / self.allowed if self.allowed else float("inf")


@dataclass
class Verdict:
    ok: bool = True
    differences: list[Difference] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    environment_changes: list[str] = field(default_factory=list)
    compared: int = 0
    worst: float = 0.0  # largest |difference| / allowed among compared floats
    #: Every value compared, within tolerance or not (for reports); ``differences`` is the
    #: subset that moved beyond it.
    rows: list[Difference] = field(default_factory=list)


class _Comparer:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.verdict = Verdict()

    def exact(self, variant: str, where: str, stat: str, golden: Any, current: Any) -> None:
        if _is_text_list(golden) and _is_text_list(current) and golden != current:
            # lists of names or shape changes: report what appeared and what went away
            self.names(variant, f"{where} {stat}", dict.fromkeys(golden), dict.fromkeys(current))
            return
        self.verdict.compared += 1
        row = Difference(variant, where, stat, golden, current)
        self.verdict.rows.append(row)
        if golden != current:
            self.verdict.differences.append(row)

    def names(
        self, variant: str, where: str, golden: Mapping[str, Any], current: Mapping[str, Any]
    ) -> None:
        """Each name present on one side only is a difference (``present: true -> false``)."""
        self.verdict.compared += 1
        for name in _names(golden, current):
            if (name in golden) != (name in current):
                row = Difference(variant, where, name, name in golden, name in current)
                self.verdict.rows.append(row)
                self.verdict.differences.append(row)

    def tensors(
        self, variant: str, where: str, golden: Mapping[str, Any], current: Mapping[str, Any]
    ) -> None:
        """Named tensors (parameters, inputs): the same names, shapes and dtypes, exactly."""
        self.names(variant, where, golden, current)
        for name in golden:
            if name in current:
                for key in ("shape", "dtype"):
                    self.exact(
                        variant, f"{where}/{name}", key, golden[name][key], current[name][key]
                    )

    def outputs(
        self,
        variant: str,
        where: str,
        prefix: str,
        golden: Mapping[str, Any],
        current: Mapping[str, Any],
    ) -> None:
        """Recorded outputs (a check's, or a training check's step 0 forward): the same names
        (at ``where``), and each output both have (at ``prefix`` + its name) its shape and
        dtype exactly and its statistics within tolerance, scaled by its rms, with its
        calibrated noise when recorded."""
        self.names(variant, where, golden, current)
        for oname, gout in golden.items():
            if oname not in current:
                continue
            cout, at, gstats = current[oname], f"{prefix}{oname}", gout["stats"]
            self.exact(variant, at, "shape", gout["shape"], cout["shape"])
            self.exact(variant, at, "dtype", gout["dtype"], cout["dtype"])
            self.stats(
                variant,
                at,
                gstats,
                cout["stats"],
                dtype=gout["dtype"],
                scale=rms(gstats),
                count=int(gstats.get("count") or 0),
                noise=gout.get("noise"),
            )

    def close(
        self,
        variant: str,
        where: str,
        stat: str,
        golden: Any,
        current: Any,
        *,
        dtype: str,
        scale: float,
        count: int,
        noise: float = 0.0,
    ) -> None:
        if not isinstance(golden, (int, float)) or not isinstance(current, (int, float)):
            self.exact(variant, where, stat, golden, current)
            return
        self.verdict.compared += 1
        allowed = self.policy.allowed(stat, float(golden), dtype=dtype, scale=scale, count=count)
        allowed = max(allowed, CALIBRATION_FACTOR * noise)
        diff = abs(float(current) - float(golden))
        ratio = diff / allowed if allowed else (0.0 if diff == 0 else float("inf"))
        self.verdict.worst = max(self.verdict.worst, ratio)
        row = Difference(variant, where, stat, golden, current, allowed)
        self.verdict.rows.append(row)
        if diff > allowed:
            self.verdict.differences.append(row)

    def stats(
        self,
        variant: str,
        where: str,
        golden: Mapping[str, Any],
        current: Mapping[str, Any],
        *,
        dtype: str,
        scale: float,
        count: int,
        noise: Mapping[str, Any] | None = None,
    ) -> None:
        for stat in dict.fromkeys([*golden, *current]):
            g, c = golden.get(stat), current.get(stat)
            if stat in FLOAT_STATS:
                level = (noise or {}).get(stat)
                self.close(
                    variant,
                    where,
                    stat,
                    g,
                    c,
                    dtype=dtype,
                    scale=scale,
                    count=count,
                    noise=float(level) if isinstance(level, (int, float)) else 0.0,
                )
            else:
                self.exact(variant, where, stat, g, c)


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _names(golden: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys([*golden, *current]))


def compare(golden: Mapping[str, Any], current: Mapping[str, Any], policy: Policy) -> Verdict:
    """Compare two check documents (as produced by :mod:`pytest_weightshape.run`)."""
    devices = (
        kind(str(golden.get("environment", {}).get("device", "cpu"))),
        kind(str(current.get("environment", {}).get("device", "cpu"))),
    )
    policy = policy.for_devices(*devices)
    c = _Comparer(policy)
    if kind_of(golden) != kind_of(current):  # a forward check and a training check
        c.exact("(all)", "check", "kind", kind_of(golden), kind_of(current))
        c.verdict.ok = False
        c.verdict.causes = [kind_cause(golden, current)]
        return c.verdict
    training = kind_of(current) == "training"
    c.exact("(all)", "check", "seed", golden["seed"], current["seed"])
    c.exact("(all)", "check", "weights", golden["weights"], current["weights"])
    gvars, cvars = golden["variants"], current["variants"]
    c.names("(all)", "variants", gvars, cvars)
    for name in _names(gvars, cvars):
        if name not in gvars or name not in cvars:
            continue
        g, cur = gvars[name], cvars[name]
        c.exact(name, "variant", "kwargs", g["kwargs"], cur["kwargs"])
        c.exact(name, "variant", "parameter_count", g["parameter_count"], cur["parameter_count"])
        c.tensors(name, "parameters", g["parameters"], cur["parameters"])
        c.tensors(name, "inputs", g["inputs"], cur["inputs"])
        _compare_pruning(c, name, g, cur)
        c.outputs(name, "outputs", "", g["outputs"], cur["outputs"])
        _compare_divergence(c, name, g, cur, gvars)
        if training:
            compare_training(c, name, g, cur)
            if "divergence" in g and "divergence" in cur:
                base: Mapping[str, Any] = next((v for v in gvars.values() if v.get("base")), {})
                noise = {*noise_gradients(g), *noise_gradients(base)}
                compare_training_divergence(c, name, g["divergence"], cur["divergence"], noise)
    verdict = c.verdict
    verdict.ok = not verdict.differences
    verdict.environment_changes = environment.differences(
        golden.get("environment", {}), current.get("environment", {}), _used(golden, current)
    )
    if not verdict.ok:
        verdict.causes = likely_causes(golden, current, verdict)
        if devices[0] != devices[1]:
            verdict.causes.append(
                f"the device changed ({devices[0]} -> {devices[1]}); compared with the "
                f"cross-device tolerance (rtol at least {policy.floor:g})"
            )
    return verdict


def _compare_divergence(
    c: _Comparer,
    name: str,
    g: Mapping[str, Any],
    cur: Mapping[str, Any],
    gvars: Mapping[str, Any],
) -> None:
    gd, cd = g.get("divergence"), cur.get("divergence")
    if gd is None or cd is None:
        c.exact(name, "divergence", "present", gd is not None, cd is not None)
        return
    base = next((v for v in gvars.values() if v.get("base")), None)
    gpar, cpar = gd["parameters"], cd["parameters"]
    for key in ("changed_shapes", "added", "removed"):
        c.exact(name, "divergence/parameters", key, gpar[key], cpar[key])
    c.close(
        name,
        "divergence/parameters",
        "parameter_count_ratio",
        gpar["parameter_count_ratio"],
        cpar["parameter_count_ratio"],
        dtype="float64",
        scale=1.0,
        count=0,
    )
    for key in PRUNING_DIVERGENCE:  # absent from goldens recorded before them
        if key in gpar and key in cpar:
            c.close(
                name,
                "divergence/parameters",
                key,
                gpar[key],
                cpar[key],
                dtype="float64",
                scale=1.0,
                count=int((base or {}).get("parameter_count") or 0),
            )
    for key in ("outputs_added", "outputs_removed"):
        c.exact(name, "divergence", key, gd[key], cd[key])
    gouts, couts = gd["outputs"], cd["outputs"]
    for oname in gouts:
        if oname not in couts:
            continue
        base_out = (base or {}).get("outputs", {}).get(oname, {})
        base_stats = base_out.get("stats", {})
        noise = gd.get("noise", {}).get(oname) if isinstance(gd.get("noise"), dict) else None
        c.stats(
            name,
            f"divergence/{oname}",
            gouts[oname],
            couts[oname],
            dtype=base_out.get("dtype", "float32"),
            scale=rms(base_stats),
            count=int(base_stats.get("count") or 0),
            noise=noise if isinstance(noise, dict) else None,
        )


def _used(golden: Mapping[str, Any], current: Mapping[str, Any]) -> frozenset[str]:
    """The frameworks the check used, then or now: only their environment is diffed."""
    return environment.used_by(golden) | environment.used_by(current)


def _digest(tensor: Mapping[str, Any]) -> Any:
    return tensor.get("fingerprint", {}).get("digest")


def _changed(golden: Mapping[str, Any], current: Mapping[str, Any]) -> bool | None:
    """Whether a tensor's bytes differ from the golden's; ``None`` when the digests cannot
    tell (made by different methods: a golden recorded by an older version)."""
    same = same_digest(_digest(golden), _digest(current))
    return None if same is None else not same


def likely_causes(
    golden: Mapping[str, Any], current: Mapping[str, Any], verdict: Verdict
) -> list[str]:
    """Explain a failing verdict: shape change, inputs, initial weights, or forward numerics."""
    causes = _setting_causes(golden, current) + _renamed(golden, current)
    causes += _structure_causes(verdict)
    inputs_changed, weights, unknown = _fingerprint_changes(golden, current)
    targets = _targets_changed(golden, current)
    if targets:
        causes.append(f"targets changed: {', '.join(targets)} (the target fingerprint differs)")
    if inputs_changed:
        causes.append(_inputs_cause(golden, current))
    buffers = _buffer_changes(golden, current)
    if weights:
        cause = _weights_cause(golden, current, weights)
        if any("_mask" in line for line in buffers):  # torch.nn.utils.prune's masks
            cause = cause.replace(
                "initial weights changed (", "weights changed (a pruning mask changed; ", 1
            )
        causes.append(cause)
    if buffers:
        causes.append(
            "buffers changed (running statistics, pruning masks or other persistent state): "
            + "; ".join(buffers[:4])
            + (f"; +{len(buffers) - 4} more variants" if len(buffers) > 4 else "")
        )
    explained = bool(causes)
    if kind_of(current) == "training":
        held = not (inputs_changed or weights or buffers or targets or unknown)
        found, explains = training_causes(golden, current, verdict.differences, held)
        causes += found
        explained = explained or explains
    if not explained:
        causes.append(_numerics_cause(golden, current, unknown))
    unrecorded = not_recorded(golden, current)
    if unrecorded:
        causes.append(
            f"the golden holds no {', '.join(unrecorded)} (recorded by an older "
            "pytest-weightshape): these were not compared; recording it again with "
            "`pytest --snapshot-update` adds them"
        )
    return causes


def _setting_causes(golden: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The marker's seed or ``weights=`` changed: everything is drawn anew."""
    causes = []
    if golden["seed"] != current["seed"]:
        causes.append(
            f"the marker's seed changed ({golden['seed']} -> {current['seed']}): inputs and "
            "initial weights are drawn anew"
        )
    if golden["weights"] != current["weights"]:
        causes.append(
            f"weights= changed ({golden['weights']} -> {current['weights']}): the initial "
            "weights come from another source"
        )
    return causes


#: How NumPy 2 writes a scalar (``np.int64(8)``), which variant names held before they named
#: NumPy scalars as the numbers they hold.
_NUMPY_REPR = re.compile(r"np\.([a-z]+)[0-9]*_?\(([^()]*)\)|np\.(True|False)_")


def _as_number(match: re.Match[str]) -> str:
    if match.group(3):  # np.True_
        return match.group(3)
    kind, inner = match.group(1), match.group(2).strip("'\"")
    return f"({inner})" if kind == "complex" else inner  # str(np.complex128(1+2j)) = (1+2j)


def _renamed(golden: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Variants a golden names the old way (``units=np.int64(8)``), now ``units=8``."""
    old, new = golden["variants"], current["variants"]
    renamed = [
        (name, _NUMPY_REPR.sub(_as_number, name))
        for name in old
        if name not in new and _NUMPY_REPR.search(name)
    ]
    renamed = [(before, after) for before, after in renamed if after in new]
    if not renamed:
        return []
    shown = ", ".join(f"{before} -> {after}" for before, after in renamed[:3])
    more = f", +{len(renamed) - 3} more" if len(renamed) > 3 else ""
    return [
        f"variant names changed ({shown}{more}): NumPy scalars in the marker are now named as "
        "the numbers they hold, the same under NumPy 1 and 2; the golden still has the old "
        "names: record it again with `pytest --snapshot-update`"
    ]


def _listed(differences: list[Difference]) -> str:
    what = list(dict.fromkeys(f"{d.variant}: {d.where} {d.stat}" for d in differences))
    return "; ".join(what[:4]) + (f"; +{len(what) - 4} more" if len(what) > 4 else "")


def _structure_causes(verdict: Verdict) -> list[str]:
    """Exact differences: measures that became (un)defined, and shape or structure changes."""
    exact = [  # a training section's exact rows are explained by training_causes
        d
        for d in verdict.differences
        if d.allowed is None
        and d.stat not in ("seed", "weights")
        and not d.where.startswith(("training", "divergence/training"))
    ]
    # a measure that became defined or undefined (null): a value change, not a structural one
    undefined = [
        d for d in exact if d.stat in FLOAT_STATS and (d.golden is None) != (d.current is None)
    ]
    structural = [d for d in exact if d not in undefined]
    causes = []
    if undefined:
        causes.append(
            f"statistics became defined or undefined ({_listed(undefined)}): ratios and "
            "similarities are undefined where an output is all zeros or constant"
        )
    if structural:
        causes.append(f"shape or structure changed ({_listed(structural)})")
    return causes


def _fingerprint_changes(
    golden: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[bool, list[str], bool]:
    """From the fingerprints: whether inputs changed, which initial weights changed (per
    variant, with their std), and whether some digests could not tell."""
    gvars, cvars = golden["variants"], current["variants"]
    inputs_changed = unknown = False
    weights: list[str] = []
    for name in gvars:
        if name not in cvars:
            continue
        g, c = gvars[name], cvars[name]
        gi, ci = g["inputs"], c["inputs"]
        inputs = [_changed(gi[k], ci[k]) if k in ci else True for k in gi]
        inputs_changed = inputs_changed or any(inputs)
        gp, cp = g["parameters"], c["parameters"]
        same_shape = [p for p in gp if p in cp and gp[p]["shape"] == cp[p]["shape"]]
        params = {p: _changed(gp[p], cp[p]) for p in same_shape}
        unknown = unknown or None in inputs or None in params.values()
        changed = [p for p, differs in params.items() if differs]
        if changed:
            weights.append(_changed_tensors_line(name, changed, gp, cp))
    return inputs_changed, weights, unknown


#: Divergence fields of pruning and compute (compared when both documents hold them).
PRUNING_DIVERGENCE = ("sparsity_change", "nonzero_parameter_count_ratio", "flops_ratio")


def _compare_pruning(c: _Comparer, name: str, g: Mapping[str, Any], cur: Mapping[str, Any]) -> None:
    """Buffers, sparsity, nonzero parameters and FLOPs: each compared when the golden holds it
    (a golden recorded before them is compared on what it holds). FLOPs are compared only when
    this run counted them too (``--weightshape-flops``)."""
    if "buffers" in g:
        c.tensors(name, "buffers", g["buffers"], cur.get("buffers", {}))
    if "nonzero_parameter_count" in g:
        c.exact(
            name,
            "variant",
            "nonzero_parameter_count",
            g["nonzero_parameter_count"],
            cur.get("nonzero_parameter_count"),
        )
    if "sparsity" in g:
        c.close(
            name,
            "variant",
            "sparsity",
            g["sparsity"],
            cur.get("sparsity"),
            dtype="float64",
            scale=1.0,
            count=int(g.get("parameter_count") or 0),
        )
    if "flops" in g and "flops" in cur:
        c.exact(name, "variant", "flops", g["flops"], cur["flops"])


def not_recorded(golden: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What this run measured that the golden does not hold (a golden recorded by an older
    pytest-weightshape): ``buffers``, ``zero fractions``, ``sparsity``, ``FLOPs``."""
    missing: dict[str, None] = {}
    for name, g in golden["variants"].items():
        c = current["variants"].get(name)
        if c is None:
            continue
        if "buffers" in c and "buffers" not in g:
            missing["buffers"] = None
        if "sparsity" in c and "sparsity" not in g:
            missing["sparsity"] = None
        if "flops" in c and "flops" not in g:
            missing["FLOPs"] = None
        gp, cp = g["parameters"], c["parameters"]
        if any(
            "zero_fraction" in cp[p].get("fingerprint", {})
            and "zero_fraction" not in gp[p].get("fingerprint", {})
            for p in gp
            if p in cp
        ):
            missing["zero fractions"] = None
    return list(missing)


def _buffer_changes(golden: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Per variant, the buffers whose bytes differ from the golden's (with their std)."""
    out = []
    for name, g in golden["variants"].items():
        c = current["variants"].get(name)
        if c is None or "buffers" not in g or "buffers" not in c:
            continue
        gb, cb = g["buffers"], c["buffers"]
        changed = [
            b for b in gb if b in cb and gb[b]["shape"] == cb[b]["shape"] and _changed(gb[b], cb[b])
        ]
        if changed:
            out.append(_changed_tensors_line(name, changed, gb, cb))
    return out


def _targets_changed(golden: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The targets (of a training check) whose fingerprints differ from the golden's."""
    changed: dict[str, None] = {}
    for name, g in golden["variants"].items():
        c = current["variants"].get(name)
        if c is None:
            continue
        gt, ct = g.get("targets", {}), c.get("targets", {})
        for key in gt:
            if key in ct and _changed(gt[key], ct[key]):
                changed[key] = None
    return list(changed)


def _inputs_cause(golden: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """``inputs changed: attention_mask`` (each input by name: keyword inputs by keyword)."""
    named: dict[str, str] = {}
    for name, g in golden["variants"].items():
        c = current["variants"].get(name)
        if c is None:
            continue
        gi, ci = g["inputs"], c["inputs"]
        for key in gi:
            if key not in ci:
                named.setdefault(key, f"{key} (not given)")
            elif _changed(gi[key], ci[key]):
                named.setdefault(key, key)
        for key in ci:
            if key not in gi:
                named.setdefault(key, f"{key} (new)")
    shown = ", ".join(list(named.values())[:6]) + (" ..." if len(named) > 6 else "")
    return f"inputs changed: {shown} (the input fingerprint differs from the golden's)"


def _weights_cause(
    golden: Mapping[str, Any], current: Mapping[str, Any], weights: list[str]
) -> str:
    why = "RNG, initializer or framework default init"
    old_backend = golden.get("environment", {}).get("keras_backend")
    new_backend = current.get("environment", {}).get("keras_backend")
    if old_backend != new_backend and old_backend and new_backend:
        why = (
            f"the Keras backend changed ({old_backend} -> {new_backend}) and the same seed "
            "gives different initial weights on each backend; weights='portable' makes them "
            "identical so that only numerics are compared"
        )
    more = f"; +{len(weights) - 4} more variants" if len(weights) > 4 else ""
    return f"initial weights changed ({why}): " + "; ".join(weights[:4]) + more


def _numerics_cause(golden: Mapping[str, Any], current: Mapping[str, Any], unknown: bool) -> str:
    """Nothing else explains the change: the outputs moved on the same inputs and weights."""
    if unknown:
        return (
            "outputs changed; the golden's fingerprints were made by an older "
            "pytest-weightshape, so new inputs or initial weights cannot be told from new "
            "forward numerics (record it again with `pytest --snapshot-update` once the "
            "change is understood)"
        )
    gvars, cvars = golden["variants"], current["variants"]
    opaque = [n for n, v in cvars.items() if n in gvars and v["parameter_count"] == 0]
    if opaque:
        shown = ", ".join(opaque[:4]) + (f" and {len(opaque) - 4} more" if len(opaque) > 4 else "")
        return (
            f"outputs changed while the inputs did not; variants {shown} have no "
            "visible parameters, so changed weights cannot be told from changed forward "
            "numerics"
        )
    culprit = environment.culprit(
        golden.get("environment", {}), current.get("environment", {}), _used(golden, current)
    )
    if culprit is None:
        return (
            "environment unchanged: the model's computation changed (its code or "
            "configuration): same inputs, initial weights and recorded environment of the "
            "frameworks it used, different outputs"
        )
    return (
        "forward numerics changed: same inputs and initial weights, different outputs; "
        f"the environment changed, likely culprit: {culprit}"
    )


def _changed_tensors_line(
    variant: str,
    changed: list[str],
    golden: Mapping[str, Any],
    current: Mapping[str, Any],
) -> str:
    """``variant: NAME std A -> B, ...`` for the first three tensors (parameters or buffers)
    whose fingerprints differ, and how many more."""
    detail = []
    for name in changed[:3]:
        gf, cf = golden[name].get("fingerprint", {}), current[name].get("fingerprint", {})
        if all(isinstance(f.get("std"), (int, float)) for f in (gf, cf)):
            detail.append(f"{name} std {gf['std']:.6g} -> {cf['std']:.6g}")
        else:
            detail.append(name)
    more = f", +{len(changed) - 3} more" if len(changed) > 3 else ""
    return f"{variant}: {', '.join(detail)}{more}"
