"""The training loop both students share, on Accelerate.

One code path for a CPU, one GPU or `accelerate launch` over several processes: gradient
accumulation, mixed precision on GPUs, a learning rate that is a function of the step,
resumable checkpoints every N steps, dev evaluation with early stopping, and the best model
kept. Only the main process writes files, except for each process's random-number state in
checkpoints, which `resume` needs to replay dropout exactly.

Scratch layout in the output folder (dot-folders are not stage outputs):
```
.checkpoints/step-000050/   accelerate state (weights, optimizer, RNG per process) + trainer_state.json
.checkpoints/done.json      the final trainer state, written when training has finished
.best/step-000040/          the best model so far, saved by the task (e.g. a SentenceTransformer folder)
log.jsonl                   one line per optimizer step (loss, learning rate) and per dev evaluation
```
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from ..console import Bar, progress_bar
from ..errors import MintError
from ..io import JsonlAppender, read_json, read_jsonl, write_json_atomic, write_jsonl_atomic
from ..models.precision import training_mixed_precision
from .batching import BatchSchedule, Footprints, process_share

log = logging.getLogger(__name__)

CHECKPOINTS = ".checkpoints"
BEST = ".best"
DONE = "done.json"
STATE = "trainer_state.json"
LOG = "log.jsonl"
HIGHER_IS_BETTER = {"mrr@10": True, "recall@10": True, "loss": False, "fused_mrr@10": True}


@dataclass(frozen=True)
class LoopSettings:
    """How to train (the recipe's `students.*.training` with the seed resolved)."""

    epochs: float = 1.0
    learning_rate: float = 2e-5
    batch_size: int = 16
    gradient_accumulation: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"
    eval_every: int = 50
    checkpoint_every: int = 50
    early_stopping_patience: int | None = 3
    select_by: str = "mrr@10"
    seed: int = 0

    @classmethod
    def from_spec(cls, spec: Any, default_seed: int) -> LoopSettings:
        """From a `TrainingSpec` (or its dict); a null seed takes `default_seed`."""
        values = spec if isinstance(spec, dict) else spec.model_dump()
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        known["seed"] = default_seed if known.get("seed") is None else known["seed"]
        return cls(**known)


class Task(Protocol):
    """What the loop trains: a model, indexed examples, a loss, dev evaluation, a way to save."""

    model: Any
    evaluate_at_start: bool  # False where the model has a new head: nothing to select before training

    def num_examples(self) -> int: ...

    def batch_footprints(self) -> Footprints | None:
        """What each example brings into a batch and must not meet there (None: any examples may meet)."""

    def batch_groups(self) -> Callable[[int], Hashable | None] | None:
        """Each example's group, for batches drawn from one group where it can fill them
        (None: batches mix every example)."""

    def loss(self, model: Any, indices: list[int], gather: bool) -> Any:
        """Loss on this process's examples; `model` may be wrapped (DDP); `gather`: share across processes."""

    def evaluate(self, model: Any) -> dict[str, float]:
        """Dev measures (`loss`, `mrr@10`, `recall@10`) of the unwrapped model, on the main process."""

    def save(self, model: Any, folder: Path) -> None:
        """Write the unwrapped model as a loadable folder."""


@dataclass
class TrainerState:
    step: int = 0
    total_steps: int = 0
    examples_seen: int = 0
    best_step: int | None = None
    best_metrics: dict[str, float] | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    start_metrics: dict[str, float] | None = None


@dataclass
class TrainingResult:
    state: TrainerState
    best_dir: Path
    log_path: Path
    resumed_from: int | None = None
    seconds: float = 0.0
    processes: int = 1


def learning_rate_at(step: int, total: int, settings: LoopSettings) -> float:
    """Linear warmup over `warmup_ratio` of the steps, then linear decay to zero."""
    warmup = int(total * settings.warmup_ratio)
    if step < warmup:
        return settings.learning_rate * (step + 1) / warmup
    return settings.learning_rate * max(0.0, (total - step) / max(1, total - warmup))


def improved(metrics: dict[str, float], best: dict[str, float] | None, select_by: str) -> bool:
    """Whether `metrics` beat `best` on `select_by`; a dev split too small to measure it keeps the latest."""
    if best is None or select_by not in metrics or select_by not in best:
        return True
    if HIGHER_IS_BETTER[select_by]:
        return metrics[select_by] > best[select_by]
    return metrics[select_by] < best[select_by]


def train_loop(
    task: Task,
    settings: LoopSettings,
    out_dir: str | Path,
    *,
    resume: bool = False,
    use_cpu: bool | None = None,
    description: str = "training",
    settings_key: str = "training",
    callbacks: Sequence[Callable[[TrainerState], None]] = (),
) -> TrainingResult:
    """Train `task.model` and keep its best dev checkpoint in `out_dir/.best/`.

    With `resume`, continue from the latest checkpoint in `out_dir` at the same step, with the
    same data order and random state; a finished run returns at once. Otherwise previous
    scratch in `out_dir` is discarded. `callbacks` run after every optimizer step. Errors name
    the recipe keys of `settings` by `settings_key`.

    `use_cpu` (default: when no GPU is visible) trains on the CPU; several processes started by
    a launcher (`accelerate launch --multi_gpu --num_processes N` or `torchrun`) then
    communicate over gloo.
    """
    import torch
    from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list, set_seed

    from ..accelerated import fresh_accelerator

    out_dir = Path(out_dir)
    if use_cpu is None:
        use_cpu = not torch.cuda.is_available()
    checkpoints, best_root, log_path = out_dir / CHECKPOINTS, out_dir / BEST, out_dir / LOG
    accelerator = fresh_accelerator(
        mixed_precision=training_mixed_precision(settings.mixed_precision, use_cpu),
        cpu=use_cpu,
        # Encoders carry layers a student never uses (e.g. BERT's pooler), which DDP must skip.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    main = accelerator.is_main_process
    world = accelerator.num_processes
    if settings.batch_size % world:
        raise MintError(
            f"{settings_key}.batch_size {settings.batch_size} must be divisible by the {world} processes "
            "(it counts examples per forward pass over all processes)"
        )

    done = checkpoints / DONE
    if resume and done.is_file():
        state = TrainerState(**read_json(done))
        log.info("%s already finished at step %d; nothing to resume", description, state.step)
        return TrainingResult(
            state,
            _best_dir(best_root, state.best_step),
            log_path,
            resumed_from=state.step,
            processes=world,
        )

    set_seed(settings.seed)
    schedule = BatchSchedule(
        task.num_examples(),
        settings.batch_size,
        settings.seed,
        task.batch_footprints(),
        task.batch_groups(),
        settings_key,
    )
    accumulation = settings.gradient_accumulation
    total_steps = schedule.total_batches(settings.epochs) // accumulation
    if total_steps < 1:
        raise MintError(
            f"{description}: {schedule.total_batches(settings.epochs)} batch(es) cannot make one optimizer "
            f"step with gradient_accumulation {accumulation}; lower it or the batch size"
        )

    optimizer = torch.optim.AdamW(
        _parameter_groups(task.model, settings.weight_decay), lr=settings.learning_rate
    )
    model, optimizer = accelerator.prepare(task.model, optimizer)

    state = TrainerState(total_steps=total_steps)
    latest = _latest_checkpoint(checkpoints) if resume else None
    if latest is not None:
        accelerator.load_state(str(latest))
        state = TrainerState(**read_json(latest / STATE))
        log.info(
            "%s: resuming at step %d of %d from %s",
            description,
            state.step,
            state.total_steps,
            latest,
        )
    if main:
        _prepare_scratch(out_dir, state, fresh=latest is None)
    accelerator.wait_for_everyone()

    def evaluate_and_select() -> bool:
        """Dev-evaluate on the main process, keep the best model, return whether to stop (all processes)."""
        stop = False
        if main:
            with accelerator.autocast():  # dev figures at the precision the model trains in
                metrics = task.evaluate(accelerator.unwrap_model(model))
            if settings.select_by not in metrics:
                log.warning(
                    "%s: the dev split is too small to measure %s; keeping the latest model",
                    description,
                    settings.select_by,
                )
            if state.step == 0:
                state.start_metrics = metrics
            better = improved(metrics, state.best_metrics, settings.select_by)
            if better:
                _save_best(task, accelerator.unwrap_model(model), best_root, state.step)
                state.best_step, state.best_metrics, state.evals_without_improvement = (
                    state.step,
                    metrics,
                    0,
                )
            else:
                state.evals_without_improvement += 1
            with JsonlAppender(log_path) as appender:
                appender.write_batch([{"step": state.step, "dev": metrics, "best": better}])
            log.info(
                "%s step %d dev %s%s",
                description,
                state.step,
                _format(metrics),
                " (best)" if better else "",
            )
            patience = settings.early_stopping_patience
            stop = patience is not None and state.evals_without_improvement >= patience
        flag = [stop]
        if world > 1:
            broadcast_object_list(flag)
        return bool(flag[0])

    clock = time.perf_counter()
    resumed_from = state.step if latest is not None else None
    if latest is None and task.evaluate_at_start:
        model.train()
        state.stopped_early = evaluate_and_select()
    model.train()
    with (
        _progress(description, total_steps, state.step, main) as bar,
        _appender(log_path, main) as appender,
    ):
        while state.step < total_steps and not state.stopped_early:
            losses = []
            for micro in range(accumulation):
                epoch, batch = schedule.locate(state.step * accumulation + micro)
                indices = process_share(batch, accelerator.process_index, world)
                sync = (
                    contextlib.nullcontext()
                    if micro == accumulation - 1
                    else accelerator.no_sync(model)
                )
                with sync, accelerator.autocast():
                    loss = task.loss(model, indices, world > 1) / accumulation
                    accelerator.backward(loss)
                losses.append(loss.detach())
            rate = learning_rate_at(state.step, total_steps, settings)
            for group in optimizer.param_groups:
                group["lr"] = rate
            accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.examples_seen += settings.batch_size * accumulation
            step_loss = accelerator.reduce(torch.stack(losses).sum(), reduction="mean").item()
            if main:
                appender.write_batch(
                    [
                        {
                            "step": state.step,
                            "epoch": round(
                                epoch
                                + _fraction_of_epoch(schedule, state.step * accumulation, epoch),
                                4,
                            ),
                            "loss": step_loss,
                            "learning_rate": rate,
                            "examples": state.examples_seen,
                            "seconds": round(time.perf_counter() - clock, 2),
                        }
                    ]
                )
            bar.advance(1, examples=settings.batch_size * accumulation)
            last = state.step == total_steps
            if last or (settings.eval_every and state.step % settings.eval_every == 0):
                state.stopped_early = evaluate_and_select() and not last
                model.train()
            if not last and not state.stopped_early and state.step % settings.checkpoint_every == 0:
                _checkpoint(accelerator, state, checkpoints, best_root)
            for callback in callbacks:
                callback(state)
    if main:
        _finish(checkpoints, state, best_root)
    accelerator.wait_for_everyone()
    # prepare() wrapped the caller's model in the training autocast; later use runs at full precision.
    accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    if state.stopped_early:
        log.info(
            "%s stopped early at step %d: no dev improvement in %d evaluations",
            description,
            state.step,
            settings.early_stopping_patience,
        )
    return TrainingResult(
        state,
        _best_dir(best_root, state.best_step),
        log_path,
        resumed_from,
        time.perf_counter() - clock,
        world,
    )


def _parameter_groups(model: Any, weight_decay: float) -> list[dict]:
    """Trainable parameters; biases and normalisation weights get no weight decay."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "norm" in name.lower() else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _fraction_of_epoch(schedule: BatchSchedule, position: int, epoch: int) -> float:
    before = sum(len(schedule.epoch(e)) for e in range(epoch))
    return (position - before) / len(schedule.epoch(epoch))


def _format(metrics: dict[str, float]) -> str:
    return " ".join(f"{key} {value:.4f}" for key, value in metrics.items())


def _progress(description: str, total: int, completed: int, main: bool):
    """A progress bar on the main process only."""
    if not main:
        return contextlib.nullcontext(Bar(None, None))
    return progress_bar(description, total, unit="step", completed=completed)


@contextlib.contextmanager
def _appender(path: Path, main: bool):
    if not main:
        yield None
        return
    with JsonlAppender(path) as appender:
        yield appender


def _best_dir(best_root: Path, step: int | None) -> Path:
    return best_root / f"step-{step or 0:06d}"


def _save_best(task: Task, model: Any, best_root: Path, step: int) -> None:
    """Save the model as the new best. The previous best stays until a checkpoint records this
    one (`_keep_only_best`): a run resumed from an older checkpoint may replay this step without
    its evaluation winning again, and then needs the best that checkpoint names."""
    target = _best_dir(best_root, step)
    staging = best_root / f".tmp-{target.name}"
    shutil.rmtree(staging, ignore_errors=True)
    task.save(model, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _keep_only_best(best_root: Path, step: int | None) -> None:
    keep = _best_dir(best_root, step).name
    for folder in best_root.glob("*"):
        if folder.name != keep:
            shutil.rmtree(folder, ignore_errors=True)


def _latest_checkpoint(checkpoints: Path) -> Path | None:
    found = sorted(checkpoints.glob("step-*")) if checkpoints.is_dir() else []
    return found[-1] if found else None


def _prepare_scratch(out_dir: Path, state: TrainerState, fresh: bool) -> None:
    """Fresh: clear old scratch and log. Resumed: drop what was written after the checkpoint."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / LOG
    if fresh:
        for folder in (out_dir / CHECKPOINTS, out_dir / BEST):
            shutil.rmtree(folder, ignore_errors=True)
        log_path.unlink(missing_ok=True)
        return
    _keep_only_best(out_dir / BEST, state.best_step)
    if log_path.exists():
        write_jsonl_atomic(log_path, [r for r in read_jsonl(log_path) if r["step"] <= state.step])


def _checkpoint(accelerator: Any, state: TrainerState, checkpoints: Path, best_root: Path) -> None:
    """Save a resumable checkpoint: staged in a temporary folder, renamed when complete."""
    target = checkpoints / f"step-{state.step:06d}"
    staging = checkpoints / f".tmp-{target.name}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(staging / STATE, asdict(state))
        staging.rename(target)
        for older in checkpoints.glob("step-*"):
            if older != target:
                shutil.rmtree(older, ignore_errors=True)
        _keep_only_best(best_root, state.best_step)
    accelerator.wait_for_everyone()


def _finish(checkpoints: Path, state: TrainerState, best_root: Path) -> None:
    """Mark training finished and free the checkpoints (the best model is kept in `.best`)."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_json_atomic(checkpoints / DONE, asdict(state))
    _keep_only_best(best_root, state.best_step)
    for folder in checkpoints.glob("*step-*"):
        shutil.rmtree(folder, ignore_errors=True)
