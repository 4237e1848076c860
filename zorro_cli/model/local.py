"""Local attention plans: windows (Swin) and groups (HiP) under the masking rules, with a dense reference.

Legend: B batch, H heads, Dh head width, W windows (or groups), Lq / Lk queries / keys per window,
S shared keys, N tokens. Grids are flattened row-major (audio ``(Fp, Tp)``, video ``(Tp, Hp, Wp)``), as the
tokenizers flatten them.

The hierarchical backbones keep the Zorro rules of :mod:`.masks` and add locality. One uniform rule
[choice] turns a masking rule into a plan:

- a modality query reads the keys of **its own group through the backbone's locality structure**
  (its Swin window, or its HiP group's chunk), and
- **every key of each other group** that its rule names, in full (the *shared* keys).

So under ``zorro``/``independent`` audio and video queries read only their own window/chunk; under
``bottleneck`` they also read every fusion token; under ``input_fusion`` they also read every fusion
token and every token of the other modality (there is no spatial correspondence between a spectrogram
window and a video window, so "no mask" means the whole other modality; this costs O(Na·Nv) per layer,
the price of input-level fusion). The fusion group has no locality: its queries read every key of
every group its rule names (one block of :class:`.layers.BlockPlan`).

:class:`LocalPlan` computes exactly those pairs: tokens are gathered into windows by index and the
windows run as extra attention heads, in at most two SDPA calls per modality (the windows that need no
mask, and the shifted or padded edge windows with a boolean mask). :meth:`LocalPlan.dense` is the
reference: the same pairs as one ``[Nq, Nk]`` boolean mask (tested equal). A plan may carry a bias per
windowed group (Swin's relative position bias, ``[H, Lq, Lk]`` added inside every window): the windows'
masks then become additive float masks, and the dense reference one ``[H, Nq, Nk]`` float mask. Window
geometry depends only on shapes and is cached (:func:`cached_windows`), so a forward does no index
arithmetic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import AttentionPlan, DensePlan, FlexPlan, concat_groups, split_groups
from .masks import GROUPS, TokenLayout, self_attention_rules

_CPU = torch.device("cpu")  # window geometries are built on the CPU, then cached per device


def fitted_window(grid: tuple[int, ...], window: tuple[int, ...]) -> tuple[int, ...]:
    """The window used on ``grid``: shrunk to the grid along any axis where it is larger [paper: Swin]."""
    return tuple(min(g, w) for g, w in zip(grid, window, strict=True))


def window_partition(grid: tuple[int, ...], window: tuple[int, ...], shifted: bool) -> tuple[Tensor, Tensor | None]:
    """Swin windows over a token grid -> ``(index [W, L], mask [W, L, L] | None)``.

    ``index`` holds the flat token positions of each window (-1 marks a padding cell);
    ``mask`` is True where a query may read a key (None: every pair of every window). [paper: Swin]
    A window larger than the grid along an axis shrinks to the grid and is not shifted there; a shifted
    partition rolls the grid by half a window (``torch.roll(x, -s)``) and masks pairs that the roll
    brought together from opposite edges (Swin's region labels). Grids that are not a multiple of the
    window are padded at the end [paper: Swin pads]; padding keys are masked, padding queries read all.
    """
    if len(grid) != len(window):
        raise ValueError(f"window {window} does not match grid {grid}")
    win = fitted_window(grid, window)
    shift = tuple((w // 2 if shifted and g > w else 0) for g, w in zip(grid, win, strict=True))
    padded = tuple(math.ceil(g / w) * w for g, w in zip(grid, win, strict=True))
    rolled = torch.meshgrid(*[torch.arange(p, device=_CPU) for p in padded], indexing="ij")  # rolled coordinates
    index = torch.zeros(padded, dtype=torch.long, device=_CPU)
    label = torch.zeros(padded, dtype=torch.long, device=_CPU)
    real = torch.ones(padded, dtype=torch.bool, device=_CPU)
    for r, g, w, s, p in zip(rolled, grid, win, shift, padded, strict=True):
        orig = (r + s) % p  # the token that the roll moved to this cell
        real &= orig < g
        index = index * g + orig
        region = (r >= p - w).long() + (r >= p - s).long() if s else torch.zeros_like(r)
        label = label * 3 + region
    index = torch.where(real, index, -1)
    n_win = [p // w for p, w in zip(padded, win, strict=True)]
    dims = len(grid)
    split = [d for pair in zip(n_win, win, strict=True) for d in pair]  # [n0, w0, n1, w1, ...]
    order = [*range(0, 2 * dims, 2), *range(1, 2 * dims, 2)]  # windows first, then in-window offsets

    def to_windows(t: Tensor) -> Tensor:
        return t.reshape(split).permute(order).reshape(math.prod(n_win), math.prod(win))

    index, label, real = to_windows(index), to_windows(label), to_windows(real)
    if all(s == 0 for s in shift) and bool(real.all()):
        return index, None
    mask = (label[:, :, None] == label[:, None, :]) & real[:, None, :]
    return index, mask | ~real[:, :, None]


def group_partition(n: int, groups: int) -> tuple[Tensor, Tensor | None]:
    """HiP grouping: ``n`` tokens in ``groups`` contiguous chunks -> ``(index [G, L], key mask [G, L] | None)``.

    Chunks are balanced like ``torch.tensor_split`` (the first ``n % groups`` get one token more), in the
    tokenizers' flattening order [paper: HiP groups contiguous chunks of the flattened input]; -1 marks a
    padding cell. Raises when a chunk would be empty.
    """
    if n < groups:
        raise ValueError(f"{n} tokens cannot fill {groups} groups")
    length = math.ceil(n / groups)
    index = torch.full((groups, length), -1, dtype=torch.long, device=_CPU)
    for g, chunk in enumerate(torch.arange(n, device=_CPU).tensor_split(groups)):
        index[g, : len(chunk)] = chunk
    real = index >= 0
    return index, (None if bool(real.all()) else real)


@dataclass(frozen=True)
class WindowBatch:
    """Windows run by one SDPA call: all without a mask, or all with one.

    ``q_gather`` ``[W*Lq]`` / ``k_gather`` ``[W*Lk]`` gather the windows' queries / own keys; padding
    cells read token 0 (masked as keys, discarded as queries). ``mask`` is ``[W, Lq, Lk]`` or None.
    """

    q_gather: Tensor
    k_gather: Tensor
    mask: Tensor | None
    windows: int

    def to(self, device: torch.device) -> WindowBatch:
        mask = None if self.mask is None else self.mask.to(device)
        return WindowBatch(self.q_gather.to(device), self.k_gather.to(device), mask, self.windows)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, shared: tuple[Tensor, Tensor] | None,
               bias: Tensor | None = None) -> Tensor:
        """``[B,H,n,Dh]`` group queries / keys / values (+ shared ``[B,H,S,Dh]`` keys, values) -> ``[B,H,W*Lq,Dh]``.

        ``bias`` ``[H, Lq, Lk]`` is added to every window's scores (Swin's relative position bias); shared
        keys get none. With a bias the mask becomes additive: the bias where allowed, -inf elsewhere.
        """
        B, H, _, Dh = q.shape
        W = self.windows
        Lq, Lk = self.q_gather.numel() // W, self.k_gather.numel() // W
        # windows become extra heads ([B, H*W, L, Dh], head-major), so SDPA sees 4-D inputs (fast kernels)
        qw = q.index_select(2, self.q_gather).view(B, H * W, Lq, Dh)
        kw = k.index_select(2, self.k_gather).view(B, H * W, Lk, Dh)
        vw = v.index_select(2, self.k_gather).view(B, H * W, Lk, Dh)
        mask: Tensor | None
        if bias is not None:  # [H,Lq,Lk] -> [H*W,Lq,Lk] additive, -inf where the window mask forbids
            add = bias.to(q.dtype)[:, None].expand(H, W, Lq, Lk)
            mask = (add if self.mask is None else add.masked_fill(~self.mask, float("-inf"))).reshape(H * W, Lq, Lk)
        else:
            mask = None if self.mask is None else self.mask.repeat(H, 1, 1)  # [H*W, Lq, Lk]
        if shared is not None:  # every window also reads the S shared keys
            S = shared[0].shape[2]
            kw, vw = (torch.cat([w, s[:, :, None].expand(B, H, W, S, Dh).reshape(B, H * W, S, Dh)], dim=2)
                      for w, s in zip((kw, vw), shared, strict=True))
            if mask is not None:  # [H*W, Lq, Lk+S]
                mask = F.pad(mask, (0, S), value=0.0 if mask.is_floating_point() else True)
        return F.scaled_dot_product_attention(qw, kw, vw, attn_mask=mask).reshape(B, H, W * Lq, Dh)


Partition = tuple[Tensor, Tensor, Tensor | None]  # q_index [W,Lq], k_index [W,Lk], mask [W,Lq,Lk] | None


@dataclass(frozen=True)
class Windows:
    """How one group's queries and keys sit in windows (Swin) or groups (HiP), ready to run.

    Execution: ``batches`` (windows needing no mask in one SDPA call, the rest in another: with shifted
    windows only the edge windows need one) and ``out_index`` ``[Nq]``, which puts each query's result
    back in sequence order. Reference: the :data:`Partition` it was made from (-1 marks padding).
    ``rel_index`` ``[Lq, Lk]``: the relative position of each in-window (query, key) cell pair as a row of
    a bias table, the same for every window (Swin), or None (no bias: HiP).
    """

    batches: tuple[WindowBatch, ...]
    out_index: Tensor
    q_index: Tensor
    k_index: Tensor
    mask: Tensor | None
    rel_index: Tensor | None = None

    def to(self, device: torch.device) -> Windows:
        rel = None if self.rel_index is None else self.rel_index.to(device)
        return dataclasses.replace(self, batches=tuple(b.to(device) for b in self.batches),
                                   out_index=self.out_index.to(device), rel_index=rel)


def make_windows(q_index: Tensor, k_index: Tensor, mask: Tensor | None, rel_index: Tensor | None = None) -> Windows:
    """:class:`Windows` from a partition (and a relative-position index); every query must sit in exactly
    one window."""
    flat = q_index.flatten()
    n_q = int((flat >= 0).sum())
    if not torch.equal(flat[flat >= 0].sort().values, torch.arange(n_q, device=_CPU)):
        raise ValueError("every query must sit in exactly one window")
    free = torch.ones(len(q_index), dtype=torch.bool, device=_CPU) if mask is None else mask.flatten(1).all(1)
    batches, order = [], []
    for ids in (free.nonzero().flatten(), (~free).nonzero().flatten()):
        if ids.numel() == 0:
            continue
        m = None if bool(free[ids[0]]) or mask is None else mask[ids]
        q_gather, k_gather = (idx[ids].clamp(min=0).flatten() for idx in (q_index, k_index))
        batches.append(WindowBatch(q_gather, k_gather, m, ids.numel()))
        order.append(ids)
    flat = q_index[torch.cat(order)].flatten()  # the windows in batch order
    real = flat >= 0
    out_index = torch.empty(n_q, dtype=torch.long, device=_CPU)
    out_index[flat[real]] = torch.arange(flat.numel(), device=_CPU)[real]
    return Windows(tuple(batches), out_index, q_index, k_index, mask, rel_index)


_CACHE: dict[tuple[Hashable, str], Windows] = {}


def cached_windows(key: Hashable, make: Callable[[], Partition], device: torch.device,
                   rel_index: Callable[[], Tensor] | None = None) -> Windows:
    """The :class:`Windows` of a geometry ``key`` (e.g. grid, window, shift) on ``device``, built once.

    Built on the CPU from ``make()`` (and ``rel_index()``, see :class:`Windows`) the first time, then kept per device: a forward over geometries seen
    before does no index arithmetic. ``torch.export`` (ONNX) traces through a cache hit only, which is why
    the backbones ``prepare`` their configured geometries when they are built.
    """
    if len(_CACHE) > 1024:  # many input sizes: start again rather than grow without bound
        _CACHE.clear()
    found = _CACHE.get((key, str(device)))
    if found is None:
        base = _CACHE.get((key, "cpu"))
        if base is None:
            base = _CACHE[(key, "cpu")] = make_windows(*make(), None if rel_index is None else rel_index())
        found = _CACHE[(key, str(device))] = base.to(device)
    return found


@dataclass(frozen=True)
class LocalPart:
    """One group's queries in ``windows``: each reads its window's keys and the ``shared`` key range;
    ``bias`` ``[H, Lq, Lk]`` (optional) is added to the scores inside every window."""

    group: str
    q_span: tuple[int, int]
    k_span: tuple[int, int]
    shared: tuple[int, int]
    windows: Windows
    bias: Tensor | None = None

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # [B,H,Nq,Dh],[B,H,Nk,Dh]x2 -> [B,H,nq,Dh]
        (qs, qe), (ks, ke), (s0, s1) = self.q_span, self.k_span, self.shared
        shared = (k[:, :, s0:s1], v[:, :, s0:s1]) if s1 > s0 else None
        outs = [b.attend(q[:, :, qs:qe], k[:, :, ks:ke], v[:, :, ks:ke], shared, self.bias)
                for b in self.windows.batches]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)  # [B,H,W*Lq,Dh] in batch order
        return out.index_select(2, self.windows.out_index)

    def pairs(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The in-window pairs this part computes: ``(query, key)`` sequence positions and their
        ``(Lq, Lk)`` cells in the window (from the partition; padding and masked pairs left out)."""
        w = self.windows
        W, Lq, Lk = w.q_index.shape[0], w.q_index.shape[1], w.k_index.shape[1]
        qi = w.q_index[:, :, None].expand(W, Lq, Lk)
        ki = w.k_index[:, None, :].expand(W, Lq, Lk)
        ok = (qi >= 0) & (ki >= 0)
        if w.mask is not None:
            ok &= w.mask
        _, lq, lk = ok.nonzero(as_tuple=True)
        return self.q_span[0] + qi[ok], self.k_span[0] + ki[ok], lq, lk

    def allowed(self, n_q: int, n_k: int) -> Tensor:
        """The ``[n_q, n_k]`` boolean mask of the pairs this part computes (from the partition)."""
        out = torch.zeros(n_q, n_k, dtype=torch.bool, device=_CPU)
        q, k, _, _ = self.pairs()
        out[q, k] = True
        out[self.q_span[0]:self.q_span[1], self.shared[0]:self.shared[1]] = True
        return out


@dataclass(frozen=True)
class LocalPlan:
    """Local parts (modalities) and global segments ``(qs, qe, ks, ke)`` (fusion), in query order."""

    parts: tuple[LocalPart | tuple[int, int, int, int], ...]
    n_q: int
    n_k: int

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # [B,H,Nq,Dh],[B,H,Nk,Dh]x2 -> [B,H,Nq,Dh]
        outs = []
        for part in self.parts:
            if isinstance(part, LocalPart):
                outs.append(part.attend(q, k, v))
            else:
                qs, qe, ks, ke = part
                outs.append(F.scaled_dot_product_attention(q[:, :, qs:qe], k[:, :, ks:ke], v[:, :, ks:ke]))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)

    def mask(self) -> Tensor:
        """Dense ``[Nq, Nk]`` boolean mask of every pair the plan computes (True = may attend)."""
        out = torch.zeros(self.n_q, self.n_k, dtype=torch.bool, device=_CPU)
        for part in self.parts:
            if isinstance(part, LocalPart):
                out |= part.allowed(self.n_q, self.n_k)
            else:
                qs, qe, ks, ke = part
                out[qs:qe, ks:ke] = True
        return out

    def with_bias(self, bias: Mapping[str, Tensor]) -> LocalPlan:
        """This plan with ``{group: [H, Lq, Lk]}`` added to the scores inside that group's windows."""
        parts = tuple(dataclasses.replace(p, bias=bias[p.group])
                      if isinstance(p, LocalPart) and p.group in bias else p for p in self.parts)
        return dataclasses.replace(self, parts=parts)

    def dense(self) -> DensePlan:
        """The reference: the same pairs as one dense masked SDPA (with a bias: an additive ``[H, Nq, Nk]``
        mask, -inf outside the pairs, each window's bias at its pairs, 0 elsewhere)."""
        allowed = self.mask()
        biased = [p for p in self.parts if isinstance(p, LocalPart) and p.bias is not None]
        if not biased:
            return DensePlan(allowed)
        b0 = biased[0].bias
        assert b0 is not None
        add = torch.zeros(b0.shape[0], self.n_q, self.n_k, dtype=b0.dtype, device=b0.device)
        add = add.masked_fill(~allowed.to(b0.device), float("-inf"))
        for p in biased:
            q, k, lq, lk = (t.to(b0.device) for t in p.pairs())
            add[:, q, k] = p.bias[:, lq, lk]  # type: ignore[index]
        return DensePlan(add)


PlanImpl = Callable[[LocalPlan], AttentionPlan]


def _as_is(plan: LocalPlan) -> AttentionPlan:
    return plan


def _dense(plan: LocalPlan) -> AttentionPlan:
    return plan.dense()


def _flex(plan: LocalPlan) -> AttentionPlan:
    return FlexPlan(plan.dense().mask)


# ``ZorroConfig.attention`` -> how a local plan runs: "block" computes only the allowed pairs, "dense" is
# the reference (one masked SDPA over every pair).
LOCAL_IMPLS: dict[str, PlanImpl] = {"block": _as_is, "dense": _dense, "flex": _flex}


def grouped_plan(q_layout: TokenLayout, k_layout: TokenLayout, windows: Mapping[str, Windows],
                 rules: Mapping[str, Sequence[str]]) -> LocalPlan:
    """Plan under the module docstring's rule: a group with windows reads its own keys window by
    window plus, in full, the other groups its rule names; a group without reads its rule's groups
    in full. Query groups present in ``q_layout`` only are planned."""
    parts: list[LocalPart | tuple[int, int, int, int]] = []
    for g in GROUPS:
        if q_layout.sizes()[g] == 0:
            continue
        present = [r for r in rules[g] if k_layout.sizes()[r] > 0]
        if g in windows:
            shared = k_layout.key_range([r for r in present if r != g])
            parts.append(LocalPart(g, q_layout.span(g), k_layout.span(g), shared, windows[g]))
        else:
            ks, ke = k_layout.key_range(present)
            if ke <= ks:
                raise ValueError(f"{g} queries read no keys (groups {tuple(rules[g])}) in {k_layout}")
            parts.append((*q_layout.span(g), ks, ke))
    return LocalPlan(tuple(parts), q_layout.total, k_layout.total)


def output_layers(width: int, dim: int) -> tuple[nn.LayerNorm, nn.Module]:
    """The final LayerNorm at the last stage/level's ``width`` and the projection to the decoder's ``dim``
    (identity when they agree) [choice: a linear projection, only when the widths differ]."""
    return nn.LayerNorm(width, eps=1e-6), (nn.Linear(width, dim) if width != dim else nn.Identity())


class LocalBackbone(nn.Module):
    """What the Swin and HiP backbones share: the masking rules, how their local plans run
    (``local_impl``, switched by ``Zorro.set_attention``), their token width ``token_dim``, and the output
    LayerNorm + projection to ``dim`` (:meth:`finish`)."""

    def __init__(self, norm: nn.Module, proj: nn.Module, masking: str, local_impl: PlanImpl, token_dim: int) -> None:
        super().__init__()
        self.norm = norm
        self.proj = proj
        self.rules = self_attention_rules(masking)
        self.local_impl = local_impl
        self.token_dim = token_dim

    def finish(self, tokens: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``{group: [B,Ng,C]}`` -> ``{group: [B,Ng,dim]}`` through the output norm and projection."""
        x, layout = concat_groups(tokens)
        return split_groups(self.proj(self.norm(x)), layout, list(tokens))
