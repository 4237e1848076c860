"""Save and load models: ``model.safetensors`` + ``config.json`` folders, run directories, single files.

A *model folder* holds ``model.safetensors`` (weights; the model config is also in its metadata) and
``config.json`` (``{"model": <ZorroConfig>, ...}``; export adds preprocessing settings and labels). A
*run directory* (from ``zorro pretrain`` / ``finetune``) holds ``checkpoints/best`` and/or
``checkpoints/last`` model folders. Loading never unpickles: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save
from torch import Tensor

from ..atomic import atomic_folder
from ..errors import UsageError
from .config import ZorroConfig
from .zorro import Zorro

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CHECKSUM = "weights"  # config.json key: {"file", "bytes", "sha256"} of the weights written with it


class WeightsError(UsageError):
    """A weights file that is not what was written (truncated, altered) or not safetensors: one line."""


def _checksum(data: bytes) -> dict[str, Any]:
    return {"file": WEIGHTS, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _recorded(weights: Path) -> dict[str, Any] | None:
    """The checksum ``config.json`` beside ``weights`` records for it, if any."""
    cfg = weights.parent / CONFIG
    try:
        rec = json.loads(cfg.read_text()).get(CHECKSUM) if cfg.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("file") == weights.name else None


def weights_checksum(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` record (``{"file", "bytes", "sha256"}``) of a weights file as it is now."""
    return _checksum(Path(path).read_bytes()) | {"file": Path(path).name}


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a ``.safetensors`` file, verified: its size and sha256 against what ``config.json``
    beside it records (when it does), and the whole file parsed. :class:`WeightsError` (one line naming
    the file) for a truncated, altered or unreadable file; the file is read once."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise WeightsError(f"{path}: a folder, expected a .safetensors file") from None
    rec = _recorded(path)
    if rec is not None and rec.get("bytes") != len(data):
        raise WeightsError(f"{path}: {len(data)} bytes, {CONFIG} records {rec.get('bytes')} (truncated or "
                           "replaced); use another checkpoint")
    if rec is not None and rec.get("sha256") != hashlib.sha256(data).hexdigest():
        raise WeightsError(f"{path}: sha256 differs from the one {CONFIG} records (the file was altered or "
                           "damaged); use another checkpoint")
    try:
        return load(data)
    except (SafetensorError, ValueError, OSError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())})") from None


def write_model_files(model: Zorro, folder: Path, extra: dict[str, Any] | None = None,
                      state: dict[str, Any] | None = None) -> None:
    """Write ``model.safetensors`` + ``config.json`` (which records the weights' size and sha256) into an
    existing ``folder`` (not atomic on its own).

    ``state`` replaces ``model.state_dict()`` (e.g. a state dict gathered from a distributed wrapper).
    """
    cfg = {"model": model.config.to_dict(), **(extra or {})}
    tensors = {k: v.detach().contiguous().cpu() for k, v in (state or model.state_dict()).items()}
    data = save(tensors, metadata={"zorro_config": json.dumps(cfg["model"])})
    (folder / WEIGHTS).write_bytes(data)
    cfg[CHECKSUM] = _checksum(data)  # checked by read_weights() on every read
    (folder / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")


def save_pretrained(model: Zorro, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``folder`` atomically (temp folder + rename)."""
    with atomic_folder(folder) as tmp:
        write_model_files(model, tmp, extra)
    return Path(folder)


def resolve_model_path(path: str | Path) -> Path:
    """The weights file behind a model folder, a run directory or a ``.safetensors`` file."""
    p = Path(path)
    if p.is_file():
        if p.suffix != ".safetensors":
            raise ValueError(f"{p}: expected a .safetensors file, a model folder or a run directory")
        return p
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or directory")
    if (p / WEIGHTS).is_file():
        return p / WEIGHTS
    for sub in ("best", "last"):
        if (p / "checkpoints" / sub / WEIGHTS).is_file():
            return p / "checkpoints" / sub / WEIGHTS
    raise FileNotFoundError(f"{p}: no {WEIGHTS} here nor in checkpoints/best or checkpoints/last")


def read_model_config(path: str | Path) -> tuple[ZorroConfig, dict[str, Any]]:
    """``(ZorroConfig, whole config.json dict)`` for a model folder, run directory or weights file."""
    weights = resolve_model_path(path)
    cfg_file = weights.parent / CONFIG
    if cfg_file.is_file():
        full = json.loads(cfg_file.read_text())
    else:
        try:
            with safe_open(str(weights), framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError) as e:
            raise WeightsError(f"{weights}: not a readable safetensors file ({' '.join(str(e).split())})") from None
        if "zorro_config" not in meta:
            raise ValueError(f"{weights}: no config.json beside it and no zorro_config in its metadata")
        full = {"model": json.loads(meta["zorro_config"])}
    return ZorroConfig.from_dict(full["model"]), full


def legacy_config(config: ZorroConfig, keys: Collection[str]) -> ZorroConfig:
    """The config of weights saved before a backbone option existed, the option written out.

    Such a config leaves the option out, which now reads as the new default, while the weights have the
    old layout: Zorro-Swin without relative position tables (``rel_pos_bias: false``), Zorro-HiP with one
    set of blocks per level (``shared_blocks: true``). Checkpoints that set the option, or have the new
    layout, are returned unchanged."""
    extra = dict(config.extra)
    if config.backbone == "swin" and "rel_pos_bias" not in extra and not any(".rel_pos." in k for k in keys):
        extra["rel_pos_bias"] = False
    if config.backbone == "hip" and "shared_blocks" not in extra and "backbone.levels.0.cross.norm_q.weight" in keys:
        extra["shared_blocks"] = True
    return config if extra == config.extra else config.replace(extra=extra)


def load_pretrained(path: str | Path, **overrides: Any) -> Zorro:
    """Build the model saved at ``path`` and load its weights (strict). ``overrides`` change the config
    (e.g. ``attention="dense"``); shape-changing overrides fail at load time. Weights saved before a
    backbone option existed load as the model they were (:func:`legacy_config`)."""
    config, _ = read_model_config(path)
    state = read_weights(resolve_model_path(path))
    config = legacy_config(config, state.keys())
    model = Zorro(config.replace(**overrides) if overrides else config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the config (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval()


_GROUP_KEY = re.compile(r"(backbone\.levels\.\d+\.(?:in_proj|cross|blocks\.\d+))\.(?:audio|video|fusion)\.(.+)")


def _shared_hip_source(key: str, state: Mapping[str, Tensor]) -> tuple[str, Tensor] | None:
    """The tensor of a shared-blocks HiP checkpoint that starts ``key`` of an independent-blocks model:
    ``levels.i.<part>.<group>.x`` <- ``levels.i.<part>.x``, and a block's ``attn.q`` / ``attn.kv`` <- the
    first third / the rest of the shared ``attn.qkv`` rows (q, k, v in that order). With every group
    starting from the shared weights the independent model computes what the shared one did."""
    m = _GROUP_KEY.fullmatch(key)
    if m is None:
        return None
    prefix, rest = m.groups()
    if f"{prefix}.{rest}" in state:
        return f"{prefix}.{rest}", state[f"{prefix}.{rest}"]
    a = re.fullmatch(r"attn\.(q|kv)\.(weight|bias)", rest)
    src = f"{prefix}.attn.qkv.{a[2]}" if a else ""
    if a is None or src not in state:
        return None
    d = state[src].shape[0] // 3
    return src, (state[src][:d] if a[1] == "q" else state[src][d:])


def load_matching_weights(model: Zorro, path: str | Path) -> dict[str, list[str]]:
    """Warm start: copy every tensor of the Zorro checkpoint at ``path`` whose name and shape match.

    Used to fine-tune from a pre-training run (its projectors are dropped, new heads stay fresh), from a
    unimodal run (all shared weights transfer), or across masking configurations (the fusion tokens
    transfer only when their count matches). A HiP checkpoint with shared blocks starts each group's
    independent blocks (:func:`_shared_hip_source`). Returns ``{"loaded", "skipped", "fresh"}`` key lists.
    """
    state = read_weights(resolve_model_path(path))
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    used = set(take)
    for k in set(own) - set(take):
        found = _shared_hip_source(k, state)
        if found is not None and found[1].shape == own[k].shape:
            take[k] = found[1]
            used.add(found[0])
    model.load_state_dict(take, strict=False)
    return {"loaded": sorted(take), "skipped": sorted(set(state) - used), "fresh": sorted(set(own) - set(take))}
