"""CUDA check in one run: correctness of the fast paths on the GPU, the attention kernels, bf16 training.

Meant for the short GPU loans of this project (one prepared script, figures printed as a table at the
end). Nothing here is needed by the test suite, which runs on CPUs.

1. *Correctness on the GPU*, fresh random inputs, a mid-sized model (D 256, 4 layers) under each masking:
   block-skipping vs dense masked attention (forward outputs and parameter gradients, fp32, relative
   error), bf16 autocast vs fp32, the unimodal path vs the full model, and purity (o_A bit-identical
   when only the video changes, zero gradient on video-only parameters) in bf16.
2. *Attention kernels*: the block-skipping attention at paper shapes with SDPA restricted to one backend
   at a time (flash, memory-efficient, cuDNN, math) — a backend that cannot serve every call fails
   loudly, so "ok" means every segment ran on it — against dense masked SDPA.
3. *Paper-scale training step*: ``zorro_vit_b16`` (128x640 log-mel + 8x224x224 video), bf16 autocast,
   contrastive loss, AdamW, batch ``--batch``; clips/s, peak memory, achieved TFLOP/s and the fraction
   of the measured bf16 matmul peak; block-skipping vs dense attention in the whole step.

    python benchmarks/gpu_check.py [--batch 32] [--reps 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch
from _common import count_flops, describe_machine, matmul_peak, sync, time_side_by_side
from torch.nn.attention import SDPBackend, sdpa_kernel

from zorro_cli.model import Zorro, ZorroConfig, build_model
from zorro_cli.model.layers import block_plan, dense_plan, flex_plan, self_attention_rows
from zorro_cli.model.losses import contrastive_loss
from zorro_cli.model.masks import MASKINGS, TokenLayout, self_attention_rules

RESULTS: dict[str, object] = {}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def mid_model(masking: str, device: torch.device) -> Zorro:
    cfg = ZorroConfig(dim=256, depth=4, heads=4, fusion_tokens=8, n_mels=64, audio_frames=256, frames=4,
                      image_size=(96, 96), video_patch=(1, 16, 16), masking=masking, num_classes=10,
                      proj_dim=64)
    return Zorro(cfg).to(device)


def outputs_and_grads(model: Zorro, x: dict[str, torch.Tensor], amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    with torch.autocast(x["audio"].device.type, dtype=torch.bfloat16, enabled=amp):
        feats = model.encode(audio=x["audio"], video=x["video"])
    out = torch.stack([feats[k].float() for k in sorted(feats)], 1)
    (out * torch.linspace(-1, 1, out.shape[-1], device=out.device)).sum().backward()
    grads = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
    return out.detach(), grads


def check_correctness(device: torch.device) -> list[str]:
    rows = []
    for masking in MASKINGS:
        torch.manual_seed(0)
        model = mid_model(masking, device)
        x = {k: v.to(device) for k, v in model.example_inputs(4, torch.Generator().manual_seed(1)).items()}
        model.set_attention("dense")
        ref_out, ref_grad = outputs_and_grads(model, x, amp=False)
        model.set_attention("block")
        out, grad = outputs_and_grads(model, x, amp=False)
        bf_out, bf_grad = outputs_and_grads(model, x, amp=True)
        r = {"block_vs_dense_fwd_fp32": rel(out, ref_out), "block_vs_dense_grad_fp32": rel(grad, ref_grad),
             "bf16_vs_fp32_fwd": rel(bf_out, out), "bf16_vs_fp32_grad": rel(bf_grad, grad)}
        try:  # FlexAttention (model.attention: flex): its backward exists on CUDA only
            model.set_attention("flex")
            fx_out, fx_grad = outputs_and_grads(model, x, amp=False)
            r |= {"flex_vs_dense_fwd_fp32": rel(fx_out, ref_out), "flex_vs_dense_grad_fp32": rel(fx_grad, ref_grad)}
        except Exception as e:  # report it; the check goes on
            RESULTS.setdefault("flex_errors", []).append(f"{masking}: {str(e).splitlines()[0][:200]}")
        model.set_attention("block")
        with torch.no_grad():
            if masking in ("zorro", "independent"):
                full = model.encode(audio=x["audio"], video=x["video"])
                r["unimodal_audio_maxabs_fp32"] = (model.encode(audio=x["audio"])["audio"] - full["audio"]).abs().max().item()
                r["unimodal_video_maxabs_fp32"] = (model.encode(video=x["video"])["video"] - full["video"]).abs().max().item()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                a1 = model.encode(audio=x["audio"], video=x["video"])
                a2 = model.encode(audio=x["audio"], video=torch.randn_like(x["video"]))
            r["bf16_oA_change_when_video_changes"] = (a1["audio"] - a2["audio"]).abs().max().item()
            r["bf16_oF_change_when_video_changes"] = (a1["fusion"] - a2["fusion"]).abs().max().item() \
                if "fusion" in a1 else float("nan")
        if masking == "zorro":  # gradient purity in bf16: a loss on o_A reaches no video-only parameter
            model.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                model.encode(audio=x["audio"], video=x["video"])["audio"].float().sum().backward()
            video_only = [p for n, p in model.named_parameters() if "video" in n]
            r["bf16_video_param_grad_from_oA"] = max(
                (p.grad.abs().max().item() for p in video_only if p.grad is not None), default=0.0)
        RESULTS[f"correctness/{masking}"] = r
        rows.append(f"{masking:12s} " + "  ".join(f"{k}={v:.2e}" for k, v in r.items()))
    return rows


def check_kernels(device: torch.device, batch: int, reps: int) -> list[str]:
    layout = TokenLayout(audio=320, fusion=8, video=1568)
    plan_rows = self_attention_rows(layout, self_attention_rules("zorro"))
    block, dense = block_plan(layout, plan_rows), dense_plan(layout, plan_rows)
    dense = type(dense)(dense.mask.to(device))
    q, k, v = (torch.randn(batch, 12, layout.total, 64, device=device, dtype=torch.bfloat16).requires_grad_(True)
               for _ in range(3))
    grad = torch.randn_like(q)
    with torch.no_grad():
        ref = dense.attend(q.double(), k.double(), v.double()).float()

    def step(plan, backend: SDPBackend | None) -> Callable[[], None]:
        def run() -> None:
            if backend is None:
                out = plan.attend(q, k, v)
            else:
                with sdpa_kernel([backend]):
                    out = plan.attend(q, k, v)
            torch.autograd.backward(out, grad)
            q.grad = k.grad = v.grad = None
        return run

    fns: dict[str, Callable[[], None]] = {"dense (default)": step(dense, None), "block (default)": step(block, None)}
    rows, status = [], {}
    flex = type(flex_plan(layout, plan_rows))(dense.mask)
    try:  # one compiled FlexAttention kernel for the whole mask
        with torch.no_grad():
            status["flex"] = f"ok, rel err vs fp64 dense {rel(flex.attend(q, k, v).float(), ref):.1e}"
        step(flex, None)()
        fns["flex (compiled)"] = step(flex, None)
    except Exception as e:  # report it; the check goes on
        status["flex"] = "unavailable: " + str(e).splitlines()[0][:90]

    class Unmasked:  # the target: the Zorro mask should cost no more than unmasked flash over the same tokens
        @staticmethod
        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    try:
        step(Unmasked, SDPBackend.FLASH_ATTENTION)()
        fns["unmasked (flash)"] = step(Unmasked, SDPBackend.FLASH_ATTENTION)
    except RuntimeError as e:
        status["unmasked flash"] = "unavailable: " + str(e).splitlines()[0][:90]
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                          ("cudnn", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)):
        try:
            with torch.no_grad(), sdpa_kernel([backend]):
                err = rel(block.attend(q, k, v).float(), ref)
            step(block, backend)()
            fns[f"block ({name})"] = step(block, backend)
            status[name] = f"ok, rel err vs fp64 dense {err:.1e}"
        except RuntimeError as e:
            status[name] = "unavailable: " + str(e).splitlines()[0][:90]
    t = time_side_by_side(fns, reps=reps, device=device)
    RESULTS["kernels"] = {"batch": batch, "ms": {k: v * 1e3 for k, v in t.items()}, "status": status}
    rows.append(f"block-skipping attention at paper shapes (1896 tokens, 12x64), bf16, batch {batch}, fwd+bwd:")
    for name, s in status.items():
        rows.append(f"  {name:22s}: {s}")
    for name, sec in t.items():
        rows.append(f"  {name:18s} {sec * 1e3:8.2f} ms   {t['dense (default)'] / sec:5.2f}x vs dense")
    return rows


def train_step(model: Zorro, batch: int, device: torch.device, compile: bool = False) -> Callable[[], None]:
    x = {k: v.to(device) for k, v in model.example_inputs(batch, torch.Generator().manual_seed(0)).items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

    def embed(audio: torch.Tensor, video: torch.Tensor) -> dict[str, torch.Tensor]:
        return model.project(model.encode(audio=audio, video=video))

    embed_fn = torch.compile(embed) if compile else embed

    def run() -> None:
        amp = device.type != "meta"
        with torch.autocast(device.type if amp else "cpu", dtype=torch.bfloat16, enabled=amp):
            proj = embed_fn(x["audio"], x["video"])
        loss, _ = contrastive_loss(proj, model.config.temperature, gather=False)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return run


def check_training(device: torch.device, batch: int, reps: int, peak: float, compile: bool = False,
                   preset: str = "zorro_vit_b16") -> list[str]:
    rows = []
    flops = count_flops(train_step(build_model(preset, num_classes=0).to("meta"), batch,
                                   torch.device("meta")))
    models = {impl: build_model(preset, num_classes=0, attention=impl).to(device) for impl in ("block", "dense")}
    steps = {impl: train_step(m, batch, device) for impl, m in models.items()}
    if compile:  # torch.compile (inductor) of forward + projection; the first call compiles
        t0 = time.perf_counter()
        steps["block+compile"] = train_step(build_model(preset, num_classes=0).to(device), batch, device,
                                            compile=True)
        steps["block+compile"]()
        sync(device)
        rows.append(f"  torch.compile: first step (compiling) {time.perf_counter() - t0:.0f} s")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps["block"]()
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    t = time_side_by_side(steps, reps=reps, warmup=3, device=device)
    RESULTS["train_step"] = {"batch": batch, "tflop_per_step": flops / 1e12, "s_per_step": t,
                             "peak_mem_gib_block": mem, "bf16_peak_tflops": peak / 1e12}
    rows.append(f"{preset} training step (contrastive, AdamW), bf16 autocast, batch {batch}: "
                f"{flops / 1e12:.2f} TFLOP/step (block-skipping), peak memory {mem:.1f} GiB")
    for impl, sec in t.items():
        rows.append(f"  {impl:6s} attention: {sec * 1e3:8.1f} ms/step  {batch / sec:7.1f} clips/s  "
                    f"{flops / sec / 1e12:6.1f} TFLOP/s = {flops / sec / peak:5.1%} of measured bf16 matmul peak")
    rows.append(f"  block vs dense in the whole step: {t['dense'] / t['block']:.2f}x")
    if "block+compile" in t:
        rows.append(f"  torch.compile vs eager (block): {t['block'] / t['block+compile']:.2f}x")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json", default="")
    ap.add_argument("--device", default="cuda", help="cuda; 'cpu' only to smoke-test this script")
    ap.add_argument("--sections", default="correctness,kernels,training")
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd training step")
    ap.add_argument("--preset", default="zorro_vit_b16", help="model of the training section")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py: no CUDA device", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    peak = matmul_peak(device, torch.bfloat16, n=8192 if device.type == "cuda" else 512)
    report = [f"machine: {describe_machine(device)}; measured bf16 matmul peak {peak / 1e12:.0f} TFLOP/s"]
    sections = {"correctness": lambda: check_correctness(device),
                "kernels": lambda: check_kernels(device, 8 if device.type == "cuda" else 1, args.reps),
                "training": lambda: check_training(device, args.batch, args.reps, peak, args.compile, args.preset)}
    for name in args.sections.split(","):
        rows = sections[name]()
        report += rows
        print("\n".join(rows), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(RESULTS, f, indent=1, default=str)
    print(f"\n==== summary ({time.perf_counter() - t0:.0f} s) ====")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
