"""Benchmark readers: each standard layout written in small form, read back, compared by hand."""

from __future__ import annotations

import json
import pickle
import string
from pathlib import Path

import numpy as np
import pytest
import torch

from textme_sdk.errors import EmptyInputError, InvalidInputError, MissingInputFileError
from textme_sdk.evaluation import (
    DOMAINS,
    TASKS,
    ClassificationSet,
    RetrievalSet,
    get_templates,
    load_task,
)
from textme_sdk.evaluation.datasets import SCANOBJECTNN_CLASSES


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"placeholder")
    return str(path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def rel(pairs: list[tuple[int, int]], shape: tuple[int, int]) -> torch.Tensor:
    out = torch.zeros(shape, dtype=torch.bool)
    for i, j in pairs:
        out[i, j] = True
    return out


def sentences(*raw: str) -> list[dict]:
    return [{"tokens": r.split(), "raw": r, "imgid": 0, "sentid": k} for k, r in enumerate(raw)]


# --------------------------------------------------------------------------- image-text

def test_coco_karpathy_split(tmp_path):
    images = [
        {"filepath": "val2014", "filename": "COCO_val2014_1.jpg", "split": "test", "imgid": 0,
         "sentences": sentences("A dog runs.", "  A   brown dog\n", "c", "d", "e", "sixth one")},
        {"filepath": "val2014", "filename": "COCO_val2014_2.jpg", "split": "val", "imgid": 1,
         "sentences": sentences("v1", "v2", "v3", "v4", "v5")},
        {"filepath": "train2014", "filename": "COCO_train2014_3.jpg", "split": "restval",
         "imgid": 2, "sentences": sentences("r1", "r2", "r3", "r4", "r5")},
        {"filepath": "val2014", "filename": "COCO_val2014_4.jpg", "split": "test", "imgid": 3,
         "sentences": sentences("t1", "t2", "t3", "t4", "t5")},
        {"filepath": "train2014", "filename": "COCO_train2014_5.jpg", "split": "train",
         "imgid": 4, "sentences": sentences("x1", "x2", "x3", "x4", "x5")},
    ]
    write(tmp_path / "dataset_coco.json", json.dumps({"images": images, "dataset": "coco"}))
    paths = {im["filename"]: touch(tmp_path / im["filepath"] / im["filename"]) for im in images}

    ds = load_task("coco", tmp_path)
    assert isinstance(ds, RetrievalSet) and (ds.name, ds.modality) == ("coco", "image")
    assert ds.items == [paths["COCO_val2014_1.jpg"], paths["COCO_val2014_4.jpg"]]
    assert ds.ids == ["COCO_val2014_1.jpg", "COCO_val2014_4.jpg"]
    assert ds.captions == ["A dog runs.", "A brown dog", "c", "d", "e",
                           "t1", "t2", "t3", "t4", "t5"]
    assert ds.caption_item == [0] * 5 + [1] * 5
    assert torch.equal(ds.relevance(), rel([(i, i // 5) for i in range(10)], (10, 2)))

    full = load_task("coco", tmp_path, captions_per_item=None)
    assert full.captions[:6] == ["A dog runs.", "A brown dog", "c", "d", "e", "sixth one"]
    assert full.caption_item == [0] * 6 + [1] * 5

    with pytest.raises(InvalidInputError, match="captions_per_item must be a positive int"):
        load_task("coco", tmp_path, captions_per_item=0)
    train = load_task("coco", tmp_path, split="train")       # train + restval
    assert train.ids == ["COCO_train2014_3.jpg", "COCO_train2014_5.jpg"]
    assert load_task("coco", tmp_path, split="val").captions == ["v1", "v2", "v3", "v4", "v5"]
    # the json itself can be passed; images are then found beside it
    assert load_task("coco", tmp_path / "dataset_coco.json").items == ds.items


def test_flickr30k_images_folder_limit_and_missing(tmp_path):
    images = [{"filename": f"{k}.jpg", "split": "test" if k < 3 else "train", "imgid": k,
               "sentences": sentences(*[f"img{k} cap{c}" for c in range(5)])} for k in range(4)]
    write(tmp_path / "dataset_flickr30k.json", json.dumps({"images": images}))
    for k in range(3):
        touch(tmp_path / "flickr30k-images" / f"{k}.jpg")

    ds = load_task("flickr30k", tmp_path, limit=2)
    assert ds.items == [str(tmp_path / "flickr30k-images" / f"{k}.jpg") for k in range(2)]
    assert ds.captions == [f"img{k} cap{c}" for k in range(2) for c in range(5)]
    assert ds.relevance().sum(1).tolist() == [1] * 10
    assert ds.relevance().sum(0).tolist() == [5, 5]

    (tmp_path / "flickr30k-images" / "1.jpg").unlink()
    with pytest.raises(MissingInputFileError) as e:
        load_task("flickr30k", tmp_path)
    msg = str(e.value)
    assert "1 of 3 image files are missing" in msg and "1.jpg" in msg
    assert "skip_missing=True" in msg and "dataset_flickr30k.json" in msg   # names the layout
    kept = load_task("flickr30k", tmp_path, skip_missing=True)
    assert kept.ids == ["0.jpg", "2.jpg"] and kept.caption_item == [0] * 5 + [1] * 5


def test_karpathy_json_errors(tmp_path):
    with pytest.raises(MissingInputFileError, match="dataset_coco.json"):
        load_task("coco", tmp_path)
    write(tmp_path / "dataset_coco.json", json.dumps({"images": [{"filename": "a.jpg"}]}))
    with pytest.raises(InvalidInputError, match=r"images\[0\] lacks filename / split"):
        load_task("coco", tmp_path)
    write(tmp_path / "dataset_coco.json", json.dumps([1, 2]))
    with pytest.raises(InvalidInputError, match="no 'images' list"):
        load_task("coco", tmp_path)


# --------------------------------------------------------------------------- video-text

def test_msrvtt_1ka_jsfusion_and_full_json(tmp_path):
    write(tmp_path / "MSRVTT_JSFUSION_test.csv",
          "key,vid_key,video_id,sentence\n"
          "ret0,msr7579,video7579,"
          "a girl wearing red top and black trouser is putting a sweater on a dog\n"
          "ret1,msr7725,video7725,young people sit around the edges of a room clapping\n"
          "ret2,msr9258,video9258,\"a person, maybe a man, is cooking\"\n")
    videos = {v: touch(tmp_path / "videos" / "all" / f"{v}.mp4")
              for v in ("video7579", "video7725", "video9258", "video0", "video1", "video2")}
    ds = load_task("msrvtt", tmp_path)
    assert ds.modality == "video"
    assert ds.items == [videos["video7579"], videos["video7725"], videos["video9258"]]
    assert ds.captions == [
        "a girl wearing red top and black trouser is putting a sweater on a dog",
        "young people sit around the edges of a room clapping",
        "a person, maybe a man, is cooking",
    ]
    assert ds.caption_item == [0, 1, 2]
    assert torch.equal(ds.relevance(), torch.eye(3, dtype=torch.bool))

    data = {
        "videos": [{"video_id": "video0", "split": "train", "id": 0},
                   {"video_id": "video1", "split": "validate", "id": 1},
                   {"video_id": "video7725", "split": "test", "id": 7725},
                   {"video_id": "video2", "split": "validate", "id": 2}],
        "sentences": [{"video_id": "video1", "caption": "v1 a", "sen_id": 0},
                      {"video_id": "video7725", "caption": "people clap", "sen_id": 1},
                      {"video_id": "video2", "caption": "v2 a", "sen_id": 2},
                      {"video_id": "video1", "caption": "v1 b", "sen_id": 3},
                      {"video_id": "video0", "caption": "v0", "sen_id": 4},
                      {"video_id": "video7579", "caption": "dog sweater", "sen_id": 5},
                      {"video_id": "video9258", "caption": "cooking", "sen_id": 6},
                      {"video_id": "video7579", "caption": "girl and dog", "sen_id": 7}],
    }
    write(tmp_path / "MSRVTT_data.json", json.dumps(data))
    val = load_task("msrvtt", tmp_path, split="val", protocol="full")
    assert val.ids == ["video1", "video2"]
    assert val.captions == ["v1 a", "v1 b", "v2 a"] and val.caption_item == [0, 0, 1]

    multi = load_task("msrvtt", tmp_path, all_captions=True)      # 1k-A videos, every caption
    assert multi.ids == ["video7579", "video7725", "video9258"]
    assert multi.captions == ["dog sweater", "girl and dog", "people clap", "cooking"]
    assert multi.caption_item == [0, 0, 1, 2]

    with pytest.raises(InvalidInputError, match="protocol '1k-A' is a test split"):
        load_task("msrvtt", tmp_path, split="train")


def test_msvd_text_captions_and_no_pickle(tmp_path):
    write(tmp_path / "test_list.txt", "-4wsuPCjDBc_5_15\nabc_1_2\n\n")
    write(tmp_path / "train_list.txt", "zzz_0_1\n")
    write(tmp_path / "AllVideoDescriptions.txt",
          "# Microsoft Research Video Description Corpus\n# Format: VideoID_Start_End description\n"
          "\n"
          "-4wsuPCjDBc_5_15 a squirrel is eating a peanut in it's shell\n"
          "zzz_0_1 a man is singing\n"
          "abc_1_2 a cat plays\n"
          "-4wsuPCjDBc_5_15 a chipmunk is eating\n")
    clip0 = touch(tmp_path / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi")
    clip1 = touch(tmp_path / "YouTubeClips" / "abc_1_2.mp4")
    ds = load_task("msvd", tmp_path)
    assert ds.items == [clip0, clip1] and ds.ids == ["-4wsuPCjDBc_5_15", "abc_1_2"]
    assert ds.captions == ["a squirrel is eating a peanut in it's shell", "a chipmunk is eating",
                           "a cat plays"]
    assert ds.caption_item == [0, 0, 1]

    # only the pickle: refused with a pointer to the text file, never unpickled
    (tmp_path / "AllVideoDescriptions.txt").unlink()
    (tmp_path / "raw-captions.pkl").write_bytes(pickle.dumps({"x": [["a"]]}))
    with pytest.raises(MissingInputFileError, match="raw-captions.pkl is a pickle and is not read"):
        load_task("msvd", tmp_path)


def test_didemo_paragraphs(tmp_path):
    records = [
        {"annotation_id": 1, "description": "a girl waves.", "times": [[0, 0]],
         "video": "111@N00_1_a.mov", "num_segments": 6},
        {"annotation_id": 2, "description": "the camera pans", "times": [[1, 2]],
         "video": "222@N00_2_b.mp4", "num_segments": 6},
        {"annotation_id": 3, "description": "  she smiles ", "times": [[2, 2]],
         "video": "111@N00_1_a.mov", "num_segments": 6},
        {"annotation_id": 4, "description": "not listed", "times": [[0, 1]],
         "video": "333@N00_3_c.avi", "num_segments": 6},
    ]
    write(tmp_path / "test_data.json", json.dumps(records))
    write(tmp_path / "test_list.txt", "111@N00_1_a.mov\n222@N00_2_b.mp4\n")
    v1 = touch(tmp_path / "videos" / "111@N00_1_a.mp4")       # converted: <stem>.mp4
    v2 = touch(tmp_path / "videos" / "222@N00_2_b.mp4")       # as named
    ds = load_task("didemo", tmp_path)
    assert ds.items == [v1, v2] and ds.ids == ["111@N00_1_a.mov", "222@N00_2_b.mp4"]
    assert ds.captions == ["a girl waves. she smiles", "the camera pans"]
    assert ds.caption_item == [0, 1]
    sentence = load_task("didemo", tmp_path, paragraph=False)
    assert sentence.captions == ["a girl waves.", "she smiles", "the camera pans"]
    assert sentence.caption_item == [0, 0, 1]
    (tmp_path / "test_list.txt").unlink()                     # without the list: every video
    with pytest.raises(MissingInputFileError, match="333@N00_3_c"):
        load_task("didemo", tmp_path)


# --------------------------------------------------------------------------- audio-text

def test_audiocaps_file_name_variants_and_missing(tmp_path):
    write(tmp_path / "dataset" / "test.csv",
          "audiocap_id,youtube_id,start_time,caption\n"
          "103549,--0w1YA1Hm4,30,A vehicle driving as a man and woman are talking\n"
          "103548,--0w1YA1Hm4,30,\"A woman talks, then a car passes\"\n"
          "97153,-AheI8Epim4,30,Muffled sounds followed by metal being hit\n"
          "97152,-AheI8Epim4,30,A man speaks\n"
          "5000,-gone1234567,10,This clip is no longer on YouTube\n"
          "4999,-kmU_Zd7Tbw,70,Water runs\n")
    a = touch(tmp_path / "test" / "Y--0w1YA1Hm4.wav")          # Y<youtube_id>
    b = touch(tmp_path / "test" / "97152.wav")                # <audiocap_id> (the second one)
    c = touch(tmp_path / "test" / "-kmU_Zd7Tbw_70.flac")      # <youtube_id>_<start_time>
    with pytest.raises(MissingInputFileError) as e:
        load_task("audiocaps", tmp_path)
    msg = str(e.value)
    assert "1 of 4 audio files are missing" in msg and "-gone1234567" in msg
    assert "Y-gone1234567.wav" in msg and "5000.wav" in msg and "skip_missing=True" in msg

    ds = load_task("audiocaps", tmp_path, skip_missing=True)
    assert ds.modality == "audio"
    assert ds.items == [a, b, c] and ds.ids == ["--0w1YA1Hm4", "-AheI8Epim4", "-kmU_Zd7Tbw"]
    assert ds.captions == ["A vehicle driving as a man and woman are talking",
                           "A woman talks, then a car passes",
                           "Muffled sounds followed by metal being hit", "A man speaks",
                           "Water runs"]
    assert ds.caption_item == [0, 0, 1, 1, 2]
    assert torch.equal(ds.relevance(), rel([(0, 0), (1, 0), (2, 1), (3, 1), (4, 2)], (5, 3)))
    # limit before the existence check: the first two clips are all present
    assert load_task("audiocaps", tmp_path, limit=2).ids == ["--0w1YA1Hm4", "-AheI8Epim4"]


def test_clotho_evaluation_split(tmp_path):
    write(tmp_path / "clotho_captions_evaluation.csv",
          "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
          "Santa Motor.wav,A machine whines.,\"Rain, then thunder.\",c3,c4,c5\n"
          "river.wav,r1,r2,r3,r4,r5\n")
    s = touch(tmp_path / "evaluation" / "Santa Motor.wav")
    r = touch(tmp_path / "evaluation" / "river.wav")
    ds = load_task("clotho", tmp_path)
    assert ds.items == [s, r] and ds.ids == ["Santa Motor.wav", "river.wav"]
    assert ds.captions == ["A machine whines.", "Rain, then thunder.", "c3", "c4", "c5",
                           "r1", "r2", "r3", "r4", "r5"]
    assert ds.caption_item == [0] * 5 + [1] * 5
    assert load_task("clotho", tmp_path, split="evaluation").captions == ds.captions


# --------------------------------------------------------------------------- audio classification

ESC_CSV = ("filename,fold,target,category,esc10,src_file,take\n"
           "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
           "1-100038-A-14.wav,1,2,chirping_birds,False,100038,A\n"
           "2-100648-A-1.wav,2,1,rain,False,100648,A\n"
           "3-101296-A-0.wav,3,0,dog,True,101296,A\n"
           "5-9032-A-1.wav,5,1,rain,False,9032,A\n")


def test_esc50_folds(tmp_path):
    write(tmp_path / "meta" / "esc50.csv", ESC_CSV)
    names = [ln.split(",")[0] for ln in ESC_CSV.splitlines()[1:]]
    paths = [touch(tmp_path / "audio" / n) for n in names]
    ds = load_task("esc50", tmp_path)
    assert isinstance(ds, ClassificationSet)
    assert (ds.modality, ds.domain, ds.multilabel) == ("audio", "audio", False)
    assert ds.class_names == ["dog", "rain", "chirping birds"]
    assert ds.items == paths and ds.ids == names
    assert ds.labels.dtype == torch.long and ds.labels.tolist() == [0, 2, 1, 0, 1]
    f1 = load_task("esc50", tmp_path, fold=1)
    assert f1.ids == names[:2] and f1.labels.tolist() == [0, 2]
    assert f1.class_names == ds.class_names                       # all 50 (here 3) classes kept
    f23 = load_task("esc50", tmp_path, fold=[2, 3])
    assert f23.ids == names[2:4] and f23.labels.tolist() == [1, 0]
    assert load_task("esc50", tmp_path, fold="2,3").ids == f23.ids        # as a CLI passes it
    with pytest.raises(InvalidInputError, match=r"fold\(s\) \[4\] not in"):
        load_task("esc50", tmp_path, fold=4)
    with pytest.raises(InvalidInputError, match="fold must be 1-5"):
        load_task("esc50", tmp_path, fold="one")


def test_esc50_wrong_columns(tmp_path):
    write(tmp_path / "meta" / "esc50.csv", "file,fold,label\na.wav,1,0\n")
    with pytest.raises(InvalidInputError) as e:
        load_task("esc50", tmp_path)
    msg = str(e.value)
    assert "lacks column(s) filename, target, category" in msg
    assert "its header: file, fold, label" in msg
    assert "meta/esc50.csv" in msg and "audio/<filename>" in msg


def test_audioset_multilabel(tmp_path):
    write(tmp_path / "eval_segments.csv",
          "# Segments csv created Sun Mar  5 10:54:25 2017\n"
          "# num_ytids=20371, num_segs=20371, num_unique_labels=527, num_positive_labels=51804\n"
          "# YTID, start_seconds, end_seconds, positive_labels\n"
          "--4gqARaEJE, 0.000, 10.000, \"/m/068hy,/m/07q6cd_,/m/0bt9lr\"\n"
          "--BfvyPmVMo, 20.000, 30.000, \"/m/03l9g\"\n"
          "--U7joUcTCo, 0.000, 10.000, \"/m/01b_21,/m/068hy\"\n")
    write(tmp_path / "class_labels_indices.csv",
          "index,mid,display_name\n"
          "0,/m/068hy,\"Domestic animals, pets\"\n"
          "1,/m/07q6cd_,Squeak\n"
          "2,/m/0bt9lr,Dog\n"
          "3,/m/03l9g,Hammer\n"
          "4,/m/01b_21,Cough\n")
    a = touch(tmp_path / "audios" / "eval_segments" / "Y--4gqARaEJE.wav")
    b = touch(tmp_path / "audios" / "eval_segments" / "--BfvyPmVMo.wav")
    c = touch(tmp_path / "audios" / "eval_segments" / "Y--U7joUcTCo.flac")
    ds = load_task("audioset", tmp_path)
    assert ds.multilabel and ds.class_names == ["Domestic animals, pets", "Squeak", "Dog",
                                                "Hammer", "Cough"]
    assert ds.items == [a, b, c] and ds.ids == ["--4gqARaEJE", "--BfvyPmVMo", "--U7joUcTCo"]
    assert ds.labels.dtype == torch.bool
    assert ds.labels.int().tolist() == [[1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [1, 0, 0, 0, 1]]

    write(tmp_path / "eval_segments.csv", "# h\n# h\n# h\nxyz, 0.0, 10.0, \"/m/nope\"\n")
    with pytest.raises(InvalidInputError, match=r"label\(s\) \['/m/nope'\] missing from"):
        load_task("audioset", tmp_path)


# --------------------------------------------------------------------------- 3D classification

def write_h5(path: Path, data: np.ndarray, label: np.ndarray, **extra) -> None:
    h5py = pytest.importorskip("h5py")        # not a core dependency of textme-sdk
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=label)
        for k, v in extra.items():
            f.create_dataset(k, data=v)


def test_modelnet40_h5_release(tmp_path):
    rng = np.random.default_rng(0)
    d0, d1, d10 = (rng.standard_normal((n, 7, 3)).astype(np.float32) for n in (2, 1, 1))
    write_h5(tmp_path / "ply_data_test0.h5", d0, np.array([[0], [2]], np.uint8),
             normal=np.zeros_like(d0))
    write_h5(tmp_path / "ply_data_test10.h5", d10, np.array([[1]], np.uint8))
    write_h5(tmp_path / "ply_data_test2.h5", d1, np.array([[1]], np.uint8))
    write_h5(tmp_path / "ply_data_train0.h5", d1, np.array([[0]], np.uint8))
    write(tmp_path / "shape_names.txt", "airplane\nflower_pot\nnight_stand\n")

    ds = load_task("modelnet40", tmp_path)
    assert (ds.modality, ds.domain) == ("3d", "3d")
    assert ds.class_names == ["airplane", "flower pot", "night stand"]
    assert ds.ids == ["ply_data_test0.h5:0", "ply_data_test0.h5:1", "ply_data_test2.h5:0",
                      "ply_data_test10.h5:0"]                 # numeric file order, not 0, 10, 2
    expected = [d0[0], d0[1], d1[0], d10[0]]
    assert all(isinstance(x, np.ndarray) and x.shape == (7, 3) and x.dtype == np.float32
               for x in ds.items)
    assert all(np.array_equal(x, y) for x, y in zip(ds.items, expected, strict=True))
    assert ds.labels.tolist() == [0, 2, 1, 1]
    lim = load_task("modelnet40", tmp_path, limit=3)
    assert lim.ids == ds.ids[:3] and lim.labels.tolist() == [0, 2, 1]
    assert load_task("modelnet40", tmp_path, split="train").labels.tolist() == [0]

    write_h5(tmp_path / "ply_data_test2.h5", d1, np.array([[3]], np.uint8))
    with pytest.raises(InvalidInputError, match=r"labels outside 0..2"):
        load_task("modelnet40", tmp_path)


def test_modelnet40_npy_layout_and_pickled_arrays(tmp_path):
    points = np.arange(3 * 4 * 6, dtype=np.float32).reshape(3, 4, 6) / 100
    np.save(tmp_path / "test_points.npy", points)
    np.save(tmp_path / "test_labels.npy", np.array([[1], [0], [1]], np.int64))
    write(tmp_path / "modelnet40_shape_names.txt", "bathtub\nrange_hood\n")
    ds = load_task("modelnet40", tmp_path)
    assert ds.class_names == ["bathtub", "range hood"] and ds.labels.tolist() == [1, 0, 1]
    assert [x.shape for x in ds.items] == [(4, 6)] * 3
    assert all(np.array_equal(x, p) for x, p in zip(ds.items, points, strict=True))

    objects = np.empty(3, dtype=object)
    objects[:] = [{"xyz": points[i]} for i in range(3)]
    np.save(tmp_path / "test_points.npy", objects, allow_pickle=True)
    with pytest.raises(InvalidInputError, match="hold Python objects"):
        load_task("modelnet40", tmp_path)
    (tmp_path / "test_points.npy").unlink()
    with pytest.raises(MissingInputFileError, match=r"ply_data_test\*\.h5"):
        load_task("modelnet40", tmp_path)


def test_scanobjectnn_variants(tmp_path):
    rng = np.random.default_rng(1)
    obj = rng.standard_normal((2, 5, 3)).astype(np.float32)
    pb = rng.standard_normal((3, 5, 3)).astype(np.float32)
    write_h5(tmp_path / "test_objectdataset.h5", obj, np.array([14, 0], np.int64),
             mask=np.zeros((2, 5), np.int64))
    ds = load_task("scanobjectnn", tmp_path)                  # the only variant present
    assert ds.class_names == list(SCANOBJECTNN_CLASSES) and len(ds.class_names) == 15
    assert ds.class_names[:3] == ["bag", "bin", "box"] and ds.class_names[14] == "toilet"
    assert ds.labels.tolist() == [14, 0]
    assert all(np.array_equal(x, y) for x, y in zip(ds.items, obj, strict=True))

    write_h5(tmp_path / "test_objectdataset_augmentedrot_scale75.h5", pb, np.array([3, 4, 5]))
    with pytest.raises(InvalidInputError, match="several variants"):
        load_task("scanobjectnn", tmp_path)
    hard = load_task("scanobjectnn", tmp_path, variant="pb_t50_rs")
    assert hard.labels.tolist() == [3, 4, 5]
    assert hard.ids[0] == "test_objectdataset_augmentedrot_scale75.h5:0"
    assert np.array_equal(hard.items[2], pb[2])
    direct = load_task("scanobjectnn", tmp_path / "test_objectdataset.h5", limit=1)
    assert direct.labels.tolist() == [14] and len(direct.items) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputFileError, match="main_split_nobg"):
        load_task("scanobjectnn", tmp_path / "empty")


# --------------------------------------------------------------------------- X-ray

def test_rsna_one_item_per_patient(tmp_path):
    write(tmp_path / "stage_2_train_labels.csv",
          "patientId,x,y,width,height,Target\n"
          "0004cfab-14fd-4e49-80ba-63a80b6bddd6,,,,,0\n"
          "00436515-870c-4b36-a041-de91049b9ab4,264.0,152.0,213.0,379.0,1\n"
          "00436515-870c-4b36-a041-de91049b9ab4,562.0,152.0,256.0,453.0,1\n"
          "003d8fa0-6bf1-40ed-b54c-ac657f8495c5,,,,,0\n")
    a = touch(tmp_path / "stage_2_train_images" / "0004cfab-14fd-4e49-80ba-63a80b6bddd6.dcm")
    b = touch(tmp_path / "stage_2_train_images" / "00436515-870c-4b36-a041-de91049b9ab4.dcm")
    c = touch(tmp_path / "stage_2_train_images" / "003d8fa0-6bf1-40ed-b54c-ac657f8495c5.png")
    ds = load_task("rsna", tmp_path)
    assert (ds.modality, ds.domain) == ("xray", "xray")
    assert ds.class_names == ["normal", "pneumonia"]
    assert ds.items == [a, b, c] and ds.labels.tolist() == [0, 1, 0]
    assert ds.ids == ["0004cfab-14fd-4e49-80ba-63a80b6bddd6",
                      "00436515-870c-4b36-a041-de91049b9ab4",
                      "003d8fa0-6bf1-40ed-b54c-ac657f8495c5"]
    write(tmp_path / "my_test_split.csv", "patientId,x,y,width,height,Target\n"
          "003d8fa0-6bf1-40ed-b54c-ac657f8495c5,,,,,0\n"
          "00436515-870c-4b36-a041-de91049b9ab4,264.0,152.0,213.0,379.0,1\n"
          "00436515-870c-4b36-a041-de91049b9ab4,,,,,0\n")        # any box row makes it positive
    sub = load_task("rsna", tmp_path, annotation_file="my_test_split.csv")
    assert sub.items == [c, b] and sub.labels.tolist() == [0, 1]
    write(tmp_path / "bad.csv", "patientId,Target\nabc,2\n")
    with pytest.raises(InvalidInputError, match="Target '2' for 'abc'; expected 0 or 1"):
        load_task("rsna", tmp_path, annotation_file="bad.csv")


# --------------------------------------------------------------------------- molecules

def test_drugbank_csv_and_moleculestm_txt(tmp_path):
    write(tmp_path / "drugbank.csv",
          "DrugBank ID,SMILES,Description\n"
          "DB00945,CC(=O)OC1=CC=CC=C1C(O)=O,\"Aspirin is a salicylate, used for pain.\"\n"
          "DB00316,CC(=O)NC1=CC=C(O)C=C1,Acetaminophen is an analgesic.\n"
          "DB00945b,CC(=O)OC1=CC=CC=C1C(O)=O,  An NSAID.  \n")
    ds = load_task("drugbank", tmp_path)                     # the folder, default file name
    assert ds.modality == "molecule"
    assert ds.items == ["CC(=O)OC1=CC=CC=C1C(O)=O", "CC(=O)NC1=CC=C(O)C=C1"]
    assert ds.ids == ds.items
    assert ds.captions == ["Aspirin is a salicylate, used for pain.", "An NSAID.",
                           "Acetaminophen is an analgesic."]
    assert ds.caption_item == [0, 0, 1]
    assert torch.equal(ds.relevance(), rel([(0, 0), (1, 0), (2, 1)], (3, 2)))

    write(tmp_path / "pairs.csv", "smi,blurb\nCCO,Ethanol.\n")
    custom = load_task("drugbank", tmp_path / "pairs.csv", smiles_column="smi", text_column="blurb")
    assert custom.items == ["CCO"] and custom.captions == ["Ethanol."]
    with pytest.raises(InvalidInputError, match="none of the columns smiles"):
        load_task("drugbank", tmp_path / "pairs.csv")
    with pytest.raises(InvalidInputError, match="no column 'SMILES'"):
        load_task("drugbank", tmp_path / "pairs.csv", smiles_column="SMILES", text_column="blurb")

    stm = tmp_path / "DrugBank_data"
    write(stm / "raw" / "SMILES_description_removed_from_PubChem_full.txt",
          "CCO\tEthanol is a solvent.\nC1=CC=CC=C1\tBenzene is aromatic.\n")
    txt = load_task("drugbank", stm)
    assert txt.items == ["CCO", "C1=CC=CC=C1"]
    assert txt.captions == ["Ethanol is a solvent.", "Benzene is aromatic."]


# --------------------------------------------------------------------------- load_task contract

def test_load_task_errors(tmp_path):
    with pytest.raises(InvalidInputError) as e:
        load_task("imagenet", tmp_path)
    assert "unknown task 'imagenet'" in str(e.value)
    assert all(name in str(e.value) for name in TASKS)
    with pytest.raises(InvalidInputError,
                       match="does not take option.*colour.*it takes: skip_missing, fold"):
        load_task("esc50", tmp_path, colour="red")
    with pytest.raises(InvalidInputError, match="no split 'dev'; choose one of test"):
        load_task("esc50", tmp_path, split="dev")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidInputError, match="limit must be a positive int"):
            load_task("esc50", tmp_path, limit=bad)
    with pytest.raises(MissingInputFileError) as e:
        load_task("esc50", tmp_path / "nowhere")
    assert "does not exist" in str(e.value) and "meta/esc50.csv" in str(e.value)
    write(tmp_path / "meta" / "esc50.csv", ESC_CSV)
    with pytest.raises(MissingInputFileError, match="the audio folder audio/"):
        load_task("esc50", tmp_path)
    write(tmp_path / "meta" / "esc50.csv", "filename,fold,target,category\n")
    (tmp_path / "audio").mkdir()
    with pytest.raises(EmptyInputError):
        load_task("esc50", tmp_path)


def test_task_registry_is_complete():
    assert set(TASKS) == {"coco", "flickr30k", "msrvtt", "msvd", "didemo", "audiocaps", "clotho",
                          "esc50", "audioset", "modelnet40", "scanobjectnn", "rsna", "drugbank"}
    for name, info in TASKS.items():
        assert info.name == name and info.kind in ("retrieval", "classification")
        assert info.domain in DOMAINS and "test" in info.splits
        assert info.layout and info.description and callable(info.reader)


def test_result_types_validate():
    ds = RetrievalSet("x", "image", ["a", "b"], ["c0", "c1", "c2"], [1, 0, 1])
    assert torch.equal(ds.relevance(), rel([(0, 1), (1, 0), (2, 1)], (3, 2)))
    with pytest.raises(InvalidInputError, match="3 captions but 2"):
        RetrievalSet("x", "image", ["a"], ["c0", "c1", "c2"], [0, 0])
    with pytest.raises(InvalidInputError, match="outside 0..0"):
        RetrievalSet("x", "image", ["a"], ["c0"], [1])
    cs = ClassificationSet("y", "audio", ["a", "b"], ["p", "q"], torch.tensor([1, 0]))
    assert cs.domain == "audio" and not cs.multilabel
    with pytest.raises(InvalidInputError, match=r"expected \(2, 2\)"):
        ClassificationSet("y", "audio", ["a", "b"], ["p", "q"], torch.tensor([1, 0]),
                          multilabel=True)
    with pytest.raises(InvalidInputError, match="outside 0..1"):
        ClassificationSet("y", "audio", ["a", "b"], ["p", "q"], torch.tensor([1, 2]))


def test_retrieval_set_with_its_own_relevance_matrix():
    wide = np.array([[False, True], [True, True], [True, True]])  # caption 1 also fits item 1
    ds = RetrievalSet("x", "image", ["a", "b"], ["c0", "c1", "c2"], [1, 0, 1], relevant=wide)
    assert ds.relevant.dtype == torch.bool and torch.equal(ds.relevance(), torch.from_numpy(wide))
    ds.relevance()[0, 0] = True  # a copy: the dataset is unchanged
    assert not bool(ds.relevant[0, 0])
    with pytest.raises(InvalidInputError, match="caption 0 is not relevant to its own item 1"):
        RetrievalSet("x", "image", ["a", "b"], ["c0", "c1", "c2"], [1, 0, 1],
                     relevant=torch.tensor([[True, False], [True, False], [False, True]]))
    with pytest.raises(InvalidInputError, match=r"shape \[captions, items\] = \[3, 2\]"):
        RetrievalSet("x", "image", ["a", "b"], ["c0", "c1", "c2"], [1, 0, 1], relevant=wide.T)
    with pytest.raises(InvalidInputError, match="bool matrix"):
        RetrievalSet("x", "image", ["a", "b"], ["c0", "c1", "c2"], [1, 0, 1],
                     relevant=wide.astype(np.float32))


def test_classification_set_with_its_own_prompts():
    cs = ClassificationSet("y", "image", ["a", "b"], ["owl", "dog"], torch.tensor([1, 0]),
                           prompts=[("an owl", "an image of an owl"), ["a dog"]])
    assert cs.prompts == [["an owl", "an image of an owl"], ["a dog"]]
    with pytest.raises(InvalidInputError, match="1 prompt lists for 2 classes"):
        ClassificationSet("y", "image", ["a", "b"], ["owl", "dog"], torch.tensor([1, 0]),
                          prompts=[["an owl"]])
    with pytest.raises(InvalidInputError, match="prompts of class 'dog' are empty"):
        ClassificationSet("y", "image", ["a", "b"], ["owl", "dog"], torch.tensor([1, 0]),
                          prompts=[["an owl"], []])


# --------------------------------------------------------------------------- templates

def test_templates_have_one_slot_each():
    assert set(DOMAINS) == {"image", "video", "audio", "3d", "xray", "molecule"}
    for domain in DOMAINS:
        templates = get_templates(domain)
        assert len(templates) >= 4 and len(set(templates)) == len(templates)
        for t in templates:
            fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
            assert fields == [""], (domain, t)
            assert "dog" in t.format("dog")
    assert get_templates("audio")[0] == "this is a sound of {}."
    assert get_templates("3d")[0] == "a point cloud model of {}."
    assert "chest x-ray showing {}." in get_templates("xray")
    assert get_templates("image")[0] == "a photo of a {}."
    get_templates("image").append("mutated")                  # a copy each time
    assert "mutated" not in get_templates("image")
    with pytest.raises(InvalidInputError, match="known domains: image, video, audio, 3d"):
        get_templates("smell")
    for info in TASKS.values():                               # every task's domain has templates
        assert get_templates(info.domain)
