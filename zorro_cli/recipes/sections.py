"""Recipe sections for training and evaluation: ``model``, ``data``, ``train``, ``eval``, ``log``.

Every field has a default; paper values are marked [paper], our defaults [choice]. Cross-field checks
live in each section's ``problems()`` (``key: message`` strings, reported with the dotted path).
"""

from __future__ import annotations

import difflib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..data.config import AugmentConfig
from ..ranges import Range, at_least, crops_problem, positive, range_problems

if TYPE_CHECKING:
    from ..model.config import ZorroConfig

# Off while ``load_recipe(..., model_checks=False)`` builds a recipe: the checks that need the model
# library (preset names, the model's shapes), whose backbone modules import torch (~1.2 s), are left out.
MODEL_CHECKS: ContextVar[bool] = ContextVar("MODEL_CHECKS", default=True)

Modality = Literal["audio", "video"]
Masking = Literal["zorro", "independent", "bottleneck", "input_fusion"]
Tracker = Literal["tensorboard", "mlflow", "wandb"]


# Allowed values, one table per section (read by ``zorro_cli.ranges.range_problems``; NaN and infinity
# are never allowed). Upper bounds only refuse what could not fit in memory or in a seed.
NON_NEGATIVE = at_least(0)
MODEL_RANGES: dict[str, Range] = {
    "dim": at_least(1, optional=True), "depth": at_least(1, optional=True), "heads": at_least(1, optional=True),
    "fusion_tokens": at_least(1, optional=True),
    "mlp_ratio": positive(64, optional=True), "drop_path": Range(0, 1, hi_open=True),
    "proj_dim": at_least(1, 65536), "temperature": positive(),
    "audio_patch": at_least(1, 4096, optional=True), "video_patch": at_least(1, 4096, optional=True),
}
DATA_RANGES: dict[str, Range] = {
    "audio_frames": at_least(1, 1 << 16), "frames": at_least(1, 1024), "frame_stride": at_least(1, 1024),
    "image_size": at_least(1, 2048), "workers": at_least(0, 1024),
}
TRAIN_RANGES: dict[str, Range] = {
    "epochs": at_least(1), "max_steps": at_least(1, optional=True), "batch_size": at_least(1),
    "accumulate": at_least(1), "lr": positive(), "min_lr": NON_NEGATIVE, "warmup_steps": NON_NEGATIVE,
    "weight_decay": NON_NEGATIVE, "betas": Range(0, 1, hi_open=True), "grad_clip": NON_NEGATIVE,
    "seed": at_least(0, 2**32 - 1), "checkpoint_every": at_least(1), "keep_last": at_least(1),
    "eval_every": NON_NEGATIVE,
}
EVAL_RANGES: dict[str, Range] = {"clips": at_least(1, 64), "crops": at_least(1, 3), "batch_size": at_least(1, 1 << 16)}


# ``ModelSection`` keys that size the network; null = the preset's value.
SIZE_KEYS: tuple[str, ...] = ("dim", "depth", "heads", "mlp_ratio", "fusion_tokens", "audio_patch", "video_patch")


@dataclass(frozen=True)
class ModelSection:
    """Which network to build: a preset, resized by any of :data:`SIZE_KEYS`. Input shapes come from the
    ``data`` section and the cache; the number of classes from the cache."""

    preset: str = "zorro_vit_b16"
    masking: Masking = "zorro"  # [paper] the four configurations the paper compares
    backbone: str | None = None  # vit | swin | hip; null = the preset's
    dim: int | None = None  # token / output width; null = the preset's
    depth: int | None = None  # self-attention blocks
    heads: int | None = None  # attention heads (dim must be a multiple)
    mlp_ratio: float | None = None  # MLP hidden width / dim
    fusion_tokens: int | None = None  # null = the preset's ([choice] 8 for ViT-B/16)
    audio_patch: tuple[int, int] | None = None  # (mel bins, frames) per audio token
    video_patch: tuple[int, int, int] | None = None  # (frames, height, width) per video token
    extra: dict[str, Any] = field(default_factory=dict)  # backbone options (Swin/HiP), merged into the preset's
    fusion_reads: Literal["fusion", "all"] = "fusion"  # [choice] what o_F reads in the decoder
    drop_path: float = 0.0  # [choice]
    proj_dim: int = 512  # [choice] contrastive projection width
    temperature: float = 0.08  # [paper] τ
    learn_temperature: bool = False  # [choice] τ fixed (the paper gives only its value)
    attention: Literal["block", "dense", "flex"] = "block"  # block-skipping SDPA; dense masked SDPA; FlexAttention

    def sizes(self) -> dict[str, Any]:
        """The size keys this section sets (the rest come from the preset)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in SIZE_KEYS if getattr(self, k) is not None}
        if self.backbone is not None:
            out["backbone"] = self.backbone
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    def to_config(self, data: DataSection, n_mels: int, num_classes: int, contrastive: bool) -> ZorroConfig:
        """The ``ZorroConfig`` of a run: the preset, this section's keys, input shapes from ``data`` and
        the cache (``n_mels``); heads for ``num_classes`` (0: none), projectors when ``contrastive``.
        ``model.config.ConfigError`` (its ``problems``) for an impossible combination."""
        from ..model.presets import preset_config

        return preset_config(
            self.preset, **self.sizes(), masking=self.masking, fusion_reads=self.fusion_reads,
            drop_path=self.drop_path, temperature=self.temperature, learn_temperature=self.learn_temperature,
            attention=self.attention, n_mels=n_mels, audio_frames=data.audio_frames, frames=data.frames,
            image_size=data.image_size, num_classes=num_classes, proj_dim=self.proj_dim if contrastive else 0)

    def problems(self) -> list[str]:
        if not MODEL_CHECKS.get():
            return range_problems(self, MODEL_RANGES)
        from ..model.presets import PRESETS
        from ..model.registry import backbone_names

        out = []
        if self.preset not in PRESETS:
            near = difflib.get_close_matches(self.preset, list(PRESETS), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            out.append(f"preset: expected one of {', '.join(sorted(PRESETS))}, got {self.preset!r}{hint}")
        if self.backbone is not None and self.backbone not in backbone_names():
            out.append(f"backbone: expected one of {', '.join(backbone_names())}, got {self.backbone!r}")
        return out + range_problems(self, MODEL_RANGES)


@dataclass(frozen=True)
class DataSection:
    """How clips are read from a cache for training and evaluation (see ``data/dataset.py``)."""

    cache: str | None = None  # the cache folder (--data overrides)
    modalities: tuple[Modality, ...] = ("audio", "video")  # ["audio"] for ESC-50, ["video"] for Kinetics
    train_split: str | list[str] = "train"  # one split of the cache, or several (ESC-50: four folds)
    val_split: str | list[str] | None = None  # periodic validation split(s); null = none
    val_holdout: float = 0.0  # share of the train split's clips held out for validation instead (0 = none)
    audio_frames: int = 640  # [paper] 128 x 640 log-mel
    frames: int = 8  # [paper] 8-frame clips
    frame_stride: int = 1  # [choice] in cached frames
    image_size: int = 224  # [paper]
    workers: int = 2  # DataLoader worker processes per training process
    mel_norm: Literal["global", "per_bin"] = "global"  # [choice] normalise with the cache's statistics
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # [paper: SpecAugment + freq. jitter]

    def problems(self) -> list[str]:
        out = []
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            out.append(f"modalities: expected a non-empty list of distinct audio/video, got {list(self.modalities)}")
        if not 0.0 <= self.val_holdout < 1.0:  # (also false for NaN)
            out.append(f"val_holdout: expected in [0, 1), got {self.val_holdout}")
        elif self.val_holdout > 0 and self.val_split:
            out.append(f"val_holdout: validation is either a held-out share of the train split or val_split "
                       f"{self.val_split!r}, not both (set one of them to 0 / null)")
        return out + range_problems(self, DATA_RANGES)


@dataclass(frozen=True)
class TrainSection:
    """Optimisation, precision, checkpointing."""

    out_dir: str | None = None  # the run directory (--out overrides)
    epochs: int = 50  # [paper] (10 for ACAV-100M)
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 32  # per process, per micro-batch [choice]
    accumulate: int = 1  # gradient accumulation micro-batches per update
    lr: float = 1e-4  # [choice] peak learning rate
    min_lr: float = 1e-6  # [choice]
    warmup_steps: int = 1000  # [choice]
    weight_decay: float = 0.05  # [choice]
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0  # [choice] max global grad norm; 0 = off
    precision: Literal["no", "bf16", "fp16"] = "no"  # autocast precision (bf16 works on CPU too)
    seed: int = 0
    # [paper] audio-visual contrastive; [choice] InfoNCE o_A-o_V, or "equation 3" (+ fusion); "intra": unimodal
    # self-supervised pre-training (two views of each clip, o_A-o_A' and o_V-o_V'), for one-modality data
    contrastive: Literal["av", "av_fusion", "intra"] = "av"
    head_weights: dict[str, float] = field(default_factory=lambda: {
        "audio": 1.0, "video": 1.0, "fusion": 1.0, "global": 1.0})  # [choice] one loss per head, summed
    checkpoint_every: int = 1000  # optimiser steps
    keep_last: int = 2
    eval_every: int = 0  # optimiser steps; 0 = only at the end (when data.val_split is set)
    best_metric: str | None = None  # e.g. "global/top1", "global/mAP", "contrastive_loss"; null = auto
    cpu: bool = False  # force CPU even when a GPU is present
    # [choice] several processes: ddp keeps a full replica per process; fsdp shards weights, gradients and
    # optimiser state per transformer block (FSDP2). One process runs the same either way
    strategy: Literal["ddp", "fsdp"] = "ddp"
    compile: bool = False  # torch.compile (inductor) the training step; the first steps pay the compile time

    def problems(self) -> list[str]:
        out = range_problems(self, TRAIN_RANGES)
        out += [f"head_weights.{k}: expected {NON_NEGATIVE.text()}, got {v}" for k, v in self.head_weights.items()
                if not NON_NEGATIVE.holds(v)]
        bad = sorted(set(self.head_weights) - {"audio", "video", "fusion", "global"})
        if bad:
            out.append(f"head_weights: unknown heads {bad} (expected audio, video, fusion, global)")
        return out


@dataclass(frozen=True)
class EvalSection:
    """Evaluation sampling [paper]: 8-frame clips x 3 spatial crops, predictions averaged."""

    split: str = "test"
    clips: int = 1  # temporal clips per video (K)
    crops: int = 3  # [paper] spatial crops
    batch_size: int = 8

    def problems(self) -> list[str]:
        out = range_problems(self, EVAL_RANGES)
        crops = None if out else crops_problem(self.crops)
        if crops:
            out.append(f"crops: {crops}")
        return out


@dataclass(frozen=True)
class LogSection:
    """What a run reports while it runs."""

    every: int = 10  # optimiser steps between metric lines
    trackers: tuple[Tracker, ...] = ("tensorboard",)  # Accelerate log_with; one not installed is skipped with a message
    progress: Literal["auto", "bar", "plain"] = "auto"  # auto: a bar on a TTY, plain lines otherwise

    def problems(self) -> list[str]:
        out = range_problems(self, {"every": at_least(1)})
        if len(set(self.trackers)) != len(self.trackers):
            out.append(f"trackers: expected distinct names, got {list(self.trackers)}")
        return out
