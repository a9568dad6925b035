"""LoRA (or QLoRA) supervised tuning of a causal LM on seed pairs, with loss on the request only.

The training prompt is the generator's prompt (few-shot examples drawn from the other train
seeds, then the seed's own history), so the tuned teacher sees at generation exactly the format
it was trained on. The loop is plain PyTorch under an `Accelerator`: one process on a CPU, or
`accelerate launch` over several devices. Every `checkpoint_every` optimizer steps, and after
the last, the adapter, optimizer, scheduler and RNG state go to `<output>/.checkpoints/`; a rerun
resumes at the same step with the same data order, or, once training has finished, only saves
the adapter again. With `select_by: dev_loss` the adapter with the lowest dev loss so far waits
in `<output>/.checkpoints/best/` and is the one saved at the end. The tune-teacher stage removes
`.checkpoints` once its manifest is written.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..console import progress_bar
from ..errors import DataError
from ..io import atomic_path, read_json, write_json_atomic
from ..recipe.sections.teacher import PromptSpec, TuningSpec
from .histories import Seed
from .prompts import PromptBuilder, PromptTemplate, prompt_rng

log = logging.getLogger(__name__)

CHECKPOINTS = ".checkpoints"
BEST = "best"
ADAPTER = "adapter"
WEIGHTS = "adapter.safetensors"
BEST_RECORD = {"step": int, "epoch": float, "dev_loss": float}  # kept in the best weights' metadata


@dataclass
class TunedTeacher:
    """The outcome of `tune_teacher`: the trained PEFT model (in memory), its tokenizer, the summary."""

    model: object
    tokenizer: object
    summary: dict


@dataclass(frozen=True)
class TuningExample:
    """Token ids of prompt + target; the last `target_length` of them carry the loss."""

    input_ids: tuple[int, ...]
    target_length: int


def build_examples(
    builder: PromptBuilder,
    seeds: list[Seed],
    *,
    seed: int,
    prompt_seed: int,
    epoch: int,
    max_length: int,
) -> list[TuningExample]:
    """One example per seed, in an order seeded by `seed` per epoch, with few-shot examples drawn
    per epoch too, seeded by `prompt_seed` (`teacher.prompt.seed`).

    A prompt that would not fit `max_length` beside its target drops whole examples (then items),
    as generation's token budget does, rather than lose its start: the teacher is tuned on
    prompts shaped like the ones it will answer."""
    order = list(range(len(seeds)))
    prompt_rng(seed, "order", epoch).shuffle(order)
    examples = []
    for index in order:
        current = seeds[index]
        prompt, _ = builder.training_pair(current, prompt_rng(prompt_seed, "tune", epoch, current.seed_id))
        target_ids = builder.target_ids(prompt, current.request)[: max_length - 1]
        if prompt.num_tokens + len(target_ids) > max_length:
            budget = max(max_length - len(target_ids), 1)
            prompt = builder.build(current.history, prompt_rng(prompt_seed, "tune", epoch, current.seed_id), budget)
            target_ids = builder.target_ids(prompt, current.request)[: max_length - 1]
        prompt_ids = builder.tokenizer(prompt.text, add_special_tokens=builder.add_special_tokens)[
            "input_ids"
        ]
        keep = max_length - len(target_ids)
        # A user block alone over the budget still keeps its end, next to the target.
        examples.append(TuningExample(tuple(prompt_ids[-keep:] + target_ids), len(target_ids)))
    return examples


def collate(examples: list[TuningExample], pad_id: int) -> dict:
    """Left-padded batch: every target ends at the last position, so logits are only needed there."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    tail = max(e.target_length for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), tail), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        ids = torch.tensor(example.input_ids, dtype=torch.long)
        input_ids[row, width - len(ids) :] = ids
        attention[row, width - len(ids) :] = 1
        labels[row, tail - example.target_length :] = ids[len(ids) - example.target_length :]
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "position_ids": positions,
        "labels": labels,
    }


def request_loss(model, batch: dict, reduction: str = "mean"):
    """Cross-entropy of the target tokens only; computes the LM head on the last positions alone."""
    import torch.nn.functional as F

    labels = batch["labels"]
    tail = labels.shape[1]
    output = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=tail + 1,
        use_cache=False,
    )
    logits = output.logits[:, :-1].float()
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=-100,
        reduction=reduction,
    )


def tune_teacher(
    model_reference: str,
    seeds: list[Seed],
    output_dir: str | Path,
    *,
    tuning: TuningSpec | None = None,
    prompt: PromptSpec | None = None,
    template: PromptTemplate | None = None,
    trust_remote_code: bool = False,
) -> TunedTeacher:
    """Tune a LoRA adapter on the train seeds and save it to `<output_dir>/adapter`.

    The summary holds steps, losses, dev loss before and after, and timings. Resumes from the
    last checkpoint under `<output_dir>/.checkpoints` when one exists.
    """
    import torch
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    from ..accelerated import fresh_accelerator
    from ..models import resolve_model
    from ..models.loading import load_tokenizer
    from ..models.precision import training_mixed_precision

    tuning, prompt = tuning or TuningSpec(), prompt or PromptSpec()
    output_dir = Path(output_dir)
    train = [s for s in seeds if s.split == "train"]
    dev = [s for s in seeds if s.split == "dev"]
    if not train:
        raise DataError("teacher.tuning.seeds: the seed file has no `train` records")
    if tuning.select_by == "dev_loss" and not dev:
        raise DataError("teacher.tuning.select_by: dev_loss needs `dev` records in the seed file")

    on_cpu = not torch.cuda.is_available()
    accelerator = fresh_accelerator(
        cpu=on_cpu,
        mixed_precision=training_mixed_precision(tuning.mixed_precision, use_cpu=on_cpu),
        gradient_accumulation_steps=tuning.gradient_accumulation,
    )
    set_seed(tuning.seed)
    resolved = resolve_model(model_reference)
    tokenizer = load_tokenizer(resolved, trust_remote_code=trust_remote_code)
    model = _lora_model(resolved, tuning, trust_remote_code)
    builder = PromptBuilder(
        tokenizer,
        train,
        template=template,
        num_examples=prompt.num_examples,
        max_tokens=prompt.max_tokens,
        chat=prompt.chat,
    )

    per_epoch = math.ceil(len(train) / tuning.batch_size) // accelerator.num_processes
    if per_epoch == 0:
        raise DataError(
            f"teacher.tuning: {len(train)} train seeds cannot fill one batch on each of {accelerator.num_processes} processes"
        )
    total_steps = max(1, math.ceil(tuning.epochs * per_epoch / tuning.gradient_accumulation))
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=tuning.learning_rate,
        weight_decay=tuning.weight_decay,
    )
    # A prepared scheduler steps once per process at each optimizer step (Accelerate's convention).
    scheduler = get_scheduler(
        "linear",
        optimizer,
        num_warmup_steps=round(tuning.warmup_ratio * total_steps) * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    checkpoints = Checkpoints(output_dir / CHECKPOINTS)
    best = BestAdapter(output_dir / CHECKPOINTS / BEST) if tuning.select_by == "dev_loss" else None
    state = checkpoints.restore(accelerator.unwrap_model(model), optimizer, scheduler)

    def dev_loss() -> float | None:
        return _dev_loss(accelerator, model, builder, dev, tuning, prompt.seed, tokenizer.pad_token_id)

    if state["step"] == 0:
        state["dev_loss_before"] = dev_loss()

    clock, cpu_clock = time.perf_counter(), time.process_time()
    model.train()
    epochs_cache: dict[int, list[list[TuningExample]]] = {}
    total_batches = total_steps * tuning.gradient_accumulation
    with progress_bar(
        "tuning teacher", total=total_batches, unit="batch", completed=state["batches"]
    ) as bar:
        for batch_index in range(state["batches"], total_batches):
            epoch, position = divmod(batch_index, per_epoch)
            if epoch not in epochs_cache:
                epochs_cache = {
                    epoch: _epoch_batches(builder, train, tuning, prompt.seed, epoch, accelerator)
                }
            batch = {
                k: v.to(accelerator.device)
                for k, v in collate(epochs_cache[epoch][position], tokenizer.pad_token_id).items()
            }
            with accelerator.accumulate(model):
                loss = request_loss(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), tuning.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["batches"] = batch_index + 1
            state["window"].append(accelerator.reduce(loss.detach(), "mean").item())
            bar.advance(1, tokens=int(batch["attention_mask"].sum()) * accelerator.num_processes)
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            entry = {
                "step": state["step"],
                "epoch": round(state["batches"] / per_epoch, 3),
                "loss": sum(state["window"]) / len(state["window"]),
                "lr": scheduler.get_last_lr()[0],
            }
            step_start = state["batches"] - tuning.gradient_accumulation
            if dev and state["batches"] // per_epoch > step_start // per_epoch:  # an epoch ended within
                entry["dev_loss"] = dev_loss()
                log.info("teacher step %d (epoch %.2f): dev loss %.4f", entry["step"], entry["epoch"], entry["dev_loss"])
                if best is not None:
                    best.offer(accelerator, model, entry)
            state["log"].append(entry)
            state["window"] = []
            if state["step"] % tuning.checkpoint_every == 0 or state["step"] == total_steps:
                state["seconds"] += time.perf_counter() - clock
                state["cpu_seconds"] += time.process_time() - cpu_clock
                clock, cpu_clock = time.perf_counter(), time.process_time()
                checkpoints.save(accelerator, model, optimizer, scheduler, state)
    state["seconds"] += time.perf_counter() - clock
    state["cpu_seconds"] += time.process_time() - cpu_clock
    model.eval()
    last = state["log"][-1] if state["log"] else {}
    # the last step ends an epoch when `epochs` is whole: its dev loss is already known
    dev_last = last["dev_loss"] if "dev_loss" in last else dev_loss()
    kept = {"step": state["step"], "epoch": last.get("epoch"), "dev_loss": dev_last}
    best_so_far = best.record() if best is not None else None
    if best_so_far is not None and best_so_far["dev_loss"] < dev_last:
        best.load_into(accelerator.unwrap_model(model))
        kept = best_so_far
        log.info("teacher: keeping step %d (epoch %s), dev loss %.4f", kept["step"], kept["epoch"], kept["dev_loss"])
    if accelerator.is_main_process:
        _save_adapter(accelerator.unwrap_model(model), output_dir)
        write_json_atomic(output_dir / "log.json", state["log"])
    accelerator.wait_for_everyone()
    network = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    losses = [entry["loss"] for entry in state["log"]]
    summary = {
        "base_model": model_reference,
        "base_weights_sha256": resolved.weights_sha256(),
        "quantization": "4bit" if tuning.qlora else "none",
        "mixed_precision": accelerator.mixed_precision,
        "train_seeds": len(train),
        "dev_seeds": len(dev),
        "prompt_tokens_mean": round(
            sum(
                builder.build(s.history, prompt_rng(prompt.seed, "tune", 0, s.seed_id)).num_tokens
                for s in train
            )
            / len(train),
            1,
        ),
        "steps": state["step"],
        "epochs": tuning.epochs,
        "processes": accelerator.num_processes,
        "trainable_parameters": sum(p.numel() for p in network.parameters() if p.requires_grad),
        "train_loss_first": round(losses[0], 4) if losses else None,
        "train_loss_last": round(losses[-1], 4) if losses else None,
        "dev_loss_before": state["dev_loss_before"],
        "dev_loss_after": kept["dev_loss"],
        "dev_loss_by_epoch": {str(entry["epoch"]): entry["dev_loss"] for entry in state["log"] if "dev_loss" in entry},
        "select_by": tuning.select_by,
        "kept_step": kept["step"],
        "kept_epoch": kept["epoch"],
        "resumed_from_step": state["resumed_from"],
        "train_seconds": round(state["seconds"], 1),
        "train_cpu_seconds": round(state["cpu_seconds"], 1),
    }
    return TunedTeacher(network, tokenizer, summary)


def _lora_model(resolved, tuning: TuningSpec, trust_remote_code: bool):
    """The base causal LM (4-bit for QLoRA) with fresh LoRA layers on `tuning.lora.target_modules`."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from ..models.loading import load_language_model

    model = load_language_model(
        resolved,
        model_type="causal",
        quantization="4bit" if tuning.qlora else "none",
        trust_remote_code=trust_remote_code,
    )
    if tuning.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.config.use_cache = False
    lora = LoraConfig(
        r=tuning.lora.r,
        lora_alpha=tuning.lora.alpha,
        lora_dropout=tuning.lora.dropout,
        target_modules=tuning.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _save_adapter(network, output_dir: Path) -> None:
    """`save_pretrained` into a scratch folder, then swap it in: a reader never sees half an adapter."""
    staging = output_dir / f".{ADAPTER}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    network.save_pretrained(staging)
    shutil.rmtree(output_dir / ADAPTER, ignore_errors=True)
    staging.rename(output_dir / ADAPTER)


def _write_weights(network, path: Path, metadata: dict[str, str] | None = None) -> None:
    """The trainable (LoRA) weights as safetensors, renamed into place once written."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    weights = get_peft_model_state_dict(network)
    with atomic_path(path) as staging:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, staging, metadata)


def _epoch_batches(
    builder, train, tuning: TuningSpec, prompt_seed: int, epoch: int, accelerator
) -> list[list[TuningExample]]:
    """This process's batches of one epoch (equal counts on every process)."""
    examples = build_examples(
        builder,
        train,
        seed=tuning.seed,
        prompt_seed=prompt_seed,
        epoch=epoch,
        max_length=tuning.max_length,
    )
    batches = [
        examples[i : i + tuning.batch_size] for i in range(0, len(examples), tuning.batch_size)
    ]
    usable = len(batches) // accelerator.num_processes * accelerator.num_processes
    return batches[:usable][accelerator.process_index :: accelerator.num_processes]


def _dev_loss(
    accelerator, model, builder, dev, tuning: TuningSpec, prompt_seed: int, pad_id: int
) -> float | None:
    """Mean request-token loss over the dev seeds (their prompts fixed across evaluations)."""
    import torch

    if not dev:
        return None
    examples = build_examples(
        builder, dev, seed=tuning.seed, prompt_seed=prompt_seed, epoch=-1, max_length=tuning.max_length
    )
    mine = examples[accelerator.process_index :: accelerator.num_processes]
    network = accelerator.unwrap_model(model)
    was_training = network.training
    network.eval()
    totals = torch.zeros(2, device=accelerator.device)
    with torch.no_grad():
        for start in range(0, len(mine), tuning.batch_size):
            batch = {
                k: v.to(accelerator.device)
                for k, v in collate(mine[start : start + tuning.batch_size], pad_id).items()
            }
            totals[0] += request_loss(network, batch, reduction="sum")
            totals[1] += (batch["labels"] != -100).sum()
    network.train(was_training)
    totals = accelerator.reduce(totals, "sum")
    return round((totals[0] / totals[1]).item(), 4)


class Checkpoints:
    """The last resumable training state: adapter weights, optimizer, scheduler, RNG, counters."""

    def __init__(self, folder: Path):
        self.folder = folder

    def latest(self) -> Path | None:
        done = (
            sorted(p for p in self.folder.glob("step-*") if (p / "state.json").is_file())
            if self.folder.is_dir()
            else []
        )
        return done[-1] if done else None

    def restore(self, network, optimizer, scheduler) -> dict:
        """Load the latest checkpoint into the objects; return the loop state (fresh if none)."""
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        fresh = {
            "step": 0,
            "batches": 0,
            "log": [],
            "window": [],
            "seconds": 0.0,
            "cpu_seconds": 0.0,
            "dev_loss_before": None,
            "resumed_from": None,
        }
        latest = self.latest()
        if latest is None:
            return fresh
        set_peft_model_state_dict(network, load_file(latest / WEIGHTS))
        optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(latest / "scheduler.pt", weights_only=True))
        torch.set_rng_state(torch.load(latest / "rng.pt", weights_only=True))
        if torch.cuda.is_available() and (latest / "rng-cuda.pt").is_file():
            torch.cuda.set_rng_state(torch.load(latest / "rng-cuda.pt", weights_only=True))
        state = {**fresh, **read_json(latest / "state.json")}
        state["resumed_from"] = state["step"]
        log.info("resuming teacher tuning from %s (step %d)", latest, state["step"])
        return state

    def save(self, accelerator, model, optimizer, scheduler, state: dict) -> None:
        import torch

        if accelerator.is_main_process:
            target = self.folder / f"step-{state['step']:07d}"
            staging = self.folder / f".{target.name}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            _write_weights(accelerator.unwrap_model(model), staging / WEIGHTS)
            torch.save(optimizer.state_dict(), staging / "optimizer.pt")
            torch.save(scheduler.state_dict(), staging / "scheduler.pt")
            torch.save(torch.get_rng_state(), staging / "rng.pt")
            if torch.cuda.is_available():  # LoRA dropout draws from the GPU's generator there
                torch.save(torch.cuda.get_rng_state(), staging / "rng-cuda.pt")
            write_json_atomic(
                staging / "state.json",
                {k: v for k, v in state.items() if k not in ("window", "resumed_from")},
            )
            staging.rename(target)
            for older in self.folder.glob("step-*"):
                if older != target:
                    shutil.rmtree(older)
        accelerator.wait_for_everyone()


class BestAdapter:
    """The LoRA weights with the lowest dev loss so far, their step, epoch and dev loss in the
    same file's metadata: one atomic write, so weights and record always belong together, also
    when a run resumes from a checkpoint older than them."""

    def __init__(self, folder: Path):
        self.folder = folder

    def record(self) -> dict | None:
        from safetensors import safe_open

        if not (self.folder / WEIGHTS).is_file():
            return None
        with safe_open(self.folder / WEIGHTS, framework="pt") as weights:
            metadata = weights.metadata()
        return {key: kind(metadata[key]) for key, kind in BEST_RECORD.items()}

    def offer(self, accelerator, model, entry: dict) -> None:
        """Keep this step's weights if its dev loss is the lowest yet."""
        best = self.record()
        if best is not None and entry["dev_loss"] >= best["dev_loss"]:
            return
        accelerator.wait_for_everyone()  # every process has read the record before it changes
        if accelerator.is_main_process:
            record = {key: str(entry[key]) for key in BEST_RECORD}
            _write_weights(accelerator.unwrap_model(model), self.folder / WEIGHTS, record)
        accelerator.wait_for_everyone()

    def load_into(self, network) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(network, load_file(self.folder / WEIGHTS))
