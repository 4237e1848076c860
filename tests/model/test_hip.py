"""Zorro-HiP's independent blocks (the default) and shared blocks (``extra.shared_blocks: true``): which
weights each group uses, purity and the unimodal path under both, block == dense, old checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from zorro_cli.model import ZorroConfig, build_model, load_pretrained, save_pretrained
from zorro_cli.model.hip import HiPLevel, IndependentHiPLevel
from zorro_cli.model.masks import MASKINGS
from zorro_cli.model.zorro import Zorro

torch.set_num_threads(1)
SETTINGS = {"independent": {}, "shared": {"shared_blocks": True}}


def _tiny(setting: str, masking: str = "zorro", **kw) -> Zorro:
    torch.manual_seed(0)
    return build_model("zorro_hip_tiny", masking=masking, num_classes=5, extra=SETTINGS[setting], **kw).eval()


def _inputs(m: Zorro, seed: int) -> dict[str, torch.Tensor]:
    return m.example_inputs(2, torch.Generator().manual_seed(seed))


def test_independent_blocks_are_the_default_and_shared_blocks_an_option() -> None:
    ind, shared = _tiny("independent"), _tiny("shared")
    assert all(isinstance(lv, IndependentHiPLevel) for lv in ind.backbone.levels)
    assert all(isinstance(lv, HiPLevel) for lv in shared.backbone.levels)
    names = set(ind.state_dict())
    for g in ("audio", "video", "fusion"):  # each group: its own projection, cross-attention and blocks
        assert f"backbone.levels.0.cross.{g}.attn.q.weight" in names
        assert f"backbone.levels.1.blocks.1.{g}.attn.kv.weight" in names
    assert "backbone.levels.0.cross.attn.q.weight" in shared.state_dict()  # the earlier names, unchanged
    n_ind, n_shared = (sum(p.numel() for p in m.backbone.parameters()) for m in (ind, shared))
    assert n_ind > 2.5 * n_shared  # three sets of blocks instead of one (latents are per group in both)
    with pytest.raises(ValueError, match=r"extra\.shared_blocks: expected true or false, got 1"):
        ZorroConfig(backbone="hip", extra={"shared_blocks": 1})


def test_each_group_runs_through_its_own_blocks() -> None:
    m = _tiny("independent")
    x = _inputs(m, 0)
    with torch.no_grad():
        before = m.encode(**x)
        for name, p in m.backbone.named_parameters():
            if ".video." in name and "latents" not in name:
                p.add_(0.1 * torch.randn_like(p))  # the video groups' blocks only
        after = m.encode(**x)
    assert torch.equal(before["audio"], after["audio"])
    assert not torch.allclose(before["video"], after["video"])
    assert not torch.equal(before["fusion"], after["fusion"])  # fusion reads the video latents


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("masking", ["zorro", "independent"])
def test_purity_and_the_unimodal_path_hold_for_both_settings(setting: str, masking: str) -> None:
    m = _tiny(setting, masking)
    x, y = _inputs(m, 0), _inputs(m, 1)
    with torch.no_grad():
        a = m.encode(**x)
        b = m.encode(audio=x["audio"], video=y["video"])
        c = m.encode(audio=y["audio"], video=x["video"])
        alone_a, alone_v = m.encode(audio=x["audio"]), m.encode(video=x["video"])
    assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["video"], c["video"])
    assert not torch.allclose(a["global"], b["global"])
    torch.testing.assert_close(alone_a["audio"], a["audio"], atol=1e-5, rtol=0)
    torch.testing.assert_close(alone_v["video"], a["video"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_audio_loss_reaches_no_video_or_fusion_weight(setting: str) -> None:
    m = _tiny(setting).train()
    x = _inputs(m, 0)
    m.encode(**x)["audio"].pow(2).sum().backward()
    for name, p in m.named_parameters():
        parts = set(name.split("."))
        if {"video", "fusion"} & parts or name.startswith(("video_tokenizer", "fusion")):
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    assert torch.count_nonzero(m.backbone.levels[0].latents["audio"].grad) > 0


@pytest.mark.parametrize("impl", ["block", "flex"])
@pytest.mark.parametrize("masking", MASKINGS)
def test_shared_blocks_block_skipping_equals_dense(masking: str, impl: str) -> None:
    block = _tiny("shared", masking, attention=impl)
    dense = _tiny("shared", masking, attention="dense")
    dense.load_state_dict(block.state_dict())
    x = _inputs(block, 0)
    for given in (x, {"audio": x["audio"]}):
        with torch.no_grad():
            out_b, out_d = block(**given), dense(**given)
        for k in out_b:
            torch.testing.assert_close(out_b[k], out_d[k], atol=1e-5, rtol=0)


def test_weights_saved_before_independent_blocks_load_as_shared(tmp_path) -> None:
    old = _tiny("shared")
    save_pretrained(old, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["model"]["extra"]["shared_blocks"]  # as written before the key existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = load_pretrained(tmp_path / "m")
    assert loaded.config.extra["shared_blocks"] is True
    x = _inputs(old, 0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**x)["global"], old(**x)["global"], atol=0, rtol=0)
    save_pretrained(_tiny("independent"), tmp_path / "new")  # the new default round-trips as it is
    assert "shared_blocks" not in load_pretrained(tmp_path / "new").config.extra


def test_a_shared_blocks_checkpoint_starts_independent_blocks_as_the_same_function(tmp_path) -> None:
    from zorro_cli.model.pretrained import load_matching_weights

    shared = _tiny("shared")
    save_pretrained(shared, tmp_path / "m")
    ind = _tiny("independent")
    keys = load_matching_weights(ind, tmp_path / "m")
    assert keys["skipped"] == [] and keys["fresh"] == []
    assert torch.equal(ind.state_dict()["backbone.levels.1.blocks.0.fusion.attn.kv.weight"],
                       shared.state_dict()["backbone.levels.1.blocks.0.attn.qkv.weight"][64:])
    x = _inputs(shared, 0)
    with torch.no_grad():
        want, got = shared.encode(**x), ind.eval().encode(**x)
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=0)
