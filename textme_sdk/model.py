"""``TextME``: one embedding space for every modality, anchored on a text-embedding model.

A modal input ``x`` of modality ``m`` lands at ``P_m(E_m(x) - mu_modal)`` (paper Eq. 5), next
to the anchor embedding of its description; text goes through the anchor directly (or, with
``via=``, through an encoder's text branch and its projector).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .bundle import (
    ModalityEntry,
    check_modality_name,
    is_generated_card,
    load_entry_extras,
    load_entry_weights,
    read_config,
    recover_interrupted_save,
    save_bundle,
)
from .encoders import AnchorModel, ModalityEncoder, Role, resolve_device
from .engine.bridge import AnchorRecentring
from .engine.numerics import all_finite, nonfinite_rows
from .engine.offsets import Offsets
from .engine.projector import Projector
from .errors import (
    DimensionMismatchError,
    InvalidEmbeddingError,
    InvalidInputError,
    MissingFileError,
    UnknownModalityError,
)
from .plugins import get_anchor, get_encoder

logger = logging.getLogger(__name__)

__all__ = ["TextME"]

Embeddings = torch.Tensor | np.ndarray


class TextME:
    """A set of modalities bridged into one anchor space.

    Args:
        anchor: an :class:`AnchorModel` or the name of a registered anchor (default ``"minilm"``).
        device: where projectors (and encoders, when they load) run; ``None`` = CUDA if available.

    Attributes:
        source: the local folder the model was loaded from by :meth:`from_pretrained` (a Hub
            cache snapshot for a repository id); ``None`` for a model built in memory.

    Example:
        >>> model = TextME("minilm")
        >>> model.add_modality(encoder, projector, offsets)           # doctest: +SKIP
        >>> model.embed(["a dog barking"], modality="text").shape     # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, anchor: AnchorModel | str = "minilm", device: str | torch.device | None = None):
        self.anchor = get_anchor(anchor) if isinstance(anchor, str) else anchor
        self.device = resolve_device(device)
        self.anchor.prefer_device(self.device)
        self._entries: dict[str, ModalityEntry] = {}
        self.source: Path | None = None
        self.heads: dict[str, Any] = {}  # name -> ClassifierHead, saved under heads/NAME

    @property
    def bundle_path(self) -> Path | None:
        """Read-only alias of :attr:`source`, the folder the model was loaded from."""
        return self.source

    # ------------------------------------------------------------------------ composition
    @property
    def modalities(self) -> list[str]:
        """Names of the modalities this model embeds (besides ``"text"``)."""
        return list(self._entries)

    def entry(self, modality: str) -> ModalityEntry:
        """The encoder, projector and offsets of ``modality``."""
        if modality not in self._entries:
            have = ", ".join(["text", *self._entries]) or "text"
            raise UnknownModalityError(
                f"this model has no modality {modality!r} (it has: {have}); add it with "
                "add_modality(...) or load a bundle that contains it"
            )
        return self._entries[modality]

    def add_modality(
        self,
        encoder: ModalityEncoder,
        projector: Projector,
        offsets: Offsets,
        name: str | None = None,
        info: dict[str, Any] | None = None,
        recentring: AnchorRecentring | None = None,
    ) -> "TextME":
        """Add (or replace) a modality; ``name`` defaults to ``encoder.modality``.

        ``info`` is descriptive metadata kept with the modality: ``training`` (a training
        summary; by default the projector's ``training_result``), ``offsets`` (where the
        offsets came from) and any other keys (e.g. ``metrics`` for the model card). What a
        bundle computes itself (projector shape, offset statistics, file hashes) is never taken
        from ``info``, so passing a loaded entry's :attr:`~ModalityEntry.info` is safe.
        ``recentring`` (see :func:`~textme_sdk.fit_recentring`) is applied to projected modal
        embeddings; the EmergentBridge mappings a projector was trained with come along with it.

        Raises:
            InvalidInputError: a name that is not one safe path segment, or ``"text"``.
            DimensionMismatchError: encoder, offsets, projector and anchor dimensions disagree.
            NonFiniteWeightsError: the projector or offsets hold NaN/inf.
        """
        name = check_modality_name(encoder.modality if name is None else name)
        entry = ModalityEntry.from_info(encoder, projector, offsets, info)
        if recentring is not None and recentring.dim != projector.out_dim:
            raise DimensionMismatchError(
                f"the re-centring is {recentring.dim}-d but the projector outputs "
                f"{projector.out_dim}-d; fit it with this model (fit_recentring)")
        entry.recentring = recentring
        entry.check(self.anchor.embedding_dim or None)
        entry.check_finite(name)
        encoder.prefer_device(self.device)
        entry.projector = projector.to(self.device).eval()
        self._entries[name] = entry
        return self

    # ------------------------------------------------------------------------------ embed
    def embed(
        self,
        inputs: Any,
        modality: str = "text",
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        role: Role = "document",
        via: str | None = None,
        use_offsets: bool = True,
        recentre: bool = True,
    ) -> Embeddings:
        """Embed inputs of one modality into the anchor space (L2-normalised).

        Args:
            inputs: a list of inputs (a batch) or a single input (then the result is 1-D).
                Text for ``modality="text"``; otherwise what the encoder's ``input_spec`` says.
            modality: ``"text"`` or one of :attr:`modalities`.
            batch_size: inputs per encoder call.
            show_progress_bar: ``None`` shows one for long runs.
            convert_to_tensor: return a ``torch.Tensor`` instead of a numpy array.
            device: run encoders and projectors there (moves them).
            role: for text through the anchor, ``"document"`` or ``"query"`` (instruction-tuned
                anchors prefix queries). The projectors were trained to the document role.
            via: for text only, embed through this modality's text encoder + projector instead
                of the anchor (the paper's LanguageBind-style text path).
            use_offsets: subtract the centroid before projecting (turn off only for ablations).
            recentre: apply the modality's anchor-space re-centring when it has one (modal
                inputs only; see ``docs/bridging.md``).
        """
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        if device is not None:
            self.to(device)
        if modality == "text":
            out = self._embed_text(items, batch_size, show_progress_bar, role, via, use_offsets)
        else:
            if via is not None:
                raise InvalidInputError("via= applies to modality='text' only")
            entry = self.entry(modality)
            raw = entry.encoder.encode_modal(items, batch_size, show_progress_bar)
            out = self._project(entry, entry.offsets.centre_modal(raw) if use_offsets else raw)
            if recentre and use_offsets and entry.recentring is not None:
                out = entry.recentring.apply(out)
        # no NaN leaves embed(): projector outputs are checked in _project, anchor outputs in
        # _embed_text
        if single:
            out = out[0]
        return out if convert_to_tensor else out.numpy()

    def _embed_text(self, texts, batch_size, show_progress_bar, role, via, use_offsets) -> torch.Tensor:
        if via is None:
            out = self.anchor.encode(texts, role, batch_size, show_progress_bar)
            if self.anchor.embedding_dim and out.shape[1] != self.anchor.embedding_dim:
                raise DimensionMismatchError("anchor returned an unexpected dimension")
            _check_finite_rows(out, "the 'text' embeddings", "check the inputs at those positions")
            return out
        entry = self.entry(via)
        raw = entry.encoder.encode_text(texts, batch_size, show_progress_bar)
        return self._project(entry, entry.offsets.centre_text(raw) if use_offsets else raw)

    def project(self, embeddings: torch.Tensor, modality: str, branch: str = "modal",
                use_offsets: bool = True, recentre: bool = True) -> torch.Tensor:
        """Map precomputed encoder embeddings of ``modality`` into the anchor space.

        ``embed`` runs the encoder and then this; call it directly when the raw encoder
        embeddings are already at hand (cached, or computed elsewhere).

        Args:
            embeddings: ``[N, d_m]`` embeddings from the modality's encoder (normalised or not).
            modality: the bundle modality whose offsets and projector to use.
            branch: ``"modal"`` (centre with ``mu_modal``) or ``"text"`` (with ``mu_text``).
            use_offsets: centre before projecting (turn off only for ablations).
            recentre: apply the modality's anchor-space re-centring when it has one (``"modal"``
                branch with offsets only).

        Raises:
            InvalidInputError: not a numeric array, or an unknown ``branch``.
            DimensionMismatchError: not of shape ``[N, d_m]``.
            InvalidEmbeddingError: NaN/inf in ``embeddings`` (or in the result, when the
                projector's weights were damaged in memory).
        """
        entry = self.entry(modality)
        x = _as_float_tensor(embeddings, "project()")
        if x.ndim != 2 or x.shape[1] != entry.offsets.dim:
            raise DimensionMismatchError(
                f"modality {modality!r} projects {entry.offsets.dim}-d encoder embeddings, got "
                f"shape {tuple(x.shape)}")
        if branch not in ("modal", "text"):
            raise InvalidInputError(f"branch must be 'modal' or 'text', got {branch!r}")
        _check_finite_rows(x, "the embeddings passed to project()", "drop or recompute those rows")
        x = F.normalize(x, dim=-1)
        if use_offsets:
            x = entry.offsets.centre_modal(x) if branch == "modal" else entry.offsets.centre_text(x)
        out = self._project(entry, x)
        if recentre and use_offsets and branch == "modal" and entry.recentring is not None:
            out = entry.recentring.apply(out)
        return out

    def _project(self, entry: ModalityEntry, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        proj = entry.projector
        dev = proj.device
        with torch.inference_mode():
            if len(x) <= chunk:  # the common case, kept to the bare calls (embed at batch 1)
                out = proj(x if x.device == dev else x.to(dev))
                if out.dtype != torch.float32 or out.device.type != "cpu":
                    out = out.float().cpu()
            else:
                out = torch.cat([proj(b.to(dev)).float().cpu() for b in x.split(chunk)])
        _check_finite_rows(out, f"the projector of {entry.encoder.name!r}",
                           "its weights were changed in memory: reload or retrain it")
        return out

    def to(self, device: str | torch.device) -> "TextME":
        """Move projectors (and loaded encoders) to ``device``."""
        self.device = resolve_device(device)
        for e in self._entries.values():
            e.projector.to(self.device)
            if e.encoder.is_loaded:
                e.encoder.load(self.device)
        if self.anchor.is_loaded:
            self.anchor.load(self.device)
        return self

    @staticmethod
    def similarity(a: Embeddings, b: Embeddings) -> Embeddings:
        """Cosine similarity matrix ``[len(a), len(b)]`` (1-D inputs are treated as one row).

        Returns the same kind (numpy or torch) as ``a``.

        Raises:
            InvalidInputError: an input that is not a 1-D or 2-D numeric array.
            DimensionMismatchError: ``a`` and ``b`` have different widths.
            InvalidEmbeddingError: NaN/inf in either input.
        """
        ta = _as_float_tensor(a, "similarity()")
        tb = _as_float_tensor(b, "similarity()")
        for which, t in (("a", ta), ("b", tb)):
            if t.ndim not in (1, 2):
                raise InvalidInputError(
                    f"similarity() compares 1-D or 2-D embeddings, got {which} of shape "
                    f"{tuple(t.shape)}; reshape it to [N, d]")
        ta = ta.unsqueeze(0) if ta.ndim == 1 else ta
        tb = tb.unsqueeze(0) if tb.ndim == 1 else tb
        if ta.shape[-1] != tb.shape[-1]:
            raise DimensionMismatchError(
                f"cannot compare {ta.shape[-1]}-d with {tb.shape[-1]}-d embeddings; embed both "
                "with the same model"
            )
        _check_finite_rows(ta, "argument a of similarity()", "drop or recompute those rows")
        _check_finite_rows(tb, "argument b of similarity()", "drop or recompute those rows")
        sim = F.normalize(ta, dim=-1) @ F.normalize(tb, dim=-1).T
        return sim if isinstance(a, torch.Tensor) else sim.numpy()

    # ----------------------------------------------------------------------- persistence
    def save_pretrained(self, save_directory: str | os.PathLike, model_card: str | None = None) -> Path:
        """Write the bundle to ``save_directory`` crash-safely; returns the folder.

        ``save_directory`` may be missing, an empty folder, or a folder holding a textme bundle
        (replaced; a hand-written ``README.md`` and any other files you added to it are kept).
        At every moment the folder holds the old or the new bundle, even if the process is
        killed; the next save or load cleans up after an interrupted one.

        Raises:
            OutputExistsError: the folder exists and is not a textme bundle (nothing is changed).
            NonFiniteWeightsError: a projector or offsets hold NaN/inf.
            BundleWriteError: the disk is full or not writable (the previous bundle is unchanged).
        """
        return save_bundle(save_directory, self.anchor, self._entries, model_card,
                           heads=self.heads or None)

    def add_head(self, name: str, head: Any) -> "TextME":
        """Keep a :class:`~textme_sdk.ClassifierHead` with the bundle (saved as ``heads/NAME``).

        Raises:
            InvalidInputError: a name that is not one safe path segment.
            DimensionMismatchError: the head's width is not the anchor's (anchor-space head) or
                its encoder's (encoder-space head).
        """
        from .heads import ClassifierHead

        if not isinstance(head, ClassifierHead):
            raise InvalidInputError(f"add_head takes a ClassifierHead, got {type(head).__name__}")
        check_modality_name(name)
        want = (self.anchor.embedding_dim if head.space == "anchor"
                else self.entry(head.modality).encoder.embedding_dim)
        if want and head.dim != want:
            raise DimensionMismatchError(f"head {name!r} takes {head.dim}-d embeddings but this "
                                         f"model's {head.space} space is {want}-d; fit it on this model")
        self.heads[name] = head
        return self

    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | os.PathLike,
        modalities: Sequence[str] | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        device: str | torch.device | None = None,
        anchor: AnchorModel | None = None,
    ) -> "TextME":
        """Load a bundle from a local folder or a Hub repository.

        Only the requested ``modalities`` are downloaded (``None`` = all). Encoders and the
        anchor are rebuilt from their plugins by name and config; their weights load lazily.
        ``HF_HUB_OFFLINE=1`` is honoured.

        Args:
            repo_or_dir: a bundle folder, or a Hub repo id (``"org/name"``).
            modalities: subset of modalities to load.
            revision: Hub branch, tag or commit.
            cache_dir: Hub cache folder (default: the huggingface_hub cache).
            token: Hub token for private repositories.
            local_files_only: never reach the network; use the cache only.
            device: where projectors run.
            anchor: use this anchor object instead of rebuilding the bundle's (dims must match).
        """
        folder = Path(repo_or_dir)
        recover_interrupted_save(folder)  # a save of this folder may have been killed
        if not folder.is_dir():
            folder = _download(str(repo_or_dir), modalities, revision, cache_dir, token, local_files_only)
        cfg = read_config(folder)
        if anchor is None:
            anchor = get_anchor(cfg["anchor"]["plugin"], **cfg["anchor"].get("config", {}))
        want_dim = cfg["anchor"].get("embedding_dim")
        if want_dim and anchor.embedding_dim and want_dim != anchor.embedding_dim:
            raise DimensionMismatchError(
                f"the bundle was trained for a {want_dim}-d anchor but {anchor.name!r} is "
                f"{anchor.embedding_dim}-d"
            )
        model = cls(anchor, device=device)
        names = list(cfg["modalities"]) if modalities is None else list(modalities)
        for name in names:
            if name not in cfg["modalities"]:
                raise UnknownModalityError(
                    f"the bundle has no modality {name!r} (it has: {', '.join(cfg['modalities'])})"
                )
            m = cfg["modalities"][name]
            encoder = get_encoder(m["plugin"], **m.get("encoder", {}))
            projector, offsets, info = load_entry_weights(
                folder, m["path"], expected_in=m.get("embedding_dim"),
                expected_out=cfg["anchor"].get("embedding_dim") or None)
            bridges, recentring = load_entry_extras(folder, m["path"], info, projector.out_dim)
            if bridges:
                projector.bridges = bridges  # type: ignore[attr-defined]
            model.add_modality(encoder, projector, offsets, name=name, info=info,
                               recentring=recentring)
        if cfg.get("heads"):
            from .heads import load_bundle_heads

            model.heads = load_bundle_heads(folder, cfg["heads"])
        model.source = folder
        return model

    def push_to_hub(
        self,
        repo_id: str,
        token: str | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload TextME bundle",
        create_pr: bool = False,
        model_card: str | None = None,
    ) -> str:
        """Upload the bundle to the Hub in a single commit; returns the commit URL.

        A README already in the repository is kept unless it is an unedited generated card.
        """
        from huggingface_hub import HfApi, hf_hub_download

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "bundle", model_card)
            if api.file_exists(repo_id, "README.md", revision=revision):
                remote = Path(hf_hub_download(repo_id, "README.md", revision=revision, token=token,
                                              cache_dir=Path(tmp) / "hf"))
                if not is_generated_card(remote.read_text(errors="replace")):
                    (folder / "README.md").unlink()  # never overwrite a hand-written card
            info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                     commit_message=commit_message, create_pr=create_pr)
        return str(getattr(info, "commit_url", info))

    def __repr__(self) -> str:
        mods = ", ".join(f"{k}={e.encoder.name}" for k, e in self._entries.items())
        return f"TextME(anchor={self.anchor.name!r}, modalities=[{mods}])"


def _as_float_tensor(x: Any, who: str) -> torch.Tensor:
    try:
        return torch.as_tensor(x, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(f"{who} takes numeric arrays or tensors, got "
                                f"{type(x).__name__} ({reason})") from None


def _check_finite_rows(x: torch.Tensor, what: str, fix: str) -> None:
    """Raise :class:`InvalidEmbeddingError` naming the rows of ``x`` that hold NaN/inf."""
    if all_finite(x):  # the common case: one reduction, no temporaries
        return
    rows = nonfinite_rows(x)
    raise InvalidEmbeddingError(f"NaN/inf values in {what}: {len(rows)} of {x.shape[0]} rows "
                                f"(first: {rows[:5].tolist()}); {fix}")


def _download(repo_id: str, modalities, revision, cache_dir, token, local_files_only) -> Path:
    """Fetch config.json, then only the files of the requested modalities."""
    from huggingface_hub import snapshot_download

    _refuse_missing_local_path(repo_id)
    common = dict(revision=revision, cache_dir=cache_dir, token=token,
                  local_files_only=local_files_only)
    with _hub_errors(repo_id):
        folder = Path(snapshot_download(repo_id, allow_patterns=["config.json", "README.md"],
                                        **common))
    cfg = read_config(folder)
    names = list(cfg["modalities"]) if modalities is None else list(modalities)
    patterns = ["config.json", "README.md"] + [f"{h['path']}/*" for h in cfg.get("heads", {}).values()] + [
        f"{cfg['modalities'][n]['path']}/*" for n in names if n in cfg["modalities"]
    ]
    with _hub_errors(repo_id):
        return Path(snapshot_download(repo_id, allow_patterns=patterns, **common))


def _refuse_missing_local_path(name: str) -> None:
    """A name that can only be a local path (and is no folder) gets a typed error, not a Hub call."""
    path = Path(name).expanduser()
    if path.exists():
        raise MissingFileError(f"{name} is a file, not a bundle folder; pass the bundle's folder "
                               "(the one holding config.json)")
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name:
        raise MissingFileError(f"no bundle folder at {name}: check the path (a Hub repository "
                               "is named 'org/name')")


@contextmanager
def _hub_errors(repo_id: str):
    """Hub failures as typed errors naming the repository and the fix."""
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except HFValidationError as exc:
        raise InvalidInputError(f"{repo_id!r} is neither a bundle folder nor a Hub repository id "
                                f"('org/name'): {exc}") from exc
    except LocalEntryNotFoundError as exc:
        raise MissingFileError(
            f"no bundle folder {repo_id!r} here, and it is not in the local Hugging Face cache "
            "while the Hub cannot be reached "
            "(offline, or HF_HUB_OFFLINE=1): download it once with network access, or pass a "
            "local bundle folder") from exc
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise MissingFileError(f"no bundle {repo_id!r} (or that revision) on the Hub, or it is "
                               "private: check the name, or pass token=...") from exc
    except OSError as exc:  # network errors of huggingface_hub / requests
        raise MissingFileError(f"could not download {repo_id!r} from the Hub "
                               f"({type(exc).__name__}: {exc}); check the connection") from exc
