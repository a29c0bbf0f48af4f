"""No bundle file is read through a link that leads outside the bundle (the Hub cache's own
links into its ``blobs/`` folder excepted)."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

import textme_sdk as tm


def _move_out(bundle, rel, outside):
    """Move a bundle file outside and leave a link to it in its place."""
    target = outside / rel.replace("/", "_")
    outside.mkdir(exist_ok=True)
    shutil.move(bundle / rel, target)
    (bundle / rel).symlink_to(target)
    return target


@pytest.mark.parametrize("rel", ["modalities/gapdemo/projector.safetensors",
                                 "modalities/gapdemo/offsets.safetensors",
                                 "modalities/gapdemo/config.json", "config.json"])
def test_a_link_out_of_the_bundle_is_refused(bundle, tmp_path, rel):
    target = _move_out(bundle, rel, tmp_path / "outside")
    with pytest.raises(tm.BundleFormatError, match=f"{rel} is a link to {target}, outside the bundle; "
                       "a bundle holds its own files: replace the link with a copy") as err:
        tm.TextME.from_pretrained(bundle)
    assert "\n" not in str(err.value)


def test_a_relative_link_climbing_out_is_refused(bundle, tmp_path):
    weights = bundle / "modalities/gapdemo/projector.safetensors"
    shutil.move(weights, tmp_path / "stolen.safetensors")
    weights.symlink_to("../../../stolen.safetensors")  # the '..' check on paths never sees this
    with pytest.raises(tm.BundleFormatError, match="outside the bundle"):
        tm.TextME.from_pretrained(bundle)


def test_a_linked_modality_folder_is_refused(bundle, tmp_path):
    shutil.move(bundle / "modalities/gapdemo", tmp_path / "elsewhere")
    (bundle / "modalities/gapdemo").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(tm.BundleFormatError, match="outside the bundle"):
        tm.TextME.from_pretrained(bundle)


def test_links_inside_the_bundle_and_a_linked_bundle_folder_load(bundle, tmp_path):
    weights = bundle / "modalities/gapdemo/offsets.safetensors"
    shutil.move(weights, bundle / "shared-offsets.safetensors")
    weights.symlink_to("../../shared-offsets.safetensors")
    (tmp_path / "latest").symlink_to(bundle)
    assert tm.TextME.from_pretrained(tmp_path / "latest").modalities == ["gapdemo"]


def test_a_broken_link_is_a_missing_file(bundle):
    weights = bundle / "modalities/gapdemo/projector.safetensors"
    weights.unlink()
    weights.symlink_to("nowhere.safetensors")
    with pytest.raises(tm.MissingFileError, match="is a broken link"):
        tm.TextME.from_pretrained(bundle)


def _as_hub_cache(bundle, cache, repo="models--org--name"):
    """Lay ``bundle`` out as huggingface_hub does: snapshot files are links into ``blobs/``."""
    snapshot = cache / repo / "snapshots" / "0123abcd"
    blobs = cache / repo / "blobs"
    blobs.mkdir(parents=True)
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path.relative_to(bundle)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def test_a_hub_cache_snapshot_loads(bundle, tmp_path):
    snapshot = _as_hub_cache(bundle, tmp_path / "hub")
    assert os.readlink(snapshot / "config.json").startswith("../../blobs/")
    assert tm.TextME.from_pretrained(snapshot).modalities == ["gapdemo"]


def test_a_snapshot_link_into_another_repository_is_refused(bundle, tmp_path):
    snapshot = _as_hub_cache(bundle, tmp_path / "hub")
    other = tmp_path / "hub" / "models--evil--repo" / "blobs"
    other.mkdir(parents=True)
    weights = snapshot / "modalities/gapdemo/projector.safetensors"
    shutil.copy(weights, other / "x")
    weights.unlink()
    weights.symlink_to(os.path.relpath(other / "x", weights.parent))
    with pytest.raises(tm.BundleFormatError, match="outside the bundle"):
        tm.TextME.from_pretrained(snapshot)
