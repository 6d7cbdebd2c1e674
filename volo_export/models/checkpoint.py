"""Load official (sail-sg `.pth.tar`), timm (`.pth`, `.bin`, `.safetensors`) and plain
state dicts into a VOLO, strictly, without executing pickled code.

One filter (`normalize_state_dict`) unwraps containers, strips `module.`,
adapts `pos_embed` to the model's resolution and tells what it changed.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from volo_export.errors import CheckpointError, first_line
from volo_export.io import input_file, sha256_file
from volo_export.models.variants import REGISTRY, VoloConfig, get_config
from volo_export.models.volo import VOLO, create_model

_CONTAINER_KEYS = ("state_dict_ema", "state_dict", "model", "module")
_SENTINEL = "patch_embed.proj.weight"


@dataclass
class LoadedModel:
    """An eval-mode model, the config it was built from, and what loading had to adapt."""

    model: VOLO
    config: VoloConfig
    checkpoint_sha256: str | None
    notices: list[str] = field(default_factory=list)

    @property
    def random_weights(self) -> bool:
        """True when no weights were loaded (no checkpoint given and none bundled)."""
        return self.checkpoint_sha256 is None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read tensors from a checkpoint file. Never unpickles arbitrary objects: a file that carries
    code or objects other than tensors is refused, and no message ever suggests weights_only=False."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file")
    input_file(path, "checkpoint", CheckpointError)
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {first_line(e)}") from None
    try:
        with warnings.catch_warnings():  # torch warns about a plain pickle's protocol before refusing it:
            warnings.simplefilter("ignore", UserWarning)  # the error line below says all there is to say
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():
            raise CheckpointError(f"refusing to load {path}: it contains pickled code or objects other than "
                                  "tensors, which could run code when loaded; volo-export reads weights only "
                                  "(save the state_dict alone, or as .safetensors)") from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (its contents are not a readable "
                              "torch.save file)") from None
    except zipfile.BadZipFile:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (broken zip archive)") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (corrupt, truncated or another kind of "
                              "file)") from None
    return _unwrap(obj, path)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and _SENTINEL not in _strip_prefix(obj):
        for key in _CONTAINER_KEYS:
            if isinstance(obj.get(key), dict) and obj[key]:
                return _unwrap(obj[key], path)
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict (looked for keys {', '.join(_CONTAINER_KEYS)})")
    return dict(obj)


def _strip_prefix(sd: dict) -> dict:
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return sd


def resize_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, g, g, C) -> (1, grid, grid, C) by bicubic interpolation, as the official utils do."""
    x = pos_embed.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(grid, grid), mode="bicubic", align_corners=False)
    return x.permute(0, 2, 3, 1).to(pos_embed.dtype)


def normalize_state_dict(sd: dict[str, torch.Tensor], config: VoloConfig) -> tuple[dict[str, torch.Tensor], VoloConfig, list[str]]:
    """Fit a foreign state dict to `config`: strip prefixes, resize pos_embed, follow the head's class count."""
    sd = _strip_prefix(sd)
    notices: list[str] = []
    if _SENTINEL not in sd:
        raise CheckpointError(f"not a VOLO checkpoint: no {_SENTINEL!r} among {len(sd)} keys")
    pos = sd.get("pos_embed")
    if pos is not None and pos.ndim == 4 and pos.shape[1] != config.stage2_grid:
        notices.append(f"pos_embed resized from {pos.shape[1]}x{pos.shape[2]} to "
                       f"{config.stage2_grid}x{config.stage2_grid} (bicubic): checkpoint is for another resolution")
        sd["pos_embed"] = resize_pos_embed(pos, config.stage2_grid)
    if not any(k.startswith("aux_head.") for k in sd) and config.use_aux_head:
        notices.append("checkpoint has no aux_head (timm use_aux_head=False): logits are head(cls) only")
        config = replace(config, use_aux_head=False)
    head = sd.get("head.weight")
    if head is not None and head.ndim == 2 and head.shape[0] < 1:  # refused before any model is built
        raise CheckpointError(f"the checkpoint's classifier has {head.shape[0]} classes (head.weight "
                              f"{tuple(head.shape)}): a classifier needs at least one")
    if head is not None and head.ndim == 2 and head.shape[0] != config.num_classes:
        notices.append(f"classifier has {head.shape[0]} classes (fine-tuned head), not {config.num_classes}")
        config = config.with_num_classes(int(head.shape[0]), labels=f"indices-{head.shape[0]}")
    return sd, config, notices


def architecture_of(sd: dict[str, torch.Tensor]) -> str:
    """Describe a VOLO state dict by its blocks per stage and widths, naming the variant family it matches."""
    layers = tuple(len({k.split(".")[2] for k in sd if k.startswith(f"network.{i}.") and k.split(".")[2].isdigit()})
                   for i in (0, 2, 3, 4))
    dims = (sd[_SENTINEL].shape[0], sd["network.1.proj.weight"].shape[0]) if "network.1.proj.weight" in sd else None
    for config in REGISTRY.values():
        if config.layers == layers and dims == config.embed_dims[:2]:
            return config.name.rsplit("_", 1)[0]
    return f"layers {layers}, widths {dims}"


def load_state_dict_strict(model: VOLO, sd: dict[str, torch.Tensor]) -> None:
    """load_state_dict(strict=True) with an error that names every offending key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    misshaped = sorted(f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k].shape)}"
                       for k in set(sd) & set(expected) if sd[k].shape != expected[k].shape)
    if missing or unexpected or misshaped:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if keys:
                shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(f"checkpoint ({architecture_of(sd)}) does not fit {model.config.name}: "
                              + "; ".join(parts))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in sd.items()}, strict=True)


WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def bundled_checkpoint(config: VoloConfig) -> Path | None:
    """The weights file shipped with the package for `config`, or None when it has none."""
    return WEIGHTS_DIR / config.bundled_checkpoint if config.bundled_checkpoint else None


def load_model(name: str | VoloConfig, checkpoint: Path | None = None) -> LoadedModel:
    """Build the named variant in eval mode and load `checkpoint` into it. Without a checkpoint:
    the variant's bundled weights where it has some, else random weights."""
    config = get_config(name) if isinstance(name, str) else name
    notices: list[str] = []
    if checkpoint is None:
        checkpoint = bundled_checkpoint(config)
        if checkpoint is None:
            return LoadedModel(create_model(config), config, None)
        notices.append(f"using bundled weights {checkpoint.name}")
    checkpoint = Path(checkpoint)
    sd, config, adapted = normalize_state_dict(read_state_dict(checkpoint), config)
    model = create_model(config)
    load_state_dict_strict(model, sd)
    return LoadedModel(model.eval(), config, sha256_file(checkpoint), notices + adapted)
