"""``ig tune``: the best guidance setting for a checkpoint, at a fraction of a grid's cost.

The paper tunes the IG scale, its interval and (with CFG) the CFG scale jointly, by hand, and every
point of a grid costs a full evaluation. Successive halving spends samples where they decide:
every candidate gets a small sample set; the better part goes on to a set η times larger; the
last survivor is confirmed at the full count. Three facts of this project make that cheap and
honest:

- **Pairing.** Every candidate's set uses the same noise and labels for sample *i*
  (``ig.sampling.sets``). Candidates are ranked on paired FD differences with their bootstrap
  errors (``ig.evaluation.uncertainty``): one that is significantly worse than the rung's best is
  dropped even if it ranks in the top part, and the ranking is not sampling noise.
- **Small-sample bias.** FD over n samples is biased upward by a term that shrinks like 1/n, and
  the term differs a little between candidates. Candidates are therefore compared only at equal n,
  within a rung (where the bias is nearly common and cancels in paired differences), and the
  winner's FD is the one at the full count. (A debiased FD∞ extrapolation would allow comparing
  across n, but it needs several n per candidate, which successive halving does not pay for.)
- **Prefixes and provenance.** The n samples of a rung are the first n of the next rung's, so a
  survivor only samples the new ones; shards and their features are files with provenance, so a
  killed run continues from what it has.

A winner at an end of the space (the largest scale listed, say) says the best may lie beyond it. The
search then extends that dimension a step at a time, each try at the full count and paired with the
winner's own set, for at most ``--extend`` rounds; the trace lists every try (``extensions``).

Outputs in ``--out-dir``: ``trace.json`` (every candidate: its guidance, per rung the sample count,
FD ± error and its paired difference to the rung's best, and where it was dropped; the chosen
setting; the images sampled), ``chosen.json`` (a guidance entry, as the config's ``guidance:``
section writes one) and ``space.png``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ig.errors import IGError
from ig.guidance import Guidance
from ig.sampling.settings import LABEL_MODES, SamplingSettings, add_sampling_arguments, sampling_from_args
from ig.utils.io import atomic_path, read_yaml_mapping, write_json

if TYPE_CHECKING:  # the statistics import scipy: not when the workflow plans
    from ig.evaluation.uncertainty import Difference

log = logging.getLogger(__name__)
# The dimensions a space may tune, and the guidance each sets.
DIMENSIONS = ("ig_scale", "ig_interval_low", "cfg_scale", "cfg_interval_high", "ag_scale")
# Where a dimension itself ends (a scale of 1 switches its guidance off; intervals lie in [0, 1]): a
# choice there is not a sign that the space is too small.
NATURAL_BOUNDS = {"ig_scale": (1.0, None), "cfg_scale": (1.0, None), "ag_scale": (1.0, None),
                  "ig_interval_low": (0.0, 1.0), "cfg_interval_high": (0.0, 1.0)}  # fmt: skip
HALTON_BASES = (2, 3, 5, 7, 11)  # one per dimension of DIMENSIONS
HALTON_MAX_BITS = 24  # digit levels cover 2^24 points: every count draws the same permutations
# interval dimensions: (the Guidance field, which end, the scale that switches that guidance on)
_COORDINATES = {
    "ig_interval_low": ("ig_interval", 0, "ig_scale"),
    "cfg_interval_high": ("cfg_interval", 1, "cfg_scale"),
}
METRIC = "fid"
EXTEND_ROUNDS = 2  # ig tune's default: rounds of stepping past an edge of the space the choice sits at
EDGE_TOLERANCE = 0.02  # a setting this share of a dimension's width from its end sits at that end
RANGE_STEP = 0.1  # a step past a range's end, as a share of its width: well past EDGE_TOLERANCE
MAX_PANELS = 6  # a listed dimension with at most this many values gets a panel per value in space.png


# --- the space -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Space:
    """Guidance settings to search: dimensions given as lists (a grid) or as ranges (sampled by a
    scrambled Halton sequence), on top of ``fixed`` guidance settings."""

    values: dict[str, tuple[float, ...]]
    ranges: dict[str, tuple[float, float]]
    fixed: Guidance = Guidance()

    @classmethod
    def from_dict(cls, space: dict[str, Any], fixed: dict[str, Any] | None = None) -> Space:
        """``{ig_scale: [1, 1.5, 2], cfg_scale: {range: [1, 2]}, …}``; unknown dimensions are errors."""
        unknown = sorted(set(space) - set(DIMENSIONS))
        if unknown or not space:
            raise IGError(f"tuning space: unknown or no dimension(s) {unknown}; choose from {list(DIMENSIONS)}")
        values, ranges = {}, {}
        for name, spec in space.items():
            if isinstance(spec, dict) and set(spec) == {"range"} and len(spec["range"]) == 2:
                low, high = (float(v) for v in spec["range"])
                if not low < high:
                    raise IGError(
                        f"tuning space: {name} range must be [low, high] with low < high, got {spec['range']}"
                    )
                ranges[name] = (low, high)
            elif isinstance(spec, list) and spec and all(isinstance(v, int | float) for v in spec):
                values[name] = tuple(float(v) for v in spec)
            else:
                raise IGError(f"tuning space: {name} must be a list of numbers or {{range: [low, high]}}, got {spec!r}")
        return cls(values, ranges, Guidance.from_dict(fixed or {}))

    def candidates(self, count: int | None = None, seed: int = 0) -> list[Guidance]:
        """The grid of the listed values (``count`` None), or ``count`` points of a scrambled Halton
        sequence over every dimension (a listed dimension takes the value its coordinate falls on);
        settings that guide identically are kept once."""
        if count is None:
            if self.ranges:
                raise IGError("a tuning space with ranges needs a number of candidates (--candidates)")
            points = [dict(zip(self.values, combo, strict=True)) for combo in itertools.product(*self.values.values())]
        else:
            if count < 1:
                raise IGError(f"--candidates must be at least 1, got {count}")
            names = [*self.values, *self.ranges]
            unit = scrambled_halton(count, len(names), seed)
            points = []
            for u in unit:
                point = dict(zip(names, u, strict=True))
                for name, options in self.values.items():
                    point[name] = options[min(int(point[name] * len(options)), len(options) - 1)]
                for name, (low, high) in self.ranges.items():
                    point[name] = round(low + point[name] * (high - low), 3)
                points.append(point)
        unique: dict[Guidance, None] = {}
        for point in points:
            unique.setdefault(canonical(self.fixed, point))
        return list(unique)

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.values.values())

    def edges(self, g: dict[str, Any]) -> list[str]:
        """The dimensions on which a setting (``Guidance.to_dict()``) sits at an end of the space
        that is not an end of the dimension itself: the optimum may lie beyond it."""
        return list(self.edge_sides(g))

    def ends(self) -> dict[str, tuple[float, float]]:
        """Each searched dimension's (low, high) in the space (a listed dimension of one value is held
        fixed, not searched: it has no edge)."""
        return {name: (min(v), max(v)) for name, v in self.values.items() if len(v) > 1} | self.ranges

    def edge_sides(self, g: dict[str, Any]) -> dict[str, int]:
        """:meth:`edges` with the end each lies at: +1 the high end, −1 the low one."""
        sides = {}
        for name, (low, high) in self.ends().items():
            if name in _COORDINATES and g[_COORDINATES[name][2]] == 1.0:
                continue  # the interval of a guidance that is off (scale 1) means nothing
            value, tolerance = coordinate(g, name), EDGE_TOLERANCE * (high - low)
            natural_low, natural_high = NATURAL_BOUNDS[name]
            if value >= high - tolerance and high != natural_high:
                sides[name] = 1
            elif value <= low + tolerance and low != natural_low:
                sides[name] = -1
        return sides

    def end(self, name: str, side: int) -> float:
        """A searched dimension's high (``side`` +1) or low (−1) end."""
        low, high = self.ends()[name]
        return high if side > 0 else low

    def step(self, name: str, side: int) -> float:
        """How far one extension goes past an end: the gap between the last two listed values there,
        or a share of a range's width (``RANGE_STEP``)."""
        if name in self.ranges:
            low, high = self.ranges[name]
            return RANGE_STEP * (high - low)
        values = sorted(set(self.values[name]))
        return values[-1] - values[-2] if side > 0 else values[1] - values[0]

    def beyond(self, name: str, side: int, step: float) -> float:
        """The value one ``step`` past an end, held within the dimension's own bounds (a scale stays
        at least 1, an interval end within [0, 1])."""
        value = round(self.end(name, side) + side * step, 6)
        bound = NATURAL_BOUNDS[name][side > 0]
        if bound is None:
            return value
        return min(value, bound) if side > 0 else max(value, bound)

    def extended(self, name: str, value: float) -> Space:
        """The space with a dimension reaching out to ``value``."""
        if name in self.ranges:
            low, high = self.ranges[name]
            return replace(self, ranges={**self.ranges, name: (min(low, value), max(high, value))})
        return replace(self, values={**self.values, name: tuple(sorted({*self.values[name], value}))})


def coordinate(g: dict[str, Any], dim: str) -> float:
    """A setting's (``Guidance.to_dict()``) value on one dimension of the space."""
    if dim in _COORDINATES:
        key, end, _ = _COORDINATES[dim]
        return g[key][end]
    return g[dim]


def scrambled_halton(count: int, dims: int, seed: int) -> np.ndarray:
    """``count`` points of the Halton sequence in [0, 1)^dims (one prime base per dimension), each
    digit level's digits permuted at random (seeded, per dimension, for a fixed number of levels:
    more candidates extend the same sequence): low discrepancy without the plain sequence's
    correlated dimensions, and no scipy import when the workflow plans."""
    if dims > len(HALTON_BASES):
        raise IGError(f"a Halton sequence over {dims} dimensions needs {dims} bases; there are {len(HALTON_BASES)}")
    index = np.arange(1, count + 1)
    points = np.zeros((count, dims))
    for d, base in enumerate(HALTON_BASES[:dims]):
        rng = np.random.default_rng([seed, d])
        for level in range(math.ceil(HALTON_MAX_BITS / math.log2(base))):
            digit = index // base**level % base
            points[:, d] += rng.permutation(base)[digit] / base ** (level + 1)
    return points


def canonical(fixed: Guidance, point: dict[str, float]) -> Guidance:
    """The guidance of a point of the space; a guidance switched off (scale 1) forgets its interval,
    so that settings that guide identically compare equal."""
    g = replace(
        fixed,
        ig_scale=point.get("ig_scale", fixed.ig_scale),
        ig_interval=(point.get("ig_interval_low", fixed.ig_interval[0]), fixed.ig_interval[1]),
        cfg_scale=point.get("cfg_scale", fixed.cfg_scale),
        cfg_interval=(fixed.cfg_interval[0], point.get("cfg_interval_high", fixed.cfg_interval[1])),
        ag_scale=point.get("ag_scale", fixed.ag_scale),
    )
    default = Guidance()
    for name in ("ig", "cfg", "ag"):
        if getattr(g, f"{name}_scale") == 1.0:
            g = replace(g, **{f"{name}_interval": getattr(default, f"{name}_interval")})
    return g


def label(g: Guidance) -> str:
    """A short name of a guidance setting, e.g. ``ig2-0.3+cfg1.5`` (also its sample folder's name)."""
    parts = []
    for name, default_low, default_high in (("ig", 0.0, 1.0), ("cfg", 0.0, 1.0), ("ag", 0.0, 1.0)):
        scale = getattr(g, f"{name}_scale")
        if scale != 1.0:
            low, high = getattr(g, f"{name}_interval")
            interval = "" if (low, high) == (default_low, default_high) else f"({low:g},{high:g}]"
            parts.append(f"{name}{scale:g}{interval}")
    return "+".join(parts) or "none"


# --- successive halving ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    """A candidate's metric at one sample count, with its bootstrap replicates (for pairing)."""

    value: float
    replicates: np.ndarray


def rung_sizes(num_candidates: int, full: int, eta: int, min_samples: int) -> list[int]:
    """Sample counts of the rungs: ``n0·η^r`` with ``n0 = ⌈full / η^R⌉``, the last rung exactly the
    full count, with as many rungs R + 1 as it takes to cut (η) the candidates down to one, and no
    rung below ``min_samples``. Every rung but the last is a whole number of ``n0``-sample shards,
    so sets grow by whole shards."""
    if eta < 2:
        raise IGError(f"successive halving needs eta >= 2, got {eta}")
    rungs = math.ceil(math.log(num_candidates) / math.log(eta) - 1e-9) if num_candidates > 1 else 0
    while rungs > 0 and math.ceil(full / eta**rungs) < min_samples:
        rungs -= 1
    first = math.ceil(full / eta**rungs)
    return [first * eta**r for r in range(rungs)] + [full]


def paired(a: Score, b: Score) -> Difference:
    """``a − b`` with the error of its per-resample differences (an ``ig.evaluation.uncertainty.Difference``)."""
    from ig.evaluation.uncertainty import Difference  # the statistics import scipy: not at parse time

    diff = a.replicates - b.replicates
    return Difference(a.value - b.value, float(np.std(diff, ddof=1)), True)


def rung_record(n: int, score: Score, best: Score, is_best: bool) -> dict[str, Any]:
    """A candidate's entry for one rung: its metric and error, and its paired difference to the rung's best."""
    from ig.evaluation.uncertainty import verdict

    d = paired(score, best)
    se = float(np.std(score.replicates, ddof=1))
    return {"num_samples": n, METRIC: score.value, "se": se, "delta_to_best": d.delta, "delta_se": d.se,
            "verdict": "best" if is_best else verdict(d, METRIC)}  # fmt: skip


def successive_halving(
    candidates: list[Guidance], sizes: list[int], eta: int, score: Callable[[Guidance, int], Score]
) -> dict[str, Any]:
    """Evaluate every alive candidate at each rung's sample count; keep the best ⌈alive/η⌉, less any
    that is significantly worse than the rung's best (paired); the best of the last rung wins."""
    records = [{"guidance": g.to_dict(), "label": label(g), "rungs": [], "dropped": None, "extension": None}
               for g in candidates]  # fmt: skip
    alive = list(range(len(candidates)))
    for r, n in enumerate(sizes):
        scores = {i: score(candidates[i], n) for i in alive}
        best = min(alive, key=lambda i: scores[i].value)
        for i in alive:
            records[i]["rungs"].append(rung_record(n, scores[i], scores[best], i == best))
        if r == len(sizes) - 1:
            break
        ranked = sorted(alive, key=lambda i: scores[i].value)
        keep = ranked[: max(1, math.ceil(len(alive) / eta))]
        keep = [i for i in keep if records[i]["rungs"][-1]["verdict"] != "worse"]
        for i in set(alive) - set(keep):
            worse = records[i]["rungs"][-1]["verdict"] == "worse"
            records[i]["dropped"] = {
                "rung": r,
                "reason": "significantly worse than the best" if worse else f"not in the best 1/{eta}",
            }
        alive = [i for i in ranked if i in keep]
        log.info(
            "rung %d (%d samples): %d candidate(s) go on: %s", r, n, len(alive), [records[i]["label"] for i in alive]
        )
    chosen = best
    images = sum(c["rungs"][-1]["num_samples"] for c in records)  # sets grow by prefix: the largest counts
    return {"candidates": records, "chosen": records[chosen]["guidance"], "chosen_label": records[chosen]["label"],
            "chosen_index": chosen, "schedule": sizes, "eta": eta, "sampled_images": images}  # fmt: skip


def extension_budget_spent(trace: dict[str, Any]) -> bool:
    """Whether a trace's extension rounds ran out: its last try came in the last round allowed."""
    tried = trace.get("extensions", [])
    return bool(tried) and tried[-1]["round"] == trace.get("extend")


def extend_edges(trace: dict[str, Any], space: Space, rounds: int, score: Callable[[Guidance, int], Score]) -> Space:
    """While the chosen setting sits at an edge of the space (:meth:`Space.edge_sides`) and rounds
    remain, try it moved one step past each such edge, at the full count on the same seeds and labels
    as its own set (so the comparison is paired), and keep the lowest metric: a grid too small on the
    high side (the paper's scales) no longer decides the answer. The tries join the trace's candidates
    and its ``extensions``, their images ``sampled_images``; returns the space widened by the values
    tried. A dimension stops where a step would leave it (an interval (1, 1]), and so does the search."""
    records, full, widened = trace["candidates"], trace["schedule"][-1], space
    trace["extensions"] = []
    for r in range(1, rounds + 1):
        chosen = trace["chosen_index"]
        point = {d: coordinate(records[chosen]["guidance"], d) for d in [*space.values, *space.ranges]}
        tries = []
        for name, side in widened.edge_sides(records[chosen]["guidance"]).items():
            value = widened.beyond(name, side, space.step(name, side))
            try:
                tries.append((name, value, canonical(space.fixed, point | {name: value})))
            except IGError:
                continue  # not a setting (an empty interval): this dimension ends here
            widened = widened.extended(name, value)
        if not tries:
            break
        scores, added = {chosen: score(Guidance.from_dict(records[chosen]["guidance"]), full)}, []
        for _, _, g in tries:
            records.append({"guidance": g.to_dict(), "label": label(g), "rungs": [], "dropped": None, "extension": r})
            added.append(len(records) - 1)
            scores[added[-1]] = score(g, full)
        best = min(scores, key=lambda i: scores[i].value)
        for (name, value, g), i in zip(tries, added, strict=True):
            records[i]["rungs"].append(rung_record(full, scores[i], scores[best], i == best))
            d = paired(scores[i], scores[chosen])
            trace["extensions"].append(
                {"round": r, "dimension": name, "value": value, "index": i, "label": label(g), "guidance": g.to_dict(),
                 "num_samples": full, METRIC: scores[i].value, "se": records[i]["rungs"][-1]["se"],
                 "delta_to_chosen": d.delta, "delta_se": d.se, "became_chosen": i == best}
            )  # fmt: skip
        for i in scores:
            if i != best:
                records[i]["dropped"] = {"extension": r, "reason": f"{records[best]['label']} is better"}
        trace["sampled_images"] += full * len(tries)
        trace |= {"chosen": records[best]["guidance"], "chosen_label": records[best]["label"], "chosen_index": best}
        log.info("extension round %d: %s, chosen %s", r, [records[i]["label"] for i in scores], records[best]["label"])
    return widened


# --- sampling and scoring a candidate ---------------------------------------------------------------
class SampleScorer:
    """FD of a candidate's first n samples, sampled (or reused) under ``out_dir/samples/<label>`` and
    featurised once per shard (``out_dir/features``, each file naming the shard it came from)."""

    def __init__(self, sampler, checkpoint: Path, sampling: SamplingSettings, labels: str, weak_checkpoint,
                 reference: dict, extractor, out_dir: Path, bootstrap: int) -> None:  # fmt: skip
        self.sampler, self.checkpoint, self.sampling, self.labels = sampler, checkpoint, sampling, labels
        self.weak_checkpoint, self.reference, self.extractor = weak_checkpoint, reference, extractor
        self.out_dir, self.bootstrap = out_dir, bootstrap
        from ig.evaluation.metrics import psd_factor

        self.reference_factor = psd_factor(reference["sigma"])  # once, for every candidate and rung

    def __call__(self, guidance: Guidance, n: int) -> Score:
        from ig.evaluation.uncertainty import Bootstrap, frechet_with_replicates
        from ig.sampling.sets import SampleSetSpec, make_shards, shards_to_make

        spec = SampleSetSpec(
            self.checkpoint, guidance, replace(self.sampling, num_samples=n), self.labels, self.weak_checkpoint
        )
        folder = self.out_dir / "samples" / label(guidance)
        todo = shards_to_make(spec, folder, range(spec.num_shards))
        if todo:
            make_shards(spec, folder, todo, self.sampler, progress=False)
        pool = np.concatenate([self._features(folder, k) for k in range(spec.num_shards)])[:n]
        fd, replicates = frechet_with_replicates(
            pool, self.reference["mu"], self.reference["sigma"], Bootstrap(n, self.bootstrap), self.reference_factor
        )
        log.info("%s at %d samples: FD %.3f", label(guidance), n, fd)
        return Score(fd, replicates)

    def _features(self, folder: Path, k: int) -> np.ndarray:
        """Pool features of shard k, cached beside the samples with the shard's digest and the extractor."""
        from ig.utils.io import file_digest, load_npz, save_npz, shard_path

        shard = shard_path(folder, k)
        cache = self.out_dir / "features" / folder.name / shard.name
        made_from = f"{file_digest(shard)} {self.extractor.identity}"
        if cache.is_file():
            cached = load_npz(cache, "feature cache")
            if str(cached["made_from"]) == made_from:
                return cached["pool"]
        pool = self.extractor(load_npz(shard, "sample shard")["arr_0"])["pool"]
        save_npz(cache, pool=pool, made_from=np.array(made_from))
        return pool


# --- outputs ---------------------------------------------------------------------------------------
def plot_space(trace: dict[str, Any], space: Space, path: Path) -> None:
    """The candidates on two dimensions of the space (ranges first, then the longest lists), one
    panel per value of a short listed dimension, any other dimension in the points' labels: colour =
    the rungs a candidate survived, its number = FD at the last rung it reached (at fewer samples for
    those dropped early, so higher: compare colours, not numbers across rungs), the chosen circled,
    settings tried past the space's edges (scored at the full count) rimmed in orange."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ranked = sorted(
        [*space.values, *space.ranges], key=lambda d: (d not in space.ranges, -len(space.values.get(d, ())))
    )
    x_dim, y_dim, rest = ranked[0], (ranked[1] if len(ranked) > 1 else None), ranked[2:]
    panel_dim = min((d for d in rest if d in space.values and len(space.values[d]) <= MAX_PANELS),
                    key=lambda d: len(space.values[d]), default=None)  # fmt: skip
    in_labels = [d for d in rest if d != panel_dim]
    candidates = trace["candidates"]
    panels = sorted({coordinate(c["guidance"], panel_dim) for c in candidates}) if panel_dim else [None]
    fig = Figure(figsize=(4 * len(panels) + 1, 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    rungs = len(trace["schedule"])
    for ax, value in zip(axes, panels, strict=True):
        shown = [c for c in candidates if value is None or coordinate(c["guidance"], panel_dim) == value]
        xs = [coordinate(c["guidance"], x_dim) for c in shown]
        ys = [coordinate(c["guidance"], y_dim) if y_dim else 0.0 for c in shown]
        reached = [rungs if c["extension"] else len(c["rungs"]) for c in shown]
        rims = ["tab:orange" if c["extension"] else "k" for c in shown]
        points = ax.scatter(xs, ys, c=reached, vmin=1, vmax=rungs, s=120, cmap="viridis", edgecolors=rims)
        for x, y, c in zip(xs, ys, shown, strict=True):
            text = "\n".join([f"{c['rungs'][-1][METRIC]:.2f}",
                              *(f"{d}={coordinate(c['guidance'], d):g}" for d in in_labels)])  # fmt: skip
            ax.annotate(text, (x, y), xytext=(0, 9), textcoords="offset points", ha="center", fontsize=7)
            if c["label"] == trace["chosen_label"]:
                ax.scatter([x], [y], s=400, facecolors="none", edgecolors="red", linewidths=2)
        ax.set_xlabel(x_dim)
        ax.set_title(f"{panel_dim} = {value:g}" if panel_dim else "", fontsize=9)
        ax.margins(0.15)
    axes[0].set_ylabel(y_dim or "")
    fig.colorbar(points, ax=axes.tolist(), label="rungs reached", ticks=range(1, rungs + 1))
    tried = sum(bool(c["extension"]) for c in candidates)
    fig.suptitle(f"successive halving, rungs of {trace['schedule']} samples: {len(candidates) - tried} candidates"
                 + (f" and {tried} past the edges (orange)" if tried else "")
                 + f", chosen {trace['chosen_label']} (numbers: FD at the last rung reached)", fontsize=9)  # fmt: skip
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def tune(space: Space, candidates: list[Guidance], sizes: list[int], eta: int, scorer: Callable[[Guidance, int], Score],
         out_dir: Path, extend: int) -> dict[str, Any]:  # fmt: skip
    """Search the candidates with successive halving, extend the space past the edges the choice sits
    at (at most ``extend`` rounds), and write the trace, the chosen entry and the plot."""
    log.info("%d candidates, rungs of %s samples", len(candidates), sizes)
    scorer = functools.cache(scorer)  # an extension round compares with the chosen's last score
    trace = successive_halving(candidates, sizes, eta, scorer)
    widened = extend_edges(trace, space, extend, scorer)
    grid = len(candidates) * sizes[-1]
    trace |= {"metric": METRIC, "grid_images": grid, "sample_share": trace["sampled_images"] / grid,
              "space": {"values": space.values, "ranges": space.ranges, "fixed": space.fixed.to_dict()},
              "extend": extend, "chosen_at_edge": widened.edges(trace["chosen"])}  # fmt: skip
    if trace["chosen_at_edge"]:
        spent = extension_budget_spent(trace)
        log.warning("the chosen setting lies at the edge of the space in %s%s: widen it there, the best may lie beyond",
                    ", ".join(trace["chosen_at_edge"]),
                    f" after the whole extension budget ({extend} round(s)) ran out" if spent else "")  # fmt: skip
    write_json(out_dir / "trace.json", trace)
    plot_space(trace, widened, out_dir / "space.png")
    write_json(out_dir / "chosen.json", trace["chosen"])
    return trace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint to tune guidance for")
    p.add_argument(
        "--space",
        required=True,
        help="YAML file: dimensions (lists or {range: [lo, hi]}), optional `fixed`; or the workflow's tuning spec",
    )
    p.add_argument("--reference", type=Path, required=True, help="reference .npz of `ig reference`")
    p.add_argument("--extractor", required=True, help="inception:<weights.pth> or classifier:<checkpoint.pt>")
    p.add_argument("--out-dir", type=Path, required=True, help="samples, features, trace.json, chosen.json, space.png")
    p.add_argument("--candidates", type=int, help="points drawn from a space with ranges (default: the grid)")
    p.add_argument("--eta", type=int, default=3, help="keep the best 1/eta at each rung (default 3)")
    p.add_argument("--min-samples", type=int, default=100, help="smallest rung (default 100)")
    p.add_argument(
        "--extend",
        type=int,
        default=EXTEND_ROUNDS,
        help=f"rounds of stepping past an edge of the space where the choice lies (default {EXTEND_ROUNDS}; 0: none)",
    )
    p.add_argument("--bootstrap", type=int, default=20, help="bootstrap resamples behind each error")
    p.add_argument("--space-seed", type=int, default=0, help="seed of the Halton sequence")
    p.add_argument("--labels", choices=LABEL_MODES, default="random")
    add_sampling_arguments(p)  # --num-samples: the full count, where the winner is confirmed
    p.add_argument("--ag-checkpoint", type=Path, help="weak model checkpoint (for ag_scale)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the job's GPU if any, else cpu)")
    p.add_argument("--assets-dir", help="where autoencoder weights resolve (default: $IG_ASSETS or assets)")


@dataclass(frozen=True)
class Problem:
    """What a tuning run searches: the space, its candidates, the rung sizes and the scorer."""

    space: Space
    candidates: list[Guidance]
    sizes: list[int]
    eta: int
    extend: int
    scorer: SampleScorer


def problem_from_args(args: argparse.Namespace) -> Problem:
    """Load the checkpoint, extractor and reference of ``ig tune``'s arguments (also used by
    ``bench/tuning_vs_grid.py``, which scores the same candidates exhaustively)."""
    from ig.distributed import process_context
    from ig.evaluation.evaluate import load_reference
    from ig.evaluation.extractors import load_extractor
    from ig.sampling.sets import Sampler

    if args.extend < 0:
        raise IGError(f"--extend must be at least 0, got {args.extend}")
    spec = read_yaml_mapping(args.space, what="tuning space")
    if spec.get("kind") == "tuning":  # the workflow's job spec (ig.campaign.specs)
        spec = {**spec["space"], "fixed": spec["fixed"]}
    space = Space.from_dict({k: v for k, v in spec.items() if k != "fixed"}, spec.get("fixed"))
    sampling = sampling_from_args(args)
    device = process_context(args.device).device
    extractor = load_extractor(args.extractor, device)
    reference = load_reference(args.reference)
    if str(reference["extractor"]) != extractor.identity:
        raise IGError(f"the reference was made with {reference['extractor']}, not {extractor.identity}; rebuild it")
    candidates = space.candidates(args.candidates, args.space_seed)
    sizes = rung_sizes(len(candidates), sampling.num_samples, args.eta, args.min_samples)
    sampling = replace(sampling, shard_size=sizes[0])  # rungs before the last are whole shards: sets grow by prefix
    sampler = Sampler.load(args.checkpoint, device, args.ag_checkpoint, args.assets_dir)
    scorer = SampleScorer(sampler, args.checkpoint, sampling, args.labels, args.ag_checkpoint, reference, extractor,
                          args.out_dir, args.bootstrap)  # fmt: skip
    return Problem(space, candidates, sizes, args.eta, args.extend, scorer)


def run(args: argparse.Namespace) -> None:
    p = problem_from_args(args)
    trace = tune(p.space, p.candidates, p.sizes, p.eta, p.scorer, args.out_dir, p.extend)
    chosen = trace["candidates"][trace["chosen_index"]]["rungs"][-1]
    print(
        f"chosen {trace['chosen_label']}: FD {chosen[METRIC]:.3f} ± {chosen['se']:.3f} at {chosen['num_samples']} "
        f"samples; {trace['sampled_images']:,} images sampled, {100 * trace['sample_share']:.0f} % of the grid's"
        + (f"; {len(trace['extensions'])} setting(s) tried past its edges" if trace["extensions"] else "")
        + (f"; at the edge of the space in {', '.join(trace['chosen_at_edge'])}" if trace["chosen_at_edge"] else "")
    )
