"""Our Zorro vs the only public implementation, ``zorro-pytorch`` 0.1.1, side by side in one run.

Same widths and token counts: D 768, 12 heads of 64, 8 fusion tokens, 8x224x224 video with temporal
patch 1 (1568 tokens); the peer takes 1 s of 16 kHz audio (its in-forward spectrogram gives 332 tokens),
ours a 128x656 log-mel (328 tokens). Depth 2, batch 1 (``--batch``), forward + backward of the sum of the outputs.

Printed: time per step and the speed-up; FLOPs per step (torch's FLOP counter: what each model
actually executes) and the fraction of the measured matmul peak each reaches; a per-component split
of the gap (attention sub-layer vs feed-forward sub-layer, each timed alone at the full sequence
length); and whether each model's *audio* output moves when only the video changes (it must not).

    pip install -e ".[bench]"; python benchmarks/vs_peer.py [--device auto|cpu|cuda] [--dtype fp32|bf16]
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from _common import count_flops, describe_machine, matmul_peak, pick_device, time_side_by_side
from zorro_pytorch import Zorro as PeerZorro
from zorro_pytorch.zorro_pytorch import Attention as PeerAttention
from zorro_pytorch.zorro_pytorch import FeedForward as PeerFeedForward

from zorro_cli.model import build_model
from zorro_cli.model.layers import Block, block_plan, self_attention_rows
from zorro_cli.model.masks import TokenLayout, self_attention_mask, self_attention_rules

D, HEADS, DEPTH, FUSION = 768, 12, 2, 8


def peer_mask(n_audio: int, n_fusion: int, n_video: int, device: torch.device) -> torch.Tensor:
    """The peer's own backbone mask (type_i == type_j, or the query is a fusion token)."""
    return self_attention_mask(TokenLayout(n_audio, n_fusion, n_video), "zorro").to(device)


def fwd_bwd(fn, amp):
    def run() -> None:
        with amp:
            out = fn()
        out.float().sum().backward()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    b = args.batch
    device = pick_device(args.device)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.dtype == "bf16"
           else contextlib.nullcontext())
    torch.manual_seed(0)
    peer = PeerZorro(dim=D, depth=DEPTH, dim_head=64, heads=HEADS, ff_mult=4, num_fusion_tokens=FUSION,
                     video_temporal_patch_size=1).to(device).train()
    ours = build_model("zorro_vit_b16", depth=DEPTH, audio_frames=656, num_classes=0, proj_dim=0).to(device).train()
    wave = torch.randn(b, 16000, device=device)
    mel = torch.randn(b, 1, 128, 656, device=device)
    video, video2 = (torch.randn(b, 3, 8, 224, 224, device=device) for _ in range(2))

    def peer_out(v: torch.Tensor = video) -> torch.Tensor:
        return peer(audio=wave, video=v)  # [B,3,D]: audio, video, fusion

    def our_out(v: torch.Tensor = video) -> torch.Tensor:
        return torch.stack(list(ours.encode(audio=mel, video=v).values()), 1)  # [B,4,D]

    steps = {"peer": fwd_bwd(peer_out, amp), "ours": fwd_bwd(our_out, amp)}
    flops = {k: count_flops(fn) for k, fn in steps.items()}
    t = time_side_by_side(steps, reps=args.reps, device=device)
    peak = matmul_peak(device, torch.bfloat16 if args.dtype == "bf16" else torch.float32)

    # Component split at the full sequence length (one layer each, fwd+bwd).
    n_peer, n_ours = 332 + FUSION + 1568, 328 + FUSION + 1568
    xp = torch.randn(b, n_peer, D, device=device, requires_grad=True)
    xo = torch.randn(b, n_ours, D, device=device, requires_grad=True)
    p_attn, p_ff = PeerAttention(D, 64, HEADS).to(device), PeerFeedForward(D, 4).to(device)
    mask = peer_mask(332, FUSION, 1568, device)
    blk = Block(D, HEADS).to(device)
    layout = TokenLayout(328, FUSION, 1568)
    plan = block_plan(layout, self_attention_rows(layout, self_attention_rules("zorro")))
    parts = time_side_by_side({
        "peer_attn": fwd_bwd(lambda: p_attn(xp, attn_mask=mask), amp),
        "ours_attn": fwd_bwd(lambda: blk.attn(blk.norm1(xo), plan), amp),
        "peer_ff": fwd_bwd(lambda: p_ff(xp), amp),
        "ours_ff": fwd_bwd(lambda: blk.mlp(blk.norm2(xo)), amp),
    }, reps=args.reps, device=device)

    with torch.no_grad(), amp:
        peer_moves = (peer_out(video)[:, 0] - peer_out(video2)[:, 0]).abs().max().item()
        ours_moves = (our_out(video)[:, 0] - our_out(video2)[:, 0]).abs().max().item()

    print(f"machine: {describe_machine(device)}; {args.dtype}; depth {DEPTH}, batch {b}, fwd+bwd")
    print(f"measured matmul peak: {peak / 1e9:.1f} GFLOP/s")
    for k, name in (("peer", "zorro-pytorch 0.1.1"), ("ours", "zorro (this repo)")):
        print(f"{name:20s}: {t[k] * 1e3:8.1f} ms/step  {flops[k] / 1e9:7.1f} GFLOP/step  "
              f"{flops[k] / t[k] / 1e9:6.1f} GFLOP/s = {flops[k] / t[k] / peak:5.1%} of peak")
    print(f"speed-up ours vs peer: {t['peer'] / t['ours']:.2f}x   (target >= 1.6x)")
    gap = t["peer"] - t["ours"]
    a_gap = (parts["peer_attn"] - parts["ours_attn"]) * DEPTH
    f_gap = (parts["peer_ff"] - parts["ours_ff"]) * DEPTH
    print("per layer fwd+bwd       peer      ours")
    print(f"  attention sub-layer {parts['peer_attn'] * 1e3:8.1f}  {parts['ours_attn'] * 1e3:8.1f} ms "
          "(peer: dense einsum over all pairs + masked_fill; ours: SDPA on allowed blocks only)")
    print(f"  feed-forward        {parts['peer_ff'] * 1e3:8.1f}  {parts['ours_ff'] * 1e3:8.1f} ms "
          "(peer: GEGLU, same matmul FLOPs + gate; ours: GELU MLP)")
    print(f"of the {gap * 1e3:.0f} ms gap per step: attention {a_gap * 1e3:.0f} ms, feed-forward {f_gap * 1e3:.0f} ms, "
          f"rest (tokenizers, spectrogram, read-out) {(gap - a_gap - f_gap) * 1e3:.0f} ms")
    print(f"audio output moves when only the video changes: peer {peer_moves:.3g} "
          f"({'LEAKS' if peer_moves > 1e-6 else 'no'}), ours {ours_moves:.3g} ({'LEAKS' if ours_moves > 0 else 'no'})")


if __name__ == "__main__":
    main()
