"""``zorro export``: a checkpoint -> safetensors + config.json, or ONNX (full model or one modality).

safetensors: ``model.safetensors`` + ``config.json`` holding the model config and everything needed to
preprocess identically (sample rate, mel settings, frame rate and size, normalisation statistics, label
names); ``load_pretrained(DIR)`` reads it back.

ONNX: ``model.onnx`` (inputs ``audio`` and ``video``), ``model_audio.onnx`` (input ``audio`` only: the
unimodal path, no video computed) or ``model_video.onnx``; dynamic batch; one output per head, named by
head: ``audio_logits``, ``video_logits``, ``fusion_logits``, ``global_logits`` (``<head>_embedding`` for a
model without classifier heads; ONNX forbids an output sharing the input's name ``audio``).
Every ONNX file is checked against PyTorch with onnxruntime on a random sample at export time.

The source weights are verified (their recorded size and sha256, every tensor, the model they build)
before anything is written; ``config.json`` records the size and sha256 of every file exported
(``weights`` for ``model.safetensors``, ``onnx.<file>.sha256``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..atomic import atomic_path, copy_atomic, write_text_atomic
from ..errors import Failure, UsageError
from ..evaluation.compat import check_model_config
from ..model.masks import available_outputs, present_groups
from ..model.pretrained import (
    CHECKSUM,
    CONFIG,
    WEIGHTS,
    load_pretrained,
    read_model_config,
    resolve_model_path,
    weights_checksum,
)
from ..model.zorro import Zorro

MODALITY_INPUTS = {"all": ("audio", "video"), "audio": ("audio",), "video": ("video",)}


class ExportError(Failure):
    """Export failed (missing package, parity check failed): one line for the user."""


class _Exported(nn.Module):
    """Positional-input wrapper: ``(audio[, video]) -> tuple of per-head outputs`` in ``names`` order."""

    def __init__(self, model: Zorro, inputs: tuple[str, ...], names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.inputs, self.names = model, inputs, names

    def forward(self, x0: Tensor, x1: Tensor | None = None) -> tuple[Tensor, ...]:
        given = dict(zip(self.inputs, (x0, x1)[:len(self.inputs)], strict=True))
        feats = self.model.encode(audio=given.get("audio"), video=given.get("video"))
        out = self.model.forward_head(feats) if self.model.heads is not None else feats
        return tuple(out[n] for n in self.names)


def output_names(model: Zorro, inputs: tuple[str, ...]) -> tuple[str, ...]:
    """The heads a model answers with when given only ``inputs``."""
    c = model.config
    groups = present_groups(c.masking, "audio" in inputs, "video" in inputs)
    return available_outputs(c.masking, groups, c.fusion_reads)


@dataclass
class ExportResult:
    path: Path
    outputs: tuple[str, ...]
    max_abs_diff: float | None = None


def export_safetensors(checkpoint: str | Path, out: Path) -> ExportResult:
    """Load-check the weights (checksum, every tensor, the model they belong to), copy them and write a
    complete ``config.json`` (with the copy's checksum) into ``out``."""
    weights = resolve_model_path(checkpoint)
    config, full = read_model_config(checkpoint)
    load_pretrained(checkpoint)  # a truncated or altered file, or one that does not fit its config, stops here
    out.mkdir(parents=True, exist_ok=True)
    copy_atomic(weights, out / WEIGHTS)
    previous = json.loads((out / CONFIG).read_text()) if (out / CONFIG).is_file() else {}
    full = {**full, "model": config.to_dict(), "source_checkpoint": str(weights),
            CHECKSUM: weights_checksum(out / WEIGHTS)}
    if "onnx" in previous:
        full["onnx"] = previous["onnx"]
    write_text_atomic(out / CONFIG, json.dumps(full, indent=2) + "\n")
    return ExportResult(out / WEIGHTS, tuple(full.get("labels", [])))


def export_onnx(model: Zorro, modality: str, out: Path, batch: int = 2, atol: float = 1e-4,
                extra_config: dict[str, Any] | None = None) -> ExportResult:
    """Export one ONNX graph (``modality``: all, audio, video), then check it with onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ExportError(f"ONNX export needs the export extra: pip install 'zorro-cli[export]' ({e})") from None
    inputs = MODALITY_INPUTS[modality]
    names = output_names(model, inputs)
    suffix = "_logits" if model.heads is not None else "_embedding"
    onnx_names = [f"{n}{suffix}" for n in names]
    wrapper = _Exported(model.eval(), inputs, names).eval()
    sample = model.example_inputs(batch, generator=torch.Generator().manual_seed(0))
    args = tuple(sample[i] for i in inputs)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("model.onnx" if modality == "all" else f"model_{modality}.onnx")
    batch_dim = torch.export.Dim("batch", min=1, max=4096)
    with atomic_path(path) as tmp, contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (stdout is for results)
        torch.onnx.export(wrapper, args, str(tmp), input_names=list(inputs), output_names=onnx_names,
                          dynamic_shapes=tuple({0: batch_dim} for _ in inputs), dynamo=True,
                          external_data=False, verbose=False)
    # Parity on a batch size other than the traced one, so the dynamic batch is exercised too.
    check = model.example_inputs(batch + 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = wrapper(*(check[i] for i in inputs))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(onnx_names, {i: check[i].numpy() for i in inputs})
    diff = max(float((torch.from_numpy(g) - r).abs().max()) for g, r in zip(got, ref, strict=True))
    if not diff <= atol:
        raise ExportError(f"{path}: ONNX output differs from PyTorch by {diff:.2e} (> {atol:.0e})")
    if extra_config is not None:
        _record_onnx(out / CONFIG, extra_config, path.name, list(inputs), onnx_names, diff)
    return ExportResult(path, tuple(onnx_names), diff)


def _record_onnx(config_file: Path, base: dict[str, Any], name: str, inputs: list[str], outputs: list[str],
                 diff: float) -> None:
    """Add one ONNX file's inputs/outputs, size and sha256 to ``config.json`` (created from ``base`` when absent)."""
    cfg = json.loads(config_file.read_text()) if config_file.is_file() else dict(base)
    digest = weights_checksum(config_file.parent / name)
    cfg.setdefault("onnx", {})[name] = {"inputs": inputs, "outputs": outputs, "max_abs_diff": diff,
                                        "bytes": digest["bytes"], "sha256": digest["sha256"]}
    write_text_atomic(config_file, json.dumps(cfg, indent=2) + "\n")


def run(*, checkpoint: str | Path, out: str | Path, fmt: str = "safetensors", modality: str = "all") -> dict[str, Any]:
    """The ``zorro export`` verb; returns ``{"format", "files", "outputs", "max_abs_diff", ...}``."""
    if fmt not in ("safetensors", "onnx"):
        raise UsageError(f"--format: expected safetensors or onnx, got {fmt!r}")
    if modality not in MODALITY_INPUTS:
        raise UsageError(f"--modality: expected all, audio or video, got {modality!r}")
    try:
        _, info = read_model_config(checkpoint)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"--checkpoint {checkpoint}: {e}") from None
    folder = Path(out)
    try:
        check_model_config(info, what=f"--checkpoint {checkpoint}")
        if fmt == "safetensors":
            res = export_safetensors(checkpoint, folder)
            return {"format": fmt, "out": str(folder), "files": [str(res.path), str(folder / CONFIG)],
                    "labels": len(res.outputs)}
        model = load_pretrained(checkpoint)
    except UsageError:
        raise  # WeightsError, a config that contradicts itself: each names the file
    except ValueError as e:  # weights that do not fit their config
        raise UsageError(f"--checkpoint {checkpoint}: {e}") from None
    except OSError as e:  # a full disk or read-only --out (nothing half-written: every file is atomic)
        raise ExportError(f"--out {folder}: {' '.join(str(e.strerror or e).split())}") from None
    base = {k: v for k, v in info.items() if k != CHECKSUM}  # no model.safetensors beside the ONNX files
    try:
        res = export_onnx(model, modality, folder, extra_config=base)
    except OSError as e:
        raise ExportError(f"--out {folder}: {' '.join(str(e.strerror or e).split())}") from None
    print(f"{res.path}: max |onnx - torch| = {res.max_abs_diff:.2e} over outputs {', '.join(res.outputs)}",
          file=sys.stderr)
    return {"format": fmt, "out": str(folder), "files": [str(res.path), str(folder / CONFIG)],
            "modality": modality, "outputs": list(res.outputs), "max_abs_diff": res.max_abs_diff}
