"""Built-in sentence-transformers anchors: NV-Embed is refused clearly, MiniLM embeds offline."""

import json

import pytest
import torch

import textme_sdk as tm
from textme_sdk.errors import TextMEError


def test_nv_embed_is_refused_by_name_with_the_alternative():
    with pytest.raises(TextMEError, match="NV-Embed model.*latent-attention.*qwen3"):
        tm.get_anchor("sentence-transformers", model_id="nvidia/NV-Embed-v2")


def test_nv_embed_is_refused_from_a_local_folder_by_its_config(tmp_path):
    folder = tmp_path / "my-anchor"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "nvembed",
                                                    "architectures": ["NVEmbedModel"]}))
    anchor = tm.get_anchor("sentence-transformers", model_id=str(folder))
    with pytest.raises(TextMEError, match="NV-Embed model"):
        anchor.load("cpu")


def test_minilm_roles_share_one_space_and_are_normalised(minilm):
    q = minilm.encode(["a dog barking"], "query")
    d = minilm.encode(["a dog barking", "rain on a tin roof"], "document")
    assert q.shape == (1, 384) and torch.allclose(d.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(q[0], d[0], atol=1e-5)  # MiniLM has no prompts: same text, same vector
    assert (d[0] @ d[1]) < 0.5
