"""textme-reference: the offline reference world of textme-sdk, as a plugin.

A synthetic world with its own pretrained contrastive encoders, so that text-only modality
expansion can be run, tested and taught without downloading anything (real CLIP / CLAP weights
are large and need a network). Installing this distribution (``pip install 'textme-sdk[demo]'``)
registers the encoders ``ref-image`` and ``ref-audio`` and the ``textme demo`` command through
the plugin hooks (entry point ``reference`` in group ``textme``, module :mod:`.plugin`).

* :mod:`.world` - 24 classes that can be seen and heard, attribute-rich captions, and
  deterministic generators of samples and text-only corpora.
* :mod:`.images`, :mod:`.sounds` - procedural 32 x 32 pictures and 8 kHz clips.
* :mod:`.models` - tiny two-tower CLIP-style encoders (image 64-d, audio 48-d).
* :mod:`.pretrain` - the project's own contrastive pretraining that produced the shipped
  weights in ``assets/`` (``python -m textme_reference.pretrain --modality image``).
* :mod:`.quality` - the encoders' own zero-shot, retrieval and modality-gap measurements.
* :mod:`.datasets` - the world's held-out samples as evaluation datasets
  (:class:`~textme_sdk.evaluation.RetrievalSet`, :class:`~textme_sdk.evaluation.ClassificationSet`).
* :mod:`.demo` - the offline demo (``textme demo``), evaluated by :func:`textme_sdk.evaluation.evaluate`.
* :mod:`.fewshot` - few-shot heads sharpened by unpaired text (UML) in this world
  (``textme demo --fewshot``).
* :mod:`.plugin` - the hooks: the ``ref-image`` and ``ref-audio`` encoders and the ``demo`` command.

Importing this package loads nothing heavy.
"""

__version__ = "0.1.0"
