"""Manifest readers on samples written in each dataset's published layout (DESIGN.md §6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zorro_cli.data.manifests import ManifestError, read_manifest

AUDIOSET = '''# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
--ZhevVpy1s, 50.000, 60.000, "/m/012xff"
--aE2O5G5WE, x, 10.000, "/m/03fwl"
--aaILOrkII, 200.000, 210.000, "/m/zzzzz"
'''
CLASS_LABELS = '''index,mid,display_name
0,/m/09x0r,"Speech"
1,/t/dd00088,"Male speech, man speaking"
2,/m/012xff,"Toothbrush"
3,/m/03fwl,"Goat"
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_audioset(tmp_path):
    m = write(tmp_path / "balanced_train_segments.csv", AUDIOSET)
    write(tmp_path / "class_labels_indices.csv", CLASS_LABELS)
    man = read_manifest("audioset", [m])
    assert man.label_names == ["Speech", "Male speech, man speaking", "Toothbrush", "Goat"]
    assert man.multilabel
    r0, r1 = man.rows
    assert (r0.clip_id, r0.path, r0.labels, r0.split, r0.start, r0.end) == (
        "--PJHxphWEs_30000", "--PJHxphWEs", ("Speech", "Male speech, man speaking"), "balanced_train", 30.0, 40.0)
    assert r0.fields["start"] == 30 and r0.fields["start_ms"] == 30000 and r1.labels == ("Toothbrush",)
    assert man.problems == [("balanced_train_segments.csv:6", "start 'x' is not a number"),
                            ("balanced_train_segments.csv:7", "label '/m/zzzzz' not in the label vocabulary")]


def test_audioset_needs_label_indices(tmp_path):
    m = write(tmp_path / "eval_segments.csv", AUDIOSET)
    with pytest.raises(ManifestError, match=r"class_labels_indices\.csv"):
        read_manifest("audioset", [m])
    labels = write(tmp_path / "other" / "labels.csv", CLASS_LABELS)
    assert read_manifest("audioset", [m], labels).rows[0].split == "eval"


def test_vggsound(tmp_path):
    m = write(tmp_path / "vggsound.csv", "---g-f_I2yQ,1,people marching,test\n--0PQM4-hqg,30,waterfall burbling,train\n"
              "bad,row\n")
    man = read_manifest("vggsound", [m])
    assert man.label_names == ["people marching", "waterfall burbling"] and not man.multilabel
    r = man.rows[0]
    assert (r.clip_id, r.labels, r.split, r.start, r.end) == ("---g-f_I2yQ_000001", ("people marching",), "test", 1.0, 11.0)
    assert man.problems == [("vggsound.csv:3", "expected youtube_id,start_seconds,label,split")]


def test_kinetics(tmp_path):
    m = write(tmp_path / "train.csv", "label,youtube_id,time_start,time_end,split\n"
              "abseiling,-3B32lodo2M,59,69,train\nair drumming,--nQbRBEz2s,104,114,train\n")
    man = read_manifest("kinetics", [m])
    assert man.label_names == ["abseiling", "air drumming"]
    r = man.rows[1]
    assert (r.clip_id, r.split, r.start, r.end, r.fields["label_"]) == (
        "--nQbRBEz2s_000104_000114", "train", 104.0, 114.0, "air_drumming")


def test_esc50(tmp_path):
    m = write(tmp_path / "meta" / "esc50.csv", "filename,fold,target,category,esc10,src_file,take\n"
              "1-100032-A-0.wav,1,0,dog,True,100032,A\n1-100038-A-14.wav,2,1,chirping_birds,False,100038,A\n")
    man = read_manifest("esc50", [m])
    assert man.label_names == ["dog", "chirping_birds"]  # ordered by target
    assert [(r.clip_id, r.path, r.split) for r in man.rows] == [
        ("1-100032-A-0", "1-100032-A-0.wav", "fold1"), ("1-100038-A-14", "1-100038-A-14.wav", "fold2")]


def test_generic(tmp_path):
    m = write(tmp_path / "m.csv", "path,label,extra\nvid/a.mp4,dog;cat,x\nb.mkv,cat,y\n,,\n")
    man = read_manifest("generic", [m])
    assert man.label_names == ["cat", "dog"] and man.multilabel
    assert [(r.clip_id, r.path, r.labels, r.split) for r in man.rows] == [
        ("vid/a", "vid/a.mp4", ("dog", "cat"), "train"), ("b", "b.mkv", ("cat",), "train")]


def test_usage_errors(tmp_path):
    with pytest.raises(ManifestError, match="unknown format 'youtube'"):
        read_manifest("youtube", [])
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest("generic", [tmp_path / "none.csv"])
    with pytest.raises(ManifestError, match="lacks column"):
        read_manifest("generic", [write(tmp_path / "m.csv", "file,label\na.mp4,x\n")])
