"""The end-to-end check every encoder plugin runs: :func:`check_encoder`.

One call takes an encoder through the whole method with the public API - offsets from
unpaired samples, a projector trained on texts only, embedding into the anchor space, a bundle
saved and loaded again (the encoder rebuilt from its stored config through its plugin) - and
checks what every plugin must guarantee on the way: shapes, unit norms, finite values, a 1-D
result for a single input, identical embeddings after the round trip, and typed errors for bad
inputs. Plugin test suites and the ``textme add-modality`` scaffold call it::

    from textme_sdk.testing import check_encoder

    def test_end_to_end(tmp_path):
        enc = textme_sdk.get_encoder("my-encoder", model=TINY, device="cpu")
        check_encoder(enc, texts=captions(48), inputs=make_files(tmp_path, 32),
                      tmp_path=tmp_path, bad_inputs=[(tmp_path / "gone.png", MissingInputFileError)])

It needs no network: the default anchor is the offline MiniLM.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .encoders import AnchorModel, ModalityEncoder
from .engine.offsets import Offsets
from .engine.trainer import TrainConfig
from .errors import EmptyInputError, TextMEError
from .model import TextME
from .plugins import get_anchor
from .training import compute_offsets, train_projector

__all__ = ["EncoderCheck", "check_encoder", "check_registration"]


@dataclass
class EncoderCheck:
    """What :func:`check_encoder` built, for further assertions of a plugin's own.

    Attributes:
        model: the trained model with the encoder's modality.
        loaded: the same model loaded back from ``bundle``.
        bundle: the saved bundle folder.
        offsets: the offsets computed from the unpaired samples.
        embeddings: anchor-space embeddings of the first ``n_embed`` inputs (numpy).
    """

    model: TextME
    loaded: TextME
    bundle: Path
    offsets: Offsets
    embeddings: np.ndarray


def _fail(message: str) -> AssertionError:
    return AssertionError(f"check_encoder: {message}")


def check_encoder(
    encoder: ModalityEncoder,
    texts: Sequence[str],
    inputs: Sequence[Any],
    tmp_path: str | os.PathLike,
    anchor: AnchorModel | None = None,
    modality: str | None = None,
    config: TrainConfig | None = None,
    bad_inputs: Sequence[tuple[Any, type[BaseException]]] = (),
    n_embed: int = 8,
    atol: float = 1e-5,
    device: str = "cpu",
) -> EncoderCheck:
    """Run ``encoder`` through offsets -> training -> embedding -> save -> reload, checking each step.

    Args:
        encoder: the encoder under test, built through its plugin (``get_encoder``), unloaded
            or loaded.
        texts: descriptions of the modality's domain (the training texts; offsets use them
            too); at least 8.
        inputs: modal inputs of the kind ``encoder.input_spec`` describes; unpaired with
            ``texts``; at least 2.
        tmp_path: a scratch folder (the embedding cache and the bundle go there).
        anchor: the anchor (default: the offline ``minilm``).
        modality: the bundle's name for the modality (default ``encoder.modality``).
        config: training settings (default: 2 epochs, batch 16, seed 0 - a smoke run).
        bad_inputs: ``(input, error type)`` pairs that ``embed`` must refuse with that error
            (e.g. a missing file with ``MissingInputFileError``); an empty list must always
            raise :class:`EmptyInputError`.
        n_embed: how many inputs are embedded and compared after the round trip.
        atol: tolerance of the round-trip comparison.
        device: where the encoder runs.

    Returns:
        An :class:`EncoderCheck` with the model, the loaded model, the bundle and the
        embeddings.

    Raises:
        AssertionError: a guarantee does not hold; the message says which.
    """
    texts, inputs = list(texts), list(inputs)
    if len(texts) < 8 or len(inputs) < 2:
        raise ValueError("check_encoder needs at least 8 texts and 2 inputs")
    tmp = Path(tmp_path)
    anchor = anchor or get_anchor("minilm", device=device)
    modality = modality or encoder.modality
    config = config or TrainConfig(epochs=2, batch_size=16, seed=0)

    offsets = compute_offsets(encoder, texts, inputs)
    if (offsets.n_text, offsets.n_modal, offsets.dim) != (len(texts), len(inputs),
                                                          encoder.embedding_dim):
        raise _fail(f"offsets counted {offsets.n_text} texts / {offsets.n_modal} inputs of "
                    f"{offsets.dim} dims; expected {len(texts)} / {len(inputs)} of "
                    f"{encoder.embedding_dim}")
    projector = train_projector(encoder, anchor, texts, offsets, config, cache=tmp / "cache")
    model = TextME(anchor, device=device).add_modality(encoder, projector, offsets, name=modality)

    sample = inputs[:n_embed]
    emb = model.embed(sample, modality=modality)
    if emb.shape != (len(sample), anchor.embedding_dim) or not np.isfinite(emb).all():
        raise _fail(f"embed gave shape {emb.shape} (finite: {bool(np.isfinite(emb).all())}); "
                    f"expected ({len(sample)}, {anchor.embedding_dim}), all finite")
    if not np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5):
        raise _fail("anchor-space embeddings are not unit norm")
    if model.embed(sample[0], modality=modality).shape != (anchor.embedding_dim,):
        raise _fail("a single input must give a 1-D embedding")

    bundle = model.save_pretrained(tmp / "bundle")
    stored = json.loads((bundle / "config.json").read_text())["modalities"][modality]
    if stored["plugin"] != encoder.name or stored["encoder"] != encoder.config():
        raise _fail(f"the bundle stored plugin {stored['plugin']!r} with {stored['encoder']}; "
                    f"expected {encoder.name!r} with {encoder.config()}")
    loaded = TextME.from_pretrained(bundle, anchor=anchor, device=device)
    rebuilt = loaded.entry(modality).encoder
    if rebuilt is encoder or loaded.modalities != [modality]:
        raise _fail("loading must rebuild the encoder from its stored config")
    rebuilt.load(device)
    again = loaded.embed(sample, modality=modality)
    if not np.allclose(again, emb, atol=atol):
        raise _fail(f"embeddings differ after the bundle round trip by up to "
                    f"{float(np.abs(again - emb).max()):.2e} (tolerance {atol})")
    probe = texts[:2]
    if not np.allclose(loaded.embed(probe, modality="text", via=modality),
                       model.embed(probe, modality="text", via=modality), atol=atol):
        raise _fail("text embedded through the reloaded encoder differs")

    for bad, error in [([], EmptyInputError), *[([item], err) for item, err in bad_inputs]]:
        try:
            loaded.embed(bad, modality=modality)
        except error as exc:
            if not isinstance(exc, TextMEError):
                raise _fail(f"{bad!r:.60} raised {type(exc).__name__}, which is not a "
                            "TextMEError") from exc
        except Exception as exc:  # noqa: BLE001 - reported as a failed guarantee
            raise _fail(f"{bad!r:.60} raised {type(exc).__name__}: {exc}; expected "
                        f"{error.__name__}") from exc
        else:
            raise _fail(f"{bad!r:.60} was accepted; expected {error.__name__}")
    return EncoderCheck(model, loaded, bundle, offsets, emb)


_REGISTRATION_PROBE = """
import json, sys
import textme_sdk
name, heavy = sys.argv[1], sys.argv[2:]
reg = {r.name: r for r in textme_sdk.list_encoders()}[name]
enc = textme_sdk.get_encoder(name)
print(json.dumps({
    "modality": reg.modality, "plugin": reg.plugin,
    "metadata": {k: v for k, v in reg.metadata.items() if isinstance(v, (str, int, float, bool))},
    "class": type(enc).__name__, "embedding_dim": enc.embedding_dim, "loaded": enc.is_loaded,
    "config": enc.config(), "imported": sorted(m for m in heavy if m in sys.modules),
}, default=str))
"""


def check_registration(name: str, heavy: Sequence[str] = (), timeout: float = 120) -> dict[str, Any]:
    """Build encoder ``name`` through its entry point in a fresh interpreter and describe it.

    Registration must stay cheap: the ``textme`` CLI imports every plugin. This checks that
    building the (unloaded) encoder imports none of the ``heavy`` modules and loads nothing.

    Returns:
        ``modality``, ``plugin``, ``metadata`` (its plain values), ``class``,
        ``embedding_dim``, ``config`` of the built encoder.

    Raises:
        AssertionError: the encoder is not registered, a heavy module was imported, or the
            encoder was loaded while being built.
    """
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _REGISTRATION_PROBE, name, *heavy],
                         capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise _fail(f"building {name!r} through its entry point failed:\n{out.stderr[-3000:]}")
    info = json.loads(out.stdout.strip().splitlines()[-1])
    imported = info.pop("imported")
    if imported:
        raise _fail(f"registering {name!r} imported heavy modules {imported}; import them "
                    "inside load_model")
    if info.pop("loaded"):
        raise _fail(f"building {name!r} loaded its weights; load them lazily in load_model")
    return info

