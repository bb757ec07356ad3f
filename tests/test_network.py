"""The paper's network: shapes for every variant, gradients, the mask, and bad settings."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fer_attention.config import config_dir, net_config, validate_config
from fer_attention.errors import ConfigError
from fer_attention.models import FERAttentionNet, count_parameters
from fer_attention.models.options import BackboneOptions, LBPOptions, NetOptions

CONF = Path(config_dir())
LBPS = sorted(p.stem for p in (CONF / "lbp").glob("*.yaml"))
ABLATIONS = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))
DILATIONS = sorted(p.stem for p in (CONF / "dilation").glob("*.yaml"))


def group(name: str, option: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / name / f"{option}.yaml"))


@functools.cache
def _composed_net(*overrides: str) -> dict:
    """fer-train's model.net with the YAML's defaults and ``overrides``, at 1/16 width."""
    return net_config([*overrides, "model.net.backbone.width=0.0625"])


def _base_net() -> dict:
    return copy.deepcopy(_composed_net())


def tiny_net(image_size=48, lbp="circle", ablation="full", dilation="d123", **changes) -> FERAttentionNet:
    """The configured network with the groups lbp, ablation and dilation as named, and ``changes`` to
    the option groups (``backbone={"shared": True}``) merged into the configured ones."""
    cfg = {**copy.deepcopy(_composed_net(f"lbp={lbp}", f"ablation={ablation}")), "image_size": image_size}
    cfg["reconstruction"] = {**cfg["reconstruction"], "rates": group("dilation", dilation)["rates"]}
    for name, values in changes.items():
        cfg[name] = {**cfg[name], **values}
    return FERAttentionNet.from_config(cfg)


def fits(dilation: str, image_size: int) -> bool:
    return max(group("dilation", dilation)["rates"]) < image_size // 8


@pytest.mark.parametrize("image_size", [48, 96])
def test_output_shapes_every_variant(image_size):
    x = torch.rand(2, 1, image_size, image_size)
    for lbp, ablation, dilation in itertools.product(LBPS, ABLATIONS, DILATIONS):
        uses_reconstruction = group("ablation", ablation)["reconstruction"]
        if uses_reconstruction and not fits(dilation, image_size):
            with pytest.raises(ValueError, match=r"rates=.*needs a feature map larger"):
                tiny_net(image_size, lbp, ablation, dilation)
            continue
        net = tiny_net(image_size, lbp, ablation, dilation).eval()
        with torch.no_grad():
            logits, mask = net(x, return_mask=True)
        assert logits.shape == (2, 7), (lbp, ablation, dilation)
        if group("ablation", ablation)["attention"]:
            assert mask.shape == (2, 1, image_size, image_size)
        else:
            assert mask is None


def test_ablations_remove_modules_and_parameters():
    counts = {a: count_parameters(tiny_net(ablation=a)) for a in ABLATIONS}
    full = counts["full"]["total"]
    for a in ("no_lbp", "no_attention", "no_reconstruction", "vgg16"):
        assert counts[a]["total"] < full, a
    assert "lbp_stream" not in counts["no_lbp"] or counts["no_lbp"]["lbp_stream"] == 0
    vgg = tiny_net(ablation="vgg16")
    assert vgg.lbp is None and vgg.lbp_stream is None and vgg.attention is None and vgg.reconstruction is None
    assert tiny_net(lbp="none").lbp is None


def test_shared_backbone_has_one_stream():
    separate = count_parameters(tiny_net())["total"]
    shared = tiny_net(backbone={"shared": True})
    assert shared.lbp_stream is None and shared.lbp is not None
    assert count_parameters(shared)["total"] < separate
    assert shared(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_gradients_reach_every_trainable_module_and_not_the_lbp_layer():
    net = tiny_net().train()
    x = torch.rand(4, 1, 48, 48, requires_grad=True)
    net(x).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert list(net.lbp.parameters()) == []
    lbp_out = net.lbp(x)
    assert not lbp_out.requires_grad


def test_the_lbp_stream_sees_the_lbp_map_and_the_attention_mask_is_guided_by_the_fused_features():
    torch.manual_seed(0)  # the weights too: how far the swapped mask moves depends on them
    net = tiny_net(lbp="basic").eval()
    # no black pixels: the LBP layer pads with 0, and a black border pixel ties with its padding only in x
    x = torch.randint(1, 256, (2, 1, 48, 48)).float() / 255
    brighter = 0.5 * x + 0.25  # a monotonic grey-level change: the same LBP codes, another image
    with torch.no_grad():
        feat, lbp_feat = net.stream_features(x)
        _, lbp_feat_b = net.stream_features(brighter)
        enc = net.encode(x)
        out, mask = net.attention(feat, net.fusion(feat, lbp_feat))
    torch.testing.assert_close(lbp_feat_b, lbp_feat, rtol=0, atol=0)  # the stream sees LBP codes only
    torch.testing.assert_close(enc["image"], feat)
    # the mask from the fused features, the trunk from the image
    torch.testing.assert_close(enc["mask"], mask)
    torch.testing.assert_close(enc["out"], net.reconstruction(out))
    with torch.no_grad():
        _, swapped = net.attention(net.fusion(feat, lbp_feat), feat)
    # swapping the inputs moves the mask beyond assert_close's tolerance, so the checks above can see it
    assert not torch.allclose(swapped, mask, rtol=1.3e-6, atol=1e-5)


@pytest.mark.parametrize("dilation", ["d111", "d123", "d135"])
def test_each_dilation_set_is_built_into_the_reconstruction_convolutions(dilation):
    rates = group("dilation", dilation)["rates"]
    net = tiny_net(dilation=dilation)
    convs = [
        m for m in net.reconstruction.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert [c.dilation for c in convs] == [(r, r) for r in rates]
    # the receptive field of one output pixel reaches sum(rates) pixels away (1x1 convs add nothing)
    from fer_attention.models.reconstruction import DilatedReconstruction

    torch.manual_seed(0)
    rec = DilatedReconstruction(8, rates).eval()
    x = torch.randn(1, 8, 33, 33, requires_grad=True)
    rec(x)[0, :, 16, 16].sum().backward()
    rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (16 - sum(rates), 16 + sum(rates))


def test_reconstruction_and_bottleneck_add_their_input_back():
    from fer_attention.models.layers import Bottleneck
    from fer_attention.models.reconstruction import DilatedReconstruction

    x = torch.randn(2, 8, 6, 6)
    for block in (DilatedReconstruction(8, [1, 2]), Bottleneck(8)):
        block.eval()
        torch.nn.init.zeros_(block.body[-1].weight)  # the last batch norm: the body's output is 0
        torch.nn.init.zeros_(block.body[-1].bias)
        with torch.no_grad():
            torch.testing.assert_close(block(x), torch.relu(x))


def test_mask_in_unit_interval():
    net = tiny_net().eval()
    _, mask = net(torch.rand(3, 1, 48, 48), return_mask=True)
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0


def test_plain_and_add_options():
    net = tiny_net(attention={"mode": "plain", "fusion": "add"})
    assert net(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    with pytest.raises(ValueError, match="fusion='mul' is not one of concat, add"):
        tiny_net(attention={"fusion": "mul"})


def test_pretrained_weights_from_a_state_dict_file(tmp_path):
    from torchvision.models import vgg16_bn

    path = tmp_path / "vgg16_bn.pth"
    torch.save(vgg16_bn(weights=None).state_dict(), path)
    net = tiny_net(lbp="none", backbone={"weights": str(path), "last_stage": 2, "width": 1.0})
    reference = torch.load(path, weights_only=True)
    # one gray channel = the same value on R, G and B: the RGB kernels add up
    assert torch.allclose(
        net.image_stream.features[0].weight, reference["features.0.weight"].sum(dim=1, keepdim=True)
    )
    with pytest.raises(ValueError, match=r"weights=\S*missing.pth does not exist"):
        tiny_net(backbone={"weights": str(tmp_path / "missing.pth"), "width": 1.0})
    with pytest.raises(ValueError, match=r"weights='\S*vgg16_bn.pth' needs backbone.width=1.0, got 0.0625"):
        tiny_net(backbone={"weights": str(path)})


def test_every_option_is_required_and_no_other_is_taken():
    """The YAML is the one source of the defaults: a config group with a key missing, or one too many,
    is an error naming it, not a silent default."""
    cfg = _base_net()
    backbone = {k: v for k, v in cfg["backbone"].items() if k != "shared"}
    with pytest.raises(ValueError, match=r"^backbone must have the keys .*: missing shared$"):
        FERAttentionNet.from_config({**cfg, "backbone": backbone})
    with pytest.raises(ValueError, match=r"^lbp must have the keys method, P, R: unknown radius$"):
        FERAttentionNet.from_config({**cfg, "lbp": {**cfg["lbp"], "radius": 2}})
    with pytest.raises(TypeError, match="input_std"):
        FERAttentionNet.from_config({k: v for k, v in cfg.items() if k != "input_std"})
    # the option classes are the same options, typed
    options = {
        **{k: v for k, v in cfg.items() if k != "_target_"},
        "lbp": LBPOptions(**cfg["lbp"]),
        "backbone": BackboneOptions(**cfg["backbone"]),
    }
    net = FERAttentionNet(**options)
    assert list(net.state_dict()) == list(FERAttentionNet.from_config(cfg).state_dict())


def test_the_option_schema_is_the_constructors_arguments():
    """One list of the network's options: the schema of model.net is FERAttentionNet's keyword arguments."""
    params = inspect.signature(FERAttentionNet.__init__).parameters
    arguments = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    fields = [f.name for f in dataclasses.fields(NetOptions) if f.name != "_target_"]
    assert arguments == fields
    assert set(_base_net()) == {"_target_", *fields}


# parameter counts at width 0.0625 of every row of the LBP and module tables, as the networks were built
# before modules.lbp became the one switch of the LBP stream (lbp=none another name for it)
SWEEP_ROW_PARAMETERS = {
    **{f"lbp={name}": 85159 for name in ("basic", "circle", "circle_r2", "uniform", "nri_uniform", "ror")},
    "lbp=none": 51919,
    "ablation=full": 85159,
    "ablation=no_lbp": 51919,
    "ablation=no_attention": 82743,
    "ablation=no_reconstruction": 77031,
    "ablation=vgg16": 41375,
}


def test_the_sweep_rows_build_the_networks_they_built_before():
    for sweep, group_name in (("ablation_lbp", "lbp"), ("ablation_modules", "ablation")):
        rows = OmegaConf.load(CONF / "sweep" / f"{sweep}.yaml").hydra.sweeper.params[group_name].split(",")
        for row in rows:
            net = FERAttentionNet.from_config(_composed_net(f"{group_name}={row}"))
            assert count_parameters(net)["total"] == SWEEP_ROW_PARAMETERS[f"{group_name}={row}"], row
    no_lbp = FERAttentionNet.from_config(_composed_net("ablation=no_lbp"))
    none = FERAttentionNet.from_config(_composed_net("lbp=none"))
    assert not none.uses_lbp and not no_lbp.uses_lbp
    assert {k: v.shape for k, v in none.state_dict().items()} == {
        k: v.shape for k, v in no_lbp.state_dict().items()
    }


def test_lbp_none_is_a_name_for_the_lbp_switch():
    """lbp=none switches the stream off through modules.lbp and gives no LBP options (no dummy P and R), in
    every ablation, whichever order the groups are merged in."""
    for ablation in ABLATIONS:
        net = _composed_net("lbp=none", f"ablation={ablation}")
        assert net["lbp"] is None and net["modules"]["lbp"] is False, ablation
    assert _composed_net("ablation=no_lbp")["modules"]["lbp"] is False
    assert _composed_net()["modules"]["lbp"] is True


def test_the_lbp_switch_on_without_options_is_one_line():
    cfg = {**_base_net(), "lbp": None}
    with pytest.raises(ValueError, match=r"^modules.lbp=true needs LBP options but lbp=null") as info:
        FERAttentionNet.from_config(cfg)
    assert "\n" not in str(info.value)


def test_checkpoints_naming_the_circular_lbp_default_still_build():
    """Checkpoints written before the rename record lbp.method=default (scikit-image's name)."""
    old = {**_base_net(), "lbp": {"method": "default", "P": 8, "R": 1.0}}
    assert FERAttentionNet.from_config(old).lbp.method == "circle"


@pytest.mark.parametrize(
    "override,message",
    [
        ("lbp.P=0", r"lbp.P=0 must be an integer >= 1"),
        ("lbp.R=0", r"lbp.R=0.0 must be a number > 0"),
        ("dilation.rates=[0,1]", r"every rate must be an integer >= 1"),
        ("dilation.rates=[]", r"dilation.rates=\[\] is empty"),
        ("dilation=d248", r"rate 8 needs a feature map larger than 8x8, but the backbone gives 6x6"),
        ("data.image_size=16", r"data.image_size=16 is too small for model.net.backbone.last_stage=4"),
        ("data.fold=5", r"data.fold=5 must be in 0..4"),
        ("model.net.num_classes=6", r"model.net.num_classes=6 but model.class_names has 7 names"),
    ],
)
def test_bad_settings_fail_early_with_one_line(make_cfg, override, message):
    cfg = make_cfg([override])
    with pytest.raises(ConfigError, match=message) as info:
        validate_config(cfg)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_the_vgg_layers_are_torchvisions_so_its_state_dicts_load(arch):
    """VGGStream builds VGG16 without importing torchvision: its layers, their order and state dict keys and
    shapes are those of torchvision's ``make_layers`` for every stage, apart from the first convolution's
    input channels."""
    from torchvision.models import vgg as tv_vgg

    from fer_attention.models.vgg import VGGStream, stage_config

    for last_stage in (1, 4, 5):
        ours = VGGStream(arch, last_stage=last_stage, width=1.0, in_channels=1).features
        theirs = tv_vgg.make_layers(stage_config(last_stage, 1.0), batch_norm=arch == "vgg16_bn")
        assert [type(m) for m in ours] == [type(m) for m in theirs]
        shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        shapes["0.weight"] = (64, 1, 3, 3)
        assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == shapes
        assert all(getattr(m, "inplace", True) for m in ours if isinstance(m, torch.nn.ReLU))


def test_loading_the_shipped_model_imports_no_torchvision():
    """torchvision's import is a second of fer-predict's start; the network needs none of it."""
    code = (
        "import sys; from fer_attention.inference import load_model; load_model(); "
        "print('torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_predicting_imports_no_compiler():
    """torch._dynamo's import is a second of fer-predict's start: loading the shipped model and running the
    paper's network (its LBP layer's compile guards included) on a batch of faces must not load it."""
    code = (
        "import sys, torch; from fer_attention.inference import load_model; load_model(); "
        "from fer_attention.config import net_config; from fer_attention.models import FERAttentionNet; "
        "net = FERAttentionNet.from_config(net_config(['model.net.backbone.width=0.125'])).eval(); "
        "net(torch.rand(3, 1, 48, 48)); print(net.lbp is not None, 'torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True False"
