"""The students' training benchmark times the step the recipes train with, at their precision."""

from __future__ import annotations

import pytest
import torch
from fixtures.evaluation.tiny_encoders import save_tiny_sentence_transformer

from mint_distill.models import precision as precision_module
from mint_distill.students import bench as students_bench
from mint_distill.students.biencoder import BiEncoderTask


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16-cpu", "avx2-only-cpu"])
def test_a_timed_step_runs_at_auto_precision(native, tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "_cpu_has_native_bf16", lambda: native)
    seen = []
    real_loss = BiEncoderTask.loss

    def recording(self, *args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(BiEncoderTask, "loss", recording)
    config = {
        "model": str(save_tiny_sentence_transformer(tmp_path / "encoder")),
        "student": "biencoder",
        "finetune": "full",
        "batch_size": 4,
        "negatives": 0,
        "request_tokens": 8,
        "item_tokens": 6,
        "steps": 2,
        "threads": None,
        "precision": "auto",
    }
    result = students_bench._measure(config)  # in this process, as bench_training's worker runs it
    assert result["precision"] == ("bfloat16" if native else "float32")
    assert seen == [native] * 3  # the warm-up step and the two timed ones
    assert f", {result['precision']}, " in str(students_bench.BenchResult(**result))
