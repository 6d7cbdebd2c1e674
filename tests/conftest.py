"""Shared fixtures: small VOLO configs and checkpoints written in the official formats."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from volo_export.models.variants import Preprocessing, VoloConfig, get_config
from volo_export.models.volo import VOLO, create_model


def small_config(name: str = "volo_d1_224", size: int | None = None, **overrides) -> VoloConfig:
    """A registered variant with one block per stage (same widths and heads), optionally at another size."""
    base = get_config(name)
    prep = base.preprocessing if size is None else dataclasses.replace(base.preprocessing, size=size)
    return dataclasses.replace(base, layers=(1, 1, 1, 1), preprocessing=prep, **overrides)


def randomize(model: VOLO, seed: int = 0) -> VOLO:
    """Weights that make every block matter (timm-style init leaves deep blocks near identity):
    matrices ~ N(0, 1/fan_in), biases and norm offsets ~ N(0, 0.05), embeddings ~ N(0, 0.5)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("pos_embed", "cls_token"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                base = 1.0 if name.endswith("weight") else 0.0  # norm scales around 1
                p.copy_(base + torch.randn(p.shape, generator=g) * 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@pytest.fixture(scope="session")
def tiny_config() -> VoloConfig:
    return get_config("volo_tiny_digits")


@pytest.fixture(scope="session")
def tiny_model(tiny_config) -> VOLO:
    torch.manual_seed(0)
    return randomize(create_model(tiny_config))


@pytest.fixture(scope="session")
def tiny_state_dict(tiny_model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in tiny_model.state_dict().items()}


def tiny_preprocessing() -> Preprocessing:
    return get_config("volo_tiny_digits").preprocessing


@pytest.fixture(scope="session")
def tiny_trained():
    """The bundled, trained volo_tiny_digits (LoadedModel)."""
    from volo_export.models.checkpoint import load_model

    return load_model("volo_tiny_digits")


@pytest.fixture(scope="session")
def tiny_fp32(tiny_trained):
    """FP32 ONNX ModelProto (with metadata) of the trained tiny model, exported once per session."""
    from volo_export.export.metadata import ArtifactInfo
    from volo_export.export.to_onnx import ExportOptions, finalize, torch_to_onnx

    info = ArtifactInfo.for_model(tiny_trained.config, tiny_trained.checkpoint_sha256, 20)
    return finalize(torch_to_onnx(tiny_trained.model, ExportOptions()), info)


@pytest.fixture(scope="session")
def digits_folders(tmp_path_factory):
    """The digits calib and test splits written as class folders: (calib_dir, test_dir)."""
    from volo_export.datasets import write_image_folder

    root = tmp_path_factory.mktemp("digits")
    write_image_folder("calib", root / "calib")
    write_image_folder("test", root / "test")
    return root / "calib", root / "test"
