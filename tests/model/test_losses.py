"""Losses against hand-computed values, and cross-process negatives with gloo."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from zorro_cli.model.losses import contrastive_loss, info_nce, supervised_loss


def test_supervised_single_label_sums_weighted_heads() -> None:
    logits = {"audio": torch.tensor([[0.0, 0.0]]), "video": torch.tensor([[math.log(3.0), 0.0]])}
    total, per = supervised_loss(logits, torch.tensor([0]), multilabel=False, weights={"video": 2.0})
    assert per["audio"].item() == pytest.approx(math.log(2))  # uniform over 2 classes
    assert per["video"].item() == pytest.approx(-math.log(3 / 4))  # p = 3/(3+1)
    assert total.item() == pytest.approx(math.log(2) + 2 * -math.log(3 / 4))


def test_supervised_multilabel_is_mean_bce() -> None:
    z = torch.tensor([[0.0, math.log(3.0)]])
    total, per = supervised_loss({"global": z}, torch.tensor([[1.0, 0.0]]), multilabel=True)
    # -(log 0.5 + log(1 - 0.75)) / 2
    assert total.item() == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert set(per) == {"global"}


def test_info_nce_literal_value() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # cos sims [[1,0],[0,1]] / tau=1: loss = -log(e / (e + 1)) both ways
    assert info_nce(a, a.clone(), 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    b = torch.tensor([[2.0, 0.0], [0.0, 5.0]])  # scale does not matter (cosine)
    assert info_nce(a, b, 0.5).item() == pytest.approx(math.log(1 + math.exp(-2)))


def test_contrastive_variants() -> None:
    torch.manual_seed(0)
    p = {k: torch.randn(4, 8) for k in ("audio", "video", "fusion")}
    av, parts = contrastive_loss(p, 0.08, "av")
    assert set(parts) == {"audio_video"}
    full, parts = contrastive_loss(p, 0.08, "av_fusion")
    assert set(parts) == {"audio_video", "audio_fusion", "video_fusion"}
    expected = av + info_nce(p["audio"], p["fusion"], 0.08) + info_nce(p["video"], p["fusion"], 0.08)
    assert full.item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="needs projections of"):
        contrastive_loss({"audio": p["audio"], "video": p["video"]}, 0.08, "av_fusion")


def _worker(rank: int, world: int, port: int, a: torch.Tensor, b: torch.Tensor, q: mp.Queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    n = a.shape[0] // world
    la = a[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    lb = b[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    loss = info_nce(la, lb, 0.1)
    loss.backward()
    # numpy, not tensors: a tensor crosses the queue as a shared-memory handle that vanishes when this
    # process exits, which under load can be before the parent reads it (FileNotFoundError)
    q.put((rank, loss.item(), la.grad.numpy(), lb.grad.numpy()))
    dist.destroy_process_group()


def test_negatives_are_gathered_across_processes_with_gradients() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [ctx.Process(target=_worker, args=(r, 2, port, a, b, q)) for r in range(2)]
    for p in procs:
        p.start()
    res = sorted(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    fa, fb = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    full = info_nce(fa, fb, 0.1)
    full.backward()
    # the mean of the per-process losses is the one-process loss over the global batch ...
    assert (res[0][1] + res[1][1]) / 2 == pytest.approx(full.item(), rel=1e-6)
    # ... and each process's gradient (its loss + the others' through all_gather), divided by the world
    # size as DDP's averaging does, equals the one-process gradient of its rows.
    ga = torch.from_numpy(np.concatenate([res[0][2], res[1][2]])) / 2
    gb = torch.from_numpy(np.concatenate([res[0][3], res[1][3]])) / 2
    torch.testing.assert_close(ga, fa.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gb, fb.grad, atol=1e-6, rtol=1e-5)
    # without gathering, each process would only see its own 3 clips as negatives: a different loss
    local = sum(info_nce(a[i * 3:(i + 1) * 3], b[i * 3:(i + 1) * 3], 0.1, gather=False) for i in range(2)) / 2
    assert abs(local.item() - full.item()) > 1e-3
    assert F.cosine_similarity(ga.flatten(), fa.grad.flatten(), dim=0) > 0.999


def test_soft_targets_equal_hard_ones_when_one_hot_and_mix_linearly() -> None:
    """Mixup's soft targets: a one-hot float target is the class index; a mix is the mix of the losses."""
    z = {"audio": torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])}
    hard, _ = supervised_loss(z, torch.tensor([0, 2]), multilabel=False)
    soft, _ = supervised_loss(z, torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]), multilabel=False)
    assert torch.allclose(hard, soft)
    lam = 0.3
    mixed, _ = supervised_loss(z, torch.tensor([[lam, 0, 1 - lam], [1 - lam, 0, lam]]), multilabel=False)
    a, _ = supervised_loss(z, torch.tensor([0, 2]), multilabel=False)
    b, _ = supervised_loss(z, torch.tensor([2, 0]), multilabel=False)
    assert torch.allclose(mixed, lam * a + (1 - lam) * b)
