"""Token layout and attention masks for the four masking configurations (pure functions).

The sequence is always ordered ``audio, fusion, video`` (DESIGN.md §1, as in the paper's Figure 2).
With that order every rule below reads a *contiguous* range of keys, which is what lets
:mod:`zorro_cli.model.layers` compute only the allowed blocks with one SDPA call per query group.

Conventions: ``True`` = the query (row) may attend to the key (column). Masks are ``torch.bool``.

Self-attention rules (query group -> key groups it reads):

=============== ============= ================== =============
masking         audio reads   fusion reads       video reads
=============== ============= ================== =============
``zorro``       audio         audio fusion video video
``independent`` audio         (no fusion tokens) video
``bottleneck``  audio fusion  audio fusion video fusion video
``input_fusion`` everything   everything         everything
=============== ============= ================== =============

Decoding cross-attention (four learned queries): audio -> audio tokens, video -> video tokens,
fusion -> fusion tokens (or every token with ``fusion_reads="all"``), global -> every token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

Masking = Literal["zorro", "independent", "bottleneck", "input_fusion"]
MASKINGS: tuple[str, ...] = ("zorro", "independent", "bottleneck", "input_fusion")
GROUPS: tuple[str, ...] = ("audio", "fusion", "video")  # sequence order
OUTPUTS: tuple[str, ...] = ("audio", "video", "fusion", "global")
MODALITIES: tuple[str, ...] = ("audio", "video")

_SELF_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "zorro": {"audio": ("audio",), "fusion": GROUPS, "video": ("video",)},
    "independent": {"audio": ("audio",), "fusion": (), "video": ("video",)},
    "bottleneck": {"audio": ("audio", "fusion"), "fusion": GROUPS, "video": ("fusion", "video")},
    "input_fusion": {"audio": GROUPS, "fusion": GROUPS, "video": GROUPS},
}


def check_masking(masking: str) -> str:
    """Return ``masking`` if it names a configuration, else raise ``ValueError`` listing the valid ones."""
    if masking not in _SELF_RULES:
        raise ValueError(f"unknown masking {masking!r}; expected one of {', '.join(MASKINGS)}")
    return masking


def has_fusion_stream(masking: str) -> bool:
    """Whether the configuration has fusion tokens at all (``independent`` has none)."""
    return check_masking(masking) != "independent"


def has_unimodal_streams(masking: str) -> bool:
    """Whether audio/video tokens never read another modality (so a modality can run alone exactly)."""
    return check_masking(masking) in ("zorro", "independent")


def self_attention_rules(masking: str) -> dict[str, tuple[str, ...]]:
    """Query group -> the key groups it may read, for the backbone's self-attention."""
    return dict(_SELF_RULES[check_masking(masking)])


def decoder_rules(masking: str, fusion_reads: str = "fusion") -> dict[str, tuple[str, ...]]:
    """Output query -> the token groups it may read in the decoding cross-attention.

    ``fusion_reads="fusion"`` (default, implied by the paper) makes o_F read only the fusion tokens;
    ``"all"`` lets it read every token. Under ``independent`` there is no fusion output.
    """
    if fusion_reads not in ("fusion", "all"):
        raise ValueError(f"fusion_reads must be 'fusion' or 'all', got {fusion_reads!r}")
    rules: dict[str, tuple[str, ...]] = {"audio": ("audio",), "video": ("video",)}
    if has_fusion_stream(masking):
        rules["fusion"] = ("fusion",) if fusion_reads == "fusion" else GROUPS
    rules["global"] = GROUPS
    return rules


@dataclass(frozen=True)
class TokenLayout:
    """Number of tokens of each group in the concatenated sequence ``[audio | fusion | video]``."""

    audio: int
    fusion: int
    video: int

    @property
    def total(self) -> int:
        return self.audio + self.fusion + self.video

    def sizes(self) -> dict[str, int]:
        return {"audio": self.audio, "fusion": self.fusion, "video": self.video}

    def span(self, group: str) -> tuple[int, int]:
        """``(start, end)`` of one group in the sequence."""
        start = 0
        for g in GROUPS:
            n = self.sizes()[g]
            if g == group:
                return start, start + n
            start += n
        raise KeyError(group)

    def key_range(self, groups: Sequence[str]) -> tuple[int, int]:
        """The contiguous ``(start, end)`` covering the non-empty ``groups``; raises if not contiguous."""
        spans = [self.span(g) for g in GROUPS if g in groups and self.sizes()[g] > 0]
        if not spans:
            return 0, 0
        start, end = spans[0][0], spans[-1][1]
        if sum(e - s for s, e in spans) != end - start:
            raise ValueError(f"groups {tuple(groups)} are not contiguous in layout {self}")
        return start, end


def _dense(layout: TokenLayout, rules: Mapping[str, Sequence[str]], rows: Sequence[str],
           row_sizes: Mapping[str, int]) -> torch.Tensor:
    mask = torch.zeros(sum(row_sizes[r] for r in rows), layout.total, dtype=torch.bool)
    r0 = 0
    for row in rows:
        n = row_sizes[row]
        for g in rules[row]:
            s, e = layout.span(g)
            mask[r0:r0 + n, s:e] = True
        r0 += n
    return mask


def self_attention_mask(layout: TokenLayout, masking: str) -> torch.Tensor:
    """Dense ``[N, N]`` boolean mask of the backbone's self-attention (row = query)."""
    return _dense(layout, self_attention_rules(masking), GROUPS, layout.sizes())


def decoder_mask(layout: TokenLayout, masking: str, fusion_reads: str = "fusion",
                 outputs: Sequence[str] | None = None) -> torch.Tensor:
    """Dense ``[Q, N]`` boolean mask of the decoding cross-attention, one row per output query.

    Rows follow ``outputs`` (default: every output the configuration has, in ``OUTPUTS`` order).
    """
    rules = decoder_rules(masking, fusion_reads)
    rows = [o for o in OUTPUTS if o in rules] if outputs is None else list(outputs)
    return _dense(layout, rules, rows, {r: 1 for r in rows})


def present_groups(masking: str, audio: bool, video: bool) -> tuple[str, ...]:
    """Which token groups run for the given inputs.

    With both modalities every group of the configuration runs. With one modality missing, a
    configuration with unimodal streams (``zorro``, ``independent``) runs only the present modality's
    tokens — the exact, cheap unimodal path — while ``bottleneck`` / ``input_fusion`` (whose modality
    tokens read the fusion tokens) run the present modality and the fusion tokens.
    """
    if not (audio or video):
        raise ValueError("at least one of audio or video is required")
    fusion = has_fusion_stream(masking) and ((audio and video) or not has_unimodal_streams(masking))
    flags = {"audio": audio, "fusion": fusion, "video": video}
    return tuple(g for g in GROUPS if flags[g])


def available_outputs(masking: str, groups: Sequence[str], fusion_reads: str = "fusion") -> tuple[str, ...]:
    """The outputs that can be computed when only ``groups`` ran.

    With every group present, every output of the configuration. Otherwise a unimodal-stream model
    answers with the outputs of the modalities present, and any other model with every output
    whose decoder query reads at least one present group (e.g. ``input_fusion``'s global head).
    """
    rules = decoder_rules(masking, fusion_reads)
    full = set(present_groups(masking, True, True))
    if set(groups) >= full:
        return tuple(o for o in OUTPUTS if o in rules)
    if has_unimodal_streams(masking):
        return tuple(o for o in OUTPUTS if o in MODALITIES and o in groups)
    return tuple(o for o in OUTPUTS if o in rules and set(rules[o]) & set(groups))
