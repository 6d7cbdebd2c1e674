"""Checkpoint loading: official/timm/plain formats, strictness, pos_embed resize, safety."""

from __future__ import annotations

import dataclasses
import io
import pickle

import pytest
import torch
from safetensors.torch import save_file

from helpers import small_config
from volo_export.models.random_weights import randomize
from volo_export.errors import CheckpointError
from volo_export.models.checkpoint import load_model, resize_pos_embed
from volo_export.models.variants import get_config
from volo_export.models.volo import create_model


def _outputs(model, size=64, seed=0):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("layout", ["state_dict", "state_dict_ema", "model", "module_prefix", "plain"])
def test_official_pth_tar_layouts(tmp_path, tiny_model, tiny_state_dict, layout):
    sd = dict(tiny_state_dict)
    if layout == "module_prefix":
        obj = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 300}
    elif layout == "plain":
        obj = sd
    else:
        obj = {layout: sd, "epoch": 300, "arch": "volo_tiny_digits"}
    path = tmp_path / "ckpt.pth.tar"
    torch.save(obj, path)
    loaded = load_model(tiny_model.config, path)
    assert torch.equal(_outputs(loaded.model), _outputs(tiny_model))
    assert loaded.checkpoint_sha256 and len(loaded.checkpoint_sha256) == 64


@pytest.mark.parametrize("suffix", [".pth", ".bin", ".safetensors"])
def test_timm_formats(tmp_path, tiny_model, tiny_state_dict, suffix):
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in tiny_state_dict.items()}, str(path))
    else:
        torch.save(tiny_state_dict, path)
    loaded = load_model(tiny_model.config, path)
    assert torch.equal(_outputs(loaded.model), _outputs(tiny_model))


def test_missing_file(tmp_path, tiny_config):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tiny_config, tmp_path / "nope.pth.tar")


def test_truncated_checkpoint(tmp_path, tiny_config, tiny_state_dict):
    buf = io.BytesIO()
    torch.save(tiny_state_dict, buf)
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint \\(corrupt, truncated"):
        load_model(tiny_config, path)


def test_garbage_and_corrupt_safetensors(tmp_path, tiny_config):
    (tmp_path / "junk.pth").write_bytes(b"\x00not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="junk.pth is not a PyTorch checkpoint"):
        load_model(tiny_config, tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="cannot read safetensors"):
        load_model(tiny_config, tmp_path / "junk.safetensors")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_never_executes_pickled_code(tmp_path, tiny_config, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(CheckpointError):
        load_model(tiny_config, path)
    assert "pwned" not in capsys.readouterr().out


def test_other_variant_is_named(tmp_path):
    with torch.device("meta"):
        d2 = create_model(get_config("volo_d2_224")).state_dict()
    path = tmp_path / "d2.pth.tar"
    torch.save({"state_dict": {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in d2.items()}}, path)
    with pytest.raises(CheckpointError) as err:
        load_model("volo_d1_224", path)
    message = str(err.value)
    assert message.startswith("checkpoint (volo_d2) does not fit volo_d1_224:")
    assert "missing: " not in message and "unexpected: network.0.4" in message and "mis-shaped: " in message
    assert "\n" not in message


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_config, tiny_state_dict):
    sd = dict(tiny_state_dict)
    sd.pop("network.0.0.attn.v.weight")
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"missing: network\.0\.0\.attn\.v\.weight; unexpected: extra\.weight"):
        load_model(tiny_config, path)


def test_not_a_volo_checkpoint(tmp_path, tiny_config):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}, path)
    with pytest.raises(CheckpointError, match="not a VOLO checkpoint"):
        load_model(tiny_config, path)


def test_pos_embed_resized_for_other_resolution(tmp_path):
    src_config = small_config("volo_d1_224")  # pos_embed 14x14
    src = randomize(create_model(src_config))
    path = tmp_path / "d1_224.pth.tar"
    torch.save({"state_dict": src.state_dict()}, path)
    loaded = load_model(small_config("volo_d1_384"), path)  # needs 24x24
    assert loaded.model.pos_embed.shape == (1, 24, 24, 384)
    assert any("pos_embed resized from 14x14 to 24x24" in n for n in loaded.notices)
    expected = resize_pos_embed(src.pos_embed.detach(), 24)
    assert torch.equal(loaded.model.pos_embed.detach(), expected)
    # bicubic resize to the same grid is the identity
    assert torch.allclose(resize_pos_embed(src.pos_embed.detach(), 14), src.pos_embed.detach(), atol=1e-6)


def test_fine_tuned_head_sets_num_classes(tmp_path, tiny_config):
    config = dataclasses.replace(tiny_config, num_classes=37)
    src = randomize(create_model(config))
    path = tmp_path / "ft.pth"
    torch.save(src.state_dict(), path)
    loaded = load_model(tiny_config, path)
    assert loaded.config.num_classes == 37
    assert _outputs(loaded.model).shape == (2, 37)
    assert torch.equal(_outputs(loaded.model), _outputs(src))


def test_checkpoint_without_aux_head(tmp_path, tiny_model, tiny_state_dict):
    sd = {k: v for k, v in tiny_state_dict.items() if not k.startswith("aux_head.")}
    path = tmp_path / "noaux.pth"
    torch.save(sd, path)
    loaded = load_model(tiny_model.config, path)
    assert loaded.model.aux_head is None
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), tiny_model.head(tiny_model.forward_tokens(x)[:, 0]))
