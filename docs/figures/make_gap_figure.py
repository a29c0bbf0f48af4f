"""Draw ``docs/figures/modality-gap.png``: an encoder's modality gap, before and after centring.

The encoder is ``ref-image``, the reference world's small CLIP-style image encoder of the
``textme-reference`` plugin (``pip install 'textme-sdk[demo]'``; ``make setup`` installs it), so
the figure is drawn offline in a few seconds. Left: the first two principal
components of 300 caption embeddings and 300 (unrelated, unpaired) image embeddings: two
separate clouds, the modality gap, with the centroids ``mu_text`` and ``mu_modal``. Right: the
same embeddings after each branch subtracts its own centroid (TextME's offsets): one cloud.

Run from the repository root (needs matplotlib, in the ``[dev]`` extra)::

    python docs/figures/make_gap_figure.py            # rewrites docs/figures/modality-gap.png
    python docs/figures/make_gap_figure.py --out /tmp/gap.png

The data and the weights are seeded, so every run draws the same picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "modality-gap.png"


def embeddings(n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` caption and ``n`` image embeddings of ``ref-image`` (unpaired, L2-normalised)."""
    import textme_sdk as tm
    from textme_reference import world

    encoder = tm.get_encoder("ref-image", device="cpu")
    texts = world.caption_corpus("image", n, seed=0)
    images = [item.data for item in world.sample_items("image", n, seed=1)]
    return encoder.encode_text(texts), encoder.encode_modal(images)


def pca_2d(x: torch.Tensor) -> torch.Tensor:
    """Coordinates of the rows of ``x`` on its first two principal components."""
    centred = x - x.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T


def draw(out: Path) -> dict[str, float]:
    """Draw the figure into ``out``; returns the gap before and after centring."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text, image = embeddings()
    mu_text, mu_image = text.mean(0), image.mean(0)
    panels = {
        "raw embeddings": (text, image),
        "after centring (e - mu of its branch)": (text - mu_text, image - mu_image),
    }
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.6), dpi=100)
    gaps = {}
    for ax, (title, (t, x)) in zip(axes, panels.items()):
        xy = pca_2d(torch.cat([t, x]))
        pt, px = xy[: len(t)], xy[len(t):]
        ax.scatter(px[:, 0], px[:, 1], s=6, alpha=0.5, color="#d95f02", label="images")
        ax.scatter(pt[:, 0], pt[:, 1], s=6, alpha=0.5, color="#1b6ac9", label="captions")
        gap = float((t.mean(0) - x.mean(0)).norm())
        if gap > 1e-3:  # an arrow from the caption centroid to the image centroid
            ax.annotate("", xy=px.mean(0).tolist(), xytext=pt.mean(0).tolist(),
                        arrowprops={"arrowstyle": "->", "color": "black", "lw": 1.5})
        gaps[title] = gap
        ax.set_title(f"{title}\n||mu_text - mu_image|| = {gap:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=8, markerscale=2)
    fig.suptitle("ref-image: 300 captions and 300 unpaired images, first two principal components",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return gaps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    gaps = draw(args.out)
    print(f"{args.out}: " + ", ".join(f"{k}: gap {v:.3f}" for k, v in gaps.items())
          + f" ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
