"""``ig import-checkpoint``: a release checkpoint (official key layout, REPA-style dict with
pickled argparse arguments) becomes an ig checkpoint whose EMA model reproduces the release."""

import argparse
import json

import pytest
import torch

from ig.checkpoints import load_for_sampling
from ig.cli import main
from ig.data.latents import Normalization
from ig.release import find_weights
from tests.test_official import SOURCES, batch_for, float64, official_state, reference_forward  # noqa: F401


def _release_file(tmp_path, source: str):
    src = SOURCES[source]
    state = {k: v.float() for k, v in official_state(src).items()}
    ckpt = {"model": state, "ema": state, "opt": {}, "args": argparse.Namespace(encoder_depth=8), "steps": 4_000_000}
    folder = tmp_path / "asset"
    folder.mkdir()
    torch.save(ckpt, folder / "release.pt")
    return src, state, folder


@pytest.mark.parametrize("source", ["ig-sit", "willisma-sit"])
def test_imported_checkpoint_samples_like_the_release(tmp_path, source):
    src, state, folder = _release_file(tmp_path, source)
    out = tmp_path / "ep800.pt"
    overrides = json.dumps({"ig_layer": src.ig_layer if src.head else 0})
    main(
        ["import-checkpoint", "--model", src.name, "--weights", str(folder), "--overrides", overrides,
         "--autoencoder", "sd-vae:sd-vae-ft-ema", "--epoch", "800", "--run", "rel", "--out", str(out)]
    )  # fmt: skip
    model, meta = load_for_sampling(out)  # float64 (the fixture), from the float32 release
    assert meta["epoch"] == 800 and meta["run"]["name"] == "rel"
    assert Normalization.from_dict(meta["latent"]["normalization"]) == Normalization("scalar", scale=0.18215)
    assert meta["latent"]["autoencoder"] == {"kind": "sd-vae", "path": "sd-vae-ft-ema"}
    x, t, y = batch_for(src)
    with torch.no_grad():
        ours = model(x, t, y)[0]
        theirs = reference_forward({k: v.double() for k, v in state.items()}, src, x, 1 - t if src.flipped else t, y)[0]
    torch.testing.assert_close(ours, (-1 if src.flipped else 1) * theirs, rtol=1e-9, atol=1e-9)


def test_asset_folder_must_hold_one_checkpoint(tmp_path, capsys):
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "b.pt").write_bytes(b"x")
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["import-checkpoint", "--model", "SiT-T/2", "--weights", str(tmp_path), "--autoencoder", "sd-vae:x",
             "--out", str(tmp_path / "o.pt")]
        )  # fmt: skip
    assert exit_info.value.code == 2
    assert "exactly one checkpoint" in capsys.readouterr().err
    assert find_weights(tmp_path / "a.pt") == tmp_path / "a.pt"
