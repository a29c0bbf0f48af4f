"""``textme add-modality NAME``: write a working plugin scaffold for a new encoder.

:func:`create_plugin` renders the template files shipped in ``textme_sdk/templates/plugin/``
(package data, read with :mod:`importlib.resources`) into a folder ``textme-NAME/``::

    textme-NAME/
      pyproject.toml              distribution textme-NAME, entry point NAME = "textme_NAME"
      README.md                   install, fill in, test, train, publish
      .gitignore
      textme_NAME/__init__.py     the @hookimpl register_encoders(register)
      textme_NAME/encoder.py      a ModalityEncoder subclass; TODO(author) marks where the real
                                  encoder goes; as generated a small deterministic stand-in
                                  (hashed bag of words + a fixed random projection of input
                                  statistics, with a modality gap) makes everything work
      tests/test_NAME.py          contract tests that pass as generated

The templates use ``{{ placeholder }}`` substitution (stdlib only, no template engine);
the input kind (``file``, ``array`` or ``text``) selects the snippets under
``templates/plugin/kinds/<kind>/`` that define how inputs are read, what the stand-in computes
from them, and which sample and bad inputs the generated tests use.

Example:
    >>> from textme_sdk.scaffold import create_plugin
    >>> create_plugin("sonar", modality="sonar", dim=256, extensions=[".wav"])  # doctest: +SKIP
    PosixPath('/home/me/textme-sonar')
"""

from __future__ import annotations

import json
import keyword
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import InvalidInputError, PluginExistsError, TextMEError

logger = logging.getLogger(__name__)

__all__ = [
    "INPUT_KINDS",
    "PluginExistsError",
    "PluginSpec",
    "create_plugin",
    "plugin_spec",
    "render_plugin",
    "reserved_names",
]

#: Input kinds a scaffold can be generated for, and what each means for ``encode_modal``.
INPUT_KINDS: dict[str, str] = {
    "file": "paths to files (optionally restricted to some extensions); the stand-in reads bytes",
    "array": "numeric arrays (numpy, torch, nested lists) or paths to .npy files",
    "text": "strings that are the modality itself (sequences, identifiers, SMILES, code ...)",
}

#: Names that would clash with the core distribution or the project's own plugins
#: (``reference``: the distribution ``textme-reference``, which registers ``ref-image`` and
#: ``ref-audio``).
_ALWAYS_RESERVED = frozenset({"sdk", "textme", "core", "builtin", "plugin", "plugins", "text",
                              "reference"})
#: Extensions an ``array`` scaffold can read as generated.
_ARRAY_EXTENSIONS = (".npy",)
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
_EXT_RE = re.compile(r"^\.[a-z0-9][a-z0-9_+-]*(?:\.[a-z0-9][a-z0-9_+-]*)*$")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_MAX_NAME = 40
_MAX_DIM = 65536

#: (template path under templates/plugin, output path; ``{module}`` is the module suffix).
_FILES: tuple[tuple[str, str], ...] = (
    ("pyproject.toml.tmpl", "pyproject.toml"),
    ("README.md.tmpl", "README.md"),
    ("gitignore.tmpl", ".gitignore"),
    ("package/__init__.py.tmpl", "textme_{module}/__init__.py"),
    ("package/encoder.py.tmpl", "textme_{module}/encoder.py"),
    ("tests/test_plugin.py.tmpl", "tests/test_{module}.py"),
)
#: Per-kind snippets (templates/plugin/kinds/<kind>/<file>) and the placeholder each fills.
_SNIPPETS: tuple[tuple[str, str], ...] = (
    ("imports.py.tmpl", "input_imports"),
    ("inputs.py.tmpl", "input_code"),
    ("test_inputs.py.tmpl", "test_input_code"),
    ("readme.md.tmpl", "readme_inputs"),
)


@dataclass(frozen=True)
class PluginSpec:
    """A validated description of the plugin to generate.

    Attributes:
        name: the encoder, entry-point and distribution suffix, dash form (``"my-sensor"``).
        module: the Python identifier form (``"my_sensor"``); the package is ``textme_<module>``.
        modality: the modality the encoder registers (bundles name the modality after it).
        dim: the embedding size of both branches.
        input_kind: one of :data:`INPUT_KINDS`.
        extensions: lower-case file suffixes with a leading dot (``(".wav",)``).
        class_name: the encoder class (``"MySensorEncoder"``).
    """

    name: str
    module: str
    modality: str
    dim: int
    input_kind: str
    extensions: tuple[str, ...]
    class_name: str

    @property
    def distribution(self) -> str:
        """The distribution (pip) name, ``textme-<name>``."""
        return f"textme-{self.name}"

    @property
    def package(self) -> str:
        """The import name, ``textme_<module>``."""
        return f"textme_{self.module}"


def reserved_names() -> set[str]:
    """Names a new plugin may not take (dash form): the project's plugins and the built-ins.

    These are the encoders of the project's own plugin distributions (``clip``, ``clap``,
    ``ref-image``, ...) and their distribution names (``reference``), the encoders and anchors
    registered by the built-in plugins (``minilm``, ``qwen3`` ...) and a few names of the core
    itself (``sdk``, ``text`` ...).
    """
    from .plugins import DEFAULT_PLUGINS, KNOWN_EXTRAS, list_anchors, list_encoders

    builtin = {r.name for r in [*list_encoders(), *list_anchors()] if r.plugin in DEFAULT_PLUGINS}
    return {_dash(n) for n in (*_ALWAYS_RESERVED, *KNOWN_EXTRAS, *builtin)}


def _dash(name: str) -> str:
    return name.replace("_", "-")


def _check_name(name: object) -> str:
    """Validate NAME and return its dash form."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(
            f"the plugin name must be a non-empty string, got {name!r}; pass e.g. 'sonar'"
        )
    raw = name.strip()
    if raw.lower().startswith(("textme-", "textme_")) and len(raw) > 7:
        raise InvalidInputError(
            f"pass the plugin name without the 'textme-' prefix: {raw[7:]!r} (the folder and "
            f"distribution are named textme-{raw[7:]} automatically)"
        )
    if raw != raw.lower() and _NAME_RE.match(raw.lower()):
        raise InvalidInputError(
            f"plugin names are lower case: use {raw.lower()!r} instead of {raw!r}"
        )
    if not _NAME_RE.match(raw):
        suggestion = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
        suggestion = re.sub(r"^[^a-z]+", "", suggestion)
        hint = f" such as {suggestion!r}" if suggestion and _NAME_RE.match(suggestion) else ""
        raise InvalidInputError(
            f"invalid plugin name {raw!r}: use lower-case letters, digits and single dashes or "
            f"underscores between them, starting with a letter{hint}"
        )
    if len(raw) > _MAX_NAME:
        raise InvalidInputError(
            f"plugin name {raw!r} is {len(raw)} characters long; use at most {_MAX_NAME}"
        )
    module = raw.replace("-", "_")
    if keyword.iskeyword(module):
        raise InvalidInputError(
            f"plugin name {raw!r} is a Python keyword; choose another, e.g. {raw + '-encoder'!r}"
        )
    dash = _dash(raw)
    if dash in reserved_names():
        raise InvalidInputError(
            f"plugin name {raw!r} is taken by textme-sdk itself or one of its own plugins "
            f"({', '.join(sorted(reserved_names()))}); choose another, e.g. {dash + '-custom'!r}"
        )
    return dash


def _check_modality(modality: object, default: str) -> str:
    if modality is None:
        modality = default
    if not isinstance(modality, str) or not _NAME_RE.match(modality):
        raise InvalidInputError(
            f"invalid modality {modality!r}: use lower-case letters, digits, dashes or "
            "underscores, starting with a letter (e.g. 'audio', 'point-cloud')"
        )
    if modality == "text":
        raise InvalidInputError(
            "the modality 'text' is reserved for the anchor's own texts; name the modality "
            "after what the encoder reads instead (pass modality=... / --modality)"
        )
    return modality


def _check_dim(dim: object) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or not 2 <= dim <= _MAX_DIM:
        raise InvalidInputError(
            f"dim must be an integer between 2 and {_MAX_DIM} (the size of the encoder's "
            f"embeddings, e.g. 512), got {dim!r}"
        )
    return dim


def _check_extensions(extensions: Sequence[str], input_kind: str) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = [e for e in re.split(r"[,\s]+", extensions) if e]
    out: list[str] = []
    for ext in extensions:
        if not isinstance(ext, str):
            raise InvalidInputError(f"file extensions must be strings like '.wav', got {ext!r}")
        norm = ext.strip().lower()
        norm = norm if norm.startswith(".") else "." + norm
        if not _EXT_RE.match(norm):
            raise InvalidInputError(
                f"invalid file extension {ext!r}: use a suffix like '.wav' or '.nii.gz'"
            )
        if norm not in out:
            out.append(norm)
    if input_kind == "text" and out:
        raise InvalidInputError(
            "file extensions apply to input kinds 'file' and 'array'; 'text' inputs are the "
            "strings themselves. Drop the extensions, or use input_kind='file' to read files"
        )
    if input_kind == "array":
        bad = [e for e in out if e not in _ARRAY_EXTENSIONS]
        if bad:
            raise InvalidInputError(
                f"an 'array' scaffold reads {', '.join(_ARRAY_EXTENSIONS)} files, not "
                f"{', '.join(bad)}; use input_kind='file' and decode them in preprocess()"
            )
        out = out or list(_ARRAY_EXTENSIONS)
    return tuple(out)


def plugin_spec(
    name: str,
    *,
    modality: str | None = None,
    dim: int = 512,
    input_kind: str = "file",
    extensions: Sequence[str] = (),
) -> PluginSpec:
    """Validate the options of :func:`create_plugin` (same arguments) into a :class:`PluginSpec`.

    Raises:
        InvalidInputError: a bad name (not lower-case letters/digits/dashes/underscores
            starting with a letter, a Python keyword, or taken by textme-sdk or one of its
            plugins), modality, dimension, input kind or extension; the message names the fix.
    """
    dash = _check_name(name)
    if input_kind not in INPUT_KINDS:
        raise InvalidInputError(
            f"unknown input kind {input_kind!r}; choose one of: "
            + "; ".join(f"{k} ({v})" for k, v in INPUT_KINDS.items())
        )
    return PluginSpec(
        name=dash,
        module=dash.replace("-", "_"),
        modality=_check_modality(modality, dash),
        dim=_check_dim(dim),
        input_kind=input_kind,
        extensions=_check_extensions(extensions, input_kind),
        class_name="".join(p.capitalize() for p in dash.split("-")) + "Encoder",
    )


def _template_root():
    return resources.files("textme_sdk").joinpath("templates", "plugin")


def _read_template(rel: str) -> str:
    node = _template_root()
    for part in rel.split("/"):
        node = node.joinpath(part)
    try:
        return node.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise TextMEError(
            f"the plugin template {rel!r} is missing from the textme_sdk installation; "
            "reinstall textme-sdk (its templates ship as package data)"
        ) from exc


def _substitute(text: str, values: Mapping[str, str], where: str) -> str:
    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise TextMEError(f"template {where!r} uses the unknown placeholder {{{{ {key} }}}}")
        return values[key]

    return _PLACEHOLDER.sub(repl, text)


def _tuple_literal(items: Sequence[str]) -> str:
    """``("a", "b")`` / ``("a",)`` / ``()`` with double-quoted strings."""
    quoted = [json.dumps(i) for i in items]
    return "(" + ", ".join(quoted) + ("," if len(quoted) == 1 else "") + ")"


def _context(spec: PluginSpec) -> dict[str, str]:
    from . import __version__

    exts = spec.extensions
    example_ext = exts[0] if exts else ".bin"
    ext_words = ", ".join(exts) if exts else "any suffix"
    return {
        "name": spec.name,
        "module": spec.module,
        "package": spec.package,
        "distribution": spec.distribution,
        "modality": spec.modality,
        "dim": str(spec.dim),
        "input_kind": spec.input_kind,
        "class_name": spec.class_name,
        "extensions_tuple": _tuple_literal(exts),
        "extensions_words": ext_words,
        "example_ext": example_ext,
        "sdk_version": __version__,
    }


def render_plugin(spec: PluginSpec) -> dict[str, str]:
    """Render every file of the scaffold in memory: ``{relative path: text}``.

    Raises:
        TextMEError: a template is missing from the installation or uses an unknown
            placeholder (a packaging bug, not a user error).
    """
    ctx = _context(spec)
    for snippet, key in _SNIPPETS:
        rel = f"kinds/{spec.input_kind}/{snippet}"
        ctx[key] = _substitute(_read_template(rel), ctx, rel).rstrip("\n")
    files: dict[str, str] = {}
    for rel, out in _FILES:
        text = _substitute(_read_template(rel), ctx, rel)
        files[out.format(module=spec.module)] = text.rstrip("\n") + "\n"
    return files


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _warn_if_installed(spec: PluginSpec) -> None:
    """Warn when another installed distribution already registers the name (first one wins)."""
    from .plugins import plugin_status

    for row in plugin_status():
        ours = row["source"].startswith(f"{spec.distribution} ")
        if not ours and (row["plugin"] == spec.name or spec.name in row["encoders"]):
            logger.warning(
                "the installed plugin %r (%s) already registers %r: while both are installed, "
                "only one of them is used; choose another name unless you replace it",
                row["plugin"], row["source"], spec.name,
            )


def _in_the_way(root: Path, rel: str) -> bool:
    """Whether something at ``root/rel`` (or at one of its parent folders) blocks writing it."""
    path = root / rel
    if (path.exists() or path.is_symlink()) and not path.is_file():
        return True
    parents = [root / p for p in Path(rel).parents if str(p) != "."]
    return any(p.exists() and not p.is_dir() for p in parents)


def create_plugin(
    name: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    modality: str | None = None,
    dim: int = 512,
    input_kind: str = "file",
    extensions: Sequence[str] = (),
    force: bool = False,
) -> Path:
    """Write a working plugin scaffold ``textme-NAME/`` and return its (absolute) path.

    The generated plugin installs with ``pip install -e textme-NAME``, shows up in
    ``textme plugins`` at once, passes its own tests, and can be trained into a bundle with
    ``textme offsets`` / ``textme train`` before any real model is plugged in (a small
    deterministic stand-in encoder runs until the ``TODO(author)`` parts are filled in).

    Args:
        name: the encoder and entry-point name, e.g. ``"sonar"`` or ``"point-cloud"``:
            lower-case letters, digits, dashes or underscores, starting with a letter. The
            distribution is ``textme-<name>`` (dash form), the package ``textme_<name>``
            (underscore form); the encoder registers under the dash form.
        directory: where to create the folder (default: the working directory).
        modality: the modality the encoder registers (default: the name).
        dim: the embedding size of the encoder's two branches.
        input_kind: what ``encode_modal`` takes: ``"file"`` (paths), ``"array"`` (numeric
            arrays or ``.npy`` paths) or ``"text"`` (strings that are the modality itself).
            It selects the ``InputSpec``, ``preprocess``, the stand-in's features and the
            sample inputs of the generated tests.
        extensions: file suffixes the encoder reads (``[".wav", ".flac"]``); the CLI collects
            inputs from a folder by them. ``file``: empty means any file; ``array``: only
            ``.npy`` (the default); ``text``: none.
        force: rewrite the template files of an existing folder. Only the scaffold's own files
            are written; nothing else in the folder is touched or deleted.

    Returns:
        The created (or, with ``force``, refreshed) folder.

    Raises:
        InvalidInputError: an invalid option (see :func:`plugin_spec`); the message names the fix.
        PluginExistsError: the folder exists and ``force`` is false, or a path the scaffold
            needs is taken by a folder or a non-folder.
    """
    spec = plugin_spec(name, modality=modality, dim=dim, input_kind=input_kind,
                       extensions=extensions)
    _warn_if_installed(spec)
    parent = Path(directory if directory is not None else os.getcwd()).expanduser().resolve()
    target = parent / spec.distribution
    files = render_plugin(spec)  # render everything before writing anything

    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise PluginExistsError(
                f"{target} exists and is not a folder; remove it or pass another directory"
            )
        if not force:
            raise PluginExistsError(
                f"{target} already exists; pass force=True (CLI: --force) to rewrite the "
                "scaffold's template files in it (other files are kept), or choose another "
                "directory or name"
            )
        blocked = [rel for rel in files if _in_the_way(target, rel)]
        if blocked:
            raise PluginExistsError(
                f"cannot rewrite the scaffold in {target}: {', '.join(blocked)} is in the way "
                "(a folder where a file goes, or a file where a folder goes); move it away"
            )
        for rel, text in files.items():
            _write_atomic(target / rel, text)
        logger.info("rewrote %d scaffold files in %s", len(files), target)
        return target

    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{spec.distribution}-"))
    try:
        for rel, text in files.items():
            _write_atomic(staging / rel, text)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # our own staging folder only
        raise
    logger.info("created plugin scaffold %s", target)
    return target
