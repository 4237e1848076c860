"""Zorro with each backbone (ViT, Swin, HiP): purity of the streams, the unimodal path, block-skipping vs
dense attention, shapes, save/load."""

from __future__ import annotations

import pytest
import torch

from zorro_cli.model import ZorroConfig, build_model, load_pretrained, save_pretrained
from zorro_cli.model.masks import MASKINGS
from zorro_cli.model.zorro import Zorro

torch.set_num_threads(1)

TINY = {"vit": "zorro_vit_tiny", "swin": "zorro_swin_tiny", "hip": "zorro_hip_tiny"}
BACKBONES = sorted(TINY)


def tiny(masking: str = "zorro", backbone: str = "vit", **kw) -> Zorro:
    torch.manual_seed(0)
    return build_model(TINY[backbone], masking=masking, num_classes=5, **kw).eval()


def inputs(model: Zorro, seed: int = 0, batch: int = 2) -> dict[str, torch.Tensor]:
    return model.example_inputs(batch, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_outputs_and_logits_have_the_documented_shapes(backbone: str) -> None:
    m = tiny(backbone=backbone)
    assert m.config.backbone == backbone
    x = inputs(m)
    feats = m.encode(**x)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "audio": (2, 64), "video": (2, 64), "fusion": (2, 64), "global": (2, 64)}
    assert set(m(audio=x["audio"], video=None)) == {"audio"}
    assert set(m(audio=None, video=x["video"])) == {"video"}
    assert {k: tuple(v.shape) for k, v in m(**x).items()} == {k: (2, 5) for k in feats}


def test_config_api_from_the_issue_builds_and_runs() -> None:
    cfg = ZorroConfig(dim=64, depth=2, heads=4, fusion_tokens=16, n_mels=128, audio_frames=656,
                      frames=8, image_size=64, video_patch=(2, 16, 16), masking="zorro", num_classes=10)
    m = Zorro(cfg).eval()
    x = m.example_inputs(batch=2)
    assert tuple(m.tokenize(**x)["audio"].shape) == (2, 8 * 41, 64)
    assert tuple(m.tokenize(**x)["video"].shape) == (2, 4 * 4 * 4, 64)
    assert tuple(m(**x)["global"].shape) == (2, 10)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("masking", ["zorro", "independent"])
def test_audio_output_is_bit_identical_when_only_the_video_changes(masking: str, backbone: str) -> None:
    m = tiny(masking, backbone)
    x, y = inputs(m, 0), inputs(m, 1)
    with torch.no_grad():
        a = m.encode(audio=x["audio"], video=x["video"])
        b = m.encode(audio=x["audio"], video=y["video"])
        c = m.encode(audio=y["audio"], video=x["video"])
    assert torch.equal(a["audio"], b["audio"])
    assert torch.equal(a["video"], c["video"])
    assert not torch.allclose(a["global"], b["global"])
    if masking == "zorro":
        assert not torch.allclose(a["fusion"], b["fusion"])
        assert not torch.allclose(a["fusion"], c["fusion"])


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("masking", ["bottleneck", "input_fusion"])
def test_audio_output_leaks_video_under_bottleneck_and_input_fusion(masking: str, backbone: str) -> None:
    m = tiny(masking, backbone)
    x, y = inputs(m, 0), inputs(m, 1)
    with torch.no_grad():
        a = m.encode(audio=x["audio"], video=x["video"])["audio"]
        b = m.encode(audio=x["audio"], video=y["video"])["audio"]
    assert (a - b).abs().max() > 1e-4


def _grads(m: Zorro, audio: torch.Tensor, video: torch.Tensor) -> dict[str, torch.Tensor | None]:
    m.zero_grad(set_to_none=True)
    m.encode(audio=audio, video=video)["audio"].pow(2).sum().backward()
    return {n: (None if p.grad is None else p.grad.clone()) for n, p in m.named_parameters()}


def _video_or_fusion_only(name: str) -> bool:
    """Parameters only the video or fusion stream uses: the video tokenizer, fusion tokens, and the
    backbones' per-group modules (Swin's ``merge.merges.video``, HiP's ``latents.fusion``, ...)."""
    parts = name.split(".")
    return parts[0] in ("video_tokenizer", "fusion") or bool({"video", "fusion"} & set(parts[1:]))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_audio_loss_gives_no_gradient_to_video_or_fusion_and_ignores_video_values(backbone: str) -> None:
    m = tiny("zorro", backbone).train()
    x, y = inputs(m, 0), inputs(m, 1)
    g1, g2 = _grads(m, x["audio"], x["video"]), _grads(m, x["audio"], y["video"])
    assert backbone == "vit" or sum(map(_video_or_fusion_only, g1)) > 2  # the per-group modules exist
    for name, g in g1.items():
        if _video_or_fusion_only(name):
            assert g is None or torch.count_nonzero(g) == 0, name
        else:
            assert (g is None) == (g2[name] is None), name
            if g is not None:
                assert torch.equal(g, g2[name]), name  # bit-identical whatever the video
    assert torch.count_nonzero(g1["audio_tokenizer.proj.weight"]) > 0


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("masking", ["zorro", "independent"])
def test_unimodal_path_equals_the_full_model(masking: str, backbone: str) -> None:
    m = tiny(masking, backbone)
    x = inputs(m)
    with torch.no_grad():
        full = m.encode(**x)
        a = m.encode(audio=x["audio"])
        v = m.encode(video=x["video"])
    assert set(a) == {"audio"} and set(v) == {"video"}
    torch.testing.assert_close(a["audio"], full["audio"], atol=1e-5, rtol=0)
    torch.testing.assert_close(v["video"], full["video"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_unimodal_path_runs_only_the_audio_tokens(backbone: str) -> None:
    m = tiny("zorro", backbone)
    x = inputs(m)
    seen: list[dict[str, int]] = []
    m.backbone.register_forward_pre_hook(lambda mod, args: seen.append({g: t.shape[1] for g, t in args[0].items()}))
    with torch.no_grad():
        m.encode(audio=x["audio"])
        m.encode(**x)
    n_audio, n_video = {"vit": (8, 16), "swin": (128, 128), "hip": (32, 128)}[backbone]
    assert seen == [{"audio": n_audio}, {"audio": n_audio, "fusion": 4, "video": n_video}]


@pytest.mark.parametrize("impl", ["block", "flex"])
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("masking", MASKINGS)
def test_block_skipping_attention_equals_dense_masked_attention(masking: str, backbone: str, impl: str) -> None:
    """``block`` (one SDPA per allowed block) and ``flex`` (FlexAttention) against the dense reference."""
    torch.manual_seed(0)
    block = build_model(TINY[backbone], masking=masking, num_classes=5, drop_path=0.0, attention=impl)
    dense = build_model(TINY[backbone], masking=masking, num_classes=5, attention="dense")
    dense.load_state_dict(block.state_dict())
    x = inputs(block)
    for given in ({"audio": x["audio"], "video": x["video"]}, {"audio": x["audio"]}, {"video": x["video"]}):
        grad = impl != "flex"  # PyTorch has no FlexAttention backward on CPU: for flex the forward is compared
        with torch.set_grad_enabled(grad):
            out_b, out_d = block(**given), dense(**given)
        assert set(out_b) == set(out_d)
        for k in out_b:
            torch.testing.assert_close(out_b[k], out_d[k], atol=1e-5, rtol=0)
        if grad:
            sum(v.sum() for v in out_b.values()).backward()
            sum(v.sum() for v in out_d.values()).backward()
    gd = dict(dense.named_parameters())
    for name, p in block.named_parameters():
        if p.grad is None:
            assert gd[name].grad is None or torch.count_nonzero(gd[name].grad) == 0, name
        else:
            # tolerance relative to the tensor's scale: HiP's gradients sum over many latents
            scale = max(1.0, gd[name].grad.abs().max().item())
            torch.testing.assert_close(p.grad / scale, gd[name].grad / scale, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_other_input_sizes_work_without_retraining(backbone: str) -> None:
    m = tiny("zorro", backbone)
    audio = torch.randn(2, 1, 48, 96)  # configured 32x64 (Swin: windows pad at the second stage)
    video = torch.randn(2, 3, 6, 48, 64)  # configured 4x32x32 (Swin: 3 time patches pad to 4)
    with torch.no_grad():
        out = m.encode(audio=audio, video=video)
        alone = m.encode(audio=audio)
    (pt, ph, pw), width = m.config.video_patch, m.fusion.shape[-1]
    assert tuple(m.tokenize(audio, video)["video"].shape) == (2, 6 // pt * 48 // ph * 64 // pw, width)
    assert set(out) == {"audio", "video", "fusion", "global"}
    torch.testing.assert_close(alone["audio"], out["audio"], atol=1e-5, rtol=0)


def test_position_tables_are_untouched_at_the_configured_size() -> None:
    from zorro_cli.model.tokenizers import resize_1d, resize_2d

    t = torch.arange(8.0).reshape(1, 1, 2, 4)
    assert resize_2d(t, (2, 4)) is t
    line = torch.tensor([[[0.0, 2.0]]])
    # linear, align_corners=False: positions of the 4 outputs map to -0.25, 0.25, 0.75, 1.25 (clamped)
    torch.testing.assert_close(resize_1d(line, 4), torch.tensor([[[0.0, 0.5, 1.5, 2.0]]]))


@pytest.mark.parametrize(("audio", "video", "match"), [
    ((2, 1, 30, 64), None, "mel bins=30"),
    ((2, 1, 32, 70), None, "frames=70"),
    ((2, 2, 32, 64), None, r"audio must be \[B, 1, F, T\]"),
    (None, (2, 3, 4, 30, 32), "height=30"),
    (None, (2, 3, 32, 32), r"video must be \[B, 3, T, H, W\]"),
])
def test_bad_shapes_raise_instead_of_cropping(audio, video, match) -> None:
    m = tiny()
    with pytest.raises(ValueError, match=match):
        m.encode(audio=None if audio is None else torch.randn(audio),
                 video=None if video is None else torch.randn(video))


def test_mismatched_batches_and_no_input_raise() -> None:
    m = tiny()
    x = inputs(m)
    with pytest.raises(ValueError, match="batch sizes differ"):
        m.encode(audio=x["audio"], video=x["video"][:1])
    with pytest.raises(ValueError, match="at least one of audio or video"):
        m.encode()


def test_invalid_config_lists_every_problem() -> None:
    with pytest.raises(ValueError) as e:
        ZorroConfig(dim=100, heads=12, masking="mbt", fusion_tokens=-1)
    msg = str(e.value)
    assert "heads: dim 100 is not divisible by heads 12" in msg
    assert "masking: expected one of" in msg and "fusion_tokens: expected >= 0" in msg


@pytest.mark.parametrize("backbone", BACKBONES)
def test_save_and_load_pretrained_round_trip(tmp_path, backbone: str) -> None:
    m = tiny("bottleneck", backbone)
    save_pretrained(m, tmp_path / "model", extra={"labels": ["a", "b"]})
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors"]
    for path in (tmp_path / "model", tmp_path / "model" / "model.safetensors"):
        m2 = load_pretrained(path)
        assert m2.config == m.config
        x = inputs(m)
        with torch.no_grad():
            torch.testing.assert_close(m2(**x)["global"], m(**x)["global"], atol=0, rtol=0)
    (tmp_path / "model" / "config.json").unlink()  # the weights' metadata carries the config too
    assert load_pretrained(tmp_path / "model").config == m.config
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize("impl", ["block", "dense"])
def test_read_out_with_projections_folded_into_the_queries_equals_the_plain_cross_attention(impl: str) -> None:
    """The decoder folds W_k / W_v into its few queries; outputs and every gradient match the textbook form."""
    from zorro_cli.model import layers
    from zorro_cli.model.masks import TokenLayout

    torch.manual_seed(0)
    attn = layers.CrossAttention(dim=48, heads=4)  # Q * heads = 16 < 48: the folded path runs
    assert attn.folds(4) and not attn.folds(12)
    layout = TokenLayout(audio=5, fusion=2, video=7)
    rows = [(0, 1, ["audio"]), (1, 2, ["video"]), (2, 3, ["fusion"]), (3, 4, ["audio", "fusion", "video"])]
    build = layers.PLAN_BUILDERS[impl]
    plan, folded = build(layout, rows), build(layout, [(i * 4, j * 4, g) for i, j, g in rows])
    queries, x = torch.randn(3, 4, 48, requires_grad=True), torch.randn(3, 14, 48, requires_grad=True)
    results, kv_calls = [], []
    attn.kv.register_forward_hook(lambda *_: kv_calls.append(1))
    for used, fold in ((plan, False), (folded, True)):
        attn.zero_grad()
        queries.grad = x.grad = None
        out = attn(queries, x, used, fold)
        (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
        results.append((out.detach(), queries.grad, x.grad, [p.grad.clone() for p in attn.parameters()]))
    (o1, q1, x1, g1), (o2, q2, x2, g2) = results
    assert len(kv_calls) == 1  # the folded path never projects the N tokens
    torch.testing.assert_close(o2, o1, rtol=0, atol=1e-5)
    torch.testing.assert_close(q2, q1, rtol=0, atol=1e-5)
    torch.testing.assert_close(x2, x1, rtol=0, atol=1e-5)
    for a, b in zip(g2, g1, strict=True):  # the key bias: zero gradient both ways (softmax cancels it)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # purity holds in the folded form too: the audio query's output ignores the video tokens exactly
    x2_ = x.detach().clone()
    x2_[:, 7:] = torch.randn(3, 7, 48)
    with torch.no_grad():
        a = attn(queries, x.detach(), folded, True)[:, 0]
        b = attn(queries, x2_, folded, True)[:, 0]
    assert torch.equal(a, b)


def test_flex_plan_uses_flex_attention_for_inference_and_the_dense_path_for_cpu_gradients(monkeypatch) -> None:
    """On CPU, FlexAttention has no backward: a FlexPlan that needs a gradient runs the dense reference."""
    import torch.nn.attention.flex_attention as fa

    from zorro_cli.model import layers
    from zorro_cli.model.masks import TokenLayout

    calls: list[int] = []
    real = fa.create_block_mask
    monkeypatch.setattr(fa, "create_block_mask", lambda *a, **k: calls.append(1) or real(*a, **k))
    layout = TokenLayout(audio=5, fusion=2, video=7)
    rows = [(0, 5, ["audio"]), (5, 7, ["audio", "fusion", "video"]), (7, 14, ["video"])]
    flex, dense = layers.flex_plan(layout, rows), layers.dense_plan(layout, rows)
    q, k, v = (torch.randn(2, 3, 14, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    with torch.no_grad():
        torch.testing.assert_close(flex.attend(q, k, v), dense.attend(q, k, v), atol=1e-6, rtol=0)
        flex.attend(k, q, v)  # the next layer sharing the plan reuses its block mask
    assert calls == [1]
    q.requires_grad_(True)
    out = flex.attend(q, k, v)
    out.sum().backward()
    assert calls == [1] and q.grad is not None  # the dense path, with its gradient
