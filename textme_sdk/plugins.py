"""Plugin discovery and the registry of encoders and anchors.

Plugins are found through entry points of the group ``textme``; the built-in plugins go
through exactly the same hooks. ``TEXTME_LOAD_PLUGINS=a,b`` limits which entry-point plugins
load (by entry-point or distribution name; empty = none); built-ins always load. A plugin
that fails to import or register is recorded (see :func:`plugin_status`) and never breaks
the others.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from typing import Any

import pluggy

from . import hookspecs
from .encoders import AnchorModel, ModalityEncoder
from .errors import PluginLoadError, UnknownPluginError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "textme"
LOAD_PLUGINS_ENV = "TEXTME_LOAD_PLUGINS"

#: Built-in plugin modules, registered through the same hooks as external plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "textme_sdk.builtin.anchors",
    "textme_sdk.builtin.qwen3",
)

#: Encoders of the project's own plugin distributions and the extra that installs each.
KNOWN_EXTRAS: dict[str, str] = {
    "clip": "image",
    "clap": "audio",
    "viclip": "video",
    "uni3d": "3d",
    "cxr_clip": "xray",
    "moleculestm": "molecule",
    "ref-image": "demo",
    "ref-audio": "demo",
}

__all__ = [
    "Registration",
    "get_plugin_manager",
    "get_encoder",
    "get_anchor",
    "list_encoders",
    "list_anchors",
    "plugin_status",
    "reload_plugins",
    "ENTRY_POINT_GROUP",
]


@dataclass(frozen=True)
class Registration:
    """One registered encoder or anchor factory.

    Attributes:
        name: the registered name (what ``get_encoder`` / ``get_anchor`` take).
        factory: callable returning an unloaded model.
        kind: ``"encoder"`` or ``"anchor"``.
        plugin: the name of the plugin that registered it.
        modality: the modality of an encoder (``None`` for anchors).
        metadata: free-form extras (``description``, ``license``, ``default_model``, ...).
    """

    name: str
    factory: Callable[..., Any]
    kind: str
    plugin: str
    modality: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    pm: pluggy.PluginManager
    encoders: dict[str, Registration]
    anchors: dict[str, Registration]
    errors: dict[str, str]
    sources: dict[str, str]


_state: _State | None = None
_lock = threading.RLock()


def _allowed() -> set[str] | None:
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _build_state() -> _State:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    errors: dict[str, str] = {}
    sources: dict[str, str] = {}
    for mod_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(mod_name), name=mod_name)
        sources[mod_name] = "built-in"
    allowed = _allowed()
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.name if dist is not None else ""
        if allowed is not None and ep.name not in allowed and dist_name not in allowed:
            continue
        if pm.has_plugin(ep.name) or ep.name in errors:
            continue
        try:
            pm.register(ep.load(), name=ep.name)
            version = dist.version if dist is not None else "?"
            sources[ep.name] = f"{dist_name or ep.value} {version}".strip()
        except Exception as exc:  # a broken plugin must not break the rest
            errors[ep.name] = f"{type(exc).__name__}: {exc}"
            logger.warning("textme plugin %r failed to load: %s", ep.name, exc)
    state = _State(pm, {}, {}, errors, sources)
    _collect(state)
    return state


def _collect(state: _State) -> None:
    """Call the registration hooks one plugin at a time, so failures stay attributed."""

    def run(hook_name: str, kind: str, table: dict[str, Registration]) -> None:
        for impl in getattr(state.pm.hook, hook_name).get_hookimpls():
            plugin = impl.plugin_name

            def register(name: str, factory: Callable[..., Any], modality: str | None = None,
                         **meta: Any) -> None:
                if kind == "encoder" and not modality:
                    raise PluginLoadError(
                        f"plugin {plugin!r} registered encoder {name!r} without modality=...; "
                        "pass e.g. register(name, factory, modality='image')"
                    )
                if name in table:
                    logger.warning(
                        "%s %r registered by %r is already registered by %r; keeping the first",
                        kind, name, plugin, table[name].plugin,
                    )
                    return
                table[name] = Registration(name, factory, kind, plugin, modality, dict(meta))

            try:
                impl.function(register=register)
            except Exception as exc:
                state.errors[plugin] = f"{type(exc).__name__}: {exc}"
                logger.warning("textme plugin %r failed in %s: %s", plugin, hook_name, exc)

    run("register_encoders", "encoder", state.encoders)
    run("register_anchors", "anchor", state.anchors)


def _get_state() -> _State:
    global _state
    with _lock:
        if _state is None:
            _state = _build_state()
        return _state


def reload_plugins() -> None:
    """Forget the discovered plugins; the next call discovers them again."""
    global _state
    with _lock:
        _state = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The :class:`pluggy.PluginManager` with every loaded plugin (e.g. for the CLI hook)."""
    return _get_state().pm


def list_encoders(modality: str | None = None) -> list[Registration]:
    """Registered encoders, sorted by name, optionally only those of one modality."""
    regs = _get_state().encoders.values()
    return sorted((r for r in regs if modality in (None, r.modality)), key=lambda r: r.name)


def list_anchors() -> list[Registration]:
    """Registered anchors, sorted by name."""
    return sorted(_get_state().anchors.values(), key=lambda r: r.name)


def _unknown(kind: str, name: str, table: dict[str, Registration]) -> UnknownPluginError:
    have = ", ".join(sorted(table)) or "none"
    msg = f"no {kind} named {name!r} is installed (installed: {have})."
    if name in KNOWN_EXTRAS:
        msg += f" Install it with: pip install 'textme-sdk[{KNOWN_EXTRAS[name]}]'"
    else:
        msg += " Run `textme plugins` to see what is available and which plugins failed to load."
    errs = _get_state().errors
    if errs:
        msg += " Plugins that failed to load: " + "; ".join(f"{k} ({v})" for k, v in errs.items())
    return UnknownPluginError(msg)


def _build(reg: Registration, expected: type, kwargs: dict[str, Any]) -> Any:
    try:
        obj = reg.factory(**kwargs)
    except TypeError as exc:
        raise TypeError(f"{reg.kind} {reg.name!r} (plugin {reg.plugin!r}): {exc}") from exc
    if not isinstance(obj, expected):
        raise PluginLoadError(
            f"the factory of {reg.kind} {reg.name!r} (plugin {reg.plugin!r}) returned "
            f"{type(obj).__name__}, not a {expected.__name__}"
        )
    obj.name = reg.name
    return obj


def get_encoder(name: str, **kwargs: Any) -> ModalityEncoder:
    """Build (without loading weights) the encoder registered as ``name``.

    Args:
        name: registered encoder name, e.g. ``"clip"``.
        **kwargs: passed to the plugin's factory (model id, revision, device, ...).

    Raises:
        UnknownPluginError: no installed plugin registers ``name``; the message lists the
            installed encoders and the ``pip install`` that would add it.
    """
    table = _get_state().encoders
    if name not in table:
        raise _unknown("encoder", name, table)
    return _build(table[name], ModalityEncoder, kwargs)


def get_anchor(name: str, **kwargs: Any) -> AnchorModel:
    """Build (without loading weights) the anchor registered as ``name`` (e.g. ``"minilm"``)."""
    table = _get_state().anchors
    if name not in table:
        raise _unknown("anchor", name, table)
    return _build(table[name], AnchorModel, kwargs)


def plugin_status() -> list[dict[str, Any]]:
    """One row per plugin: name, source, the encoders/anchors it registers, and any error."""
    state = _get_state()
    rows: dict[str, dict[str, Any]] = {}
    for name, source in state.sources.items():
        rows[name] = {"plugin": name, "source": source, "encoders": [], "anchors": [], "error": None}
    for name, err in state.errors.items():
        rows.setdefault(name, {"plugin": name, "source": "entry point", "encoders": [],
                               "anchors": []})["error"] = err
    for reg in state.encoders.values():
        rows.setdefault(reg.plugin, {"plugin": reg.plugin, "source": "?", "encoders": [],
                                     "anchors": [], "error": None})["encoders"].append(reg.name)
    for reg in state.anchors.values():
        rows.setdefault(reg.plugin, {"plugin": reg.plugin, "source": "?", "encoders": [],
                                     "anchors": [], "error": None})["anchors"].append(reg.name)
    return sorted(rows.values(), key=lambda r: (r["source"] != "built-in", r["plugin"]))
