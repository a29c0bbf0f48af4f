"""The offline reference world: a synthetic world with its own pretrained contrastive encoders.

Real CLIP / CLAP weights are large and need a network; this package plays their role offline.

* :mod:`.world` - 24 classes that can be seen and heard, attribute-rich captions, and
  deterministic generators of samples and text-only corpora.
* :mod:`.images`, :mod:`.sounds` - procedural 32 x 32 pictures and 8 kHz clips.
* :mod:`.models` - tiny two-tower CLIP-style encoders (image 64-d, audio 48-d).
* :mod:`.pretrain` - the project's own contrastive pretraining that produced the shipped
  weights in ``assets/`` (``python -m textme_sdk.reference.pretrain --modality image``).
* :mod:`.quality` - the encoders' own zero-shot, retrieval and modality-gap measurements.
* :mod:`.plugin` - the ``ref-image`` and ``ref-audio`` encoder plugins.
"""
