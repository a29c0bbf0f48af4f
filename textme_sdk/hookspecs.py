"""The plugin hooks of textme-sdk.

A plugin is a module (or package) with functions decorated by :data:`textme_sdk.hookimpl`,
exposed through an entry point in the group ``textme``::

    # pyproject.toml of your plugin
    [project.entry-points.textme]
    my_encoder = "textme_my_encoder"

Every hook receives a ``register`` callback (or the CLI app) and only hands objects over;
behaviour lives on the registered classes. Register *factories* (classes or functions), not
loaded models: nothing heavy may be imported until a model is asked for, so that the
``textme`` CLI stays fast with every plugin installed. Import heavy libraries inside the
factory or inside ``load_model``.

Hooks only ever grow by new keyword arguments; an implementation may accept fewer.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("textme")
hookimpl = pluggy.HookimplMarker("textme")


class RegisterEncoder(Protocol):
    def __call__(
        self, name: str, factory: Callable[..., Any], *, modality: str, **metadata: Any
    ) -> None: ...


class RegisterAnchor(Protocol):
    def __call__(self, name: str, factory: Callable[..., Any], **metadata: Any) -> None: ...


@hookspec
def register_encoders(register: RegisterEncoder) -> None:
    """Register modality encoders.

    Call ``register(name, factory, modality="image", **metadata)`` once per encoder.
    ``factory(**kwargs)`` must return a :class:`textme_sdk.ModalityEncoder` without loading
    weights; ``kwargs`` are what the encoder's ``config()`` returns. Optional metadata:
    ``description``, ``license``, ``default_model``, ``extra`` (the ``pip install
    textme-sdk[extra]`` that provides it).

    Example::

        @hookimpl
        def register_encoders(register):
            register("my-encoder", MyEncoder, modality="audio", license="MIT")
    """


@hookspec
def register_anchors(register: RegisterAnchor) -> None:
    """Register anchor (text-embedding) models.

    Call ``register(name, factory, **metadata)``; ``factory(**kwargs)`` returns a
    :class:`textme_sdk.AnchorModel` without loading weights.
    """


class RegisterLoss(Protocol):
    def __call__(self, name: str, loss: Callable[..., Any], **metadata: Any) -> None: ...


@hookspec
def register_losses(register: RegisterLoss) -> None:
    """Register projector-training losses, chosen by name with ``TrainConfig(loss=NAME)``.

    Call ``register(name, loss, **metadata)``. ``loss(queries, keys, config)`` takes ``[B, d]``
    projected queries, ``[B, d]`` anchor keys (row ``i`` is the positive of query ``i``) and
    the :class:`textme_sdk.TrainConfig`, and returns a differentiable scalar tensor. Built in:
    ``hard_negative_infonce`` (the paper's Eq. 4, the default) and ``infonce``.

    Example::

        @hookimpl
        def register_losses(register):
            register("cosine", lambda q, k, cfg: 1 - F.cosine_similarity(q, k).mean())
    """


@hookspec
def register_commands(app: Any) -> None:
    """Add sub-commands to the ``textme`` CLI.

    ``app`` is the :class:`typer.Typer` application; decorate functions with
    ``@app.command()``.
    """
