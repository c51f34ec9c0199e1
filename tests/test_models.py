"""ig.models on its own: registry, shapes, head placement, init flags, labels, time flip, errors.

Official-format checkpoints and parameter counts are in test_official.py.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ig.errors import IGError
from ig.models import MODELS, create_model

# The names the model zoo promises (docs/architecture.md, the issue that created it).
EXPECTED_NAMES = (
    {f"SiT-{s}/{p}" for s in ("S", "B", "L", "XL") for p in (2, 4, 8)}
    | {f"LightningDiT-{s}/{p}" for s in ("B", "L", "XL") for p in (1, 2)}
    | {"SiT-T/1", "SiT-T/2", "LightningDiT-T/1", "LightningDiT-T/2"}
)
# depth, hidden size, heads of DiT (Peebles & Xie, Table 1) and the tiny size
SHAPES = {"T": (6, 128, 4), "S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
# the paper's head placement: block 4 for S/B, 8 for L/XL; 2 for the tiny size
IG_LAYERS = {"T": 2, "S": 4, "B": 4, "L": 8, "XL": 8}


def tiny(name: str = "SiT-T/2", **overrides) -> torch.nn.Module:
    """A small model with every weight random, so that no output is trivially zero."""
    torch.manual_seed(0)
    model = create_model(name, input_size=overrides.pop("input_size", 8), num_classes=10, **overrides)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.05).add_(0.02)
    return model.eval()


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def inputs(model: torch.nn.Module, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, model.in_channels, model.input_size, model.input_size, generator=g)
    return x, torch.rand(batch, generator=g), torch.randint(0, model.num_classes, (batch,), generator=g)


def test_registry_has_exactly_the_promised_names():
    assert set(MODELS) == EXPECTED_NAMES


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_every_size_has_its_shape_defaults_and_output_shapes(name):
    family, size_patch = name.split("-")
    size, patch = size_patch.split("/")
    with torch.device("meta"):  # full sizes cost nothing here
        model = create_model(name)
        x = torch.empty(2, model.in_channels, model.input_size, model.input_size)
        v_final, v_intermediate = model(x, torch.rand(2), torch.zeros(2, dtype=torch.long))
    depth, hidden, heads = SHAPES[size]
    assert (len(model.blocks), model.pos_embed.shape[-1], model.blocks[0].attn.num_heads) == (depth, hidden, heads)
    assert model.x_embedder.proj.kernel_size == (int(patch),) * 2
    assert model.ig_layer == IG_LAYERS[size]
    sit = family == "SiT"
    assert (model.in_channels, model.input_size, model.num_classes) == ((4, 32) if sit else (32, 16)) + (1000,)
    assert model.flip_time is not sit
    assert v_final.shape == v_intermediate.shape == x.shape


def test_config_round_trip_rebuilds_the_same_model():
    torch.manual_seed(0)
    model = create_model("LightningDiT-T/2", input_size=8, in_channels=6, ig_layer=3, qk_norm=True, wo_shift=True)
    torch.manual_seed(0)
    clone = create_model(**model.config)
    assert clone.config == model.config
    assert model.config["name"] == "LightningDiT-T/2" and model.config["qk_norm"] is True
    state, cloned = model.state_dict(), clone.state_dict()
    assert list(state) == list(cloned)
    assert all(torch.equal(state[k], cloned[k]) for k in state)


@pytest.mark.parametrize("ig_layer", [1, 3, 6])
def test_intermediate_head_reads_the_output_of_block_ig_layer(ig_layer):
    """Changing a block after ig_layer leaves v_intermediate alone; changing block ig_layer does not."""
    model = tiny(ig_layer=ig_layer)
    x, t, y = inputs(model)
    with torch.no_grad():
        v_final, v_inter = model(x, t, y)
        if ig_layer < len(model.blocks):
            model.blocks[ig_layer].mlp.fc2.bias.add_(1.0)  # the block after the head
            after_final, after_inter = model(x, t, y)
            assert torch.equal(after_inter, v_inter)
            assert not torch.allclose(after_final, v_final)
        model.blocks[ig_layer - 1].mlp.fc2.bias.add_(1.0)  # the block the head reads
        _, moved_inter = model(x, t, y)
    assert not torch.allclose(moved_inter, v_inter)


def test_ig_layer_zero_has_no_head_and_one_final_layer_fewer():
    with_head, without = create_model("SiT-T/2", input_size=8), create_model("SiT-T/2", input_size=8, ig_layer=0)
    assert without.intermediate_layer is None
    assert without(*inputs(without))[1] is None
    assert n_params(with_head) - n_params(without) == n_params(with_head.final_layer)


def test_intermediate_head_costs_exactly_one_final_layer_of_compute():
    batch, name = 4, "SiT-T/2"
    flops = {}
    for ig_layer in (0, 3):
        model = create_model(name, input_size=8, ig_layer=ig_layer)
        with FlopCounterMode(display=False) as counter:
            model(*inputs(model, batch))
        flops[ig_layer] = counter.get_total_flops()
    tokens, hidden, out = (8 // 2) ** 2, 128, 2 * 2 * 4
    final_layer = 2 * batch * tokens * hidden * out + 2 * batch * hidden * 2 * hidden  # linear + adaLN
    assert flops[3] - flops[0] == final_layer


@pytest.mark.parametrize(
    "name,overrides,final_zero,inter_zero",
    [
        ("SiT-T/2", {}, True, True),  # SiT release zero-initialises its intermediate head
        ("LightningDiT-T/1", {}, True, False),  # LightningDiT release does not
        ("SiT-T/2", {"head_zero_init": False}, True, False),
        ("LightningDiT-T/1", {"head_zero_init": True}, True, True),
    ],
)
def test_fresh_model_outputs_follow_the_head_zero_init_flag(name, overrides, final_zero, inter_zero):
    torch.manual_seed(0)
    model = create_model(name, input_size=8, **overrides)
    v_final, v_inter = model(*inputs(model))
    assert bool(torch.all(v_final == 0)) is final_zero
    assert bool(torch.all(v_inter == 0)) is inter_zero
    assert model.pos_embed.requires_grad is False


def test_label_dropout_maps_to_the_null_class_in_training_only():
    model = tiny(class_dropout_prob=1.0)
    x, t, y = inputs(model)
    null = torch.full_like(y, model.num_classes)
    with torch.no_grad():
        conditional, unconditional = model(x, t, y)[0], model(x, t, null)[0]
        model.train()
        dropped = model(x, t, y)[0]
    assert not torch.allclose(conditional, unconditional)
    torch.testing.assert_close(dropped, unconditional, rtol=0, atol=0)


def test_label_dropout_rate_and_null_row():
    model = tiny(class_dropout_prob=0.25)
    embedder = model.y_embedder
    table = embedder.embedding_table.weight
    assert table.shape[0] == model.num_classes + 1  # the null class is row num_classes
    labels = torch.arange(4000) % model.num_classes
    torch.manual_seed(0)
    embedder.train()
    dropped = (embedder(labels) == table[model.num_classes]).all(dim=1).float().mean().item()
    embedder.eval()
    kept = (embedder(labels) == table[labels]).all(dim=1).all().item()
    assert abs(dropped - 0.25) < 0.03 and kept  # binomial sd at n=4000: 0.007
    assert create_model("SiT-T/2", class_dropout_prob=0.0).y_embedder.embedding_table.num_embeddings == 1000


@pytest.mark.parametrize("name", ["SiT-T/2", "LightningDiT-T/1"])
def test_flip_time_feeds_one_minus_t_and_negates_both_heads(name):
    plain = tiny(name, flip_time=False)
    flipped = create_model(**{**plain.config, "flip_time": True}).eval()
    flipped.load_state_dict(plain.state_dict())
    x, t, y = inputs(plain)
    with torch.no_grad():
        ours, theirs = flipped(x, t, y), plain(x, 1 - t, y)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, -b)


def test_gradients_of_each_head_reach_the_blocks_before_it_only():
    model = tiny(ig_layer=2).train()
    x, t, y = inputs(model)
    v_final, v_inter = model(x, t, y)
    F.mse_loss(v_inter, torch.zeros_like(v_inter)).backward()
    grads = [block.attn.qkv.weight.grad for block in model.blocks]
    assert all(g is not None and g.abs().sum() > 0 for g in grads[:2])
    assert all(g is None for g in grads[2:])
    assert model.final_layer.linear.weight.grad is None and model.pos_embed.grad is None


@pytest.mark.parametrize(
    "name,overrides,match",
    [
        ("SiT-XXL/2", {}, "unknown model 'SiT-XXL/2'; choose one of: SiT-T/1"),
        ("SiT-T/2", {"width": 3}, r"unknown option\(s\) \['width'\]; valid options: "),
        ("SiT-T/2", {"depth": 0}, r"depth=0 must be a positive integer"),
        ("SiT-T/2", {"ig_layer": 7}, r"ig_layer=7 is outside 0\.\.6"),
        ("SiT-T/2", {"input_size": 9}, "input_size=9 is not a multiple of the patch size 2"),
    ],
)
def test_bad_names_and_options_give_one_line_errors(name, overrides, match):
    with pytest.raises(IGError, match=match) as error:
        create_model(name, **overrides)
    assert "\n" not in str(error.value)


def test_depth_override_builds_that_many_blocks_with_the_head_where_asked():
    model = create_model("SiT-T/2", depth=12, ig_layer=4, input_size=8, num_classes=10)
    assert len(model.blocks) == 12 and model.config["depth"] == 12
    rebuilt = create_model(**model.config)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name,overrides",
    [
        ("SiT-XL/2", {}),
        ("SiT-B/2", {"ig_layer": 0}),
        ("LightningDiT-XL/1", {}),
        ("LightningDiT-B/1", {"wo_shift": True, "qk_norm": True}),
        ("SiT-T/2", {"input_size": 8, "depth": 12, "num_classes": 10}),
    ],
)
def test_analytic_flops_equal_torchs_flop_counter(name, overrides):
    """ig.models.flops counts from the architecture what torch's counter counts by running it."""
    from ig.models.flops import forward_flops

    with torch.device("meta"):
        model = create_model(name, **overrides).eval()
        x = torch.zeros(1, model.in_channels, model.input_size, model.input_size)
        t, y = torch.zeros(1), torch.zeros(1, dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t, y)
    assert forward_flops(name, **overrides) == counter.get_total_flops()


@pytest.mark.parametrize(
    "name,overrides",
    [
        ("SiT-XL/2", {}),
        ("SiT-B/2", {"ig_layer": 0, "class_dropout_prob": 0.0}),
        ("LightningDiT-XL/1", {}),
        ("LightningDiT-B/1", {"wo_shift": True, "qk_norm": True}),
        ("SiT-B/2", {"qk_norm": True}),
        ("SiT-T/2", {"input_size": 8, "depth": 12, "num_classes": 10}),
    ],
)
def test_analytic_parameter_count_equals_the_built_models(name, overrides):
    from ig.models.flops import parameter_count

    with torch.device("meta"):
        model = create_model(name, **overrides)
    assert parameter_count(name, **overrides) == sum(p.numel() for p in model.parameters())
