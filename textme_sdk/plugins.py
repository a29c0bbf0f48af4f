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
from .errors import InvalidInputError, PluginLoadError, TextMEError, UnknownPluginError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "textme"
LOAD_PLUGINS_ENV = "TEXTME_LOAD_PLUGINS"

#: Built-in plugin modules, registered through the same hooks as external plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "textme_sdk.builtin.anchors",
    "textme_sdk.builtin.qwen3",
    "textme_sdk.builtin.losses",
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
    "RegistryKind",
    "REGISTRIES",
    "call_hook",
    "get_plugin_manager",
    "get_encoder",
    "get_anchor",
    "get_loss",
    "list_encoders",
    "list_anchors",
    "list_losses",
    "plugin_status",
    "reload_plugins",
    "ENTRY_POINT_GROUP",
]


@dataclass(frozen=True)
class Registration:
    """One registered factory (an encoder, an anchor, a loss...).

    Attributes:
        name: the registered name (what ``get_encoder`` / ``get_anchor`` / ``get_loss`` take).
        factory: the registered object: a callable returning an unloaded model, or a loss.
        kind: the registry it belongs to (``"encoder"``, ``"anchor"``, ``"loss"``).
        plugin: the name of the plugin that registered it.
        modality: the modality of an encoder (``None`` otherwise).
        metadata: free-form extras (``description``, ``license``, ``default_model``, ...).
    """

    name: str
    factory: Callable[..., Any]
    kind: str
    plugin: str
    modality: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RegistryKind:
    """A registry filled by one ``register_*(register)`` hook.

    Attributes:
        kind: the registry's name, used in messages (``"encoder"``).
        hook: the hook that fills it (``"register_encoders"``).
        plural: how listings name several (``"encoders"``).
        needs_modality: registrations must say ``modality=...``.
    """

    kind: str
    hook: str
    plural: str
    needs_modality: bool = False


#: Every registry, by kind. Adding a ``register_*`` hook is one entry here plus its hookspec.
REGISTRIES: dict[str, RegistryKind] = {
    r.kind: r
    for r in (
        RegistryKind("encoder", "register_encoders", "encoders", needs_modality=True),
        RegistryKind("anchor", "register_anchors", "anchors"),
        RegistryKind("loss", "register_losses", "losses"),
    )
}


@dataclass
class _State:
    pm: pluggy.PluginManager
    tables: dict[str, dict[str, Registration]]
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
    state = _State(pm, {kind: {} for kind in REGISTRIES}, errors, sources)
    for registry in REGISTRIES.values():
        _fill(state, registry)
    return state


def _call_each(pm: pluggy.PluginManager, hook_name: str, errors: dict[str, str],
               make_kwargs: Callable[[str], dict[str, Any]]) -> None:
    """Call ``hook_name`` one plugin at a time through pluggy, so failures stay attributed.

    pluggy passes each implementation only the arguments it accepts (an implementation may
    take fewer arguments than its spec). ``make_kwargs(plugin_name)`` builds the call's
    arguments; an exception is recorded in ``errors`` under the plugin's name.
    """
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        others = [p for p in pm.get_plugins() if p is not impl.plugin]
        try:
            pm.subset_hook_caller(hook_name, remove_plugins=others)(
                **make_kwargs(impl.plugin_name))
        except Exception as exc:
            errors[impl.plugin_name] = f"{type(exc).__name__}: {exc}"
            logger.warning("textme plugin %r failed in %s: %s", impl.plugin_name, hook_name, exc)


def _fill(state: _State, registry: RegistryKind) -> None:
    table = state.tables[registry.kind]

    def make_register(plugin: str) -> dict[str, Any]:
        def register(name: str, factory: Callable[..., Any], modality: str | None = None,
                     **meta: Any) -> None:
            if not isinstance(name, str) or not name:
                raise PluginLoadError(
                    f"plugin {plugin!r} registered a {registry.kind} with name {name!r}; "
                    "names are non-empty strings")
            if registry.needs_modality and not modality:
                raise PluginLoadError(
                    f"plugin {plugin!r} registered {registry.kind} {name!r} without "
                    "modality=...; pass e.g. register(name, factory, modality='image')"
                )
            if name in table:
                logger.warning(
                    "%s %r registered by %r is already registered by %r; keeping the first",
                    registry.kind, name, plugin, table[name].plugin,
                )
                return
            table[name] = Registration(name, factory, registry.kind, plugin, modality, dict(meta))

        return {"register": register}

    _call_each(state.pm, registry.hook, state.errors, make_register)


def call_hook(hook_name: str, **kwargs: Any) -> dict[str, str]:
    """Call a hook of every loaded plugin, one at a time; returns ``{plugin: error}``.

    For hooks that hand over an object rather than fill a registry (``register_commands``).
    A failing plugin is logged and reported, never raised: it must not break the others.
    """
    errors: dict[str, str] = {}
    _call_each(_get_state().pm, hook_name, errors, lambda _plugin: kwargs)
    return errors


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
    """The :class:`pluggy.PluginManager` with every loaded plugin."""
    return _get_state().pm


def _list(kind: str) -> list[Registration]:
    return sorted(_get_state().tables[kind].values(), key=lambda r: r.name)


def list_encoders(modality: str | None = None) -> list[Registration]:
    """Registered encoders, sorted by name, optionally only those of one modality."""
    return [r for r in _list("encoder") if modality in (None, r.modality)]


def list_anchors() -> list[Registration]:
    """Registered anchors, sorted by name."""
    return _list("anchor")


def list_losses() -> list[Registration]:
    """Registered training losses, sorted by name (``TrainConfig.loss`` picks one)."""
    return _list("loss")


def _lookup(kind: str, name: str) -> Registration:
    table = _get_state().tables[kind]
    if name not in table:
        raise _unknown(kind, name, table)
    return table[name]


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
    """Call a model factory; its failures become typed errors naming the plugin."""
    what = f"{reg.kind} {reg.name!r} (plugin {reg.plugin!r})"
    try:
        obj = reg.factory(**kwargs)
    except TextMEError:
        raise
    except TypeError as exc:
        raise InvalidInputError(
            f"{what} could not be built with the arguments {sorted(kwargs)}: {exc}; check the "
            "keyword arguments against the plugin's documentation"
        ) from exc
    except Exception as exc:
        raise PluginLoadError(
            f"the factory of {what} failed ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, expected):
        raise PluginLoadError(
            f"the factory of {what} returned {type(obj).__name__}, not a {expected.__name__}"
        )
    obj.name = reg.name
    obj.plugin = reg.plugin
    return obj


def get_encoder(name: str, **kwargs: Any) -> ModalityEncoder:
    """Build (without loading weights) the encoder registered as ``name``.

    Args:
        name: registered encoder name, e.g. ``"clip"``.
        **kwargs: passed to the plugin's factory (model id, revision, device, ...).

    Raises:
        UnknownPluginError: no installed plugin registers ``name``; the message lists the
            installed encoders and the ``pip install`` that would add it.
        InvalidInputError: the factory does not take these keyword arguments.
        PluginLoadError: the plugin's factory failed (chained to the plugin's exception).
    """
    return _build(_lookup("encoder", name), ModalityEncoder, kwargs)


def get_anchor(name: str, **kwargs: Any) -> AnchorModel:
    """Build (without loading weights) the anchor registered as ``name`` (e.g. ``"minilm"``)."""
    return _build(_lookup("anchor", name), AnchorModel, kwargs)


def get_loss(name: str) -> Callable[..., Any]:
    """The training loss registered as ``name`` (``TrainConfig.loss``).

    A loss is called as ``loss(queries, keys, config)`` with ``[B, d]`` projected queries,
    ``[B, d]`` anchor keys (row ``i`` is the positive of query ``i``) and the
    :class:`~textme_sdk.TrainConfig`, and returns a differentiable scalar.
    """
    return _lookup("loss", name).factory


def plugin_status() -> list[dict[str, Any]]:
    """One row per plugin: name, source, what it registers (``encoders``, ``anchors``,
    ``losses``...) and any error."""
    state = _get_state()
    rows: dict[str, dict[str, Any]] = {}
    for name, source in state.sources.items():
        rows[name] = {"plugin": name, "source": source, "error": None}
    for name, err in state.errors.items():
        rows.setdefault(name, {"plugin": name, "source": "entry point"})["error"] = err
    for kind, table in state.tables.items():
        for reg in table.values():
            row = rows.setdefault(reg.plugin, {"plugin": reg.plugin, "source": "?", "error": None})
            row.setdefault(REGISTRIES[kind].plural, []).append(reg.name)
    for row in rows.values():
        for registry in REGISTRIES.values():
            row.setdefault(registry.plural, [])
    return sorted(rows.values(), key=lambda r: (r["source"] != "built-in", r["plugin"]))
