"""The student training loop's best-model bookkeeping across an interrupt and a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mint_distill.students import LoopSettings, train_loop


class ScriptedTask:
    """A tiny linear model whose dev loss at each step is read from a script, so that a replayed
    step can score otherwise than it did before the interrupt (as on a GPU, or with another
    number of processes)."""

    evaluate_at_start = False

    def __init__(self, dev_loss_at_step: dict[int, float]):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(2, 1)
        self.dev_loss_at_step = dev_loss_at_step
        self.step = 0

    def num_examples(self) -> int:
        return 8

    def batch_footprints(self):
        return None

    def batch_groups(self):
        return None

    def loss(self, model, indices, gather):
        return model(torch.ones(len(indices), 2)).pow(2).mean()

    def evaluate(self, model) -> dict[str, float]:
        self.step += 1
        return {"loss": self.dev_loss_at_step[self.step]}

    def save(self, model, folder: Path) -> None:
        folder.mkdir(parents=True)
        torch.save(model.state_dict(), folder / "weights.pt")


SETTINGS = LoopSettings(
    epochs=1, batch_size=2, learning_rate=0.1, warmup_ratio=0.0, mixed_precision="no",
    eval_every=1, checkpoint_every=2, early_stopping_patience=None, select_by="loss",
)


def _stop_at_step(step: int):
    def stop(state):
        if state.step == step:
            raise KeyboardInterrupt

    return stop


def test_a_resume_whose_replayed_step_scores_worse_keeps_the_checkpoints_best(tmp_path):
    # Before the interrupt step 3 was the best (0.5), after the checkpoint at step 2 recorded 2.
    with pytest.raises(KeyboardInterrupt):
        train_loop(
            ScriptedTask({1: 1.0, 2: 0.9, 3: 0.5}), SETTINGS, tmp_path, use_cpu=True,
            callbacks=[_stop_at_step(3)],
        )
    assert (tmp_path / ".best" / "step-000003").is_dir()
    # Replayed from the checkpoint, step 3 scores 0.95 this time: step 2 stays the best.
    replay = ScriptedTask({3: 0.95, 4: 1.0})
    replay.step = 2
    result = train_loop(replay, SETTINGS, tmp_path, resume=True, use_cpu=True)
    assert result.resumed_from == 2 and result.state.best_step == 2
    assert (result.best_dir / "weights.pt").is_file()
    assert [folder.name for folder in (tmp_path / ".best").iterdir()] == ["step-000002"]
