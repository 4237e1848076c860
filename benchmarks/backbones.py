"""Training-step throughput of Zorro-ViT, Zorro-Swin and Zorro-HiP at the paper's input shapes.

The paper-sized presets (zorro_vit_b16, zorro_swin_b, zorro_hip_b) under the ``zorro`` masking, at the
paper's inputs (128x640 log-mel, 8x224x224 video). One training step = forward, the supervised loss summed
over the four heads (527 classes, multi-label), backward, AdamW step. fp32 on CPU; bf16 autocast on CUDA.
The three models' steps are interleaved (ViT, Swin, HiP, ViT, ...) so that drift and other load on the
machine hit all alike. FLOPs per step are counted on the meta device (the same graph, no compute).

The paper's claims: Zorro-Swin trains about 25% faster than Zorro-ViT (1.25x), Zorro-HiP is the fastest.

    python benchmarks/backbones.py [--device auto|cpu|cuda] [--batch 2] [--reps 3] [--warmup 1] [--breakdown]
                                   [--threads N] [--backbones vit,swin,hip]

A ``--backbones`` entry may set backbone options (``ZorroConfig.extra``) after colons, values as JSON, to
compare variants side by side, e.g. ``--backbones swin,swin:rel_pos_bias=false,hip,hip:shared_blocks=true``.

On a CPU shared with other work, ``--threads 1`` gives steadier figures: with several threads every
parallel kernel waits at a barrier for a core another process holds, which costs the models made of many
small kernels (HiP, Swin) far more than ViT's few large matmuls.

``--breakdown`` also profiles one step of each model and prints the share of its time spent in matmul-type
kernels (matmuls, attention, convolutions) vs everything else (norms, activations, copies, window
gathers, the optimizer), which is what separates a FLOP ratio from a speed ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable

import torch
from _common import count_flops, describe_machine, pick_device, time_side_by_side

from zorro_cli.model import build_model, supervised_loss
from zorro_cli.model.zorro import Zorro

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::convolution_backward",
              "aten::mkldnn_convolution", "aten::_scaled_dot_product", "aten::_flash_attention",
              "aten::_efficient_attention", "aten::_cudnn_attention")
PRESETS = {"vit": "zorro_vit_b16", "swin": "zorro_swin_b", "hip": "zorro_hip_b"}
CLAIMS = {"vit": "baseline", "swin": "~1.25x ViT", "hip": "fastest of the three"}


def train_step(model: Zorro, batch: int, device: torch.device, amp: bool) -> Callable[[], None]:
    """One forward + backward + AdamW step on fixed random inputs of the model's configured shapes."""
    x = {k: v.to(device) for k, v in model.example_inputs(batch, torch.Generator().manual_seed(0)).items()}
    target = (torch.rand(batch, model.config.num_classes, generator=torch.Generator().manual_seed(1)) < 0.01)
    target = target.float().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4) if device.type != "meta" else None
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    def step() -> None:
        with ctx:
            loss, _ = supervised_loss(model(**x), target, multilabel=True)
        loss.backward()
        if opt is not None:
            opt.step()
        model.zero_grad(set_to_none=True)

    return step


def parse_entry(entry: str) -> tuple[str, dict]:
    """``"hip:shared_blocks=true"`` -> ``("hip", {"shared_blocks": True})``."""
    backbone, *options = entry.split(":")
    if backbone not in PRESETS:
        raise SystemExit(f"--backbones: unknown backbone {backbone!r} in {entry!r}")
    extra = {}
    for opt in options:
        key, _, value = opt.partition("=")
        extra[key] = json.loads(value)
    return backbone, extra


def flops_per_step(name: str, batch: int, extra: dict | None = None) -> int:
    """Forward + backward FLOPs of one step, counted on the meta device."""
    with torch.device("meta"):
        model = build_model(name, masking="zorro", extra=extra or {})
        return count_flops(train_step(model, batch, torch.device("meta"), amp=False))


def matmul_share(step: Callable[[], None], device: torch.device) -> float:
    """Fraction of one step's kernel time spent in matmul-type ops (profiled)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=acts) as prof:
        step()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events)
    mat = sum(getattr(e, attr) for e in events if e.key.startswith(MATMUL_OPS))
    return mat / total if total else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--backbones", default="vit,swin,hip",
                    help="comma-separated subset of vit,swin,hip; options after colons (swin:rel_pos_bias=false)")
    ap.add_argument("--breakdown", action="store_true", help="profile one step each: matmul-type share")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    amp = device.type == "cuda"
    names = args.backbones.split(",")
    entries = {b: parse_entry(b) for b in names}
    flops = {b: flops_per_step(PRESETS[kind], args.batch, extra) for b, (kind, extra) in entries.items()}
    models, steps = {}, {}
    for b, (kind, extra) in entries.items():
        torch.manual_seed(0)
        models[b] = build_model(PRESETS[kind], masking="zorro", extra=extra).to(device).train()
        steps[b] = train_step(models[b], args.batch, device, amp)
    t = time_side_by_side(steps, reps=args.reps, warmup=args.warmup, device=device)
    base = t.get("vit")
    print(f"machine: {describe_machine(device)}; {'bf16 autocast' if amp else 'fp32'}; batch {args.batch}; "
          f"reps {args.reps} (median), warmup {args.warmup}; masking zorro; inputs 128x640 log-mel + 8x224x224")
    width = max(8, *map(len, names))
    print(f"{'backbone':<{width}} {'preset':<14} {'params':>8} {'GFLOP/step':>11} {'s/step':>8} {'clips/s':>8} "
          f"{'vs ViT':>7} {'FLOP ratio':>10} {'GFLOP/s':>8}  paper")
    for b, (kind, _) in entries.items():
        n_params = sum(p.numel() for p in models[b].parameters())
        speed = f"{base / t[b]:.2f}x" if base else "-"
        flop_ratio = f"{flops['vit'] / flops[b]:.2f}x" if "vit" in flops else "-"
        print(f"{b:<{width}} {PRESETS[kind]:<14} {n_params / 1e6:>7.1f}M {flops[b] / 1e9:>11.0f} {t[b]:>8.2f} "
              f"{args.batch / t[b]:>8.3f} {speed:>7} {flop_ratio:>10} {flops[b] / t[b] / 1e9:>8.1f}  {CLAIMS[kind]}")
    print("vs ViT = ViT's s/step / this one's (> 1: faster); FLOP ratio = ViT's FLOPs / this one's "
          "(the speed-up if every FLOP cost the same).")
    if args.breakdown:
        for b in names:
            share = matmul_share(steps[b], device)
            print(f"{b:<{width}} time in matmul-type kernels {share:.0%}, in everything else {1 - share:.0%}")


if __name__ == "__main__":
    main()
