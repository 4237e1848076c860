"""Initialise a Zorro model from ViT weights in timm's layout, read from a local file.

The file holds a timm ViT state dict, saved with ``torch.save(vit.state_dict())`` (read with
``weights_only=True``: nothing is unpickled) or as safetensors. Nothing is downloaded.

What is loaded (the paper starts from ImageNet-21k ViT-B/16):
- ``blocks.*`` -> the shared backbone blocks (identical names; the first ``depth`` blocks),
  ``norm`` -> the backbone's final norm;
- ``patch_embed.proj`` ``[D,3,16,16]`` -> the video Conv3d ``[D,3,t,16,16]`` (repeated over t, divided by t,
  so a static clip gives the image's embedding) and the audio Conv2d ``[D,1,16,16]`` (summed over RGB);
- ``pos_embed`` (prefix tokens dropped) -> the video spatial table and the audio table, resized to
  their grids; the video temporal table is zeroed so that a single frame sees exactly the ViT's input.
Fusion tokens, decoder, heads and projectors keep their fresh initialisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .registry import backbone_spec
from .tokenizers import AudioTokenizer, VideoTokenizer, resize_2d
from .zorro import Zorro


@dataclass
class InitReport:
    """What a ViT initialisation loaded and what it left alone."""

    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from .pretrained import read_weights

        return read_weights(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, ...
        raise ValueError(f"{path}: not a readable torch weights file ({type(e).__name__}: {e})") from e
    for key in ("model", "state_dict", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return obj


def _spatial_pos(sd: dict[str, Tensor], path: str) -> Tensor:
    """``pos_embed`` ``[1, P + gh*gw, D]`` -> ``[1, D, gh, gw]`` without the prefix (class/register) tokens."""
    pos = sd["pos_embed"]
    n = pos.shape[1]
    known = int("cls_token" in sd) + (sd["reg_token"].shape[1] if "reg_token" in sd else 0)
    for prefix in (known, 0, 1, *range(2, 9)):
        side = math.isqrt(n - prefix) if n > prefix else 0
        if side * side == n - prefix and side > 0:
            grid = pos[:, prefix:]
            return grid.reshape(1, side, side, -1).permute(0, 3, 1, 2).contiguous()
    raise ValueError(f"{path}: pos_embed with {n} positions is not a square grid (+ prefix tokens)")


def load_vit_weights(model: Zorro, path: str | Path) -> InitReport:
    """Copy a timm-layout ViT state dict from ``path`` into ``model`` (see module docstring)."""
    if not backbone_spec(model.config.backbone).vit_init:
        raise ValueError(f"ViT initialisation needs backbone 'vit', this model's is {model.config.backbone!r}")
    sd = read_state_dict(path)
    report = InitReport()
    dim = model.config.dim
    w = sd.get("patch_embed.proj.weight")
    if w is None or "pos_embed" not in sd:
        raise ValueError(f"{path}: not a timm ViT state dict (no patch_embed.proj.weight / pos_embed)")
    if w.shape[0] != dim:
        raise ValueError(f"{path}: ViT width {w.shape[0]} does not match model dim {dim}")
    vt, at = model.video_tokenizer, model.audio_tokenizer
    if not (isinstance(vt, VideoTokenizer) and isinstance(at, AudioTokenizer)):
        raise TypeError("ViT initialisation needs the standard audio/video patch tokenizers")
    if tuple(w.shape[-2:]) != tuple(vt.patch[1:]) or tuple(w.shape[-2:]) != tuple(at.patch):
        raise ValueError(f"{path}: ViT patch {tuple(w.shape[-2:])} does not match the model's patches")
    n_vit = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    depth = model.config.depth
    if n_vit < depth:
        raise ValueError(f"{path}: ViT has {n_vit} blocks, the model needs {depth}")

    own = model.state_dict()
    updates: dict[str, Tensor] = {}
    for k, v in sd.items():
        if (k.startswith("blocks.") and int(k.split(".")[1]) < depth) or k.startswith("norm."):
            updates["backbone." + k] = v
        elif k not in ("patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed"):
            report.ignored.append(k)
    t = vt.patch[0]
    updates["video_tokenizer.proj.weight"] = w.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
    updates["audio_tokenizer.proj.weight"] = w.sum(dim=1, keepdim=True)
    if "patch_embed.proj.bias" in sd:
        updates["video_tokenizer.proj.bias"] = updates["audio_tokenizer.proj.bias"] = sd["patch_embed.proj.bias"]
    pos = _spatial_pos(sd, str(path))
    updates["video_tokenizer.pos_space"] = resize_2d(pos, (vt.grid[1], vt.grid[2]))
    updates["video_tokenizer.pos_time"] = torch.zeros_like(own["video_tokenizer.pos_time"])
    updates["audio_tokenizer.pos"] = resize_2d(pos, at.grid)

    for k, v in updates.items():
        if k not in own:
            raise ValueError(f"{path}: {k} has no counterpart in the model (is the layout timm's?)")
        if own[k].shape != v.shape:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    model.load_state_dict(updates, strict=False)
    report.loaded = sorted(updates)
    report.fresh = sorted(set(own) - set(updates))
    return report
