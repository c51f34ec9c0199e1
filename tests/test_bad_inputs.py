"""Every bad input a user can give the ``ig`` commands: exit code 2, one line that names the problem
(and the fix), and nothing partial left behind. Table-driven: each case builds its inputs in a
temporary folder, runs the command in this process, and checks the last line of stderr. A case
that changes one option of a valid command line gives it again: the last value wins."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from ig.cli import main
from ig.train.benchmarks import write_random_latents
from ig.utils.io import file_digest, save_npz
from tests.test_sampling import _checkpoint

NUM_CLASSES = 10


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path], list[str]]  # the command line, given the case's folder (inputs made there)
    expect: str  # words the one-line error must contain
    outputs: tuple[str, ...] = ()  # paths (relative to the folder) that must not exist afterwards


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """What every case can point at: a tiny checkpoint, one without a head, latents, a run config,
    a classifier with its reference, a sample set."""
    root = tmp_path_factory.mktemp("inputs")
    _checkpoint(root / "ckpt.pt", seed=0)
    from ig.checkpoints import load_milestone, save_milestone
    from ig.models import create_model

    plain = load_milestone(root / "ckpt.pt")
    plain["model_config"] = {**plain["model_config"], "ig_layer": 0}
    plain["ema"] = create_model(**plain["model_config"]).state_dict()
    save_milestone(root / "no-head.pt", plain, training_state=None)
    misfit = load_milestone(root / "ckpt.pt")
    misfit["model_config"] = {**misfit["model_config"], "depth": 3}
    save_milestone(root / "misfit.pt", misfit, training_state=None)
    write_random_latents(root / "latents", 40, (4, 8, 8), NUM_CLASSES, shard_size=16)
    (root / "run.yaml").write_text(
        yaml.safe_dump({"model": {"name": "SiT-T/2", "input_size": 8, "num_classes": 10}, "global_batch": 8})
    )
    (root / "not-torch.pt").write_text("hello")
    from ig.evaluation.classifier import SmallCNN, save_classifier

    save_classifier(SmallCNN(widths=(4, 8, 8)), root / "clf.pt", dataset="fashion-mnist", resolution=32)
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    save_npz(root / "real.npz", arr_0=images)
    main(
        [
            "reference",
            "--images",
            str(root / "real.npz"),
            "--extractor",
            f"classifier:{root / 'clf.pt'}",
            "--out",
            str(root / "ref.npz"),
            "--no-progress",
        ]
    )
    main(
        [
            "sample",
            "--checkpoint",
            str(root / "ckpt.pt"),
            "--out-dir",
            str(root / "samples"),
            "--num-samples",
            "16",
            "--shard-size",
            "8",
            "--batch-size",
            "8",
            "--steps",
            "2",
            "--manifest",
            str(root / "samples/samples.json"),
        ]
    )
    (root / "a-file").write_text("in the way")
    return root


def _copy_latents(folder: Path, edit: Callable[[dict], None], fix_checksum: bool) -> Path:
    """The inputs' latents with shard 1 edited (and its checksum in the manifest updated, or not)."""
    latents = folder / "latents"
    shutil.copytree(folder.parent / "latents", latents)
    shard = latents / "shard-00001.npz"
    arrays = dict(np.load(shard))
    edit(arrays)
    save_npz(shard, **arrays)
    if fix_checksum:
        manifest = json.loads((latents / "manifest.json").read_text())
        manifest["shards"][1]["sha256"] = file_digest(shard)
        (latents / "manifest.json").write_text(json.dumps(manifest))
    return latents


def _truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:2000])
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def I(name: str) -> Callable[[Path], str]:  # noqa: E743 - reads like the inputs folder
    """A file of the shared inputs (each case's folder lies inside the inputs folder)."""
    return lambda d: str(d.parent / name)


def _sample(*extra) -> Callable[[Path], list[str]]:
    def argv(d: Path) -> list[str]:
        base = [
            "sample",
            "--checkpoint",
            I("ckpt.pt")(d),
            "--out-dir",
            str(d / "out"),
            "--num-samples",
            "8",
            "--shard-size",
            "8",
            "--steps",
            "2",
        ]
        return base + [e(d) if callable(e) else e for e in extra]

    return argv


def _train(*extra, run: Callable[[Path], str] | None = None, latents: Callable[[Path], str] | None = None):
    run, latents = run or I("run.yaml"), latents or I("latents")

    def argv(d: Path) -> list[str]:
        base = [
            "train",
            "--run-config",
            run(d),
            "--latents",
            latents(d),
            "--out",
            str(d / "ms.pt"),
            "--workdir",
            str(d / "work"),
            "--until-step",
            "2",
            "--no-progress",
            "--device",
            "cpu",
        ]
        return base + [e(d) if callable(e) else e for e in extra]

    return argv


def _evaluate(samples: Callable[[Path], str], *extra) -> Callable[[Path], list[str]]:
    def argv(d: Path) -> list[str]:
        base = [
            "evaluate",
            samples(d),
            "--reference",
            I("ref.npz")(d),
            "--extractor",
            f"classifier:{I('clf.pt')(d)}",
            "--out",
            str(d / "m.json"),
            "--no-progress",
        ]
        return base + [e(d) if callable(e) else e for e in extra]

    return argv


def _tampered_samples(d: Path) -> str:
    shutil.copytree(d.parent / "samples", d / "samples")
    shard = d / "samples" / "shard-00001.npz"
    shard.write_bytes(shard.read_bytes()[:-5] + b"xxxxx")
    return str(d / "samples" / "samples.json")


def _space(text: str) -> Callable[[Path], list[str]]:
    def argv(d: Path) -> list[str]:
        return [
            "tune",
            "--checkpoint",
            I("ckpt.pt")(d),
            "--space",
            str(_write(d / "space.yaml", text)),
            "--reference",
            I("ref.npz")(d),
            "--extractor",
            f"classifier:{I('clf.pt')(d)}",
            "--out-dir",
            str(d / "out"),
        ]

    return argv


def _run_config(d: Path, **overrides) -> str:
    config = {"model": {"name": "SiT-T/2", "input_size": 8, "num_classes": 10}, "global_batch": 8} | overrides
    return str(_write(d / "bad-run.yaml", yaml.safe_dump(config)))


CASES = [
    # --- ig sample ----------------------------------------------------------------------------------
    Case("sample: batch size 0", _sample("--batch-size", "0"), "batch_size must be a positive integer", ("out",)),
    Case("sample: no samples", _sample("--num-samples", "0"), "num_samples must be a positive integer", ("out",)),
    Case("sample: one SDE step", _sample("--steps", "1"), "steps must be an integer >= 2 for sde", ("out",)),
    Case("sample: t_last outside (0, 1)", _sample("--t-last", "1.5"), "t_last", ("out",)),
    Case("sample: unknown method", _sample("--method", "dpm"), "invalid choice: 'dpm'", ("out",)),
    Case(
        "sample: checkpoint missing",
        _sample("--checkpoint", lambda d: str(d / "nope.pt")),
        "checkpoint",
        ("out",),
    ),
    Case(
        "sample: not a torch file",
        _sample("--checkpoint", I("not-torch.pt")),
        "corrupt or not a torch file",
        ("out",),
    ),
    Case(
        "sample: weights do not fit the recorded model",
        _sample("--checkpoint", I("misfit.pt")),
        "do not fit its recorded model",
        ("out",),
    ),
    Case("sample: interval low > high", _sample("--ig-interval", "0.9", "0.1"), "low < high", ("out",)),
    Case(
        "sample: IG on a model without a head",
        _sample("--ig-scale", "2", "--checkpoint", I("no-head.pt")),
        "needs a model with an intermediate head",
        ("out",),
    ),
    Case("sample: autoguidance without a weak model", _sample("--ag-scale", "2"), "needs a weak model", ("out",)),
    Case(
        "sample: IG and autoguidance together",
        _sample("--ig-scale", "2", "--ag-scale", "2"),
        "set one of ig_scale, ag_scale to 1",
        ("out",),
    ),
    Case(
        "sample: output folder under a file",
        _sample("--out-dir", lambda d: I("a-file")(d) + "/out"),
        "a file is in the way",
    ),
    Case("sample: CUDA without a GPU", _sample("--device", "cuda"), "no CUDA device is visible", ("out",)),
    Case("sample: shard out of range", _sample("--shard", "5"), "shard index 5 out of range", ("out",)),
    Case(
        "sample: guidance file missing",
        _sample("--guidance-file", lambda d: str(d / "none.json")),
        "guidance file not found",
        ("out",),
    ),
    Case(
        "sample: guidance file with an unknown key",
        _sample("--guidance-file", lambda d: str(_write(d / "g.yaml", "ig_weight: 2\n"))),
        "unknown guidance key",
        ("out",),
    ),
    # --- ig train -----------------------------------------------------------------------------------
    Case("train: run config missing", _train(run=lambda d: str(d / "none.yaml")), "run config not found", ("ms.pt",)),
    Case(
        "train: unknown run config key",
        _train(run=lambda d: _run_config(d, lrr=0.1)),
        "run config key 'lrr' is unknown",
        ("ms.pt",),
    ),
    Case(
        "train: mistyped run config value",
        _train(run=lambda d: _run_config(d, global_batch="many")),
        "'global_batch' must be int",
        ("ms.pt",),
    ),
    Case(
        "train: IG loss without a head",
        _train(
            run=lambda d: _run_config(
                d, model={"name": "SiT-T/2", "input_size": 8, "num_classes": 10, "ig_layer": 0}, loss={"lam": 0.5}
            )
        ),
        "model.ig_layer is 0",
        ("ms.pt",),
    ),
    Case("train: latents missing", _train(latents=lambda d: str(d / "none")), "latent manifest", ("ms.pt",)),
    Case(
        "train: truncated latent shard",
        _train(latents=lambda d: _truncated_latents(d)),
        "does not match its checksum",
        ("ms.pt",),
    ),
    Case(
        "train: label out of range",
        _train(latents=lambda d: str(_copy_latents(d, lambda a: a["labels"].__setitem__(0, NUM_CLASSES), True))),
        "outside 0..9",
        ("ms.pt",),
    ),
    Case(
        "train: NaN latents",
        _train(latents=lambda d: str(_copy_latents(d, lambda a: a["mean"].__setitem__(0, np.nan), True))),
        "non-finite mean",
        ("ms.pt",),
    ),
    Case(
        "train: output under a file",
        _train("--out", lambda d: I("a-file")(d) + "/ms.pt"),
        "a file is in the way",
    ),
    Case("train: init not a milestone", _train("--init", I("not-torch.pt")), "corrupt or not a torch file", ("ms.pt",)),
    Case(
        "train: model does not fit the latents",
        _train(run=lambda d: _run_config(d, model={"name": "SiT-T/2", "input_size": 16, "num_classes": 10})),
        "takes 4x16x16 latents",
        ("ms.pt",),
    ),
    Case("train: CUDA without a GPU", _train("--device", "cuda"), "no CUDA device is visible", ("ms.pt",)),
    Case(
        "train: an imported release cannot be continued",
        _train("--init", I("ckpt.pt")),
        "records no training state",
        ("ms.pt",),
    ),
    # --- ig evaluate --------------------------------------------------------------------------------
    Case(
        "evaluate: a shard changed after sampling",
        _evaluate(_tampered_samples),
        "does not match its checksum",
        ("m.json",),
    ),
    Case(
        "evaluate: reference missing",
        _evaluate(I("samples/samples.json"), "--reference", lambda d: str(d / "none.npz")),
        "reference statistics not found",
        ("m.json",),
    ),
    Case(
        "evaluate: bad extractor spec",
        _evaluate(I("samples/samples.json"), "--extractor", "resnet:x"),
        "extractor spec must be",
        ("m.json",),
    ),
    Case(
        "evaluate: float images",
        _evaluate(lambda d: str(_npz(d, np.zeros((4, 32, 32, 3), np.float32)))),
        "must be uint8",
        ("m.json",),
    ),
    Case(
        "evaluate: one image",
        _evaluate(lambda d: str(_npz(d, np.zeros((1, 32, 32, 3), np.uint8)))),
        "at least 2",
        ("m.json",),
    ),
    Case(
        "evaluate: unknown P/R arithmetic",
        _evaluate(I("samples/samples.json"), "--pr-arithmetic", "fp8"),
        "invalid choice: 'fp8'",
        ("m.json",),
    ),
    # --- ig encode ----------------------------------------------------------------------------------
    Case("encode: zero shards", lambda d: _encode(d, "--num-shards", "0"), "cannot split", ("lat/manifest.json",)),
    Case(
        "encode: shard out of range",
        lambda d: _encode(d, "--num-shards", "2", "--shard", "9"),
        "shard 9 out of range",
        ("lat/manifest.json",),
    ),
    Case(
        "encode: ImageNet folder missing",
        lambda d: _encode(d, data=["--dataset", "imagenet", "--data-root", str(d / "no-imagenet")]),
        "image folder not found",
        ("lat",),
    ),
    Case(
        "encode: autoencoder missing",
        lambda d: _encode(d, ae=str(d / "no-ae")),
        "not found: give a local path",
        ("lat",),
    ),
    # --- ig tune ------------------------------------------------------------------------------------
    Case("tune: unknown dimension", _space("ig_weight: [1, 2]\n"), "unknown or no dimension", ("out",)),
    Case("tune: reversed range", _space("ig_scale: {range: [3, 1]}\n"), "low < high", ("out",)),
    Case(
        "tune: a range without a count", _space("ig_scale: {range: [1, 3]}\n"), "needs a number of candidates", ("out",)
    ),
    Case("tune: eta 1", lambda d: _space("ig_scale: [1, 2]\n")(d) + ["--eta", "1"], "eta >= 2", ("out/trace.json",)),
    # --- ig reference, table, claims, plan ------------------------------------------------------------
    Case(
        "reference: images missing",
        lambda d: [
            "reference",
            "--images",
            str(d / "none.npz"),
            "--extractor",
            f"classifier:{I('clf.pt')(d)}",
            "--out",
            str(d / "ref.npz"),
        ],
        "image file not found",
        ("ref.npz",),
    ),
    Case(
        "table: config not YAML",
        lambda d: ["table", "--config", str(_write(d / "c.yaml", "name: [unclosed\n")), "--out-dir", str(d / "t")],
        "is not valid YAML",
        ("t",),
    ),
    Case(
        "claims: unknown config key",
        lambda d: [
            "claims",
            "--config",
            str(_write(d / "c.yaml", (Path(__file__).parents[1] / "config/config.yaml").read_text() + "\ndatta: 1\n")),
            "--out",
            str(d / "R.md"),
        ],
        "Additional properties are not allowed",
        ("R.md",),
    ),
    Case("plan: config missing", lambda d: ["plan", "--config", str(d / "none.yaml")], "config not found"),
    # --- the others ---------------------------------------------------------------------------------
    Case(
        "toy2d: one seed",
        lambda d: ["toy2d", "--out-dir", str(d / "toy"), "--quick", "--seeds", "1"],
        "--seeds must be",
        ("toy",),
    ),
    Case(
        "toy2d: omega 1",
        lambda d: ["toy2d", "--out-dir", str(d / "toy"), "--quick", "--omega", "1"],
        "--omega must lie in [0, 1)",
        ("toy",),
    ),
    Case(
        "fetch-assets: unknown asset",
        lambda d: ["fetch-assets", "--assets-dir", str(d / "a"), "--only", "sd-vae-xl"],
        "unknown asset 'sd-vae-xl'",
        ("a",),
    ),
    Case(
        "import-checkpoint: overrides not JSON",
        lambda d: [
            "import-checkpoint",
            "--model",
            "SiT-XL/2",
            "--weights",
            I("not-torch.pt")(d),
            "--overrides",
            "{ig_layer: 8",
            "--autoencoder",
            "sd-vae:x",
            "--out",
            str(d / "i.pt"),
        ],
        "--overrides is not valid JSON",
        ("i.pt",),
    ),
    Case(
        "import-checkpoint: asset and weights",
        lambda d: [
            "import-checkpoint",
            "--model",
            "SiT-XL/2",
            "--asset",
            "ig-sit-xl2",
            "--weights",
            "x.pt",
            "--autoencoder",
            "sd-vae:x",
            "--out",
            str(d / "i.pt"),
        ],
        "exactly one of --asset and --weights",
        ("i.pt",),
    ),
]


def _truncated_latents(d: Path) -> str:
    """The inputs' latents with shard 1 truncated (the checksum in the manifest no longer matches)."""
    shutil.copytree(d.parent / "latents", d / "latents")
    _truncate(d / "latents" / "shard-00001.npz")
    return str(d / "latents")


def _npz(d: Path, images: np.ndarray) -> Path:
    save_npz(d / "images.npz", arr_0=images)
    return d / "images.npz"


def _encode(d: Path, *extra: str, data: list[str] | None = None, ae: str | None = None) -> list[str]:
    from diffusers import AutoencoderKL

    from ig.data.autoencoders import tiny_config

    if ae is None:
        ae = str(d / "ae")
        AutoencoderKL(**tiny_config()).save_pretrained(ae)
    data = data or ["--dataset", "fashion-mnist", "--limit", "20"]
    return [
        "encode",
        *data,
        "--autoencoder-kind",
        "tiny",
        "--autoencoder",
        ae,
        "--out-dir",
        str(d / "lat"),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing_partial(case, inputs, tmp_path, capsys):
    folder = inputs / f"case-{CASES.index(case)}"
    folder.mkdir()
    argv = case.argv(folder)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2, err[-5:]
    assert err[-1].startswith(f"ig {argv[0]}: error: "), err[-5:]
    assert case.expect in err[-1], err[-1]
    for output in case.outputs:
        assert not (folder / output).exists() or not any((folder / output).rglob("*.npz")), output
    assert not list(folder.rglob(".*.tmp"))


def test_the_table_has_at_least_forty_cases():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


def test_disk_full_names_the_path_and_the_space_needed(inputs, tmp_path, monkeypatch, capsys):
    """Writing a shard on a full disk: one line with the path and the space, earlier shards kept."""
    import shutil as shutil_module

    out = tmp_path / "out"
    base = [
        "sample",
        "--checkpoint",
        str(inputs / "ckpt.pt"),
        "--out-dir",
        str(out),
        "--shard-size",
        "8",
        "--steps",
        "2",
    ]
    main([*base, "--num-samples", "8"])
    real = shutil_module.disk_usage
    monkeypatch.setattr(shutil_module, "disk_usage", lambda p: real(p)._replace(free=1000))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--num-samples", "16"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and "disk full: writing" in last and "shard-00001.npz" in last and "MiB" in last
    assert (out / "shard-00000.npz").is_file() and not (out / "shard-00001.npz").exists()
    assert not list(out.glob(".*.tmp"))
