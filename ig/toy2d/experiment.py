"""``ig toy2d``: the paper's 2D figures (guidance comparison, training acceleration) with metrics,
and the paper's statements about them judged over seeds (``claims.md``).

Per seed: train the main class-conditional denoiser with the IG loss (label dropout gives CFG's
null class), two small short-trained guides as in EDM2's toy (a conditional one for autoguidance,
an unconditional one for EDM2's form of CFG), and a denoiser trained with the Section-6 ω
objective; sample every method with ``ig.guidance`` and ``ig.samplers`` (the image models' code)
from one shared noise, so rows of a seed differ only by model and guidance; score samples with
``ig.toy2d.metrics``. Seeds run in parallel worker processes (one thread each: the networks are
too small for intra-op threads).

Sampling uses the Heun ODE on a grid shifted towards data (shift 8): leaf branches are ~0.005
wide, and the SDE sampler's final mean step from t = 0.04 blurs them (with the exact velocity,
about a third of SDE-250 samples land outside the outline, 2 % of Heun-32 ones).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import queue
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ig.errors import IGError
from ig.guidance import Guidance, GuidedVelocity
from ig.sampling.settings import SamplerSettings
from ig.utils.io import atomic_path, read_yaml_mapping, write_json

# torch and the toy's modules (which import it) are imported where used, so that `ig toy2d --help`
# needs none of them
if TYPE_CHECKING:
    import torch

    from ig.toy2d.claims import Claim

# Scales act on the velocity (the same extrapolation as on the score or the denoiser). The paper
# states no scales for its toy: IG and autoguidance share 2 (like for like), CFG uses 3. EDM2's
# toy, which the paper's figure follows, guides with 3 (autoguidance) and 4 (CFG, towards a small
# unconditional net: the "CFG (EDM2 guide)" row).
DEFAULT_GUIDANCE: dict[str, dict[str, Any]] = {
    "CFG": {"cfg_scale": 3.0},
    "autoguidance": {"ag_scale": 2.0},
    "IG": {"ig_scale": 2.0},
    "IG+CFG": {"ig_scale": 2.0, "cfg_scale": 2.0},
}
PAPER_IG_INTERVAL = (0.3, 1.0)  # the paper's σ ∈ (0.3, 1], read as t (σ_t = t on the SiT path)
EDM2_CFG = Guidance(ag_scale=4.0)  # with the unconditional guide as the weak network
SAMPLE_CHUNK = 2048  # rows per sampler call: activations stay in cache (~1.3× faster than one call)


@dataclass(frozen=True)
class Settings:
    iters: int = 4096  # main model; EDM2's toy length
    early_iters: int = 512  # early snapshot, both guides and the ω model (EDM2's guiding nets: 512)
    batch: int = 1024
    width: int = 64
    weak_width: int = 32
    depth: int = 4
    ig_layer: int = 1
    lam: float = 0.5
    omega: float = 0.5  # its fixed point is IG with scale 1 / (1 − ω) = 2, the IG default
    samples_per_class: int = 4096  # s.e. of an outside rate ≤ 0.5 % (two classes); claims are judged over seeds
    steps: int = 32  # EDM2's Heun steps
    shift: float = 8.0
    seeds: int = 4  # the claims' Student-t intervals have seeds − 1 degrees of freedom
    grid: int = 300


QUICK = Settings(iters=128, early_iters=32, batch=256, samples_per_class=256, steps=8, seeds=2, grid=64)


@dataclass(frozen=True)
class Row:
    """One line of the table: which model snapshot, sampled with which guidance."""

    name: str
    model: str  # "main", "omega" or "ground truth"
    iters: int
    guidance: Guidance = Guidance()
    guide: str = "weak"  # autoguidance's weak network: "weak" or "unconditional" (EDM2's CFG)

    @property
    def key(self) -> str:
        """The row's name in metrics, samples and ``metrics.json``, e.g. ``IG @512``."""
        return f"{self.name} @{self.iters}"


def table_rows(settings: Settings, guidance: dict[str, Guidance]) -> list[Row]:
    late, early = settings.iters, settings.early_iters
    return [
        Row("ground truth", "ground truth", 0),
        Row("no guidance", "main", late),
        *(Row(name, "main", late, g) for name, g in guidance.items()),
        Row("IG interval", "main", late, replace(guidance["IG"], ig_interval=PAPER_IG_INTERVAL)),
        Row("CFG (EDM2 guide)", "main", late, EDM2_CFG, guide="unconditional"),
        Row("no guidance", "main", early),
        Row("IG", "main", early, guidance["IG"]),
        Row("ω objective", "omega", early),
    ]


def paper_claims(settings: Settings) -> list[Claim]:
    """The paper's statements about its toy figures, as comparisons of table rows."""
    from ig.toy2d.claims import Claim

    late, early = settings.iters, settings.early_iters

    def key(name: str, iters: int = late) -> str:
        return Row(name, "main", iters).key

    none = key("no guidance")
    return [
        Claim("a", "IG removes outliers", key("IG"), none, "outside"),
        Claim("b", "CFG suppresses inter-class confusion", key("CFG"), none, "confusion"),
        Claim("b", "CFG suppresses inter-class confusion", key("CFG (EDM2 guide)"), none, "confusion"),
        Claim("c", "CFG removes outliers", key("CFG"), none, "outside"),
        Claim("c", "CFG removes outliers", key("CFG (EDM2 guide)"), none, "outside"),
        Claim("d", "IG + CFG beats IG alone", key("IG+CFG"), key("IG"), "outside"),
        Claim("d", "IG + CFG beats IG alone", key("IG+CFG"), key("IG"), "confusion"),
        Claim("e", f"IG at {early} iterations matches no guidance at {late}", key("IG", early), none, "outside", True),
        Claim("f", "the interval (0.3, 1] helps IG", key("IG interval"), key("IG"), "outside"),
    ]


def load_guidance(path: str | None) -> dict[str, Guidance]:
    """Defaults, with the methods named in a YAML mapping (method → Guidance keys) replaced."""
    settings = dict(DEFAULT_GUIDANCE)
    if path is not None:
        user = read_yaml_mapping(path, what="guidance YAML")
        if not set(user) <= set(DEFAULT_GUIDANCE):
            raise IGError(f"guidance YAML {path} must map some of {sorted(DEFAULT_GUIDANCE)} to guidance settings")
        settings.update(user)
    return {name: Guidance.from_dict(d or {}) for name, d in settings.items()}


class _Ticker:
    """Forwards progress counts to ``sink`` in batches (a queue put per step would be IPC-bound)."""

    def __init__(self, sink: Callable[[int], Any], every: int = 64) -> None:
        self.sink, self.every, self.pending = sink, every, 0

    def __call__(self, n: int = 1) -> None:
        self.pending += n
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.sink(self.pending)
            self.pending = 0


def work_units(settings: Settings, rows: int) -> int:
    """Progress units per seed: training iterations (main, and three nets of ``early_iters``) plus
    sampler steps."""
    return settings.iters + 3 * settings.early_iters + rows * settings.steps


def run_seed(
    seed: int, settings: Settings, guidance: dict[str, Guidance], tick: Callable[[int], None]
) -> tuple[dict[str, dict[str, float]], dict[str, torch.Tensor]]:
    """Train, sample and score every row for one seed; returns metrics and class-A samples per row."""
    import torch

    from ig.sampling.integrators import sample
    from ig.toy2d.metrics import evaluate
    from ig.toy2d.mixture import TreeMixture
    from ig.toy2d.model import NullLabel, ToyDenoiser
    from ig.toy2d.train import ToyTraining, train
    from ig.utils.seeding import derive_seed
    from ig.utils.seeding import generator as named_generator

    tree = TreeMixture()
    levels = tree.outline_levels()
    config = ToyTraining(batch=settings.batch, lam=settings.lam)
    early = settings.early_iters

    def fit(name: str, width: int, ig_layer: int, cfg: ToyTraining, snapshots: list[int]) -> dict[int, torch.nn.Module]:
        model = ToyDenoiser(width, settings.depth, ig_layer)
        return train(model, tree, cfg, snapshots, named_generator("toy2d", seed, name), on_step=lambda: tick(1))

    torch.manual_seed(derive_seed("toy2d", seed, "init"))
    main = fit("main", settings.width, settings.ig_layer, config, [early, settings.iters])
    weak = fit("weak", settings.weak_width, 0, replace(config, lam=0.0), [early])
    omega = fit("omega", settings.width, settings.ig_layer, replace(config, omega=settings.omega), [early])
    uncond = fit("unconditional", settings.weak_width, 0, replace(config, lam=0.0, label_dropout=1.0), [early])
    models = {"main": main, "omega": omega}
    guides = {"weak": weak[early], "unconditional": NullLabel(uncond[early])}

    n = settings.samples_per_class
    y = torch.arange(tree.num_classes).repeat_interleave(n)
    noise = torch.randn(len(y), 2, generator=named_generator("toy2d", seed, "noise"))
    sampler = SamplerSettings(method="heun", steps=settings.steps, shift=settings.shift)
    metrics, samples = {}, {}
    for row in table_rows(settings, guidance):
        g = named_generator("toy2d", seed, "sample", row.key)
        if row.model == "ground truth":
            x = tree.sample(y, g)
        else:
            velocity = GuidedVelocity(models[row.model][row.iters], row.guidance, weak_model=guides[row.guide])
            parts = zip(noise.split(SAMPLE_CHUNK), y.split(SAMPLE_CHUNK), strict=True)
            x = torch.cat([sample(velocity, z, labels, sampler) for z, labels in parts])
        metrics[row.key] = evaluate(tree, x, y, levels, g)
        samples[row.key] = x[y == 0]
        tick(settings.steps)
    return metrics, samples


def _worker_seed(seed: int, settings: Settings, guidance: dict[str, Guidance], progress) -> tuple:
    import torch

    torch.set_num_threads(1)
    ticker = _Ticker(progress.put)
    result = run_seed(seed, settings, guidance, ticker)
    ticker.flush()
    return result


def run_all(settings: Settings, guidance: dict[str, Guidance], workers: int) -> list[tuple]:
    """``run_seed`` for every seed, in ``workers`` processes (1: in this process), with a progress bar."""
    from tqdm import tqdm

    total = settings.seeds * work_units(settings, len(table_rows(settings, guidance)))
    with tqdm(total=total, desc="toy2d", unit="step", mininterval=1.0, dynamic_ncols=True) as bar:
        if workers == 1:
            return [run_seed(s, settings, guidance, bar.update) for s in range(settings.seeds)]
        ctx = get_context("spawn")
        with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            progress = manager.Queue()
            futures = [pool.submit(_worker_seed, s, settings, guidance, progress) for s in range(settings.seeds)]
            while not all(f.done() for f in futures):
                with contextlib.suppress(queue.Empty):
                    bar.update(progress.get(timeout=0.5))
            return [f.result() for f in futures]


def aggregate(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and sample standard deviation over seeds, per row and metric."""
    import torch

    from ig.toy2d.metrics import METRICS

    out = {}
    for key in per_seed[0]:
        out[key] = {}
        for metric in METRICS:
            values = torch.tensor([m[key][metric] for m in per_seed], dtype=torch.float64)
            std = float(values.std()) if len(values) > 1 else 0.0
            out[key][metric] = (float(values.mean()), std)
    return out


def describe(row: Row) -> str:
    """Compact guidance label, e.g. ``IG 3 (0, 1] + CFG 2 (0, 1]``; autoguidance towards the
    unconditional guide is CFG (EDM2's form: the row's name says so)."""
    g = row.guidance
    ag = "AG" if row.guide == "weak" else "CFG"
    parts = []
    for label, scale, (low, high) in (
        ("IG", g.ig_scale, g.ig_interval),
        ("CFG", g.cfg_scale, g.cfg_interval),
        (ag, g.ag_scale, g.ag_interval),
    ):
        if scale != 1.0:
            parts.append(f"{label} {scale:g} ({low:g}, {high:g}]")
    return " + ".join(parts) or "-"


def write_tables(out_dir: Path, rows: list[Row], stats: dict[str, dict[str, tuple[float, float]]], seeds: int) -> str:
    """``metrics.csv`` (raw means and stds) and ``metrics.md`` (formatted); returns the Markdown."""
    from ig.toy2d.metrics import DISPLAY, METRICS, show

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "model", "iters", "guidance", *(f"{m}_{s}" for m in METRICS for s in ("mean", "std"))])
    lines = [
        f"| method | iters | guidance | {' | '.join(DISPLAY[m][0] for m in METRICS)} |",
        "| --- | ---: | --- |" + " ---: |" * len(METRICS),
    ]
    for row in rows:
        writer.writerow(
            [row.name, row.model, row.iters, describe(row), *(v for m in METRICS for v in stats[row.key][m])]
        )
        cells = [f"{show(m, stats[row.key][m][0])} ± {show(m, stats[row.key][m][1])}" for m in METRICS]
        iters = "-" if row.model == "ground truth" else str(row.iters)
        lines.append(f"| {row.name} | {iters} | {describe(row)} | {' | '.join(cells)} |")
    markdown = (
        f"Mean ± std over {seeds} seeds (training and sampling); per class, averaged over classes A and B.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    with atomic_path(out_dir / "metrics.csv") as tmp:
        tmp.write_text(buf.getvalue())
    with atomic_path(out_dir / "metrics.md") as tmp:
        tmp.write_text(markdown)
    return markdown


def write_figures(
    out_dir: Path, settings: Settings, rows: list[Row], stats: dict, samples: dict[str, torch.Tensor]
) -> None:
    """The guidance comparison (every method on the final model) and the training figure."""
    from ig.toy2d.metrics import show
    from ig.toy2d.mixture import OUTLINE_DROP, TreeMixture
    from ig.toy2d.plot import Background, Panel, save_figure

    tree = TreeMixture()
    levels = (tree.union.mode_log_prob() - OUTLINE_DROP, tree.outline_levels()[0])
    background = Background(tree, settings.grid, levels)

    def panel(row: Row, title: str | None = None) -> Panel:
        s = stats[row.key]
        if title is None:
            title = row.key if row.guidance == Guidance() else f"{row.key}: {describe(row)}"
        numbers = f"outside {show('outside', s['outside'][0])}%, other class {show('confusion', s['confusion'][0])}%"
        return Panel(f"{title}\n{numbers}, coverage {100 * s['coverage'][0]:.0f}%", samples[row.key])

    late, early = settings.iters, settings.early_iters
    guided = [panel(rows[0], "ground truth"), *(panel(r) for r in rows if r.model == "main" and r.iters == late)]
    save_figure(out_dir / "toy2d_guidance.png", guided, background, columns=4)
    by_key = {r.key: r for r in rows}
    training = [
        panel(by_key[f"no guidance @{early}"]),
        panel(by_key[f"no guidance @{late}"]),
        panel(by_key[f"IG @{early}"]),
        panel(by_key[f"ω objective @{early}"], f"ω objective (ω={settings.omega:.2f}) @{early}"),
    ]
    save_figure(out_dir / "toy2d_training.png", training, background, columns=4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", required=True, help="folder for the figures and metrics tables")
    parser.add_argument("--quick", action="store_true", help="tiny version for CI (seconds; numbers not meaningful)")
    parser.add_argument(
        "--guidance", metavar="YAML", help=f"override method settings; keys: {sorted(DEFAULT_GUIDANCE)}"
    )
    parser.add_argument("--seeds", type=int, help="number of seeds, at least 2 for the claims (full: 4, quick: 2)")
    parser.add_argument(
        "--workers", type=int, default=len(os.sched_getaffinity(0)), help="parallel seed processes (default: CPUs)"
    )
    parser.add_argument("--lam", type=float, help="weight of the intermediate head's loss (default 0.5)")
    parser.add_argument("--omega", type=float, help="Section-6 ω of the ω-objective model (default 0.5)")


def run(args: argparse.Namespace) -> None:
    import torch

    from ig.toy2d.claims import check, write_claims

    settings = QUICK if args.quick else Settings()
    overrides = {k: getattr(args, k) for k in ("seeds", "lam", "omega") if getattr(args, k) is not None}
    settings = replace(settings, **overrides)
    if settings.seeds < 2:
        raise IGError(f"--seeds must be >= 2 (the claims are judged over seeds), got {settings.seeds}")
    if args.workers < 1:
        raise IGError(f"--workers must be >= 1, got {args.workers}")
    if not 0 <= settings.omega < 1:
        raise IGError(f"--omega must lie in [0, 1) (it acts like IG scale 1/(1-ω)), got {settings.omega}")
    guidance = load_guidance(args.guidance)
    out_dir = Path(args.out_dir)

    torch.set_num_threads(1)  # tiny networks: intra-op threads only contend; parallelism is per seed
    results = run_all(settings, guidance, min(args.workers, settings.seeds))
    per_seed = [metrics for metrics, _ in results]
    stats = aggregate(per_seed)
    rows = table_rows(settings, guidance)
    markdown = write_tables(out_dir, rows, stats, settings.seeds)
    claims = write_claims(out_dir, [check(c, per_seed) for c in paper_claims(settings)])
    write_json(
        out_dir / "metrics.json",
        {
            "settings": asdict(settings),
            "guidance": {name: g.to_dict() for name, g in guidance.items()},
            "per_seed": per_seed,
        },
    )
    write_figures(out_dir, settings, rows, stats, results[0][1])
    print(markdown)
    print(claims)
    print(f"wrote {out_dir}/toy2d_guidance.png, toy2d_training.png, metrics.*, claims.md, claims.json")
