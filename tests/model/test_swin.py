"""Zorro-Swin's relative position bias: table indexing against literal values, the bias inside shifted and
padded windows, block == dense with a large bias, purity and the unimodal path with it, the option."""

from __future__ import annotations

import json

import pytest
import torch

from zorro_cli.model import ZorroConfig, build_model
from zorro_cli.model.local import grouped_plan
from zorro_cli.model.masks import TokenLayout, self_attention_rules
from zorro_cli.model.swin import RelativePositionBias, relative_position_index, swin_plan, with_position_bias
from zorro_cli.model.zorro import Zorro

torch.set_num_threads(1)
INF = float("-inf")


def test_relative_position_index_matches_swins_2x2_table() -> None:
    # rows (dy + 1) * 3 + (dx + 1) of a 3x3 table, dy/dx = query - key (Swin's relative_position_index)
    assert relative_position_index((2, 2), (2, 2)).tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    # a window shrunk to a 1x2 grid reads the same 3x3 table: only dy = 0, the middle row
    assert relative_position_index((1, 2), (2, 2)).tolist() == [[4, 3], [5, 4]]
    # 3-D (Video Swin): a 2x1x2 window over a table of 3 x 1 x 3 rows
    assert relative_position_index((2, 1, 2), (2, 1, 2)).tolist() == [
        [4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    assert relative_position_index((2, 3, 4), (8, 7, 7)).max() < 15 * 13 * 13


def test_tables_have_one_row_per_relative_position_per_head_per_block() -> None:
    m = build_model("zorro_swin_tiny")  # windows audio (4, 4), video (2, 4, 4); heads 2 then 4; 2 + 2 blocks
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters() if "rel_pos" in n}
    assert shapes["backbone.stages.0.rel_pos.0.audio.pos_bias"] == (7 * 7, 2)
    assert shapes["backbone.stages.0.rel_pos.1.video.pos_bias"] == (3 * 7 * 7, 2)
    assert shapes["backbone.stages.1.rel_pos.1.video.pos_bias"] == (3 * 7 * 7, 4)
    assert len(shapes) == 4 * 2 and not any("fusion" in n for n in shapes)


def _biased_plan(shifted: bool, masking: str = "zorro"):
    # 3 audio tokens on a 1x3 grid, windows 1x2 (padded to 4; shifted by 1), one fusion token
    bias = RelativePositionBias((1, 2), heads=1)
    with torch.no_grad():
        bias.pos_bias.copy_(torch.tensor([[10.0], [20.0], [30.0]]))  # rows: dx = -1, 0, +1
    plan = swin_plan(TokenLayout(audio=3, fusion=1, video=0), {"audio": (1, 3)}, {"audio": (1, 2)}, shifted,
                     self_attention_rules(masking))
    return with_position_bias(plan, torch.nn.ModuleDict({"audio": bias}))


def test_the_bias_sits_at_each_windows_pairs_and_fusion_gets_none() -> None:
    # regular windows [0 1] [2 pad]: token 2 is alone; the fusion token (last row) reads all, unbiased
    assert _biased_plan(False).dense().mask[0].tolist() == [[20, 10, INF, INF],
                                                             [30, 20, INF, INF],
                                                             [INF, INF, 20, INF],
                                                             [0, 0, 0, 0]]
    # shifted windows (rolled by 1): [1 2] [pad 0]: tokens 1 and 2 now share a window, 0 is alone
    assert _biased_plan(True).dense().mask[0].tolist() == [[20, INF, INF, INF],
                                                            [INF, 20, 10, INF],
                                                            [INF, 30, 20, INF],
                                                            [0, 0, 0, 0]]
    # bottleneck: audio also reads the fusion token, in full and without bias
    assert _biased_plan(False, "bottleneck").dense().mask[0][:, 3].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("masking", ["zorro", "bottleneck", "input_fusion"])
@pytest.mark.parametrize("shifted", [False, True])
def test_biased_window_plan_equals_its_dense_reference(masking: str, shifted: bool) -> None:
    layout = TokenLayout(audio=15, fusion=2, video=18)
    grids, windows = {"audio": (3, 5), "video": (2, 3, 3)}, {"audio": (2, 2), "video": (1, 2, 2)}
    biases = torch.nn.ModuleDict({g: RelativePositionBias(w, heads=2) for g, w in windows.items()})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for b in biases.values():
            b.pos_bias.copy_(3 * torch.randn(b.pos_bias.shape, generator=gen))  # large: visible if misplaced
    plan = with_position_bias(swin_plan(layout, grids, windows, shifted, self_attention_rules(masking)), biases)
    q, k, v = torch.randn(3, 2, 2, layout.total, 8, generator=gen).unbind(0)
    torch.testing.assert_close(plan.attend(q, k, v), plan.dense().attend(q, k, v), atol=1e-6, rtol=0)
    unbiased = swin_plan(layout, grids, windows, shifted, self_attention_rules(masking))
    assert (plan.attend(q, k, v) - unbiased.attend(q, k, v)).abs().max() > 1e-2


def test_a_plan_without_windows_takes_no_bias() -> None:
    plan = grouped_plan(TokenLayout(2, 1, 0), TokenLayout(2, 1, 0), {}, self_attention_rules("zorro"))
    assert plan.with_bias({"audio": torch.ones(1, 2, 2)}) == plan


def _strong_bias(model: Zorro) -> Zorro:
    """Tables drawn with std 1 (init is 0.02) so that a misplaced bias would show."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("pos_bias"):
                p.copy_(torch.randn(p.shape, generator=gen))
    return model


def _tiny(masking: str = "zorro", **kw) -> Zorro:
    torch.manual_seed(0)
    return _strong_bias(build_model("zorro_swin_tiny", masking=masking, num_classes=5, **kw).eval())


@pytest.mark.parametrize("impl", ["block", "flex"])
@pytest.mark.parametrize("masking", ["zorro", "bottleneck"])
def test_block_skipping_equals_dense_with_a_strong_bias(masking: str, impl: str) -> None:
    block = _tiny(masking, attention=impl)
    dense = build_model("zorro_swin_tiny", masking=masking, num_classes=5, attention="dense").eval()
    dense.load_state_dict(block.state_dict())
    x = block.example_inputs(2, torch.Generator().manual_seed(1))
    with torch.set_grad_enabled(impl != "flex"):  # PyTorch has no FlexAttention backward on CPU
        out_b, out_d = block(**x), dense(**x)
    for k in out_b:
        torch.testing.assert_close(out_b[k], out_d[k], atol=1e-5, rtol=0)
    if impl == "flex":
        return
    sum(v.sum() for v in out_b.values()).backward()
    sum(v.sum() for v in out_d.values()).backward()
    gd = dict(dense.named_parameters())
    for name, p in block.named_parameters():
        if name.endswith("pos_bias"):
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
            torch.testing.assert_close(p.grad, gd[name].grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("masking", ["zorro", "independent"])
def test_purity_and_the_unimodal_path_hold_with_a_strong_bias(masking: str) -> None:
    m = _tiny(masking)
    x = m.example_inputs(2, torch.Generator().manual_seed(0))
    y = m.example_inputs(2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = m.encode(**x)
        b = m.encode(audio=x["audio"], video=y["video"])
        alone = m.encode(audio=x["audio"])
    assert torch.equal(a["audio"], b["audio"])
    torch.testing.assert_close(alone["audio"], a["audio"], atol=1e-5, rtol=0)
    with torch.no_grad():
        plain = build_model("zorro_swin_tiny", masking=masking, num_classes=5, extra={"rel_pos_bias": False})
        plain.load_state_dict(m.state_dict(), strict=False)
        assert (plain.eval().encode(**x)["audio"] - a["audio"]).abs().max() > 1e-3  # the bias does something


def test_rel_pos_bias_false_is_the_model_without_tables() -> None:
    torch.manual_seed(0)
    plain = build_model("zorro_swin_tiny", extra={"rel_pos_bias": False})
    assert not any("rel_pos" in n for n in plain.state_dict())
    assert build_model("zorro_swin_tiny").config.extra.get("rel_pos_bias", True) is True
    with pytest.raises(ValueError, match=r"extra\.rel_pos_bias: expected true or false, got 'yes'"):
        ZorroConfig(backbone="swin", extra={"rel_pos_bias": "yes"})


def test_weights_saved_before_the_bias_existed_load_as_the_model_they_were(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    from zorro_cli.model import load_pretrained, save_pretrained

    torch.manual_seed(0)
    old = build_model("zorro_swin_tiny", num_classes=5, extra={"rel_pos_bias": False}).eval()
    save_pretrained(old, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["model"]["extra"]["rel_pos_bias"]  # as written before the key existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = load_pretrained(tmp_path / "m")
    assert loaded.config.extra["rel_pos_bias"] is False
    x = old.example_inputs(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**x)["global"], old(**x)["global"], atol=0, rtol=0)
    state = load_file(str(tmp_path / "m" / "model.safetensors"))  # some tables but not all: an error
    new = build_model("zorro_swin_tiny", num_classes=5).state_dict()
    save_file({**state, "backbone.stages.0.rel_pos.0.audio.pos_bias": new["backbone.stages.0.rel_pos.0.audio.pos_bias"]},
              str(tmp_path / "m" / "model.safetensors"))
    del config["weights"]  # a hand-made weights file: its config.json records no checksum
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="weights do not match the config"):
        load_pretrained(tmp_path / "m")
