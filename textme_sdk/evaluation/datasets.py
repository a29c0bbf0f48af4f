"""Readers for the paper's benchmarks, in their standard public layouts, from a local path.

Nothing is downloaded: point :func:`load_task` at the folder where the dataset was unpacked.
Retrieval benchmarks come back as a :class:`RetrievalSet` (items, their captions, and which item
each caption describes); classification benchmarks as a :class:`ClassificationSet`. Items are
what the modality's encoder accepts: file paths (``str``) for images, videos, audio and X-rays,
``numpy`` arrays ``[points, 3 or 6]`` for point clouds, SMILES strings for molecules.

Every task's expected layout is in ``TASKS[name].layout`` (also shown in every error message).
No reader unpickles anything: where a dataset is commonly shared as a pickle (MSVD's
``raw-captions.pkl``, OpenShape's ``test_pc.npy`` object arrays) a plain-text or plain-array
layout is read instead.

Example:
    >>> ds = load_task("flickr30k", "~/data/flickr30k", split="test")    # doctest: +SKIP
    >>> len(ds.items), len(ds.captions), ds.relevance().shape            # doctest: +SKIP
    (1000, 5000, torch.Size([5000, 1000]))
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import EmptyInputError, InvalidInputError, MissingInputFileError

__all__ = ["RetrievalSet", "ClassificationSet", "TaskInfo", "TASKS", "load_task",
           "SCANOBJECTNN_CLASSES"]


# --------------------------------------------------------------------------- result types

@dataclass
class RetrievalSet:
    """Items with one or more captions each (caption ``i`` describes ``items[caption_item[i]]``).

    Attributes:
        name: the task name (``"coco"``, ``"msrvtt"``...).
        modality: the items' modality (``"image"``, ``"video"``, ``"audio"``, ``"molecule"``).
        items: what the modality's encoder takes (file paths, SMILES strings).
        captions: the texts.
        caption_item: for each caption, the index of the item it describes.
        ids: the dataset's own id of each item (file name, video id, SMILES...).
        relevant: optional ``[n_captions, n_items]`` bool matrix, True where caption ``i``
            truly describes item ``j``; for sets where a caption fits more items than its own
            (a generated world where "a photo of a dog" describes every dog picture, or extra
            human judgements). Each caption must be relevant to its own item. When given, it
            replaces ``caption_item`` in :meth:`relevance` and in the evaluation of both
            directions (:func:`~textme_sdk.evaluation.metrics.relevance_retrieval`).
    """

    name: str
    modality: str
    items: list[Any]
    captions: list[str]
    caption_item: list[int]
    ids: list[str] = field(default_factory=list)
    relevant: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.captions) != len(self.caption_item):
            raise InvalidInputError(
                f"{self.name}: {len(self.captions)} captions but {len(self.caption_item)} "
                "caption_item entries; give one item index per caption"
            )
        bad = [i for i in self.caption_item if not 0 <= i < len(self.items)]
        if bad:
            raise InvalidInputError(
                f"{self.name}: caption_item holds {bad[0]}, outside 0..{len(self.items) - 1}; "
                "each entry must index into items"
            )
        if self.ids and len(self.ids) != len(self.items):
            raise InvalidInputError(f"{self.name}: {len(self.ids)} ids for {len(self.items)} items")
        if self.relevant is not None:
            self.relevant = self._check_relevant(self.relevant)

    def _check_relevant(self, relevant: Any) -> torch.Tensor:
        rel = torch.as_tensor(np.asarray(relevant))
        want = (len(self.captions), len(self.items))
        if tuple(rel.shape) != want or rel.dtype != torch.bool:
            raise InvalidInputError(
                f"{self.name}: relevant must be a bool matrix of shape [captions, items] = "
                f"{list(want)}, got {rel.dtype} {list(rel.shape)}")
        own = rel[torch.arange(len(self.captions)), torch.as_tensor(self.caption_item, dtype=torch.long)]
        if not bool(own.all()):
            first = int((~own).nonzero()[0])
            raise InvalidInputError(
                f"{self.name}: caption {first} is not relevant to its own item "
                f"{self.caption_item[first]}; set relevant[i, caption_item[i]] = True for every caption")
        return rel

    def relevance(self) -> torch.Tensor:
        """``[n_captions, n_items]`` bool: ``rel[i, j]`` is True when caption ``i`` describes item
        ``j`` (text->item queries; transpose it for item->text). ``relevant`` when given,
        otherwise each caption's own item (``caption_item``)."""
        if self.relevant is not None:
            return self.relevant.clone()
        rel = torch.zeros(len(self.captions), len(self.items), dtype=torch.bool)
        cols = torch.as_tensor(self.caption_item, dtype=torch.long)
        rel[torch.arange(len(self.captions)), cols] = True
        return rel


@dataclass
class ClassificationSet:
    """Items with class labels, for zero-shot classification.

    Attributes:
        name: the task name (``"esc50"``, ``"modelnet40"``...).
        modality: the items' modality (``"audio"``, ``"3d"``, ``"xray"``...).
        items: what the modality's encoder takes (file paths, point-cloud arrays).
        class_names: the class names put into the prompt templates (underscores as spaces).
        labels: ``[n]`` long class indices, or ``[n, C]`` bool multi-hot when ``multilabel``.
        multilabel: whether an item can have several classes (AudioSet).
        domain: the prompt-template domain (:func:`~textme_sdk.evaluation.get_templates`);
            defaults to the modality.
        ids: the dataset's own id of each item.
        prompts: optional zero-shot prompts per class, ``prompts[c]`` for ``class_names[c]``
            (for wording that templates cannot produce, e.g. "an image of an owl"); when given,
            :func:`~textme_sdk.evaluation.evaluate` uses them unless templates are passed.
    """

    name: str
    modality: str
    items: list[Any]
    class_names: list[str]
    labels: torch.Tensor
    multilabel: bool = False
    domain: str = ""
    ids: list[str] = field(default_factory=list)
    prompts: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.domain = self.domain or self.modality
        n, c = len(self.items), len(self.class_names)
        want = (n, c) if self.multilabel else (n,)
        if tuple(self.labels.shape) != want:
            raise InvalidInputError(
                f"{self.name}: labels have shape {tuple(self.labels.shape)}, expected {want} "
                f"({'multi-hot [items, classes]' if self.multilabel else 'one index per item'})"
            )
        if not self.multilabel and n and not bool(((self.labels >= 0) & (self.labels < c)).all()):
            raise InvalidInputError(f"{self.name}: a label is outside 0..{c - 1}")
        if self.ids and len(self.ids) != n:
            raise InvalidInputError(f"{self.name}: {len(self.ids)} ids for {n} items")
        if self.prompts:
            self.prompts = [list(p) for p in self.prompts]
            if len(self.prompts) != c:
                raise InvalidInputError(
                    f"{self.name}: {len(self.prompts)} prompt lists for {c} classes; give one "
                    "list of prompts per class, in class_names order")
            bad = [i for i, p in enumerate(self.prompts)
                   if not p or not all(isinstance(t, str) and t.strip() for t in p)]
            if bad:
                raise InvalidInputError(
                    f"{self.name}: the prompts of class {self.class_names[bad[0]]!r} are empty or "
                    "not all non-empty strings")


@dataclass(frozen=True)
class TaskInfo:
    """What :func:`load_task` knows about a benchmark.

    Attributes:
        name: the task name.
        kind: ``"retrieval"`` or ``"classification"``.
        modality: the items' modality.
        domain: the prompt-template domain (classification) or the modality (retrieval).
        description: one line on the benchmark and protocol.
        layout: the expected files, relative to the folder passed to :func:`load_task`.
        splits: the accepted ``split`` values.
        reader: ``reader(root, *, split, limit, **options)``.
    """

    name: str
    kind: Literal["retrieval", "classification"]
    modality: str
    domain: str
    description: str
    layout: str
    splits: tuple[str, ...]
    reader: Callable[..., RetrievalSet | ClassificationSet] = field(repr=False)

    @property
    def options(self) -> tuple[str, ...]:
        """The task-specific keyword options of the reader."""
        return tuple(p for p in inspect.signature(self.reader).parameters
                     if p not in ("root", "split", "limit"))


# --------------------------------------------------------------------------- shared helpers

@dataclass
class _Entry:
    id: str
    item: Any
    target: Any                     # captions (list[str]), a label index, or label indices
    tried: tuple[str, ...] = ()     # non-empty when the item's file was not found


def _layout(task: str) -> str:
    return f"Expected layout for {task!r}:\n{TASKS[task].layout}"


def _not_found(task: str, what: str, tried: Iterable[Path], fix: str = "") -> MissingInputFileError:
    looked = ", ".join(str(p) for p in tried)
    fix = f"{fix} " if fix else ""
    return MissingInputFileError(
        f"{task}: {what} not found (looked for {looked}). {fix}"
        f"Pass the folder where the dataset was unpacked.\n{_layout(task)}"
    )


def _invalid(task: str, what: str, fix: str = "") -> InvalidInputError:
    fix = f" {fix}" if fix else ""
    return InvalidInputError(f"{task}: {what}.{fix}\n{_layout(task)}")


def _under(root: Path, override: str | os.PathLike | None) -> Path | None:
    if override is None:
        return None
    p = Path(override).expanduser()
    return p if p.is_absolute() else root / p


def _find_file(task: str, root: Path, candidates: Sequence[str], what: str,
               override: str | os.PathLike | None = None, option: str = "") -> Path:
    """The first existing file among ``root/candidate``; ``override`` (an option) wins."""
    paths = [_under(root, override)] if override is not None else [root / c for c in candidates]
    for p in paths:
        if p.is_file():
            return p
    fix = f"Or pass {option}=<path> to name it." if option and override is None else ""
    raise _not_found(task, what, paths, fix)


def _find_dir(task: str, root: Path, candidates: Sequence[str], what: str,
              override: str | os.PathLike | None = None, option: str = "") -> Path:
    """The first existing folder among ``root/candidate``; ``override`` (an option) wins."""
    paths = [_under(root, override)] if override is not None else [root / c for c in candidates]
    for p in paths:
        if p.is_dir():
            return p
    fix = f"Or pass {option}=<folder> to name it." if option and override is None else ""
    raise _not_found(task, what, paths, fix)


class _Files:
    """Finds files by name in folders, listing each folder once (no stat per candidate)."""

    def __init__(self) -> None:
        self._listing: dict[Path, frozenset[str]] = {}

    def find(self, folder: Path, names: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        """``(path, ())`` for the first name present in ``folder``, else ``(first, tried)``."""
        listing = self._listing.get(folder)
        if listing is None:
            try:
                with os.scandir(folder) as it:
                    listing = frozenset(e.name for e in it if e.is_file())
            except OSError:
                listing = frozenset()
            self._listing[folder] = listing
        names = list(dict.fromkeys(names))
        for n in names:
            if n in listing:
                return str(folder / n), ()
        return str(folder / names[0]), tuple(str(folder / n) for n in names)


def _read_csv(task: str, path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise _invalid(task, f"{path} lacks column(s) {', '.join(missing)} (its header: "
                                 f"{', '.join(header) or 'none'})",
                           "Use the file as released, with its header row.")
        reader.fieldnames = header
        return [row for row in reader
                if any(v.strip() for v in row.values() if isinstance(v, str))]


def _read_names(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _read_json(task: str, path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise _invalid(task, f"{path} is not valid JSON ({e})") from None


def _select(task: str, entries: list[_Entry], limit: int | None, skip_missing: bool,
            modality: str = "", folder_option: str = "") -> list[_Entry]:
    """Drop missing files (``skip_missing``), keep the first ``limit``, then require every file."""
    total = len(entries)
    if skip_missing:
        entries = [e for e in entries if not e.tried]
    if limit is not None:
        entries = entries[:limit]
    if not entries:
        why = " (every file was missing)" if skip_missing and total else ""
        raise EmptyInputError(f"{task}: no items for this split{why}.\n{_layout(task)}")
    missing = [e for e in entries if e.tried]
    if missing:
        shown = "; ".join(f"{e.id!r} (looked for {', '.join(e.tried)})" for e in missing[:3])
        where = f" (or pass {folder_option}=<folder> if they are elsewhere)" * bool(folder_option)
        raise MissingInputFileError(
            f"{task}: {len(missing)} of {len(entries)} {modality} files are missing, e.g. {shown}. "
            f"Put the files in the layout below{where}, "
            "or pass skip_missing=True to evaluate on the files that exist (and report the smaller "
            f"set).\n{_layout(task)}"
        )
    return entries


def _retrieval(task: str, entries: list[_Entry]) -> RetrievalSet:
    captions: list[str] = []
    caption_item: list[int] = []
    for i, e in enumerate(entries):
        captions.extend(e.target)
        caption_item.extend([i] * len(e.target))
    info = TASKS[task]
    return RetrievalSet(task, info.modality, [e.item for e in entries], captions, caption_item,
                        [e.id for e in entries])


def _classification(task: str, entries: list[_Entry], class_names: list[str],
                    multilabel: bool = False) -> ClassificationSet:
    if multilabel:
        labels = torch.zeros(len(entries), len(class_names), dtype=torch.bool)
        for i, e in enumerate(entries):
            labels[i, list(e.target)] = True
    else:
        labels = torch.tensor([int(e.target) for e in entries], dtype=torch.long)
    info = TASKS[task]
    return ClassificationSet(task, info.modality, [e.item for e in entries], class_names, labels,
                             multilabel, info.domain, [e.id for e in entries])


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def _class_name(name: str) -> str:
    return _clean(name.replace("_", " "))


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _import_h5py(task: str) -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{task}: reading .h5 files needs h5py; install it with "
                          "`pip install h5py`") from None
    return h5py


# --------------------------------------------------------------------------- image-text

def _read_karpathy(task: str, root: Path, split: str, limit: int | None, skip_missing: bool,
                   captions_per_item: int | None, annotation_file: str | None,
                   image_root: str | None, json_name: str,
                   image_dirs: Sequence[str]) -> RetrievalSet:
    if root.is_file():
        json_path, base = root, root.parent
    else:
        json_path = _find_file(task, root, [json_name, f"annotations/{json_name}"],
                               f"the Karpathy split file {json_name}", annotation_file,
                               "annotation_file")
        base = root
    if captions_per_item is not None and (isinstance(captions_per_item, bool)
                                          or not isinstance(captions_per_item, int)
                                          or captions_per_item < 1):
        raise _invalid(task, f"captions_per_item must be a positive int or None, got "
                             f"{captions_per_item!r}")
    data = _read_json(task, json_path)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise _invalid(task, f"{json_path} has no 'images' list")
    folder = _find_dir(task, base, image_dirs, "the image folder", image_root, "image_root")
    wanted = {"train": ("train", "restval")}.get(split, (split,))
    files = _Files()
    entries = []
    for k, img in enumerate(images):
        try:
            if img["split"] not in wanted:
                continue
            name = img["filename"]
            caps = [_clean(s["raw"]) for s in img["sentences"]]
        except (KeyError, TypeError):
            raise _invalid(task, f"{json_path}: images[{k}] lacks filename / split / "
                                 "sentences[].raw") from None
        if captions_per_item is not None:
            caps = caps[:captions_per_item]
        if not caps:
            raise _invalid(task, f"{json_path}: image {name!r} has no sentences")
        path, tried = files.find(folder / img.get("filepath", ""), [name])
        entries.append(_Entry(name, path, caps, tried))
    return _retrieval(task, _select(task, entries, limit, skip_missing, "image", "image_root"))


def _read_coco(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
               captions_per_item: int | None = 5, annotation_file: str | None = None,
               image_root: str | None = None) -> RetrievalSet:
    """MS-COCO Karpathy split (5k test images, 5 captions each)."""
    return _read_karpathy("coco", root, split, limit, skip_missing, captions_per_item,
                          annotation_file, image_root, "dataset_coco.json", ["."])


def _read_flickr30k(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
                    captions_per_item: int | None = 5, annotation_file: str | None = None,
                    image_root: str | None = None) -> RetrievalSet:
    """Flickr30k Karpathy split (1k test images, 5 captions each)."""
    return _read_karpathy("flickr30k", root, split, limit, skip_missing, captions_per_item,
                          annotation_file, image_root, "dataset_flickr30k.json",
                          ["flickr30k-images", "images", "."])


# --------------------------------------------------------------------------- video-text

def _read_msrvtt(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
                 protocol: Literal["1k-A", "full"] = "1k-A", all_captions: bool = False,
                 video_dir: str | None = None) -> RetrievalSet:
    """MSR-VTT: the 1k-A test (JSFusion csv) or the full split of ``MSRVTT_data.json``."""
    task = "msrvtt"
    if protocol not in ("1k-A", "full"):
        raise _invalid(task, f"protocol must be '1k-A' or 'full', got {protocol!r}")
    if protocol == "1k-A" and split != "test":
        raise _invalid(task, f"protocol '1k-A' is a test split; got split={split!r}",
                       "Use split='test', or protocol='full' for the train / val splits.")
    dirs = [".", "msrvtt_data", "annotation"]
    order: list[str] = []
    caps: dict[str, list[str]] = {}
    if protocol == "1k-A":
        csv_path = _find_file(task, root, [f"{d}/MSRVTT_JSFUSION_test.csv" for d in dirs],
                              "the 1k-A test file MSRVTT_JSFUSION_test.csv")
        for row in _read_csv(task, csv_path, ["video_id", "sentence"]):
            vid = row["video_id"].strip()
            order.append(vid)
            caps.setdefault(vid, []).append(_clean(row["sentence"]))
    if protocol == "full" or all_captions:
        json_path = _find_file(task, root, [f"{d}/MSRVTT_data.json" for d in dirs],
                               "the annotation file MSRVTT_data.json")
        data = _read_json(task, json_path)
        try:
            if protocol == "full":
                json_split = {"val": "validate"}.get(split, split)
                order = [v["video_id"] for v in data["videos"] if v["split"] == json_split]
            caps = {vid: [] for vid in order}
            for s in data["sentences"]:
                if s["video_id"] in caps:
                    caps[s["video_id"]].append(_clean(s["caption"]))
        except (KeyError, TypeError):
            raise _invalid(task, f"{json_path} lacks videos[].video_id/split or "
                                 "sentences[].video_id/caption") from None
    folder = _find_dir(task, root, ["videos/all", "videos", "MSRVTT_Videos"], "the video folder",
                       video_dir, "video_dir")
    files = _Files()
    entries = []
    for vid in dict.fromkeys(order):
        if not caps.get(vid):
            raise _invalid(task, f"video {vid!r} has no caption in MSRVTT_data.json")
        path, tried = files.find(folder, [f"{vid}.mp4"])
        entries.append(_Entry(vid, path, caps[vid], tried))
    return _retrieval(task, _select(task, entries, limit, skip_missing, "video", "video_dir"))


def _read_msvd_descriptions(path: Path) -> dict[str, list[str]]:
    caps: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            vid, _, text = line.partition(" ")
            if text.strip():
                caps.setdefault(vid, []).append(_clean(text))
    return caps


def _read_msvd(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
               video_dir: str | None = None) -> RetrievalSet:
    """MSVD: the split's video list and every English description of each video."""
    task = "msvd"
    list_path = _find_file(task, root, [f"{split}_list.txt", f"msvd_data/{split}_list.txt"],
                           f"the split list {split}_list.txt")
    desc = [root / "AllVideoDescriptions.txt", root / "msvd_data/AllVideoDescriptions.txt"]
    desc_path = next((p for p in desc if p.is_file()), None)
    if desc_path is None:
        pickled = any((p.parent / "raw-captions.pkl").is_file() for p in desc)
        fix = ("raw-captions.pkl is a pickle and is not read (unpickling runs code); put the "
               "plain-text AllVideoDescriptions.txt of the original corpus beside it."
               if pickled else "")
        raise _not_found(task, "the caption file AllVideoDescriptions.txt", desc, fix)
    caps = _read_msvd_descriptions(desc_path)
    folder = _find_dir(task, root, ["YouTubeClips", "videos", "."], "the video folder",
                       video_dir, "video_dir")
    files = _Files()
    entries = []
    for vid in dict.fromkeys(_read_names(list_path)):
        if vid not in caps:
            raise _invalid(task, f"video {vid!r} of {list_path.name} has no description in "
                                 f"{desc_path.name}")
        path, tried = files.find(folder, [f"{vid}.avi", f"{vid}.mp4"])
        entries.append(_Entry(vid, path, caps[vid], tried))
    return _retrieval(task, _select(task, entries, limit, skip_missing, "video", "video_dir"))


def _read_didemo(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
                 paragraph: bool = True, video_dir: str | None = None) -> RetrievalSet:
    """DiDeMo paragraph-to-video retrieval: a video's descriptions joined into one paragraph."""
    task = "didemo"
    json_path = _find_file(task, root, [f"{split}_data.json", f"data/{split}_data.json"],
                           f"the annotation file {split}_data.json")
    data = _read_json(task, json_path)
    if not isinstance(data, list):
        raise _invalid(task, f"{json_path} should be a list of {{video, description, ...}} records")
    lists = [root / f"{split}_list.txt", root / f"data/{split}_list.txt"]
    list_path = next((p for p in lists if p.is_file()), None)
    keep = None
    if list_path is not None:
        keep = set(_read_names(list_path))
    caps: dict[str, list[str]] = {}
    for k, rec in enumerate(data):
        try:
            vid, text = rec["video"], _clean(rec["description"])
        except (KeyError, TypeError):
            raise _invalid(task, f"{json_path}: record {k} lacks 'video' / 'description'") from None
        if keep is None or vid in keep:
            caps.setdefault(vid, []).append(text)
    folder = _find_dir(task, root, ["videos", "."], "the video folder", video_dir, "video_dir")
    files = _Files()
    entries = []
    for vid, texts in caps.items():
        names = [vid, f"{vid}.mp4", f"{Path(vid).stem}.mp4"]
        path, tried = files.find(folder, names)
        entries.append(_Entry(vid, path, [" ".join(texts)] if paragraph else texts, tried))
    return _retrieval(task, _select(task, entries, limit, skip_missing, "video", "video_dir"))


# --------------------------------------------------------------------------- audio-text

_AUDIO_EXT = (".wav", ".flac")


def _read_audiocaps(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
                    annotation_file: str | None = None,
                    audio_dir: str | None = None) -> RetrievalSet:
    """AudioCaps: one item per YouTube clip, all its captions."""
    task = "audiocaps"
    csv_path = _find_file(task, root, [f"{split}.csv", f"dataset/{split}.csv"],
                          f"the caption file {split}.csv", annotation_file, "annotation_file")
    groups: dict[str, dict[str, Any]] = {}
    for row in _read_csv(task, csv_path, ["audiocap_id", "youtube_id", "start_time", "caption"]):
        g = groups.setdefault(row["youtube_id"].strip(),
                              {"start": row["start_time"].strip(), "ids": [], "caps": []})
        g["ids"].append(row["audiocap_id"].strip())
        g["caps"].append(_clean(row["caption"]))
    folder = _find_dir(task, root, [split, f"audio/{split}", f"waveforms/{split}", "audio", "."],
                       "the audio folder", audio_dir, "audio_dir")
    files = _Files()
    entries = []
    for yt, g in groups.items():
        stems = [yt, f"Y{yt}", f"{yt}_{g['start']}", *g["ids"]]
        path, tried = files.find(folder, [s + ext for s in stems for ext in _AUDIO_EXT])
        entries.append(_Entry(yt, path, g["caps"], tried))
    return _retrieval(task, _select(task, entries, limit, skip_missing, "audio", "audio_dir"))


_CLOTHO_SPLITS = {"test": "evaluation", "val": "validation", "train": "development"}


def _read_clotho(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
                 audio_dir: str | None = None) -> RetrievalSet:
    """Clotho (v2): five captions per file; ``test`` is the evaluation split."""
    task = "clotho"
    name = _CLOTHO_SPLITS.get(split, split)
    csv_path = _find_file(task, root, [f"clotho_captions_{name}.csv"],
                          f"the caption file clotho_captions_{name}.csv")
    rows = _read_csv(task, csv_path, ["file_name", "caption_1"])
    cols = sorted((c for c in rows[0] if re.fullmatch(r"caption_\d+", c)) if rows else [],
                  key=lambda c: int(c.split("_")[1]))
    folder = _find_dir(task, root, [name, f"clotho_audio_{name}", "."], "the audio folder",
                       audio_dir, "audio_dir")
    files = _Files()
    entries = []
    for row in rows:
        fname = row["file_name"].strip()
        caps = [_clean(row[c]) for c in cols if (row.get(c) or "").strip()]
        path, tried = files.find(folder, [fname])
        entries.append(_Entry(fname, path, caps, tried))
    return _retrieval(task, _select(task, entries, limit, skip_missing, "audio", "audio_dir"))


# --------------------------------------------------------------------------- audio classification

def _read_esc50(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
                fold: int | Sequence[int] | None = None) -> ClassificationSet:
    """ESC-50: 2,000 clips of 50 classes; ``fold`` picks folds 1-5 (default: all)."""
    task = "esc50"
    csv_path = _find_file(task, root, ["meta/esc50.csv"], "the metadata file meta/esc50.csv")
    rows = _read_csv(task, csv_path, ["filename", "fold", "target", "category"])
    names: dict[int, str] = {}
    for row in rows:
        t, cat = int(row["target"]), row["category"].strip()
        if names.setdefault(t, cat) != cat:
            raise _invalid(task, f"target {t} is both {names[t]!r} and {cat!r} in {csv_path}")
    if sorted(names) != list(range(len(names))):
        raise _invalid(task, f"targets in {csv_path} are not 0..{len(names) - 1}")
    try:
        parts = str(fold).split(",") if isinstance(fold, (int, str)) else fold
        folds = None if fold is None else {int(f) for f in parts}
    except (TypeError, ValueError):
        raise _invalid(task, f"fold must be 1-5, a list of them or None, got {fold!r}") from None
    present = {int(r["fold"]) for r in rows}
    if folds is not None and not folds <= present:
        raise _invalid(task, f"fold(s) {sorted(folds - present)} not in {csv_path}",
                       f"Choose among {sorted(present)}.")
    folder = _find_dir(task, root, ["audio"], "the audio folder audio/")
    files = _Files()
    entries = []
    for row in rows:
        if folds is None or int(row["fold"]) in folds:
            fname = row["filename"].strip()
            path, tried = files.find(folder, [fname])
            entries.append(_Entry(fname, path, int(row["target"]), tried))
    class_names = [_class_name(names[t]) for t in range(len(names))]
    return _classification(task, _select(task, entries, limit, skip_missing, "audio"), class_names)


_AUDIOSET_CSV = {"test": "eval_segments", "eval": "eval_segments",
                 "balanced_train": "balanced_train_segments",
                 "unbalanced_train": "unbalanced_train_segments"}


def _read_audioset_segments(task: str, path: Path) -> list[tuple[str, list[str]]]:
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        lines = (ln for ln in f if ln.strip() and not ln.lstrip().startswith("#"))
        for k, row in enumerate(csv.reader(lines, skipinitialspace=True)):
            if len(row) < 4:
                raise _invalid(task, f"{path}: data row {k + 1} has {len(row)} fields, expected "
                                     "YTID, start_seconds, end_seconds, positive_labels")
            mids = [m.strip() for m in row[3].split(",") if m.strip()]
            out.append((row[0].strip(), mids))
    return out


def _read_audioset(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
                   audio_dir: str | None = None) -> ClassificationSet:
    """AudioSet: multi-label over the 527 classes of ``class_labels_indices.csv``."""
    task = "audioset"
    stem = _AUDIOSET_CSV[split]
    seg_path = _find_file(task, root, [f"{stem}.csv", f"metadata/{stem}.csv"],
                          f"the segment list {stem}.csv")
    idx_path = _find_file(task, root, ["class_labels_indices.csv",
                                       "metadata/class_labels_indices.csv"],
                          "the class list class_labels_indices.csv")
    classes = _read_csv(task, idx_path, ["index", "mid", "display_name"])
    order = sorted(classes, key=lambda r: int(r["index"]))
    if [int(r["index"]) for r in order] != list(range(len(order))):
        raise _invalid(task, f"indices in {idx_path} are not 0..{len(order) - 1}")
    mid_index = {r["mid"].strip(): int(r["index"]) for r in order}
    folder = _find_dir(task, root, [f"audios/{stem}", stem, f"audio/{stem}", "audio", "."],
                       "the audio folder", audio_dir, "audio_dir")
    files = _Files()
    entries = []
    for ytid, mids in _read_audioset_segments(task, seg_path):
        unknown = [m for m in mids if m not in mid_index]
        if unknown:
            raise _invalid(task, f"segment {ytid!r} has label(s) {unknown} missing from {idx_path}")
        names = [f"{p}{ytid}{ext}" for p in ("", "Y") for ext in _AUDIO_EXT]
        path, tried = files.find(folder, names)
        entries.append(_Entry(ytid, path, [mid_index[m] for m in mids], tried))
    class_names = [_clean(r["display_name"]) for r in order]
    return _classification(task, _select(task, entries, limit, skip_missing, "audio", "audio_dir"),
                           class_names, multilabel=True)


# --------------------------------------------------------------------------- 3D classification

def _point_entries(task: str, source: str, data: np.ndarray, labels: np.ndarray,
                   n_classes: int) -> list[_Entry]:
    data = np.asarray(data, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    if data.ndim != 3 or data.shape[2] not in (3, 6) or len(data) != len(labels):
        raise _invalid(task, f"{source}: points {data.shape} / labels {labels.shape}; expected "
                             "[N, P, 3 or 6] and [N]")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise _invalid(task, f"{source}: labels outside 0..{n_classes - 1}")
    return [_Entry(f"{source}:{i}", data[i], int(labels[i])) for i in range(len(labels))]


def _read_h5_points(task: str, paths: Sequence[Path], n_classes: int,
                    limit: int | None) -> list[_Entry]:
    h5py = _import_h5py(task)
    entries: list[_Entry] = []
    for p in paths:
        if limit is not None and len(entries) >= limit:
            break
        with h5py.File(p, "r") as f:
            if "data" not in f or "label" not in f:
                raise _invalid(task, f"{p} lacks the 'data' / 'label' datasets (has {list(f)})")
            n = len(f["data"]) if limit is None else min(len(f["data"]), limit - len(entries))
            entries += _point_entries(task, p.name, f["data"][:n], f["label"][:n], n_classes)
    return entries


def _read_modelnet40(root: Path, *, split: str, limit: int | None) -> ClassificationSet:
    """ModelNet40: the 2,468 test shapes (h5 release, or the plain npy arrays)."""
    task = "modelnet40"
    names_path = _find_file(task, root, ["shape_names.txt", "modelnet40_shape_names.txt"],
                            "the class list shape_names.txt")
    class_names = [_class_name(n) for n in _read_names(names_path)]
    h5_files = sorted(root.glob(f"ply_data_{split}*.h5"), key=_natural_key)
    if h5_files:
        entries = _read_h5_points(task, h5_files, len(class_names), limit)
    else:
        pts, lab = root / f"{split}_points.npy", root / f"{split}_labels.npy"
        if not (pts.is_file() and lab.is_file()):
            raise _not_found(task, f"the {split} point clouds",
                             [root / f"ply_data_{split}*.h5", pts, lab])
        try:
            points = np.load(pts, mmap_mode="r", allow_pickle=False)
            labels = np.load(lab, allow_pickle=False)
        except ValueError:
            raise _invalid(task, f"{pts.name} / {lab.name} hold Python objects (a pickle), "
                                 "which are not read",
                           "Save plain numeric arrays with np.save.") from None
        n = len(labels) if limit is None else min(len(labels), limit)
        entries = _point_entries(task, pts.name, points[:n], labels[:n], len(class_names))
    return _classification(task, _select(task, entries, limit, False), class_names)


SCANOBJECTNN_CLASSES: tuple[str, ...] = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed",
    "pillow", "sink", "sofa", "toilet",
)
"""The 15 ScanObjectNN classes in label order (the release's ``shape_names.txt``)."""

_SCAN_VARIANTS = {"obj": "objectdataset", "pb_t50_rs": "objectdataset_augmentedrot_scale75"}


def _read_scanobjectnn(root: Path, *, split: str, limit: int | None,
                       variant: Literal["obj", "pb_t50_rs"] | None = None) -> ClassificationSet:
    """ScanObjectNN h5: OBJ_BG / OBJ_ONLY (``obj``) or PB_T50_RS (``pb_t50_rs``)."""
    task = "scanobjectnn"
    if variant is not None and variant not in _SCAN_VARIANTS:
        raise _invalid(task, f"variant must be one of {', '.join(_SCAN_VARIANTS)}, got {variant!r}")
    if root.is_file():
        path = root
    else:
        candidates = {v: root / f"{split}_{s}.h5" for v, s in _SCAN_VARIANTS.items()}
        if variant is not None:
            path = _find_file(task, root, [candidates[variant].name], f"the {variant} file")
        else:
            found = [v for v, p in candidates.items() if p.is_file()]
            if not found:
                raise _not_found(task, f"the {split} h5 file", candidates.values(),
                                 "Pass the folder main_split (OBJ_BG, PB_T50_RS) or "
                                 "main_split_nobg (OBJ_ONLY) of h5_files.")
            if len(found) > 1:
                raise _invalid(task, f"{root} holds several variants ({', '.join(found)})",
                               "Choose one with variant='obj' or variant='pb_t50_rs'.")
            path = candidates[found[0]]
    entries = _read_h5_points(task, [path], len(SCANOBJECTNN_CLASSES), limit)
    return _classification(task, _select(task, entries, limit, False), list(SCANOBJECTNN_CLASSES))


# --------------------------------------------------------------------------- X-ray classification

def _read_rsna(root: Path, *, split: str, limit: int | None, skip_missing: bool = False,
               annotation_file: str | None = None,
               image_dir: str | None = None) -> ClassificationSet:
    """RSNA Pneumonia: one item per patient, label 1 when any row has Target 1."""
    task = "rsna"
    csv_path = _find_file(task, root, ["stage_2_train_labels.csv"],
                          "the label file stage_2_train_labels.csv", annotation_file,
                          "annotation_file")
    labels: dict[str, int] = {}
    for row in _read_csv(task, csv_path, ["patientId", "Target"]):
        target = row["Target"].strip()
        if target not in ("0", "1"):
            raise _invalid(task, f"{csv_path}: Target {target!r} for {row['patientId']!r}; "
                                 "expected 0 or 1")
        pid = row["patientId"].strip()
        labels[pid] = max(labels.get(pid, 0), int(target))
    folder = _find_dir(task, root, ["stage_2_train_images", "images", "."], "the image folder",
                       image_dir, "image_dir")
    files = _Files()
    entries = []
    for pid, label in labels.items():
        path, tried = files.find(folder, [f"{pid}{ext}" for ext in (".dcm", ".png", ".jpg")])
        entries.append(_Entry(pid, path, label, tried))
    return _classification(task, _select(task, entries, limit, skip_missing, "X-ray", "image_dir"),
                           ["normal", "pneumonia"])


# --------------------------------------------------------------------------- molecule-text

def _pick_column(task: str, path: Path, header: Sequence[str], given: str | None,
                 defaults: Sequence[str], option: str) -> str:
    if given is not None:
        if given not in header:
            raise _invalid(task, f"{path} has no column {given!r} (its header: "
                                 f"{', '.join(header)})", f"Pass {option}= one of those.")
        return given
    lower = {h.lower(): h for h in header}
    for d in defaults:
        if d in lower:
            return lower[d]
    raise _invalid(task, f"{path} has none of the columns {', '.join(defaults)} (its header: "
                         f"{', '.join(header)})", f"Pass {option}=<column name>.")


def _read_drugbank(root: Path, *, split: str, limit: int | None, smiles_column: str | None = None,
                   text_column: str | None = None) -> RetrievalSet:
    """DrugBank molecule-description pairs: one item per distinct SMILES, all its texts."""
    task = "drugbank"
    if root.is_dir():
        root = _find_file(task, root, [f"{d}SMILES_description_removed_from_PubChem_full.txt"
                                       for d in ("raw/", "")] + ["drugbank.csv"],
                          "the molecule-description file")
    pairs: list[tuple[str, str]] = []
    if root.suffix.lower() == ".txt":          # MoleculeSTM: SMILES<TAB>description, no header
        for k, line in enumerate(root.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                smiles, sep, text = line.strip().partition("\t")
                if not sep:
                    raise _invalid(task, f"{root}: line {k + 1} has no tab between SMILES and text")
                pairs.append((smiles.strip(), text))
    else:
        with open(root, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t" if root.suffix.lower() == ".tsv" else ",")
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            s_col = _pick_column(task, root, header, smiles_column, ["smiles"], "smiles_column")
            t_col = _pick_column(task, root, header, text_column,
                                 ["description", "text", "caption"], "text_column")
            pairs = [((r[s_col] or "").strip(), r[t_col] or "") for r in reader]
    caps: dict[str, list[str]] = {}
    for k, (smiles, text) in enumerate(pairs):
        if not smiles or not text.strip():
            raise _invalid(task, f"{root}: row {k + 1} has an empty SMILES or text")
        caps.setdefault(smiles, []).append(_clean(text))
    entries = [_Entry(s, s, c) for s, c in caps.items()]
    return _retrieval(task, _select(task, entries, limit, False))


# --------------------------------------------------------------------------- registry

_SPLITS3 = ("test", "val", "train")


def _lines(*lines: str) -> str:
    return "\n".join(lines)


TASKS: dict[str, TaskInfo] = {t.name: t for t in [
    TaskInfo(
        "coco", "retrieval", "image", "image",
        "MS-COCO Karpathy split: 5k test images x 5 captions (the first five per image)",
        _lines(
            "<root>/dataset_coco.json   Karpathy split (caption_datasets.zip):",
            '    {"images": [{"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",',
            '                 "split": "test", "sentences": [{"raw": "..."}, ...]}, ...]}',
            "<root>/<filepath>/<filename>   the images, e.g. <root>/val2014/COCO_val2014_...jpg",
            "splits: test (5,000) | val (5,000) | train (train + restval)",
            "options: image_root, annotation_file, captions_per_item (None: all), skip_missing",
        ),
        _SPLITS3, _read_coco),
    TaskInfo(
        "flickr30k", "retrieval", "image", "image",
        "Flickr30k Karpathy split: 1k test images x 5 captions",
        _lines(
            "<root>/dataset_flickr30k.json   Karpathy split:",
            '    {"images": [{"filename": "1000092795.jpg", "split": "test",',
            '                 "sentences": [{"raw": "..."}, ...]}, ...]}',
            "<root>/flickr30k-images/<filename>   the images (or <root>/images/, or <root>/)",
            "splits: test (1,000) | val (1,014) | train",
            "options: image_root, annotation_file, captions_per_item (None: all), skip_missing",
        ),
        _SPLITS3, _read_flickr30k),
    TaskInfo(
        "msrvtt", "retrieval", "video", "video",
        "MSR-VTT text-video retrieval: 1k-A test (1,000 videos x 1 caption), or a split of "
        "MSRVTT_data.json with every caption (20 per video)",
        _lines(
            "<root>/MSRVTT_JSFUSION_test.csv   1k-A test: key,vid_key,video_id,sentence",
            "<root>/MSRVTT_data.json   (protocol='full' or all_captions=True)",
            '    {"videos": [{"video_id": ..., "split": "train" | "validate" | "test"}, ...],',
            '     "sentences": [{"video_id": ..., "caption": ...}, ...]}',
            "    (both files are also found under <root>/msrvtt_data/ or <root>/annotation/)",
            "<root>/videos/all/<video_id>.mp4   the videos (or <root>/videos/, MSRVTT_Videos/)",
            "splits: test (1k-A) | val, train (protocol='full')",
            "options: protocol ('1k-A' | 'full'), all_captions (the 1k-A videos with all their",
            "captions), video_dir, skip_missing",
        ),
        _SPLITS3, _read_msrvtt),
    TaskInfo(
        "msvd", "retrieval", "video", "video",
        "MSVD text-video retrieval: 670 test videos x all English descriptions (~40 each)",
        _lines(
            "<root>/test_list.txt   one video id per line (CLIP4Clip's msvd_data; train_list.txt,",
            "    val_list.txt for the other splits)",
            "<root>/AllVideoDescriptions.txt   the corpus' plain-text captions, one",
            "    '<video_id> <caption>' per line; '#' lines skipped. raw-captions.pkl is NOT read:",
            "    it is a pickle (both files are also found under <root>/msvd_data/)",
            "<root>/YouTubeClips/<video_id>.avi   the videos (.avi or .mp4; or <root>/videos/)",
            "splits: test | val | train; options: video_dir, skip_missing",
        ),
        _SPLITS3, _read_msvd),
    TaskInfo(
        "didemo", "retrieval", "video", "video",
        "DiDeMo paragraph-to-video retrieval: each video's descriptions joined, in file order, "
        "into one query",
        _lines(
            "<root>/test_data.json   LocalizingMoments release (or <root>/data/test_data.json):",
            '    [{"video": "<file name>", "description": "...", "times": [...], ...}, ...]',
            "<root>/test_list.txt   optional: keep only these videos (CLIP4Clip layout)",
            "<root>/videos/<video>   the videos, named <video>, <video>.mp4 or <stem>.mp4",
            "splits: test | val | train",
            "options: paragraph (False: one query per description), video_dir, skip_missing",
        ),
        _SPLITS3, _read_didemo),
    TaskInfo(
        "audiocaps", "retrieval", "audio", "audio",
        "AudioCaps text-audio retrieval: 975 test clips x 5 captions",
        _lines(
            "<root>/test.csv (or <root>/dataset/test.csv)",
            "    audiocap_id,youtube_id,start_time,caption   (several rows per clip)",
            "<root>/test/<name>.wav   the audio (or <root>/audio/test/, <root>/waveforms/test/,",
            "    <root>/audio/); <name> is <youtube_id>, Y<youtube_id>,",
            "    <youtube_id>_<start_time> or one of the clip's <audiocap_id>; .wav or .flac",
            "splits: test | val | train",
            "options: audio_dir, annotation_file, skip_missing (clips gone from YouTube: common)",
        ),
        _SPLITS3, _read_audiocaps),
    TaskInfo(
        "clotho", "retrieval", "audio", "audio",
        "Clotho v2 text-audio retrieval: 1,045 evaluation files x 5 captions",
        _lines(
            "<root>/clotho_captions_evaluation.csv   file_name,caption_1,...,caption_5",
            "<root>/evaluation/<file_name>   the audio (or <root>/clotho_audio_evaluation/)",
            "splits: test = evaluation | val = validation | train = development",
            "options: audio_dir, skip_missing",
        ),
        _SPLITS3 + ("evaluation", "validation", "development"), _read_clotho),
    TaskInfo(
        "esc50", "classification", "audio", "audio",
        "ESC-50 zero-shot: 2,000 clips, 50 classes (all five folds unless fold= is given)",
        _lines(
            "<root>/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take",
            "<root>/audio/<filename>   the clips, e.g. audio/1-100032-A-0.wav",
            "split: test (the folds picked by fold=1..5, a list or '2,3'; default all five)",
            "class names: the categories in target order, '_' as spaces",
            "options: fold, skip_missing",
        ),
        ("test",), _read_esc50),
    TaskInfo(
        "audioset", "classification", "audio", "audio",
        "AudioSet zero-shot multi-label (mAP): the eval segments over 527 classes",
        _lines(
            "<root>/eval_segments.csv   3 '#' comment lines, then rows",
            '    YTID, start_seconds, end_seconds, "mid1,mid2,..."   (or <root>/metadata/)',
            "<root>/class_labels_indices.csv   index,mid,display_name   (or <root>/metadata/)",
            "<root>/audios/eval_segments/<name>   the audio (or <root>/eval_segments/,",
            "    <root>/audio/eval_segments/, <root>/audio/); <name> is <YTID> or Y<YTID>,",
            "    .wav or .flac",
            "splits: test = eval | balanced_train | unbalanced_train",
            "options: audio_dir, skip_missing (missing clips are common)",
        ),
        ("test", "eval", "balanced_train", "unbalanced_train"), _read_audioset),
    TaskInfo(
        "modelnet40", "classification", "3d", "3d",
        "ModelNet40 zero-shot: 2,468 test shapes, 40 classes; h5 items are xyz [P, 3] (normals "
        "are not appended: 6 channels mean xyz + rgb to the 3D encoders)",
        _lines(
            "h5 (modelnet40_ply_hdf5_2048): <root>/ply_data_test0.h5, ply_data_test1.h5, ...",
            "    each with datasets data [N, P, 3] and label [N, 1], read in numeric order;",
            "    <root>/shape_names.txt   the 40 class names in label order",
            "or npy: <root>/test_points.npy   float [N, P, 3 or 6] (xyz, or xyz + rgb in [0, 1])",
            "    <root>/test_labels.npy   int [N] or [N, 1]",
            "    <root>/shape_names.txt (or modelnet40_shape_names.txt)",
            "    plain numeric arrays only: OpenShape's pickled test_pc.npy is not read",
            "splits: test | train",
        ),
        ("test", "train"), _read_modelnet40),
    TaskInfo(
        "scanobjectnn", "classification", "3d", "3d",
        "ScanObjectNN zero-shot: 15 classes; items are xyz arrays [P, 3]",
        _lines(
            "<root>/test_objectdataset.h5   variant='obj': OBJ_BG in h5_files/main_split,",
            "    OBJ_ONLY in h5_files/main_split_nobg",
            "<root>/test_objectdataset_augmentedrot_scale75.h5   variant='pb_t50_rs' (PB_T50_RS)",
            "    datasets data [N, P, 3] and label [N]; or pass the .h5 file itself",
            "classes: " + ", ".join(SCANOBJECTNN_CLASSES),
            "splits: test | train; options: variant (needed when both files are present)",
        ),
        ("test", "train"), _read_scanobjectnn),
    TaskInfo(
        "rsna", "classification", "xray", "xray",
        "RSNA Pneumonia zero-shot: normal vs pneumonia, one item per patient (the csv has a row "
        "per box; a patient is positive when any of its rows has Target 1)",
        _lines(
            "<root>/stage_2_train_labels.csv   patientId,x,y,width,height,Target",
            "    the public release labels its train images only: pass your evaluation subset",
            "    (same columns) with annotation_file=",
            "<root>/stage_2_train_images/<patientId>.dcm   the images (.dcm, .png or .jpg;",
            "    or <root>/images/)",
            "split: test (= the rows of the label file); class names: normal, pneumonia",
            "options: annotation_file, image_dir, skip_missing",
        ),
        ("test",), _read_rsna),
    TaskInfo(
        "drugbank", "retrieval", "molecule", "molecule",
        "DrugBank molecule-description retrieval: one item per distinct SMILES",
        _lines(
            "a .csv (or .tsv) with a header: a SMILES column ('smiles', any case) and a text",
            "    column ('description', 'text' or 'caption'); <root>/drugbank.csv when a folder",
            "    is passed",
            "or MoleculeSTM's SMILES_description_removed_from_PubChem_full.txt",
            "    (SMILES<TAB>description per line, no header; in <root>/raw/ or <root>/)",
            "split: test (the whole file); options: smiles_column, text_column",
        ),
        ("test",), _read_drugbank),
]}
"""Every benchmark :func:`load_task` reads, by name."""


def load_task(task: str, path: str | os.PathLike, *, split: str = "test", limit: int | None = None,
              **options: Any) -> RetrievalSet | ClassificationSet:
    """Read a benchmark from its standard public layout on local disk (nothing is downloaded).

    Args:
        task: a name in :data:`TASKS` (``"coco"``, ``"flickr30k"``, ``"msrvtt"``, ``"msvd"``,
            ``"didemo"``, ``"audiocaps"``, ``"clotho"``, ``"esc50"``, ``"audioset"``,
            ``"modelnet40"``, ``"scanobjectnn"``, ``"rsna"``, ``"drugbank"``).
        path: the folder where the dataset was unpacked (``TASKS[task].layout`` says what it
            must hold); for ``coco``/``flickr30k``, ``scanobjectnn`` and ``drugbank`` the
            annotation / data file itself also works.
        split: one of ``TASKS[task].splits``.
        limit: keep only the first ``limit`` items (in file order), e.g. for a quick check.
        **options: task-specific options (``TASKS[task].options``), e.g. ``skip_missing=True``
            to drop items whose media file is absent, ``fold=1`` for ESC-50,
            ``protocol="full"`` for MSR-VTT; relative folder/file options are resolved
            against ``path``.

    Returns:
        A :class:`RetrievalSet` or a :class:`ClassificationSet`.

    Raises:
        InvalidInputError: unknown task, split or option; a file with the wrong columns/content.
        MissingInputFileError: ``path``, an annotation file or media files are missing (the
            message shows the expected layout).
        EmptyInputError: the split holds no items.
    """
    info = TASKS.get(task) if isinstance(task, str) else None
    if info is None:
        raise InvalidInputError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise InvalidInputError(f"{task} does not take option(s) {', '.join(unknown)}; it takes: "
                                f"{', '.join(info.options) or 'none'}")
    if split not in info.splits:
        raise InvalidInputError(f"{task} has no split {split!r}; choose one of "
                                f"{', '.join(info.splits)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit must be a positive int or None, got {limit!r}")
    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise MissingInputFileError(f"{task}: {root} does not exist; pass the folder where the "
                                    f"dataset was unpacked.\n{_layout(task)}")
    return info.reader(root, split=split, limit=limit, **options)
