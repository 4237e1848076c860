"""What ``zorro predict`` runs a batch through: a PyTorch model (run folder, checkpoint, safetensors
export) or the ONNX graphs of an export folder (onnxruntime; no model code needed).

Legend: B batch (clips x views), C classes. Both runners take ``{"audio": [B, 1, F, A], "video":
[B, 3, T, S, S]}`` with one or both modalities and return ``{head: logits [B, C]}`` for every head
that answers with those inputs (a missing modality takes the unimodal path where the masking has one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from ..model.pretrained import CONFIG, load_pretrained, read_model_config, resolve_model_path
from .predict import PRECISIONS, autocast, autocast_dtype

RUNTIMES = ("auto", "torch", "onnx")
ONNX_GRAPHS = {("audio", "video"): "model.onnx", ("audio",): "model_audio.onnx", ("video",): "model_video.onnx"}


class Runner(Protocol):
    """A model to predict with, and the ``config.json`` it came with."""

    info: dict[str, Any]
    description: str

    def logits(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``{head: float32 [B, C]}`` for the modalities in ``batch`` (on the CPU)."""
        ...


class TorchRunner:
    """A Zorro model on the Accelerate device, under the training precision's autocast."""

    def __init__(self, checkpoint: str | Path, precision: str = "auto") -> None:
        from accelerate import Accelerator

        _, self.info = read_model_config(checkpoint)
        self.model = load_pretrained(checkpoint)
        self.device = Accelerator(cpu=not torch.cuda.is_available()).device
        self.model.to(self.device)
        self.dtype = autocast_dtype(precision, self.info.get("precision"))
        dtype = "fp32" if self.dtype is None else str(self.dtype).removeprefix("torch.")
        self.description = f"{resolve_model_path(checkpoint)} on {self.device} ({dtype})"

    @torch.no_grad()
    def logits(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        pin = self.device.type == "cuda"
        x = {k: (v.pin_memory() if pin else v).to(self.device, non_blocking=True) for k, v in batch.items()}
        with autocast(self.device, self.dtype):
            out = self.model(audio=x.get("audio"), video=x.get("video"))
        return {h: z.float().cpu() for h, z in out.items()}


class OnnxRunner:
    """The ONNX graphs of an export folder (``zorro export --format onnx``), one per input set."""

    def __init__(self, folder: str | Path) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        self.info = json.loads((self.folder / CONFIG).read_text())
        self.graphs: dict[str, dict[str, Any]] = dict(self.info.get("onnx") or {})
        if not self.graphs:
            raise ValueError(f"{self.folder / CONFIG} lists no ONNX graph (export one with --format onnx)")
        self._ort = ort
        self._sessions: dict[str, Any] = {}
        self.description = f"{self.folder} (onnxruntime: {', '.join(sorted(self.graphs))})"

    def graph_for(self, modalities: tuple[str, ...]) -> str | None:
        """The graph file that takes exactly ``modalities`` (None when the export has none)."""
        name = ONNX_GRAPHS.get(tuple(m for m in ("audio", "video") if m in modalities))
        return name if name in self.graphs and (self.folder / name).is_file() else None

    def logits(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        name = self.graph_for(tuple(batch))
        if name is None:
            raise ValueError(f"the export has no ONNX graph for {' and '.join(batch)} input "
                             f"({ONNX_GRAPHS[tuple(batch)]}; export it with --modality)")
        if name not in self._sessions:
            self._sessions[name] = self._ort.InferenceSession(str(self.folder / name),
                                                              providers=["CPUExecutionProvider"])
        spec = self.graphs[name]
        got = self._sessions[name].run(spec["outputs"], {k: batch[k].numpy() for k in spec["inputs"]})
        return {o.removesuffix("_logits"): torch.from_numpy(z).float() for o, z in zip(spec["outputs"], got,
                                                                                        strict=True)}


def open_runner(checkpoint: str | Path, runtime: str = "auto", precision: str = "auto") -> Runner:
    """The runner for a run folder, checkpoint or export folder. ``auto``: PyTorch when there are
    weights (``model.safetensors``), else the folder's ONNX graphs. ``ValueError`` / ``FileNotFoundError``
    (one line) when nothing usable is there."""
    if runtime not in RUNTIMES:
        raise ValueError(f"--runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
    path = Path(checkpoint)
    has_weights = True
    try:
        resolve_model_path(path)
    except (FileNotFoundError, ValueError):
        has_weights = False
    onnx = path.is_dir() and (path / CONFIG).is_file() and "onnx" in json.loads((path / CONFIG).read_text())
    if runtime == "onnx" or (runtime == "auto" and onnx and not has_weights):
        if not onnx:
            raise ValueError(f"{path}: no ONNX export here (no \"onnx\" entry in {CONFIG})")
        try:
            return OnnxRunner(path)
        except ImportError:
            raise ValueError(f"{path}: ONNX graphs need onnxruntime (pip install 'zorro-cli[export]')") from None
    if precision not in PRECISIONS:
        raise ValueError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return TorchRunner(path, precision)
