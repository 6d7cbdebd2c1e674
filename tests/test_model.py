"""The VOLO implementation: architecture facts, published sizes, and parity with timm."""

from __future__ import annotations

import os

import pytest
import torch

from volo_export.models.random_weights import randomize
from volo_export.models.checkpoint import load_state_dict_strict
from volo_export.models.variants import REGISTRY, get_config, model_names
from volo_export.models.volo import VOLO, count_macs, create_model

RELEASED = [n for n in model_names() if n != "volo_tiny_digits"]
# Published parameter counts (M) and MACs (G) from the VOLO paper / official README.
PUBLISHED = {
    "volo_d1_224": (26.6, 6.9), "volo_d1_384": (None, 22.7), "volo_d2_224": (58.7, 14.3), "volo_d2_384": (None, 46.1),
    "volo_d3_224": (86.3, 20.7), "volo_d3_448": (None, 96.1), "volo_d4_224": (193.0, 44.3),
    "volo_d4_448": (None, 196.8), "volo_d5_224": (295.5, 72.3), "volo_d5_448": (None, 314.7),
    "volo_d5_512": (None, 424.6),
}
STATE_DICT_ENTRIES = {"d1": 260, "d2": 330, "d3": 466, "d4": 466, "d5": 606}


def _timm():
    if os.environ.get("CI"):
        import timm  # CI installs the reference extra: parity must run there, not skip
        return timm
    return pytest.importorskip("timm", reason="timm (independent reference) not installed: pip install .[reference]")


def test_all_released_variants_registered():
    assert sorted(RELEASED) == sorted(PUBLISHED)


@pytest.mark.parametrize("name", RELEASED)
def test_variant_sizes_match_published(name):
    config = get_config(name)
    with torch.device("meta"):
        model = VOLO(config)
    params, gmacs = PUBLISHED[name]
    assert len(model.state_dict()) == STATE_DICT_ENTRIES[name.split("_")[1]]
    if params:
        assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params, abs=0.05)
    assert count_macs(config) / 1e9 == pytest.approx(gmacs, abs=0.05)
    assert model.pos_embed.shape == (1, config.img_size // 16, config.img_size // 16, config.embed_dims[1])


def test_official_key_names():
    with torch.device("meta"):
        keys = set(VOLO(get_config("volo_d1_224")).state_dict())
    for key in ("network.0.3.attn.v.weight", "network.0.0.attn.attn.bias", "network.1.proj.weight",
                "network.2.0.attn.qkv.weight", "network.4.1.mlp.fc2.bias", "post_network.1.attn.kv.weight",
                "post_network.0.attn.q.weight", "patch_embed.conv.7.num_batches_tracked", "aux_head.weight"):
        assert key in keys


def test_eval_output_shape_and_aux_head(tiny_model):
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        logits = tiny_model(x)
        tokens = tiny_model.forward_tokens(x)
        cls_only = tiny_model.head(tokens[:, 0])
    assert logits.shape == (3, 10)
    aux = 0.5 * tiny_model.aux_head(tokens[:, 1:]).amax(1)
    assert torch.allclose(logits, cls_only + aux, atol=1e-6)
    assert (logits - cls_only).abs().max() > 1e-2  # the aux term is really part of the output


def test_outlook_attention_is_stride_2_and_scaled():
    attn = create_model(get_config("volo_d1_224")).network[0][0].attn
    assert attn.stride == 2 and attn.kernel_size == 3 and attn.padding == 1
    assert attn.scale == pytest.approx(32 ** -0.5)
    assert attn.pool.ceil_mode


@pytest.mark.parametrize("name,batch", [("volo_d1_224", 2), ("volo_d1_384", 1)])
def test_parity_with_timm(name, batch):
    """Same weights in timm's independent VOLO and ours: logits agree to 1e-4."""
    timm = _timm()
    torch.manual_seed(0)
    ours = randomize(create_model(get_config(name)), seed=1)
    reference = timm.create_model(name, pretrained=False).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(batch, 3, ours.config.img_size, ours.config.img_size)
    with torch.no_grad():
        a, b = ours(x), reference(x)
    assert a.shape == (batch, 1000)
    assert a.abs().max() > 1.0  # weights that make the comparison meaningful
    assert (a - b).abs().max().item() <= 1e-4


def test_timm_state_dict_loads_strictly():
    timm = _timm()
    reference = timm.create_model("volo_d2_224", pretrained=False)
    with torch.device("meta"):
        ours = VOLO(get_config("volo_d2_224"))
    assert set(reference.state_dict()) == set(ours.state_dict())
    for k, v in reference.state_dict().items():
        assert ours.state_dict()[k].shape == v.shape, k


def test_load_state_dict_strict_roundtrip(tiny_model, tiny_state_dict):
    fresh = create_model(tiny_model.config)
    load_state_dict_strict(fresh, tiny_state_dict)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), tiny_model(x))


def test_registry_configs_are_data():
    assert all(type(c).__name__ == "VoloConfig" for c in REGISTRY.values())
    assert get_config("volo_d5_512").preprocessing.crop_pct == 1.15
    assert get_config("volo_d1_384").preprocessing.crop_pct == 1.0
    assert get_config("volo_d3_224").preprocessing.crop_pct == 0.96
