"""`zorro predict` on raw media files: the same scores as `zorro evaluate` on the same clip, the unimodal
path reads no video stream, files / folders / globs / manifests, failures as lines, exports, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.commands import evaluate, predict
from zorro_cli.data import decode
from zorro_cli.data.cache import open_cache
from zorro_cli.evaluation.files import expand_media


@pytest.fixture(scope="module")
def tiny_run(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zorro_cli.commands import finetune
    from zorro_cli.recipes import load_recipe

    out = tmp_path_factory.mktemp("predict") / "run"
    finetune.run(recipe=load_recipe("tiny", ["train.max_steps=4", "data.val_split=null"]), data=tiny_cache, out=out)
    return out


def scores_of(record: dict, labels: list[str]) -> dict[str, np.ndarray]:
    """``{head: [C]}`` in label order from a record holding every label (``top_k`` = C)."""
    return {h: np.array([{x["label"]: x["score"] for x in top}[name] for name in labels])
            for h, top in record["heads"].items()}


def test_top_k_and_view_means() -> None:
    labels = ["a", "b", "c"]
    assert predict.top_k(np.array([0.2, 0.5, 0.3]), labels, 2) == [{"label": "b", "score": 0.5},
                                                                   {"label": "c", "score": 0.3}]
    assert [x["label"] for x in predict.top_k(np.array([0.4, 0.2, 0.4]), labels, 3)] == ["a", "c", "b"]
    logits = {"audio": torch.tensor([[0.0, 0.0], [0.0, 10.0], [5.0, 5.0], [1.0, 1.0]])}  # 2 files x 2 views
    means = predict.view_means(logits, views=2, multilabel=False)["audio"]
    s10 = 1 / (1 + np.exp(-10.0))  # softmax([0, 10]) = [1 - s10, s10]
    np.testing.assert_allclose(means, [[(0.5 + 1 - s10) / 2, (0.5 + s10) / 2], [0.5, 0.5]], atol=1e-6)
    sig = predict.view_means({"g": torch.tensor([[0.0], [0.0]])}, views=1, multilabel=True)["g"]
    np.testing.assert_allclose(sig, [[0.5], [0.5]])


def test_expand_media(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.mp4", "d/a.webm", "d/sub/c.mkv", "d/notes.txt", "d/.hidden.mp4", "e.avi"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "list.csv").write_text("path,label\nd/a.webm,x\nmissing.mp4,y\n")
    got = expand_media([tmp_path / "d", str(tmp_path / "*.avi"), tmp_path / "list.csv", tmp_path / "e.avi"])
    assert [p.relative_to(tmp_path).as_posix() for p in got] == [
        "d/a.webm", "d/b.mp4", "d/sub/c.mkv", "e.avi", "d/a.webm", "missing.mp4", "e.avi"]
    with pytest.raises(predict.UsageError, match="no such file or folder"):
        expand_media([tmp_path / "nope.mp4"])
    with pytest.raises(predict.UsageError, match="no file matches"):
        expand_media([str(tmp_path / "*.flac")])
    (tmp_path / "bad.csv").write_text("clip,label\nx,y\n")
    with pytest.raises(predict.UsageError, match="expected a column named path"):
        expand_media([tmp_path / "bad.csv"])


@pytest.mark.parametrize(("modality", "evaluate_as"), [("all", {}), ("audio", {"modality": "audio"})])
def test_predict_equals_evaluate_on_the_same_clips(tiny_run: Path, tiny_cache: Path, synth_dir: Path,
                                                   tmp_path: Path, modality: str, evaluate_as: dict) -> None:
    """A media file predicted on gets exactly the scores `zorro evaluate` gives its clip in the cache
    (same windows, crops, JPEG frames, float16 log-mel and normalisation). Audio alone: a file whose
    video runs longer than its audio (the AVIs here) is centred on its audio's own length, since the
    video stream is not read, whereas the cache knows the longer stream's; those clips are left out."""
    evaluate.run(checkpoint=tiny_run, data=tiny_cache, split="test", dump=tmp_path / "e.npz", **evaluate_as)
    dump = np.load(tmp_path / "e.npz")
    cache = open_cache(tiny_cache)
    rows = [cache.row(str(c)) for c in dump["clip_ids"]]
    files = [synth_dir / r.path for r in rows]
    result = predict.run(files=files, checkpoint=tiny_run, modality=modality, top_k=4, batch_size=3)
    assert result["predicted"] == len(files) > 3 and result["failed"] == 0
    heads = [k.removeprefix("scores_") for k in dump.files if k.startswith("scores_")]
    same_window = [modality == "all" or cache.info(r.clip_id)["audio_s"] == r.duration_s for r in rows]
    assert sum(same_window) >= 4
    for i, record in enumerate(result["records"]):
        assert record["inputs"] == (["audio", "video"] if modality == "all" else ["audio"])
        got = scores_of(record, cache.label_names)
        assert sorted(got) == sorted(heads)
        for head in heads if same_window[i] else ():
            np.testing.assert_allclose(got[head], dump[f"scores_{head}"][i], atol=2e-6, err_msg=f"{files[i]} {head}")


def test_modality_audio_reads_no_video_stream(tiny_run: Path, synth_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    pick = decode.pick_video_stream
    monkeypatch.setattr(decode, "pick_video_stream", lambda container: opened.append(container.name) or pick(container))
    files = sorted((synth_dir / "class0").iterdir())[:2]
    audio = predict.run(files=files, checkpoint=tiny_run, modality="audio")
    assert opened == [] and all(r["inputs"] == ["audio"] and list(r["heads"]) == ["audio"] for r in audio["records"])
    both = predict.run(files=files, checkpoint=tiny_run, modality="all")
    assert len(opened) == 2 and all(r["inputs"] == ["audio", "video"] for r in both["records"])


def test_a_file_without_audio_takes_the_video_path(tiny_run: Path, synth_dir: Path, tiny_cache: Path) -> None:
    cache = open_cache(tiny_cache)
    silent = next(r for r in cache.index if not r.has_audio)
    result = predict.run(files=[synth_dir / silent.path], checkpoint=tiny_run)
    (record,) = result["records"]
    assert record["inputs"] == ["video"] and list(record["heads"]) == ["video"]
    with pytest.raises(predict.PredictFailed) as err:
        predict.run(files=[synth_dir / silent.path], checkpoint=tiny_run, modality="audio")
    assert err.value.result["records"][0]["error"] == "no audio stream"


def test_predict_cli_lines_failures_and_usage_errors(tiny_run: Path, synth_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("not a video")
    good = sorted((synth_dir / "class1").glob("*.mp4"))[0]
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(good), str(tmp_path / "notes.mp4"), "--checkpoint", str(tiny_run),
                              "--top-k", "2", "--json", str(tmp_path / "out" / "p.jsonl")])
    assert res.exit_code == 1, res.output
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [r["ok"] for r in lines] == [True, False] and all(len(t) == 2 for t in lines[0]["heads"].values())
    assert lines[1]["error"].startswith("cannot open: InvalidDataError")
    assert [json.loads(x) for x in (tmp_path / "out" / "p.jsonl").read_text().splitlines()] == lines
    assert "Traceback" not in res.stderr and res.stderr.strip().splitlines()[-1] == (
        f"error: 1 of 2 files could not be predicted (first: {tmp_path / 'notes.mp4'}: {lines[1]['error']})")
    for args, msg in [
        ([str(tmp_path / "nope.mp4")], "FILE"),
        ([str(good), "--modality", "smell"], "--modality: expected one of all, audio, video"),
        ([str(good), "--crops", "2"], "--crops: expected 1 or 3 spatial crops, got 2"),
        ([str(good), "--runtime", "onnx"], "no ONNX export here"),
    ]:
        res = runner.invoke(app, ["predict", *args, "--checkpoint", str(tiny_run)])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1 and msg in res.stderr, (args, res.output)
    res = runner.invoke(app, ["predict", str(good), "--checkpoint", str(tmp_path)])
    assert res.exit_code == 2 and "--checkpoint" in res.stderr and res.stderr.count("\n") == 1


def test_predict_subprocess_from_a_safetensors_export(tiny_run: Path, synth_dir: Path, tmp_path: Path) -> None:
    """The installed command on a folder, from an export folder: one JSON line per file, the run's scores."""
    from zorro_cli.commands import export

    export.run(checkpoint=tiny_run, out=tmp_path / "export", fmt="safetensors")
    folder = synth_dir / "class2"
    res = subprocess.run([sys.executable, "-m", "zorro_cli.cli", "predict", str(folder), "--checkpoint",
                          str(tmp_path / "export"), "--json", "-"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [r["file"] for r in lines] == [str(p) for p in sorted(folder.iterdir())]
    assert not (Path.cwd() / "-").exists()
    direct = predict.run(files=[folder], checkpoint=tiny_run)["records"]
    assert lines == direct


def test_predict_from_an_onnx_export(tiny_run: Path, synth_dir: Path, tiny_cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from zorro_cli.commands import export

    labels = open_cache(tiny_cache).label_names
    for modality in ("all", "audio"):
        export.run(checkpoint=tiny_run, out=tmp_path / "onnx", fmt="onnx", modality=modality)
    assert not (tmp_path / "onnx" / "model.safetensors").exists()
    silent = next(r for r in open_cache(tiny_cache).index if not r.has_audio)
    # (not the AVIs: their audio ends before their video, see test_predict_equals_evaluate_on_the_same_clips)
    files = [*[f for f in sorted((synth_dir / "class3").iterdir()) if f.suffix != ".avi"][:2], synth_dir / silent.path]
    with pytest.raises(predict.PredictFailed) as err:  # no model_video.onnx for the file without audio
        predict.run(files=files, checkpoint=tmp_path / "onnx", top_k=4)
    onnx = err.value.result["records"]
    assert "onnxruntime" in err.value.result["model"] and "model_video.onnx" in onnx[2]["error"]
    torch_records = predict.run(files=files[:2], checkpoint=tiny_run, top_k=4)["records"]
    audio = predict.run(files=files[:2], checkpoint=tmp_path / "onnx", modality="audio", top_k=4)["records"]
    for o, t, a in zip(onnx[:2], torch_records, audio, strict=True):
        got, ref, uni = scores_of(o, labels), scores_of(t, labels), scores_of(a, labels)
        assert sorted(got) == sorted(ref) and list(uni) == ["audio"]
        for head in ref:
            np.testing.assert_allclose(got[head], ref[head], atol=1e-4)
        np.testing.assert_allclose(uni["audio"], ref["audio"], atol=1e-4)  # the unimodal path's o_A


@pytest.mark.slow
def test_predict_on_the_shared_real_and_broken_videos(tiny_run: Path, shared_data: Path) -> None:
    """Every readable real file gives a row with the modalities it has; every broken one is a failure line
    with the reason preprocessing gives it; nothing raises before every file is reported."""
    from test_preprocess_real import VALID_IN_BAD, manifest_rows

    real, bad = manifest_rows(shared_data / "real_videos"), manifest_rows(shared_data / "bad_videos")
    with pytest.raises(predict.PredictFailed) as err:
        predict.run(files=[shared_data / "real_videos", shared_data / "bad_videos"],
                    checkpoint=tiny_run, top_k=1, workers=2)
    records = {Path(r["file"]).name: r for r in err.value.result["records"]}
    assert len(records) == len(real) + len(bad) == err.value.result["files"]
    for name, meta in real.items():
        r = records[name]
        assert r["ok"], (name, r)
        has = [m for m, on in (("audio", meta["has_audio"] == "1"), ("video", int(meta["n_video_streams"]) > 0)) if on]
        heads = ["audio", "video", "fusion", "global"] if len(has) == 2 else has  # one: the unimodal path
        assert r["inputs"] == has and sorted(r["heads"]) == sorted(heads), name
    broken = sorted(set(bad) - VALID_IN_BAD)
    assert sorted(n for n in bad if not records[n]["ok"]) == broken
    assert all(records[n]["ok"] for n in VALID_IN_BAD)
    assert records["made__empty.mp4"]["error"] == "cannot open: InvalidDataError: Invalid data found when processing input"
    assert records["made__truncated_5k.webm"]["error"] == "video decoded for 0.033 of 2.736 s"
    assert all("\n" not in records[n]["error"] for n in broken)
    assert str(err.value).startswith(f"{len(broken)} of {len(records)} files could not be predicted")
