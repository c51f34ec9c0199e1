"""``ig tune``: the space, the schedule, successive halving on a metric with a known optimum, and
the command end to end on a tiny model, killed and resumed."""

import json

import numpy as np
import pytest

from ig.cli import main
from ig.errors import IGError
from ig.guidance import Guidance
from ig.tuning import Score, Space, label, rung_sizes, scrambled_halton, successive_halving

# --- the space ------------------------------------------------------------------------------------


def test_a_grid_space_is_every_combination_less_settings_that_guide_alike():
    space = Space.from_dict({"ig_scale": [1.0, 2.0], "ig_interval_low": [0.0, 0.3], "cfg_scale": [1.0, 1.5]})
    candidates = space.candidates()
    # IG off (scale 1) makes its interval irrelevant: (1, 0) and (1, 0.3) are one setting
    assert len(candidates) == 6 and space.grid_size() == 8
    assert Guidance(ig_scale=2.0, ig_interval=(0.3, 1.0), cfg_scale=1.5) in candidates
    assert label(Guidance(ig_scale=2.0, ig_interval=(0.3, 1.0), cfg_scale=1.5)) == "ig2(0.3,1]+cfg1.5"


def test_ranges_are_sampled_by_a_seeded_low_discrepancy_sequence():
    space = Space.from_dict({"ig_scale": {"range": [1.0, 3.0]}, "cfg_scale": [1.0, 1.5, 2.0]})
    a, b = space.candidates(12, seed=0), space.candidates(12, seed=0)
    assert a == b and len(a) == 12
    scales = sorted(g.ig_scale for g in a)
    assert 1.0 <= scales[0] < 1.5 and 2.5 < scales[-1] <= 3.0  # spread over the range
    assert {g.cfg_scale for g in a} == {1.0, 1.5, 2.0}
    assert a != space.candidates(12, seed=1)


def test_the_scrambled_halton_sequence_puts_one_point_in_each_stratum_of_its_base():
    points = scrambled_halton(81, 2, seed=3)
    # base 2: 64 of the points fill the 64 strata of [0, 1) once each; base 3: 81 points, 81 strata
    assert np.bincount((points[:64, 0] * 64).astype(int), minlength=64).max() == 1
    assert np.bincount((points[:, 1] * 81).astype(int), minlength=81).tolist() == [1] * 81
    assert not np.array_equal(points, scrambled_halton(81, 2, seed=4))


@pytest.mark.parametrize(
    "space,message",
    [
        ({"ig_weight": [1, 2]}, "unknown or no dimension"),
        ({"ig_scale": {"range": [2, 1]}}, "low < high"),
        ({"ig_scale": "1, 2"}, "must be a list of numbers"),
    ],
)
def test_bad_spaces_are_one_line_errors(space, message):
    with pytest.raises(IGError, match=message):
        Space.from_dict(space)


def test_a_choice_at_an_end_of_the_space_is_flagged_unless_the_dimension_ends_there():
    space = Space.from_dict(
        {"ig_scale": [1.0, 2.0, 3.0], "ig_interval_low": [0.0, 0.3], "cfg_scale": {"range": [1.2, 2.0]}}
    )
    inside = Guidance(ig_scale=2.0, cfg_scale=1.6).to_dict()
    assert space.edges(inside) == []
    assert space.edges(Guidance(ig_scale=1.0, cfg_scale=1.6).to_dict()) == []  # scale 1: guidance off, an end
    assert space.edges(Guidance(ig_scale=3.0, cfg_scale=1.6).to_dict()) == ["ig_scale"]
    low = Guidance(ig_scale=2.0, ig_interval=(0.3, 1.0), cfg_scale=1.2).to_dict()
    assert space.edges(low) == ["ig_interval_low", "cfg_scale"]


def test_rung_sizes_grow_by_eta_to_the_full_count_and_respect_the_minimum():
    assert rung_sizes(16, 4000, 2, 100) == [250, 500, 1000, 2000, 4000]
    assert rung_sizes(16, 600, 2, 100) == [150, 300, 600]  # fewer rungs rather than tiny sets
    assert rung_sizes(27, 2700, 3, 50) == [100, 300, 900, 2700]
    assert rung_sizes(1, 500, 3, 50) == [500]
    assert rung_sizes(14, 600, 4, 32) == [38, 152, 600]  # the last rung is the full count, never more


# --- successive halving on a known optimum ------------------------------------------------------------


def _synthetic(optimum=(2.0, 1.5), shared=0.5, own=0.3, resamples=30, truth=None):
    """FD = distance to the optimum in (ig, cfg) (or ``truth(g)``), plus sampling noise: a part shared
    by every candidate at n samples (same seeds: it cancels in paired differences) and a part of its
    own, both ~1/√n."""
    calls = []

    def score(g: Guidance, n: int) -> Score:
        calls.append(n)
        rng_shared = np.random.default_rng(n)  # the same for every candidate at this n
        rng_own = np.random.default_rng([n, int(100 * g.ig_scale), int(100 * g.cfg_scale)])
        distance = (g.ig_scale - optimum[0]) ** 2 + 0.5 * (g.cfg_scale - optimum[1]) ** 2
        common = shared / np.sqrt(n / 100) * rng_shared.standard_normal(resamples + 1)
        mine = own / np.sqrt(n / 100) * rng_own.standard_normal(resamples + 1)
        values = (truth(g) if truth else distance) + common + mine
        return Score(float(values[0]), values[1:])

    return score, calls


def test_successive_halving_finds_the_known_optimum_with_a_fraction_of_the_grids_samples():
    space = Space.from_dict({"ig_scale": [1.0, 1.5, 2.0, 2.5, 3.0, 3.5], "cfg_scale": [1.0, 1.5, 2.0]})
    candidates = space.candidates()
    sizes = rung_sizes(len(candidates), 3200, 2, 100)
    score, calls = _synthetic()
    trace = successive_halving(candidates, sizes, 2, score)
    assert trace["chosen"] == Guidance(ig_scale=2.0, cfg_scale=1.5).to_dict()
    assert trace["sampled_images"] <= 0.25 * len(candidates) * sizes[-1]
    # every candidate has its first rung; exactly one was confirmed at the full count
    assert all(c["rungs"][0]["num_samples"] == sizes[0] for c in trace["candidates"])
    assert [c["rungs"][-1]["num_samples"] for c in trace["candidates"]].count(sizes[-1]) == 1
    dropped = [c for c in trace["candidates"] if c["dropped"]]
    assert len(dropped) == len(candidates) - 1 and all("reason" in c["dropped"] for c in dropped)


@pytest.mark.parametrize(
    "spec,count,width",
    [
        ({"ig_scale": [1.0, 2.0, 3.0]}, None, 1),  # one dimension, one panel
        # the paper's IG + CFG space: two ranges on the axes, a panel per CFG interval end
        ({"ig_scale": {"range": [1.0, 2.0]}, "cfg_scale": {"range": [1.0, 1.8]},
          "cfg_interval_high": [0.7, 1.0]}, 16, 2),
        # four listed dimensions: the two longest on the axes, panels by the shortest, the last one in labels
        ({"ig_scale": [1.0, 2.0, 3.0], "ig_interval_low": [0.0, 0.3], "cfg_scale": [1.0, 1.5, 2.0],
          "cfg_interval_high": [0.7, 0.85, 1.0]}, None, 2),
    ],
)  # fmt: skip
def test_the_space_plot_has_a_panel_per_value_of_a_short_listed_dimension(tmp_path, spec, count, width):
    from PIL import Image

    from ig.tuning import plot_space

    space = Space.from_dict(spec)
    candidates = space.candidates(count)
    score, _ = _synthetic()
    trace = successive_halving(candidates, rung_sizes(len(candidates), 800, 2, 100), 2, score)
    plot_space(trace, space, tmp_path / "space.png")
    panels_wide = (Image.open(tmp_path / "space.png").size[0] / 120 - 1) / 4  # figsize 4 per panel + 1, 120 dpi
    assert round(panels_wide) == width


def test_successive_halving_drops_candidates_significantly_worse_than_the_best():
    candidates = Space.from_dict({"ig_scale": [2.0, 2.05, 6.0, 7.0]}).candidates()
    score, _ = _synthetic(shared=0.0, own=0.01)
    trace = successive_halving(candidates, [400, 1600], 2, score)
    first = {c["label"]: c for c in trace["candidates"]}
    assert first["ig6"]["dropped"]["reason"] == "significantly worse than the best"
    assert first["ig7"]["dropped"]["rung"] == 0


# --- extending the space past an edge of the choice -----------------------------------------------

EDGE_SPACE = {"ig_scale": [1.0, 1.5, 2.0, 2.5], "cfg_scale": [1.0, 1.5]}  # the embedded default's shape


def _tune_synthetic(tmp_path, spec, extend, **synthetic):
    """``tune`` on a synthetic objective (little noise: the outcome is the objective's), its trace and
    the halving's own images (what the extension adds to)."""
    from ig.tuning import tune

    space = Space.from_dict(spec)
    candidates = space.candidates()
    sizes = rung_sizes(len(candidates), 400, 2, 100)
    score, _ = _synthetic(shared=0.0, own=0.01, **synthetic)
    halving = successive_halving(candidates, sizes, 2, score)["sampled_images"]
    return tune(space, candidates, sizes, 2, score, tmp_path, extend), halving


@pytest.mark.parametrize(
    "extend,chosen,tried,edge",
    [
        (0, "ig2.5+cfg1.5", [], ["ig_scale", "cfg_scale"]),  # only the warning, as before
        (1, "ig3+cfg1.5", [("ig_scale", 3.0), ("cfg_scale", 2.0)], ["ig_scale"]),  # the budget runs out
        (2, "ig3.5+cfg1.5", [("ig_scale", 3.0), ("cfg_scale", 2.0), ("ig_scale", 3.5)], ["ig_scale"]),
        # one round more: 4 is worse than the optimum 3.5, which is no longer at an edge; a larger
        # budget changes nothing
        (3, "ig3.5+cfg1.5", [("ig_scale", 3.0), ("cfg_scale", 2.0), ("ig_scale", 3.5), ("ig_scale", 4.0)], []),
        (9, "ig3.5+cfg1.5", [("ig_scale", 3.0), ("cfg_scale", 2.0), ("ig_scale", 3.5), ("ig_scale", 4.0)], []),
    ],
)  # fmt: skip
def test_a_choice_at_the_edge_extends_the_space_to_an_optimum_beyond_it_within_the_budget(
    tmp_path, caplog, extend, chosen, tried, edge
):
    trace, halving = _tune_synthetic(tmp_path, EDGE_SPACE, extend, optimum=(3.5, 1.5))
    assert trace["chosen_label"] == chosen and trace["chosen_at_edge"] == edge and trace["extend"] == extend
    assert trace["candidates"][trace["chosen_index"]]["label"] == chosen
    assert json.loads((tmp_path / "chosen.json").read_text()) == trace["chosen"]
    extensions = trace["extensions"]
    assert [(e["dimension"], e["value"]) for e in extensions] == tried
    assert max((e["round"] for e in extensions), default=0) <= extend  # the budget, in rounds
    assert len(extensions) <= (len(EDGE_SPACE) + extend - 1 if extend else 0)  # ig plan's bound
    # each try: the chosen moved one step (the last gap) out, at the full count, paired with the chosen
    full = trace["schedule"][-1]
    assert all(e["num_samples"] == full and e["fid"] == pytest.approx((e["guidance"]["ig_scale"] - 3.5) ** 2
               + 0.5 * (e["guidance"]["cfg_scale"] - 1.5) ** 2, abs=0.01) for e in extensions)  # fmt: skip
    for e in extensions:
        record = trace["candidates"][e["index"]]
        assert record["extension"] == e["round"] and record["label"] == e["label"]
        assert record["rungs"] == [{**record["rungs"][0], "num_samples": full, "fid": e["fid"], "se": e["se"]}]
    worse = {"ig2.5+cfg2", "ig4+cfg1.5"}  # farther from the optimum than the chosen they were tried from
    assert {e["label"] for e in extensions if e["became_chosen"]} == {e["label"] for e in extensions} - worse
    # their images count in the tuner's cost
    assert trace["sampled_images"] == halving + full * len(tried)
    assert trace["sample_share"] == pytest.approx(trace["sampled_images"] / trace["grid_images"])
    assert json.loads((tmp_path / "trace.json").read_text())["extensions"] == json.loads(json.dumps(extensions))
    warned = [r.getMessage() for r in caplog.records if "edge of the space" in r.getMessage()]
    assert bool(warned) == bool(edge) and all(("budget" in w) == (extend > 0) for w in warned)


def test_a_choice_inside_the_space_is_not_extended(tmp_path):
    spec = {"ig_scale": [1.0, 1.5, 2.0, 2.5, 3.0], "cfg_scale": [1.0, 1.5, 2.0]}
    trace, halving = _tune_synthetic(tmp_path, spec, 2, optimum=(2.0, 1.5))
    assert trace["chosen_label"] == "ig2+cfg1.5" and trace["extensions"] == [] and trace["chosen_at_edge"] == []
    assert trace["sampled_images"] == halving and not any(c["extension"] for c in trace["candidates"])


def test_an_extension_stays_within_the_dimension_and_stops_where_it_ends(tmp_path):
    # a scale steps down to 1 (guidance off) at most: there the dimension ends, and so does the search
    space = Space.from_dict({"ig_scale": [1.4, 2.0, 2.6]})
    assert space.step("ig_scale", -1) == pytest.approx(0.6) and space.beyond("ig_scale", -1, 0.6) == 1.0
    assert Space.from_dict({"ig_scale": {"range": [1.0, 2.0]}}).beyond("ig_scale", 1, 0.1) == 2.1
    trace, _ = _tune_synthetic(tmp_path, {"ig_scale": [1.4, 2.0, 2.6]}, 2, optimum=(0.0, 1.0))
    assert [e["label"] for e in trace["extensions"]] == ["none"] and trace["chosen_label"] == "none"
    assert trace["chosen_at_edge"] == []
    # an interval's low end cannot reach 1 (an empty interval): no try, still at the edge
    interval = {"ig_scale": [1.5, 2.0, 2.5], "ig_interval_low": [0.2, 0.6]}
    trace, halving = _tune_synthetic(tmp_path, interval, 2, truth=lambda g: (g.ig_scale - 2) ** 2 - g.ig_interval[0])
    assert trace["chosen_label"] == "ig2(0.6,1]" and trace["extensions"] == []
    assert trace["chosen_at_edge"] == ["ig_interval_low"] and trace["sampled_images"] == halving


def test_ig_tune_and_the_campaign_agree_on_the_tuning_defaults_and_extend_reruns_the_tuning():
    """The schema fills a tuning target's defaults; ``ig tune`` run by hand has the same ones. A change
    of ``extend`` changes the tuning job's spec (so it reruns) and the tuned sets' after it."""
    import argparse
    import copy

    import yaml

    from ig.campaign import Campaign
    from ig.campaign.config import SCHEMA, validate
    from ig.campaign.specs import sample_job
    from ig.tuning import add_arguments
    from tests.test_campaign import _config

    defaults = yaml.safe_load(SCHEMA.read_text())["properties"]["tuning"]["additionalProperties"]["properties"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for key in ("eta", "min_samples", "extend"):
        assert defaults[key]["default"] == parser.get_default(key), key
    config = _config()
    before = Campaign(validate(copy.deepcopy(config)), dry_run=True)
    config["tuning"]["ig-cfg"]["extend"] = 0
    after = Campaign(validate(config), dry_run=True)
    assert before.specs("tuning/ig-cfg")["search"]["extend"] == 2
    tuned = [sample_job(s) for s in before.sample_sets() if before.tuned_target(s.guidance) == "ig-cfg"]
    for job in ["tuning/ig-cfg", *tuned]:
        assert before.specs.hash(job) != after.specs.hash(job), job
    assert tuned


def test_the_plan_bounds_a_tuning_targets_images_with_its_extensions():
    """The first round tries each of the space's 3 dimensions, a later one a single dimension."""
    from ig.report.plan import plan
    from tests.test_campaign import _campaign, _config

    config, images = _config(), {}
    for extend in (0, 2):
        config["tuning"]["ig-cfg"]["extend"] = extend
        images[extend] = plan(_campaign(config, dry_run=True))["tuning"]["ig-cfg"]["images"]
    assert images[2] - images[0] == (3 + 2 - 1) * 600


# --- the command, killed and resumed -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tuning_inputs(tmp_path_factory):
    """A tiny checkpoint, a tiny classifier and its reference (real Fashion-MNIST images)."""
    from ig.evaluation.classifier import save_classifier
    from ig.evaluation.train_classifier import dataset_arrays, train_classifier
    from tests.test_sampling import _checkpoint

    root = tmp_path_factory.mktemp("tune")
    _checkpoint(root / "ep1.pt", seed=0)
    images, labels = dataset_arrays("fashion-mnist", None, 32, "train", limit=1000)
    save_classifier(train_classifier(images, labels, widths=(8, 16, 16), progress=False), root / "clf.pt",
                    dataset="fashion-mnist", resolution=32)  # fmt: skip
    extractor = f"classifier:{root / 'clf.pt'}"
    main(["reference", "--dataset", "fashion-mnist", "--max-images", "500", "--extractor", extractor,
          "--out", str(root / "ref.npz"), "--pr-images", "100", "--no-progress"])  # fmt: skip
    (root / "space.yaml").write_text("ig_scale: [1, 2]\ncfg_scale: [1.5, 2]\n")  # every choice at an edge of CFG
    return root


def _tune(root, out):
    main(["tune", "--checkpoint", str(root / "ep1.pt"), "--space", str(root / "space.yaml"), "--reference",
          str(root / "ref.npz"), "--extractor", f"classifier:{root / 'clf.pt'}", "--out-dir", str(out),
          "--num-samples", "64", "--min-samples", "16", "--eta", "2", "--steps", "3", "--batch-size", "16",
          "--bootstrap", "5"])  # fmt: skip


def test_tune_writes_trace_choice_and_plot_and_resumes_from_what_it_sampled(tuning_inputs, tmp_path, monkeypatch):
    from ig.sampling import sets

    made, kill_after = [], [3]
    real = sets.make_shards

    def counting(spec, folder, shards, sampler, progress=True):
        if len(made) >= kill_after[0]:
            raise KeyboardInterrupt  # a kill in the middle of the search
        made.extend((folder.name, k) for k in shards)
        real(spec, folder, shards, sampler, progress)

    monkeypatch.setattr(sets, "make_shards", counting)
    with pytest.raises(SystemExit) as killed:
        _tune(tuning_inputs, tmp_path)
    assert killed.value.code == 130 and len(made) == 3
    before = list(made)
    made.clear()
    kill_after[0] = 10**9
    _tune(tuning_inputs, tmp_path)
    assert not set(made) & set(before[:3])  # what the killed run sampled was kept, not redone
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert trace["schedule"] == [16, 32, 64] and len(trace["candidates"]) == 4 + len(trace["extensions"])
    assert trace["extensions"][0]["dimension"] == "cfg_scale" and trace["extensions"][0]["value"] in (1.0, 2.5)
    assert json.loads((tmp_path / "chosen.json").read_text()) == trace["chosen"]
    assert trace["sampled_images"] == 16 * len(set(before) | set(made))  # the shards (of 16) actually sampled,
    assert {folder for folder, _ in made} >= {e["label"] for e in trace["extensions"]}  # the extensions' too
    assert (tmp_path / "space.png").stat().st_size > 0
    made.clear()
    _tune(tuning_inputs, tmp_path)  # everything is there now: nothing is sampled again
    assert made == []
