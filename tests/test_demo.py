"""`zorro demo` end to end, and what the paper's robustness table claims, on the demo data.

One demo run (a subprocess, as a user runs it) is shared by the tests of this module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zorro_cli.commands import evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run([sys.executable, "-m", "zorro_cli.cli", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("\n") == 1  # one JSON line on stdout, everything else on stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.split()[0] == "seconds:" and "{" not in last and "total" in last, last  # not a raw dict
    return out, json.loads(proc.stdout)


def test_demo_heads_are_well_above_chance_and_everything_is_written(demo: tuple[Path, dict]) -> None:
    out, summary = demo
    both = summary["heads"]["both"]
    assert set(both) == {"audio", "video", "fusion", "global"}
    assert all(v >= 0.6 for v in both.values()), both  # chance is 0.25 (4 classes)
    assert summary["heads"]["video missing"]["audio"] >= 0.6
    assert summary["heads"]["audio missing"]["video"] >= 0.6
    for f in summary["files"]:
        assert Path(f).is_file(), f
    assert {p.name for p in (out / "plots").iterdir()} >= {"confusion_global.png", "training_curves.png",
                                                            "pretraining_curves.png"}
    cfg = json.loads((out / "export" / "config.json").read_text())
    assert {"labels", "preprocessing", "model", "onnx"} <= set(cfg)
    assert {"sample_rate", "n_mels", "hop_length", "fps", "mel_mean", "mel_std"} <= set(cfg["preprocessing"])
    assert cfg["onnx"]["model_audio.onnx"]["inputs"] == ["audio"]
    # every weights file written carries its checksum, checked by every reader
    from zorro_cli.model.pretrained import weights_checksum

    assert cfg["weights"] == weights_checksum(out / "export" / "model.safetensors")
    assert cfg["onnx"]["model_audio.onnx"]["sha256"] == weights_checksum(out / "export" / "model_audio.onnx")["sha256"]


def _scores(ckpt: Path, cache: Path, tmp: Path, name: str, **kw: str) -> dict[str, np.ndarray]:
    dump = tmp / f"{name}.npz"
    evaluate.run(checkpoint=str(ckpt), data=str(cache), dump=str(dump), **kw)
    z = np.load(dump)
    return {str(c): {k.removeprefix("scores_"): z[k][i] for k in z.files if k.startswith("scores_")}
            for i, c in enumerate(z["clip_ids"])}


def test_zorro_unimodal_heads_are_unchanged_when_the_other_modality_is_missing(demo, tmp_path) -> None:
    out, _ = demo
    ckpt, cache = out / "finetune", out / "cache"
    both = _scores(ckpt, cache, tmp_path, "both")
    no_video = _scores(ckpt, cache, tmp_path, "no_video", missing="video")
    no_audio = _scores(ckpt, cache, tmp_path, "no_audio", missing="audio")
    common = sorted(set(both) & set(no_video) & set(no_audio))
    assert len(common) >= 10
    for clip in common:
        np.testing.assert_allclose(no_video[clip]["audio"], both[clip]["audio"], atol=1e-5)
        np.testing.assert_allclose(no_audio[clip]["video"], both[clip]["video"], atol=1e-5)
        assert set(no_video[clip]) == {"audio"} and set(no_audio[clip]) == {"video"}
    # and therefore identical metrics on the same clips
    a = evaluate.run(checkpoint=str(ckpt), data=str(cache), modality="video")
    b = evaluate.run(checkpoint=str(ckpt), data=str(cache), missing="audio")
    assert a["heads"]["video"] == b["heads"]["video"] and a["inputs"] == b["inputs"] == ["video"]


def test_input_fusion_global_head_loses_accuracy_with_a_modality_missing(demo, tmp_path) -> None:
    """The paper's robustness claim: a model without unimodal streams suffers when a modality is missing.

    Measured on the clips that all three evaluations share, by the mean probability the global head gives
    the true class (a continuous measure: 15 clips make top-1 coarse), and top-1 never improves.
    """
    from zorro_cli.commands import finetune
    from zorro_cli.recipes import load_recipe

    out, _ = demo
    run = tmp_path / "input_fusion"
    finetune.run(recipe=load_recipe("tiny", ["model.masking=input_fusion", "train.max_steps=400"]), data=out / "cache",
                 out=run)
    scores = {m: _scores(run, out / "cache", tmp_path, f"if_{m}", **({"missing": m} if m else {}))
              for m in ("", "video", "audio")}
    targets = _targets(out / "cache")
    common = sorted(set(scores[""]) & set(scores["video"]) & set(scores["audio"]))
    assert len(common) >= 10 and all("global" in scores[m][common[0]] for m in scores)

    def top1(m: str) -> float:
        return float(np.mean([scores[m][c]["global"].argmax() == targets[c] for c in common]))

    def p_true(m: str) -> float:
        return float(np.mean([scores[m][c]["global"][targets[c]] for c in common]))

    seen = {m or "both": (top1(m), p_true(m)) for m in scores}
    print("input_fusion global head (top1, p_true):", seen)
    assert top1("") >= 0.8, seen
    # Each modality alone identifies the class in this data, so top-1 may survive a missing modality;
    # the confidence in the right class does not: the global head never saw these token sets.
    assert max(top1("video"), top1("audio")) <= top1(""), seen
    assert p_true("video") < p_true("") and p_true("audio") < p_true(""), seen
    assert p_true("") - min(p_true("video"), p_true("audio")) >= 0.1, seen


def _targets(cache: Path) -> dict[str, int]:
    from zorro_cli.data.cache import open_cache

    return {r.clip_id: r.labels[0] for r in open_cache(cache).index}


def test_readme_inference_snippet_runs_on_the_export(demo: tuple[Path, dict]) -> None:
    out, _ = demo
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = text.split("<!-- inference-snippet -->")[1].split("```python")[1].split("```")[0]
    env: dict = {}
    exec(compile(snippet.replace("zorro-demo/", f"{out}/"), "README", "exec"), env)
    assert env["probs"].shape == (1, 4) and abs(float(env["probs"].sum()) - 1) < 1e-5


# HiP's audio and video heads are still half-way at 400 steps: 0.47-0.67 / 0.53-0.73 top-1 over two seeds
# and a one-float16-step change in 0.1 % of the log-mel values; at 600 steps 0.67-0.8 / 0.67-0.93 over two
# seeds (Swin: 0.93 / 1.0 at 400). The test needs the heads to have learnt, not to be lucky on 15 clips.
@pytest.mark.parametrize(("backbone", "steps"), [("swin", 400), ("hip", 600)])
def test_swin_and_hip_train_with_the_tiny_recipe_and_beat_chance(demo, tmp_path, backbone: str, steps: int) -> None:
    from zorro_cli.commands import finetune
    from zorro_cli.recipes import load_recipe

    out, _ = demo
    run = tmp_path / backbone
    finetune.run(recipe=load_recipe("tiny", [f"model.backbone={backbone}", f"train.max_steps={steps}",
                                             "data.val_holdout=0"]), data=out / "cache", out=run)
    heads = evaluate.run(checkpoint=str(run), data=str(out / "cache"))["heads"]
    assert set(heads) == {"audio", "video", "fusion", "global"}
    assert all(m["top1"] >= 0.5 for m in heads.values()), heads  # chance: 0.25
