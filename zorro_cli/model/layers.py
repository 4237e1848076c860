"""Attention (block-skipping and dense masked), the pre-norm ViT block, and the decoding cross-attention.

Legend: B batch, H heads, N tokens (queries), M keys, D width, Dh head width, Q output queries.

A *plan* says which keys each query reads. :class:`BlockPlan` computes only the allowed blocks, one
``scaled_dot_product_attention`` call per run of queries that share a contiguous key range (the Zorro
masks are block structured, see :mod:`.masks`), so no FLOPs go to masked pairs and GPUs can use their
flash kernels. :class:`DensePlan` is the reference: one SDPA call over every pair with a boolean mask.
:class:`FlexPlan` runs the same mask through PyTorch's FlexAttention: one kernel for the whole Zorro mask,
forward and backward, that skips the masked 128 x 128 tiles (fused on CUDA through ``torch.compile``; an
unfused reference loop on CPU). All three give the same result to float tolerance (tested); the plan is
built once per forward and shared by every layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from .masks import GROUPS, TokenLayout


class AttentionPlan(Protocol):
    """Computes ``softmax(q k^T / sqrt(Dh)) v`` restricted to the allowed (query, key) pairs."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # [B,H,N,Dh],[B,H,M,Dh]x2 -> [B,H,N,Dh]
        ...


@dataclass(frozen=True)
class BlockPlan:
    """Runs of queries ``[qs, qe)`` that read the contiguous keys ``[ks, ke)``; rows cover all queries."""

    segments: tuple[tuple[int, int, int, int], ...]

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        outs = [
            F.scaled_dot_product_attention(q[:, :, qs:qe], k[:, :, ks:ke], v[:, :, ks:ke])
            for qs, qe, ks, ke in self.segments
        ]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


@dataclass(frozen=True)
class DensePlan:
    """Reference plan: dense attention with a ``[N, M]`` boolean mask (True = may attend), or an additive
    float ``[H, N, M]`` one (-inf = may not attend; Swin's relative position bias)."""

    mask: Tensor

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        mask = self.mask.to(q.device, q.dtype) if self.mask.is_floating_point() else self.mask.to(q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@dataclass(frozen=True)
class FlexPlan:
    """FlexAttention over a :class:`DensePlan`'s pairs: a block mask from the boolean ``[N, M]`` mask, or from
    the finite entries of an additive ``[H, N, M]`` one, whose values become a score modification (Swin's
    relative position bias, with its gradient).

    PyTorch has no FlexAttention backward on CPU ("FlexAttention does not support backward on CPU"): there,
    when a gradient is needed, the same mask runs through the dense masked SDPA (the reference, equal to
    float tolerance), so a CPU run with ``model.attention: flex`` still trains.
    """

    mask: Tensor
    # (device, dtype, N, M) -> (block mask, score modification): built once per plan, not once per layer
    _built: dict[tuple[Any, ...], tuple[Any, Any]] = field(default_factory=dict, compare=False, repr=False)

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if q.device.type == "cpu" and torch.is_grad_enabled() and (q.requires_grad or k.requires_grad
                                                                   or v.requires_grad):
            return DensePlan(self.mask).attend(q, k, v)
        key = (q.device, q.dtype, q.shape[2], k.shape[2])
        if key not in self._built:
            self._built[key] = self._build(q.device, q.dtype, q.shape[2], k.shape[2])
        block_mask, score_mod = self._built[key]
        return _flex_attention(q.device.type)(q, k, v, block_mask=block_mask, score_mod=score_mod)

    def _build(self, device: torch.device, dtype: torch.dtype, n: int, m: int) -> tuple[Any, Any]:
        """The block mask of the allowed pairs, and the bias as a score modification (None without one)."""
        from torch.nn.attention.flex_attention import create_block_mask

        additive = self.mask.to(device, dtype) if self.mask.is_floating_point() else None
        allowed = (torch.isfinite(additive).any(0) if additive is not None else self.mask).to(device)

        def keep(b: Tensor, h: Tensor, qi: Tensor, ki: Tensor) -> Tensor:
            return allowed[qi, ki]

        def add_bias(score: Tensor, b: Tensor, h: Tensor, qi: Tensor, ki: Tensor) -> Tensor:
            assert additive is not None
            return score + additive[h, qi, ki]

        block_mask = create_block_mask(keep, None, None, n, m, device=device)  # type: ignore[arg-type]
        return block_mask, (add_bias if additive is not None else None)


def _flex_attention(device_type: str) -> Callable[..., Tensor]:
    """``flex_attention``: compiled into one fused kernel on CUDA; eager (a reference loop) elsewhere."""
    import warnings

    from torch.nn.attention.flex_attention import flex_attention

    if device_type == "cuda":
        return _compiled_flex()
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
    return flex_attention  # type: ignore[return-value]


_COMPILED: list[Callable[..., Tensor]] = []


def _compiled_flex() -> Callable[..., Tensor]:
    """One ``torch.compile(flex_attention)`` per process (compiling is the expensive part)."""
    if not _COMPILED:
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED.append(torch.compile(flex_attention, dynamic=False))
    return _COMPILED[0]


def block_plan(layout: TokenLayout, rows: Sequence[tuple[int, int, Sequence[str]]]) -> BlockPlan:
    """Plan from ``(query_start, query_end, key_groups)`` rows; adjacent rows with one key range merge."""
    segments: list[tuple[int, int, int, int]] = []
    for qs, qe, groups in rows:
        if qe <= qs:
            continue
        ks, ke = layout.key_range(groups)
        if ke <= ks:
            raise ValueError(f"queries {qs}:{qe} read no keys (groups {tuple(groups)}) in {layout}")
        if segments and segments[-1][1] == qs and segments[-1][2:] == (ks, ke):
            segments[-1] = (segments[-1][0], qe, ks, ke)
        else:
            segments.append((qs, qe, ks, ke))
    return BlockPlan(tuple(segments))


def dense_plan(layout: TokenLayout, rows: Sequence[tuple[int, int, Sequence[str]]]) -> DensePlan:
    """The dense-mask equivalent of :func:`block_plan` for the same rows."""
    n_q = max((qe for _, qe, _ in rows), default=0)
    mask = torch.zeros(n_q, layout.total, dtype=torch.bool)
    for qs, qe, groups in rows:
        for g in groups:
            s, e = layout.span(g)
            mask[qs:qe, s:e] = True
    return DensePlan(mask)


def flex_plan(layout: TokenLayout, rows: Sequence[tuple[int, int, Sequence[str]]]) -> FlexPlan:
    """The FlexAttention equivalent of :func:`block_plan` for the same rows."""
    return FlexPlan(dense_plan(layout, rows).mask)


def drop_path_rates(rate: float, n: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to ``rate`` over ``n`` blocks (as timm's ViT)."""
    return [rate * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def concat_groups(tokens: Mapping[str, Tensor]) -> tuple[Tensor, TokenLayout]:
    """``{group: [B,Ng,D]}`` -> ``[B,N,D]`` in ``audio, fusion, video`` order, and its layout."""
    sizes = {g: (tokens[g].shape[1] if g in tokens else 0) for g in GROUPS}
    return torch.cat([tokens[g] for g in GROUPS if g in tokens], dim=1), TokenLayout(**sizes)


def split_groups(x: Tensor, layout: TokenLayout, groups: Sequence[str]) -> dict[str, Tensor]:
    """Inverse of :func:`concat_groups` for the ``groups`` wanted: ``[B,N,D]`` -> ``{group: [B,Ng,D]}``."""
    return {g: x[:, slice(*layout.span(g))] for g in groups}


def self_attention_rows(layout: TokenLayout, rules: Mapping[str, Sequence[str]]) -> list[tuple[int, int, Sequence[str]]]:
    """Rows for the backbone's self-attention: each group's queries read the groups its rule names."""
    return [(*layout.span(g), rules[g]) for g in GROUPS]


class Attention(nn.Module):
    """Multi-head self-attention whose allowed pairs come from a plan (timm's parameter names)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, plan: AttentionPlan) -> Tensor:  # [B,N,D] -> [B,N,D]
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = plan.attend(q, k, v)  # [B,H,N,Dh]
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-norm transformer block, exactly timm's ViT block (same names, so ViT weights load as they are)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, plan: AttentionPlan) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), plan))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CrossAttention(nn.Module):
    """Multi-head cross-attention from a few queries to the token sequence, masked by a plan.

    With few queries (``Q * heads < dim``, e.g. the four output queries) the key and value projections
    are folded into the queries instead of being applied to all ``N`` tokens (same function, a fraction
    of the FLOPs): per head ``h``, ``q_h . (W_k,h x + b_k,h) = (W_k,h^T q_h) . x + const`` (the constant
    cancels in the softmax) and ``sum_n p_n (W_v,h x_n + b_v,h) = W_v,h (sum_n p_n x_n) + b_v,h``. The
    attention then runs once over ``Q * heads`` absorbed queries of width ``dim`` against the raw tokens.
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def folds(self, n_queries: int) -> bool:
        """Whether ``n_queries`` queries take the folded path (fewer absorbed queries than the width)."""
        return n_queries * self.heads < self.q.in_features

    def forward(self, queries: Tensor, x: Tensor, plan: AttentionPlan,
                folded: bool = False) -> Tensor:  # [B,Q,D],[B,N,D] -> [B,Q,D]
        """``folded`` (see :meth:`folds`): ``plan``'s rows are over the ``Q * heads`` query-major absorbed
        queries (see the class doc), else over the ``Q`` queries."""
        B, Q, D = queries.shape
        N, H, Dh = x.shape[1], self.heads, D // self.heads
        q = self.q(queries).reshape(B, Q, H, Dh)
        if not folded:
            k, v = self.kv(x).reshape(B, N, 2, H, Dh).permute(2, 0, 3, 1, 4).unbind(0)
            out = plan.attend(q.transpose(1, 2), k, v).transpose(1, 2)  # [B,Q,H,Dh]
        else:
            w_k, w_v = self.kv.weight.view(2, H, Dh, D).unbind(0)
            # SDPA scales by 1/sqrt(D); the heads' scores need 1/sqrt(Dh): pre-multiply by sqrt(D/Dh)
            qa = torch.einsum("bqhd,hdc->bqhc", q, w_k) * math.sqrt(H)  # [B,Q,H,D]
            xs = x.unsqueeze(1)  # [B,1,N,D]
            ctx = plan.attend(qa.reshape(B, 1, Q * H, D), xs, xs).view(B, Q, H, D)
            out = torch.einsum("bqhc,hdc->bqhd", ctx, w_v)
            if self.kv.bias is not None:
                out = out + self.kv.bias.view(2, H, Dh)[1]
        return self.proj(out.reshape(B, Q, D))


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention block for the learned output queries: attend, then MLP, then norm."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = CrossAttention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, queries: Tensor, x: Tensor, plan: AttentionPlan,
                folded: bool = False) -> Tensor:  # [B,Q,D],[B,N,D] -> [B,Q,D]
        q = queries + self.attn(self.norm_q(queries), x, plan, folded)
        return self.norm(q + self.mlp(self.norm2(q)))


PlanBuilder = Callable[[TokenLayout, Sequence[tuple[int, int, Sequence[str]]]], AttentionPlan]
# ``ZorroConfig.attention`` -> plan builder: "block" skips masked blocks, "dense" is masked SDPA (reference),
# "flex" is FlexAttention with a block mask.
PLAN_BUILDERS: dict[str, PlanBuilder] = {"block": block_plan, "dense": dense_plan, "flex": flex_plan}
