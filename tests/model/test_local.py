"""Windows (Swin), groups (HiP), patch merging and local plans against small literal values."""

from __future__ import annotations

import pytest
import torch

from zorro_cli.model.hip import hip_plans
from zorro_cli.model.local import group_partition, grouped_plan, window_partition
from zorro_cli.model.masks import TokenLayout, self_attention_rules
from zorro_cli.model.swin import PatchMerging, swin_plan


def _m(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r.replace(" ", "")] for r in rows])


def test_regular_windows_tile_the_grid_row_major() -> None:
    # 4x4 grid:  0  1  2  3 / 4  5  6  7 / 8  9 10 11 / 12 13 14 15, windows 2x2
    index, mask = window_partition((4, 4), (2, 2), False)
    assert index.tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert mask is None  # every pair of every window


def test_shifted_windows_roll_by_half_and_mask_wrapped_neighbours() -> None:
    index, mask = window_partition((4, 4), (2, 2), True)
    # rolled by (-1, -1): the first window holds rows 1-2, cols 1-2; the last one the four corners
    assert index.tolist() == [[5, 6, 9, 10], [7, 4, 11, 8], [13, 14, 1, 2], [15, 12, 3, 0]]
    assert mask is not None
    assert torch.equal(mask[0], _m(["1111"] * 4))
    assert torch.equal(mask[1], _m(["1010", "0101", "1010", "0101"]))  # cols 3 | 0 wrapped apart
    assert torch.equal(mask[2], _m(["1100", "1100", "0011", "0011"]))  # rows 3 | 0 wrapped apart
    assert torch.equal(mask[3], _m(["1000", "0100", "0010", "0001"]))  # four corners, four regions


def test_grids_that_are_not_a_multiple_of_the_window_are_padded() -> None:
    index, mask = window_partition((3, 3), (2, 2), False)  # -1 marks padding
    assert index.tolist() == [[0, 1, 3, 4], [2, -1, 5, -1], [6, 7, -1, -1], [8, -1, -1, -1]]
    assert mask is not None
    assert torch.equal(mask[1], _m(["1010", "1111", "1010", "1111"]))  # padding keys off; padding rows free


def test_windows_larger_than_the_grid_shrink_and_do_not_shift_there() -> None:
    # (2, 6) grid, (4, 4) windows: frequency shrinks to 2 (no shift), time shifts by 2 and pads to 8
    index, mask = window_partition((2, 6), (4, 4), True)
    assert index.tolist() == [[2, 3, 4, 5, 8, 9, 10, 11], [-1, -1, 0, 1, -1, -1, 6, 7]]
    assert mask is not None and bool(mask[0].all())
    assert torch.equal(mask[1][2], _m(["00110011"])[0])  # token 0 reads 0, 1, 6, 7 only
    index3, mask3 = window_partition((2, 4, 4), (8, 2, 2), False)  # video: time window shrinks to 2
    assert index3.shape == (4, 8) and mask3 is None
    assert index3[0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]


def test_hip_groups_are_balanced_contiguous_chunks() -> None:
    index, mask = group_partition(10, 3)  # -1 marks padding
    assert index.tolist() == [[0, 1, 2, 3], [4, 5, 6, -1], [7, 8, 9, -1]]
    assert mask is not None and mask.tolist() == [[True] * 4, [True, True, True, False], [True, True, True, False]]
    assert group_partition(8, 4)[1] is None
    with pytest.raises(ValueError, match="3 tokens cannot fill 4 groups"):
        group_partition(3, 4)


def test_patch_merging_concatenates_2x2_neighbours_and_pads_odd_grids() -> None:
    merge = PatchMerging(1, 4, (2, 2))
    torch.nn.init.eye_(merge.reduction.weight)  # see the concatenation through an identity
    merge.norm = torch.nn.Identity()  # type: ignore[assignment]
    x = torch.arange(1.0, 7.0).reshape(1, 6, 1)  # 2x3 grid: 1 2 3 / 4 5 6
    out, grid = merge(x, (2, 3))
    assert grid == (1, 2)
    assert out[0].tolist() == [[1.0, 2.0, 4.0, 5.0], [3.0, 0.0, 6.0, 0.0]]  # 3rd column padded with 0
    video = PatchMerging(1, 4, (1, 2, 2))
    _, vgrid = video(torch.zeros(1, 2 * 4 * 4, 1), (2, 4, 4))
    assert vgrid == (2, 2, 2)  # time is not merged


# layout: audio 2x2 grid (4 tokens), 1 fusion token, video 1x2x2 grid (4 tokens); windows of 2 along time
_LAYOUT = TokenLayout(audio=4, fusion=1, video=4)
_SWIN = {
    #              a a a a f v v v v
    "zorro": ["1 1 0 0 0 0 0 0 0",
              "1 1 0 0 0 0 0 0 0",
              "0 0 1 1 0 0 0 0 0",
              "0 0 1 1 0 0 0 0 0",
              "1 1 1 1 1 1 1 1 1",
              "0 0 0 0 0 1 1 0 0",
              "0 0 0 0 0 1 1 0 0",
              "0 0 0 0 0 0 0 1 1",
              "0 0 0 0 0 0 0 1 1"],
    "bottleneck": ["1 1 0 0 1 0 0 0 0",
                   "1 1 0 0 1 0 0 0 0",
                   "0 0 1 1 1 0 0 0 0",
                   "0 0 1 1 1 0 0 0 0",
                   "1 1 1 1 1 1 1 1 1",
                   "0 0 0 0 1 1 1 0 0",
                   "0 0 0 0 1 1 1 0 0",
                   "0 0 0 0 1 0 0 1 1",
                   "0 0 0 0 1 0 0 1 1"],
    "input_fusion": ["1 1 0 0 1 1 1 1 1",
                     "1 1 0 0 1 1 1 1 1",
                     "0 0 1 1 1 1 1 1 1",
                     "0 0 1 1 1 1 1 1 1",
                     "1 1 1 1 1 1 1 1 1",
                     "1 1 1 1 1 1 1 0 0",
                     "1 1 1 1 1 1 1 0 0",
                     "1 1 1 1 1 0 0 1 1",
                     "1 1 1 1 1 0 0 1 1"],
}


@pytest.mark.parametrize("masking", sorted(_SWIN))
def test_swin_plan_applies_the_masking_rule_window_by_window(masking: str) -> None:
    plan = swin_plan(_LAYOUT, {"audio": (2, 2), "video": (1, 2, 2)}, {"audio": (1, 2), "video": (1, 1, 2)},
                     False, self_attention_rules(masking))
    assert torch.equal(plan.mask(), _m(_SWIN[masking]))


def test_hip_plans_group_latents_and_let_only_fusion_read_everything() -> None:
    # inputs: 4 audio, 1 fusion, 3 video tokens; 2 groups per modality with 1 latent each, 1 fusion latent
    inputs, latents = TokenLayout(audio=4, fusion=1, video=3), TokenLayout(audio=2, fusion=1, video=2)
    cross, self_ = hip_plans(inputs, latents, {"audio": 2, "video": 2}, self_attention_rules("zorro"))
    assert torch.equal(cross.mask(), _m(["1 1 0 0 0 0 0 0",
                                         "0 0 1 1 0 0 0 0",
                                         "1 1 1 1 1 1 1 1",
                                         "0 0 0 0 0 1 1 0",
                                         "0 0 0 0 0 0 0 1"]))
    assert torch.equal(self_.mask(), _m(["10000", "01000", "11111", "00010", "00001"]))


@pytest.mark.parametrize("masking", ["zorro", "bottleneck", "input_fusion"])
def test_local_plan_equals_its_dense_mask_with_padding_and_shared_keys(masking: str) -> None:
    layout = TokenLayout(audio=15, fusion=2, video=18)
    grids = {"audio": (3, 5), "video": (2, 3, 3)}
    plan = swin_plan(layout, grids, {"audio": (2, 2), "video": (1, 2, 2)}, True, self_attention_rules(masking))
    q, k, v = torch.randn(3, 2, 2, layout.total, 8, generator=torch.Generator().manual_seed(0)).unbind(0)
    torch.testing.assert_close(plan.attend(q, k, v), plan.dense().attend(q, k, v), atol=1e-6, rtol=0)


def test_a_rule_that_reads_nothing_raises() -> None:
    with pytest.raises(ValueError, match="fusion queries read no keys"):
        grouped_plan(TokenLayout(0, 1, 0), TokenLayout(2, 0, 0), {}, {"fusion": ("fusion",)})
