import json
import os
import signal

import pytest
import torch

import textme_sdk as tm
from textme_sdk.engine import TrainConfig, fit_projector
from textme_sdk.engine.trainer import lr_at


def _data(n=1200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=g)
    w = torch.randn(32, 48, generator=g)
    return x, torch.nn.functional.normalize(x @ w, dim=-1)


CFG = TrainConfig(epochs=4, batch_size=128, val_fraction=0.1, seed=3)


def test_learns_a_linear_map():
    x, y = _data()
    res = fit_projector(x, y, TrainConfig(epochs=20, batch_size=128, lr=2e-3), show_progress_bar=False)
    assert res.history[-1]["val_r1"] > 0.9
    assert res.steps == 20 * len(range(0, 1140, 128))
    out = res.projector(x[:5])
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)


def test_interrupted_training_resumes_to_identical_weights(tmp_path):
    x, y = _data()
    full = fit_projector(x, y, CFG, show_progress_bar=False)

    def interrupt(step, loss):
        if step == 13:  # mid-epoch (9 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(tm.TrainingInterrupted) as info:
        fit_projector(x, y, CFG, checkpoint_dir=tmp_path, on_step=interrupt, show_progress_bar=False)
    assert info.value.step == 13 and info.value.checkpoint_dir == str(tmp_path)
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["step"] == 13 and state["batch"] == 4
    resumed = fit_projector(x, y, CFG, checkpoint_dir=tmp_path, resume=True, show_progress_bar=False)
    for k, v in full.projector.state_dict().items():
        assert torch.equal(v, resumed.projector.state_dict()[k]), k
    assert resumed.history == full.history


def test_checkpoints_hold_no_pickle(tmp_path):
    x, y = _data(300)
    fit_projector(x, y, TrainConfig(epochs=1, batch_size=64, checkpoint_every=2), checkpoint_dir=tmp_path,
                  show_progress_bar=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.safetensors", "trainer_state.json"]


def test_resume_with_other_config_is_refused(tmp_path):
    x, y = _data(300)
    fit_projector(x, y, TrainConfig(epochs=1, batch_size=64), checkpoint_dir=tmp_path, show_progress_bar=False)
    with pytest.raises(ValueError, match="different TrainConfig"):
        fit_projector(x, y, TrainConfig(epochs=2, batch_size=64), checkpoint_dir=tmp_path, resume=True)


def test_same_seed_same_weights_other_seed_differs():
    x, y = _data(400)
    a = fit_projector(x, y, TrainConfig(epochs=2, batch_size=64, seed=1), show_progress_bar=False)
    b = fit_projector(x, y, TrainConfig(epochs=2, batch_size=64, seed=1), show_progress_bar=False)
    c = fit_projector(x, y, TrainConfig(epochs=2, batch_size=64, seed=2), show_progress_bar=False)
    wa, wb, wc = (r.projector.net[0].weight for r in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1e-3, warmup_ratio=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-3)
    assert lrs[50] < lrs[10] and lrs[-1] < 1e-5


def test_precision_options():
    x, y = _data(200)
    with pytest.raises(ValueError, match="needs CUDA"):
        fit_projector(x, y, TrainConfig(epochs=1, precision="fp16", device="cpu"))
    res = fit_projector(x, y, TrainConfig(epochs=1, batch_size=64, precision="bf16", device="cpu"),
                        show_progress_bar=False)
    assert torch.isfinite(res.projector.net[0].weight).all()


def test_bad_shapes_and_config_errors():
    with pytest.raises(tm.DimensionMismatchError, match="same N"):
        fit_projector(torch.randn(10, 4), torch.randn(9, 8))
    with pytest.raises(tm.InvalidInputError, match="unknown TrainConfig"):
        TrainConfig.from_dict({"epochs": 1, "nope": 2})
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_paper_defaults():
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.weight_decay, c.temperature, c.window) == (
        50, 512, 5e-4, 0.01, 0.07, (0.1, 0.9))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_amp_on_cuda():
    x, y = _data()
    res = fit_projector(x, y, TrainConfig(epochs=10, batch_size=128, lr=2e-3), show_progress_bar=False)
    assert res.history[-1]["val_r1"] > 0.8


def test_input_noise_is_deterministic_resumable_and_changes_training(tmp_path):
    x, y = _data(600)
    cfg = TrainConfig(epochs=3, batch_size=64, seed=1, input_noise=0.1)
    a = fit_projector(x, y, cfg, show_progress_bar=False)
    b = fit_projector(x, y, cfg, show_progress_bar=False)
    plain = fit_projector(x, y, TrainConfig(epochs=3, batch_size=64, seed=1), show_progress_bar=False)
    wa = a.projector.net[0].weight
    assert torch.equal(wa, b.projector.net[0].weight)
    assert not torch.equal(wa, plain.projector.net[0].weight)

    def interrupt(step, loss):
        if step == 11:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(tm.TrainingInterrupted):
        fit_projector(x, y, cfg, checkpoint_dir=tmp_path, on_step=interrupt, show_progress_bar=False)
    resumed = fit_projector(x, y, cfg, checkpoint_dir=tmp_path, resume=True, show_progress_bar=False)
    assert torch.equal(wa, resumed.projector.net[0].weight)


def test_resume_reads_the_state_saved_with_the_weights(tmp_path):
    """A kill between the two files of a checkpoint cannot pair new weights with an old step:
    the step counters are stored inside ``state.safetensors`` and win over the readable JSON."""
    x, y = _data()
    full = fit_projector(x, y, CFG, show_progress_bar=False)

    def interrupt(step, loss):
        if step == 13:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(tm.TrainingInterrupted):
        fit_projector(x, y, CFG, checkpoint_dir=tmp_path, on_step=interrupt, show_progress_bar=False)
    stale = json.loads((tmp_path / "trainer_state.json").read_text())
    stale.update(step=12, batch=3)  # as if the JSON copy were one step behind the weights
    (tmp_path / "trainer_state.json").write_text(json.dumps(stale))
    resumed = fit_projector(x, y, CFG, checkpoint_dir=tmp_path, resume=True, show_progress_bar=False)
    for k, v in full.projector.state_dict().items():
        assert torch.equal(v, resumed.projector.state_dict()[k]), k
    assert resumed.steps == full.steps


def test_held_out_evaluation_in_blocks_matches_the_whole_matrix():
    """The epoch-end R@1 and loss are computed block by block (bounded memory): the same
    numbers as one similarity matrix over the whole held-out set."""
    from textme_sdk.engine import Projector
    from textme_sdk.engine.trainer import _default_loss, _evaluate

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 16, generator=g).half()
    off = torch.randn(16, generator=g)
    cfg = TrainConfig(batch_size=64)
    proj = Projector(16, 24, 32, 2, 0.0)
    with torch.no_grad():  # anchors near the projections: R@1 well above 0, below 1
        y = (proj(x.float() - off) + 0.05 * torch.randn(3000, 24, generator=g)).half()
    loss, r1 = _evaluate(proj, x, y, cfg, torch.device("cpu"), _default_loss, off)
    with torch.no_grad():
        z = proj(x.float() - off).float()
        sim = z @ torch.nn.functional.normalize(y.float(), dim=-1).T
        want_r1 = (sim.argmax(1) == torch.arange(len(x))).float().mean().item()
        want_loss = torch.stack([_default_loss(a, b, cfg) for a, b in
                                 zip(z.split(64), y.float().split(64))]).mean().item()
    assert 0.05 < r1 < 1 and r1 == pytest.approx(want_r1, abs=2 / len(x))
    assert loss == pytest.approx(want_loss, rel=1e-5)
