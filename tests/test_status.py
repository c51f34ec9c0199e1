"""Job specs and ``ig status``: canonical content, and what a config edit puts out of date, with the
changed fields and the cost, before anything runs (no Snakemake needed: specs are written as the
workflow's ``spec`` rule writes them)."""

import subprocess
import sys

import pytest
import yaml

from ig.campaign import load
from ig.campaign.specs import canonical, read_spec, spec_hash, write_spec
from ig.errors import IGError
from tests.conftest import REPO_ROOT


def test_a_spec_hash_ignores_order_and_number_format_but_not_values():
    a = {"guidance": {"ig_scale": 2.0, "ig_interval": [0.3, 1]}, "steps": 20}
    b = {"steps": 20.0, "guidance": {"ig_interval": [0.3, 1.0], "ig_scale": 2}}
    assert spec_hash(a) == spec_hash(b) and canonical(b)["steps"] == 20
    assert spec_hash(a) != spec_hash({**a, "steps": 21})
    assert spec_hash(a) != spec_hash({**a, "guidance": {**a["guidance"], "ig_scale": 2.5}})


def test_a_spec_file_is_named_after_its_hash_and_replaces_its_predecessor(tmp_path):
    c = load(REPO_ROOT / "config/config.yaml")
    job = "sample/ig/ep8/ig2/random"
    old = tmp_path / "specs" / job / "0123456789abcdef.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    path = tmp_path / "specs" / job / f"{c.specs.hash(job)}.json"
    write_spec(path, c.specs(job))
    assert sorted(path.parent.iterdir()) == [path] and read_spec(path, "sample") == c.specs(job)
    with pytest.raises(IGError, match="the config changed while the workflow ran"):
        write_spec(path.with_name("fedcba9876543210.json"), c.specs(job))
    path.write_text(path.read_text().replace('"ig_scale": 2', '"ig_scale": 3'))
    with pytest.raises(IGError, match="is not an intact sample job spec"):
        read_spec(path, "sample")


def test_status_names_each_changed_field_and_what_is_new(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    c = load(tmp_path / "c.yaml")
    for job in c.specs.jobs():  # a finished campaign's specs
        write_spec(c.specs.path(job), c.specs(job))
    config["guidance"]["ig3"]["ig_scale"] = 2.5
    config["runs"]["baseline"]["train"]["seed"] = 7
    config["guidance"]["ig4"] = {"ig_scale": 4.0}
    config["evaluations"][1]["guidance"] = "all"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
    result = subprocess.run(
        [sys.executable, "-m", "ig", "status", "--config", "c.yaml"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  sample/ig/ep8/ig3/random\n      guidance.ig_scale: 3 → 2.5\n" in out
    assert "  run/baseline\n      train.seed: 0 → 7\n" in out
    # the baseline's sample sets are out of date through their checkpoint's spec
    assert "  sample/baseline/ep8/none/random\n      checkpoint.spec: " in out
    assert "new (1):\n  sample/ig/ep8/ig4/random\n" in out
    assert "sample/ig/ep8/ig2/random" not in out  # unchanged: current
    assert "To bring it up to date: 6 jobs" in out and "GPU-hours" in out
