"""ONNX export parity with PyTorch (onnxruntime), full model and the unimodal exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zorro_cli.model import build_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from zorro_cli.commands.export import export_onnx  # noqa: E402


@pytest.mark.parametrize(("masking", "modality", "outputs"), [
    ("zorro", "all", ("audio_logits", "video_logits", "fusion_logits", "global_logits")),
    ("zorro", "audio", ("audio_logits",)),
    ("input_fusion", "video", ("video_logits", "fusion_logits", "global_logits")),
])
def test_onnx_matches_pytorch(tmp_path, masking: str, modality: str, outputs: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    model = build_model("zorro_vit_tiny", masking=masking, num_classes=7).eval()
    res = export_onnx(model, modality, tmp_path)
    assert res.outputs == outputs and res.max_abs_diff is not None and res.max_abs_diff <= 1e-4
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == (["audio", "video"] if modality == "all" else [modality])
    x = model.example_inputs(5, generator=torch.Generator().manual_seed(3))  # another batch size
    feed = {i.name: x[i.name].numpy() for i in sess.get_inputs()}
    got = dict(zip(outputs, sess.run(list(outputs), feed), strict=True))
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in feed.items()})
    for name in outputs:
        np.testing.assert_allclose(got[name], ref[name.removesuffix("_logits")].numpy(), atol=1e-4, rtol=0)
