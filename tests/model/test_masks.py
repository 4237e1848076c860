"""Masks against literal 0/1 matrices (layout: 2 audio, 1 fusion, 2 video tokens)."""

import pytest
import torch

from zorro_cli.model.masks import (
    TokenLayout,
    available_outputs,
    decoder_mask,
    present_groups,
    self_attention_mask,
)

LAYOUT = TokenLayout(audio=2, fusion=1, video=2)


def _m(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r.replace(" ", "")] for r in rows])


SELF = {
    #            a a f v v
    "zorro": ["1 1 0 0 0",
              "1 1 0 0 0",
              "1 1 1 1 1",
              "0 0 0 1 1",
              "0 0 0 1 1"],
    "bottleneck": ["1 1 1 0 0",
                   "1 1 1 0 0",
                   "1 1 1 1 1",
                   "0 0 1 1 1",
                   "0 0 1 1 1"],
    "input_fusion": ["1 1 1 1 1"] * 5,
}


@pytest.mark.parametrize("masking", sorted(SELF))
def test_self_attention_mask_literal(masking: str) -> None:
    assert torch.equal(self_attention_mask(LAYOUT, masking), _m(SELF[masking]))


def test_independent_has_no_fusion_tokens_and_no_cross_modal_pairs() -> None:
    lay = TokenLayout(audio=2, fusion=0, video=2)
    #                                                    a a v v
    assert torch.equal(self_attention_mask(lay, "independent"), _m(["1 1 0 0", "1 1 0 0",
                                                                     "0 0 1 1", "0 0 1 1"]))


DECODER = {
    #   rows: audio, video, fusion, global      a a f v v
    "zorro": ["1 1 0 0 0", "0 0 0 1 1", "0 0 1 0 0", "1 1 1 1 1"],
    "bottleneck": ["1 1 0 0 0", "0 0 0 1 1", "0 0 1 0 0", "1 1 1 1 1"],
    "input_fusion": ["1 1 0 0 0", "0 0 0 1 1", "0 0 1 0 0", "1 1 1 1 1"],
}


@pytest.mark.parametrize("masking", sorted(DECODER))
def test_decoder_mask_literal(masking: str) -> None:
    assert torch.equal(decoder_mask(LAYOUT, masking), _m(DECODER[masking]))


def test_decoder_mask_fusion_reads_all_and_independent() -> None:
    m = decoder_mask(LAYOUT, "zorro", fusion_reads="all")
    assert torch.equal(m, _m(["1 1 0 0 0", "0 0 0 1 1", "1 1 1 1 1", "1 1 1 1 1"]))
    lay = TokenLayout(audio=2, fusion=0, video=2)
    #                         a a v v     rows: audio, video, global
    assert torch.equal(decoder_mask(lay, "independent"), _m(["1 1 0 0", "0 0 1 1", "1 1 1 1"]))


def test_unknown_masking_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown masking 'mbt'"):
        self_attention_mask(LAYOUT, "mbt")


@pytest.mark.parametrize(("masking", "audio", "video", "groups", "outputs"), [
    ("zorro", True, True, ("audio", "fusion", "video"), ("audio", "video", "fusion", "global")),
    ("zorro", True, False, ("audio",), ("audio",)),
    ("zorro", False, True, ("video",), ("video",)),
    ("independent", True, True, ("audio", "video"), ("audio", "video", "global")),
    ("independent", True, False, ("audio",), ("audio",)),
    ("bottleneck", True, False, ("audio", "fusion"), ("audio", "fusion", "global")),
    ("input_fusion", False, True, ("fusion", "video"), ("video", "fusion", "global")),
])
def test_groups_and_outputs_per_input(masking, audio, video, groups, outputs) -> None:
    got = present_groups(masking, audio, video)
    assert got == groups
    assert available_outputs(masking, got) == outputs


def test_key_range_rejects_non_contiguous_groups() -> None:
    with pytest.raises(ValueError, match="not contiguous"):
        LAYOUT.key_range(["audio", "video"])
