"""Unimodal path: audio-only o_A vs the full forward, zorro_vit_b16 at paper shapes.

Under the Zorro mask o_A depends only on the audio tokens, so ``encode(audio=x)`` runs 320 tokens
instead of 1896. Inference (no grad), both sides in one run, interleaved; the max |Δ| between the two
o_A is printed (they must agree to float tolerance).

    python benchmarks/unimodal.py [--device auto|cpu|cuda] [--dtype fp32|bf16] [--batch 1]
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from _common import count_flops, describe_machine, pick_device, time_side_by_side

from zorro_cli.model import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--preset", default="zorro_vit_b16")
    args = ap.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)
    model = build_model(args.preset, masking="zorro").to(device).eval()
    x = {k: v.to(device) for k, v in model.example_inputs(args.batch).items()}
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.dtype == "bf16"
           else contextlib.nullcontext())

    def full() -> torch.Tensor:
        with amp:
            return model.encode(audio=x["audio"], video=x["video"])["audio"]

    def audio_only() -> torch.Tensor:
        with amp:
            return model.encode(audio=x["audio"])["audio"]

    f_full, f_audio = count_flops(full), count_flops(audio_only)  # (FLOP counting needs autograd on)
    torch.set_grad_enabled(False)
    diff = (full().float() - audio_only().float()).abs().max().item()
    t = time_side_by_side({"full": full, "audio": audio_only}, reps=args.reps, device=device)
    print(f"machine: {describe_machine(device)}; {args.preset}; {args.dtype}; batch {args.batch}")
    print(f"full forward (1896 tokens) : {t['full'] * 1e3:8.1f} ms  {f_full / 1e9:7.1f} GFLOP")
    print(f"audio-only o_A (320 tokens): {t['audio'] * 1e3:8.1f} ms  {f_audio / 1e9:7.1f} GFLOP")
    print(f"speed-up                   : {t['full'] / t['audio']:.2f}x   (FLOP ratio {f_full / f_audio:.2f}x; "
          f"target >= 6x)")
    print(f"max |o_A full - o_A audio-only|: {diff:.2e}")


if __name__ == "__main__":
    main()
