"""Masked attention at paper shapes: block-skipping (only allowed blocks) vs dense masked SDPA.

Paper shapes (zorro_vit_b16): 320 audio + 8 fusion + 1568 video tokens, 12 heads of 64. Under the Zorro
mask 71.6% of query-key pairs are allowed, so the FLOP bound of skipping is 1/0.716 = 1.40x.
Forward + backward of the attention alone, both sides in one run, interleaved.

    python benchmarks/attention.py [--device auto|cpu|cuda] [--dtype fp32|bf16] [--batch 1]
"""

from __future__ import annotations

import argparse

import torch
from _common import describe_machine, pick_device, time_side_by_side

from zorro_cli.model.layers import block_plan, dense_plan, self_attention_rows
from zorro_cli.model.masks import TokenLayout, self_attention_mask, self_attention_rules


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--masking", default="zorro")
    args = ap.parse_args()
    device, dtype = pick_device(args.device), {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    layout = TokenLayout(audio=320, fusion=8, video=1568)
    rows = self_attention_rows(layout, self_attention_rules(args.masking))
    block, dense = block_plan(layout, rows), dense_plan(layout, rows)
    dense = type(dense)(dense.mask.to(device))
    allowed = self_attention_mask(layout, args.masking).float().mean().item()
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(args.batch, 12, layout.total, 64, device=device, dtype=dtype, generator=g)
               .requires_grad_(True) for _ in range(3))
    grad = torch.randn_like(q)

    def step(plan):
        def run() -> None:
            out = plan.attend(q, k, v)
            torch.autograd.backward(out, grad)
            q.grad = k.grad = v.grad = None
        return run

    with torch.no_grad():
        diff = (block.attend(q, k, v) - dense.attend(q, k, v)).abs().max().item()
    t = time_side_by_side({"block": step(block), "dense": step(dense)}, reps=args.reps, device=device)
    print(f"machine: {describe_machine(device)}; {args.dtype}; batch {args.batch}; masking {args.masking}")
    print(f"tokens {layout.total} (A {layout.audio} / F {layout.fusion} / V {layout.video}); "
          f"allowed pairs {allowed:.1%} -> FLOP bound {1 / allowed:.2f}x")
    print(f"dense masked SDPA fwd+bwd : {t['dense'] * 1e3:8.1f} ms")
    print(f"block-skipping    fwd+bwd : {t['block'] * 1e3:8.1f} ms")
    print(f"speed-up block vs dense   : {t['dense'] / t['block']:.2f}x   (target >= 1.3x)")
    print(f"max |block - dense| forward: {diff:.2e}")


if __name__ == "__main__":
    main()
