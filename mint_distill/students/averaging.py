"""WiSE-FT (Wortsman et al., 2022): save a student part way between its zero-shot base and its fine-tuned self.

Averaging the weights of a fine-tuned model with those of the model it started from often ranks
better than either on text unlike the training data, which is the case of a student trained on
synthetic requests and served on real ones. The saved weights are `base + w * (trained - base)`;
for a LoRA student that is its update `B·A` scaled by `w` (B starts at zero), so only `lora_B` is
averaged and the adapter stays an adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class WeightAverage:
    """The student's starting weights, kept so that saves can average towards them."""

    def __init__(self, model: Any, finetuned_weight: float = 1.0):
        self.finetuned_weight = finetuned_weight
        self.start = (
            {name: p.detach().to("cpu", copy=True) for name, p in _update_parameters(model)}
            if finetuned_weight < 1.0
            else {}
        )

    @contextmanager
    def applied(self, model: Any) -> Iterator[None]:
        """Within the block, `model` holds the averaged weights; its trained ones come back after."""
        if not self.start:
            yield
            return
        import torch

        parameters = dict(_update_parameters(model))
        trained = {name: parameters[name].detach().clone() for name in self.start}
        with torch.no_grad():
            for name, start in self.start.items():
                start = start.to(trained[name].device, trained[name].dtype)
                parameters[name].copy_(start + self.finetuned_weight * (trained[name] - start))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, weights in trained.items():
                    parameters[name].copy_(weights)


def _update_parameters(model: Any) -> list[tuple[str, Any]]:
    """The parameters that carry what training changed: LoRA's `B` matrices, else every trained one."""
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    return [(name, p) for name, p in trained if "lora_B" in name] or trained
