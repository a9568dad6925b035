"""Run stages in order, skipping fresh ones and resuming interrupted ones."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock
import yaml

from ..errors import CannotRunError, MintError, RunLockedError
from ..io import read_json, sha256_tree, write_json_atomic, write_text_atomic
from ..memory import release_freed_memory
from ..recipe import Recipe
from ..recipe.precision import with_auto_resolved
from .manifest import (
    IN_PROGRESS,
    MANIFEST,
    FileHashCache,
    fingerprint,
    library_versions,
    matches,
    read_manifest,
    read_record,
)
from .registry import Stage, all_stages, stage_problems

log = logging.getLogger("mint_distill")


@dataclass
class StageContext:
    """What a stage sees: the recipe, its own folder, and the folders of the stages it reads."""

    recipe: Recipe
    stage: Stage
    dir: Path
    run_root: Path
    resuming: bool
    quiet: bool = False

    def upstream(self, name: str) -> Path:
        if name not in self.stage.after:
            raise KeyError(f"stage `{self.stage.name}` does not declare that it reads `{name}`")
        return self.run_root / name

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"mint_distill.{self.stage.name}")


@dataclass
class StageState:
    stage: Stage
    status: str  # "fresh", "stale", "partial", "missing", "disabled"
    expected: dict


@dataclass
class RunResult:
    run_root: Path
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_root_of(recipe: Recipe) -> Path:
    return Path(recipe.run_dir) / recipe.name


def config_dump(recipe: Recipe) -> dict[str, Any]:
    """The recipe as stage configs and fingerprints read it: its JSON dump with each `auto`
    precision resolved, so a fingerprint follows the arithmetic the stage does."""
    return with_auto_resolved(recipe.model_dump(mode="json"))


def stage_states(recipe: Recipe, stages: list[Stage] | None = None) -> list[StageState]:
    """Freshness of every stage given what is on disk now (upstream stages assumed as they are)."""
    run_root = run_root_of(recipe)
    hashes = FileHashCache(run_root / ".file-hashes.json")
    dump = config_dump(recipe)
    states = []
    for stage in stages if stages is not None else all_stages():
        if not stage.enabled(recipe):
            states.append(StageState(stage, "disabled", {}))
            continue
        expected = _expected_fingerprint(stage, recipe, dump, run_root, hashes)
        stage_dir = run_root / stage.name
        manifest = read_manifest(stage_dir)
        if matches(manifest, expected):
            status = "fresh"
        elif matches(read_record(stage_dir / IN_PROGRESS), expected):
            status = "partial"
        else:
            status = "stale" if manifest else "missing"
        states.append(StageState(stage, status, expected))
    return states


def _expected_fingerprint(stage: Stage, recipe: Recipe, dump: dict, run_root: Path, hashes: FileHashCache) -> dict:
    upstream = {}
    for name in stage.after:
        manifest = read_manifest(run_root / name)
        upstream[name] = manifest.get("output_hash") if manifest else None
    return fingerprint(stage.config(dump), stage.version, upstream, _input_file_digests(stage, recipe, hashes))


def _input_file_digests(stage: Stage, recipe: Recipe, hashes: FileHashCache) -> dict[str, str]:
    files = {}
    for path in [*stage.input_files(recipe), *_local_model_files(stage, recipe)]:
        path = Path(path)
        files[str(path)] = hashes.sha256(path) if path.is_file() else "missing"
    return files


def _local_model_files(stage: Stage, recipe: Recipe) -> list[Path]:
    """The files of each model folder on this machine that the stage loads (weights, config,
    tokenizer): retraining a local baseline makes the stages that read it stale, as a changed
    recipe key does. Embedded models are fixed by their registry, hub ids by their name."""
    from ..models.resolver import EMBEDDED_PREFIX, setup_files, weight_files
    from ..validation import model_references  # here: validation imports this package

    files: list[Path] = []
    for key, reference in model_references(recipe).items():
        folder = Path(reference).expanduser()
        if stage.reads(key) and not reference.startswith(EMBEDDED_PREFIX) and folder.is_dir():
            files += weight_files(folder) + setup_files(folder)
    return files


def run_pipeline(
    recipe: Recipe,
    *,
    stages: list[Stage] | None = None,
    from_stage: str | None = None,
    until: str | None = None,
    force: tuple[str, ...] = (),
    quiet: bool = False,
) -> RunResult:
    """Run the enabled stages in order.

    A stage whose manifest matches the recipe keys it depends on, its input files and its
    upstream outputs is skipped. `force` reruns the named stages; `from_stage` reruns that stage
    and every later one, keeping earlier outputs; `until` stops after the named stage. A stage
    interrupted with the same fingerprint resumes in its folder (`ctx.resuming`), a forced one
    too when the same command runs again (`_ForcedRun`).
    """
    stages = [s for s in (stages if stages is not None else all_stages()) if s.enabled(recipe)]
    names = [s.name for s in stages]
    for name in (from_stage, until, *force):
        if name is not None and name not in names:
            raise MintError(f"unknown or disabled stage `{name}`; stages of this recipe: {', '.join(names)}")
    start = names.index(from_stage) if from_stage else 0
    stop = names.index(until) + 1 if until else len(names)
    if start >= stop:
        raise MintError(f"--from {from_stage} comes after --until {until}: no stage would run")
    beyond = [name for name in force if names.index(name) >= stop]
    if beyond:
        raise MintError(f"--force {', '.join(beyond)}: after --until {until}, so it would not run")
    before = [name for name in force if names.index(name) < start]
    if before:
        raise MintError(f"--force {', '.join(before)}: before --from {from_stage}, so it would not run")

    run_root = run_root_of(recipe)
    try:
        run_root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MintError(f"run_dir: cannot create the run folder {run_root}: {error.strerror}") from None
    result = RunResult(run_root)
    with RunLock(run_root), _LogToFile(run_root / "run.log"), _SigtermAsInterrupt():
        forced_run = _ForcedRun(run_root, {*force, *(names[start:stop] if from_stage else ())})
        forced_stages = forced_run.still_to_force()
        refuse_what_would_stop_a_stage(recipe, stages[start:stop], forced_stages)
        write_text_atomic(run_root / "recipe.yaml", yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
        for index, stage in enumerate(stages[:stop]):
            state = next(s for s in stage_states(recipe, [stage]))
            if index < start:
                if state.status != "fresh":
                    if read_manifest(run_root / stage.name) is None:
                        raise MintError(
                            f"--from {from_stage}: the earlier stage `{stage.name}` has not finished; "
                            "run without --from first"
                        )
                    log.warning("stage %s is %s but --from %s keeps its outputs", stage.name, state.status, from_stage)
                result.skipped.append(stage.name)
                continue
            forced = stage.name in forced_stages
            if state.status == "fresh" and not forced:
                log.info("stage %-18s fresh, skipped", stage.name)
                result.skipped.append(stage.name)
                continue
            reused = None if forced or not recipe.reuse_stages else _reuse_from_sibling(stage, state, run_root)
            if reused is not None:
                result.summaries[stage.name] = reused
                result.reused.append(stage.name)
                continue
            if forced:
                forced_run.starting(stage.name)
            result.summaries[stage.name] = _run_stage(stage, state, recipe, run_root, quiet, forced)
            result.ran.append(stage.name)
        forced_run.done()
    return result


class _ForcedRun:
    """The stages a `--force` / `--from` run has started, kept in the run folder until it ends.

    Run again after an interrupt, the same command forces only the stages it had not reached:
    the ones it redid are fresh, and the one it was in resumes instead of starting over.
    """

    FILE = ".forced-run.json"

    def __init__(self, run_root: Path, forced: set[str]):
        self.path = run_root / self.FILE
        self.forced = sorted(forced)
        previous = read_json(self.path) if self.path.is_file() else {}
        self.started: list[str] = previous.get("started", []) if previous.get("forced") == self.forced else []

    def still_to_force(self) -> set[str]:
        return set(self.forced) - set(self.started)

    def starting(self, stage: str) -> None:
        self.started.append(stage)
        write_json_atomic(self.path, {"forced": self.forced, "started": self.started})

    def done(self) -> None:
        self.path.unlink(missing_ok=True)


def upstream_states(recipe: Recipe, stages: list[Stage]) -> list[StageState]:
    """The states of the enabled stages that `stages` read, directly or through others, in
    pipeline order. A stage's own state assumes its upstream outputs as they are on disk, so it
    is up to date only when these are fresh too."""
    enabled = {stage.name: stage for stage in all_stages() if stage.enabled(recipe)}
    selected = {stage.name for stage in stages}
    read, pending = set(), [name for stage in stages for name in stage.after]
    while pending:
        name = pending.pop()
        if name not in read and name not in selected and name in enabled:
            read.add(name)
            pending.extend(enabled[name].after)
    return stage_states(recipe, [stage for name, stage in enabled.items() if name in read])


def refuse_unfinished_upstream(recipe: Recipe, stages: list[Stage], *, unfinished_ok: bool = False) -> None:
    """For a command that runs `stages` alone (`train`, `evaluate`): raise unless every stage they
    read, directly or through others, is fresh. A stale one would leave them "fresh" on old inputs,
    or retrain them on those. With `unfinished_ok`, an upstream stage that never finished (missing
    or interrupted) is allowed: the evaluation ranks without the students it lacks."""
    selected = {stage.name for stage in stages}
    states = upstream_states(recipe, stages)
    allowed = ("fresh", "missing", "partial") if unfinished_ok else ("fresh",)
    behind = [s for s in states if s.status not in allowed]
    if behind:
        names = ", ".join(f"{s.stage.name} ({s.status})" for s in behind)
        raise MintError(
            f"{', '.join(sorted(selected))} read stages that are not up to date in {run_root_of(recipe)}: {names}; "
            f"run `mint-distill run RECIPE --until {behind[-1].stage.name}` first"
        )


def refuse_what_would_stop_a_stage(recipe: Recipe, stages: list[Stage], forced: set[str]) -> None:
    """Raise before anything runs if a stage that may run reports a problem (`Stage.check`) or
    reads a model that is not here, as `mint-distill validate` would: a bad value read by a late
    stage would otherwise surface only after the earlier stages had run. The stages that may run
    are the first stale or forced one and every one after it."""
    from ..validation import resolve_models  # here: validation imports this package

    states = stage_states(recipe, stages)
    first = next((i for i, state in enumerate(states) if state.status != "fresh" or state.stage.name in forced), len(states))
    _, problems = resolve_models(recipe, stages[first:])
    problems += stage_problems(recipe, stages[first:])
    if problems:
        raise CannotRunError(problems)


def reusable_sibling(stage: Stage, state: StageState, run_root: Path) -> Path | None:
    """Another run's finished folder of `stage`, under the same run_dir, with the fingerprint
    `state` expects."""
    for manifest_path in sorted(run_root.parent.glob(f"*/{stage.name}/{MANIFEST}")):
        source = manifest_path.parent
        if source.parent.resolve() != run_root.resolve() and matches(read_manifest(source), state.expected):
            return source
    return None


def _reuse_from_sibling(stage: Stage, state: StageState, run_root: Path) -> dict | None:
    """Copy a finished stage with the same fingerprint from another run under the same run_dir.

    Recipes that differ only in later stages (ablations, students, keep rules) then share their
    data, teacher and generation outputs instead of recomputing them.
    """
    source = reusable_sibling(stage, state, run_root)
    if source is None:
        return None
    manifest = read_manifest(source)
    copy_finished_stage(source, run_root / stage.name, {**manifest, "reused_from": str(source)})
    log.info("stage %-18s reused from %s", stage.name, source)
    return manifest.get("summary", {})


def copy_finished_stage(source: Path, target: Path, manifest: dict) -> None:
    """Replace `target` with the finished stage folder `source`, hard-linked where possible,
    and `manifest` written last: a copy cut short is never taken for a finished stage. Files are
    linked, not copied, because stages never modify finished outputs in place (reruns start from
    an empty folder). Scratch files (dot-files) are left out."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=_dot_files_and_manifest, copy_function=_link_or_copy)
    write_json_atomic(target / MANIFEST, manifest)


def _dot_files_and_manifest(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name.startswith(".") or name == MANIFEST]


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _run_stage(stage: Stage, state: StageState, recipe: Recipe, run_root: Path, quiet: bool, forced: bool) -> dict:
    stage_dir = run_root / stage.name
    resuming = state.status == "partial" and not forced
    if not resuming and stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stage_dir / IN_PROGRESS, state.expected)
    (stage_dir / MANIFEST).unlink(missing_ok=True)
    started = datetime.now(timezone.utc)
    log.info("stage %-18s %s", stage.name, "resuming" if resuming else "running")
    clock = time.perf_counter()
    try:
        summary = stage.run(StageContext(recipe, stage, stage_dir, run_root, resuming, quiet)) or {}
    except KeyboardInterrupt:
        log.warning("interrupted during stage %s; run the same command again to resume it", stage.name)
        raise
    seconds = time.perf_counter() - clock
    manifest = {
        "stage": stage.name,
        **_with_inputs_it_fetched(state.expected, stage, recipe, run_root),
        "config": stage.config(config_dump(recipe)),
        "stage_version": stage.version,
        "output_hash": sha256_tree(stage_dir, exclude=(MANIFEST, *stage.reports)),
        "versions": library_versions(),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "summary": summary,
    }
    write_json_atomic(stage_dir / MANIFEST, manifest)
    (stage_dir / IN_PROGRESS).unlink(missing_ok=True)
    for folder in stage.scratch:
        shutil.rmtree(stage_dir / folder, ignore_errors=True)
    log.info("stage %-18s done in %.1f s", stage.name, seconds)
    release_freed_memory()
    return summary


def _with_inputs_it_fetched(expected: dict, stage: Stage, recipe: Recipe, run_root: Path) -> dict:
    """`expected` with the input files that were not there when the stage started (a dataset
    its run downloaded) as they are now, so that the next run does not find the stage stale.
    Files that were there keep the hash they had when the stage read them."""
    now = _input_file_digests(stage, recipe, FileHashCache(run_root / ".file-hashes.json"))
    present = {path: digest for path, digest in expected["input_files"].items() if digest != "missing"}
    return {**expected, "input_files": {**now, **present}}


class RunLock:
    """Exclusive hold on a run folder; a second run on it fails at once with the holder's pid."""

    def __init__(self, run_root: Path):
        self._lock = filelock.FileLock(str(run_root / ".lock"), timeout=0)
        self._owner = run_root / ".lock.owner"

    def __enter__(self) -> RunLock:
        try:
            self._lock.acquire()
        except filelock.Timeout:
            owner = self._owner.read_text().strip() if self._owner.exists() else "another process"
            raise RunLockedError(
                f"the run folder {self._owner.parent} is in use by {owner}; wait for it to finish "
                "or use another recipe name (recipe key `name`) or run_dir"
            ) from None
        self._owner.write_text(f"pid {os.getpid()} since {datetime.now().isoformat(timespec='seconds')}\n")
        return self

    def __exit__(self, *exc) -> None:
        self._owner.unlink(missing_ok=True)
        self._lock.release()


class _LogToFile:
    """Copy the package's log records to a file in the run folder for the duration of a run."""

    def __init__(self, path: Path):
        self._handler = logging.FileHandler(path, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def __enter__(self) -> None:
        logging.getLogger("mint_distill").addHandler(self._handler)

    def __exit__(self, *exc) -> None:
        logging.getLogger("mint_distill").removeHandler(self._handler)
        self._handler.close()


class _SigtermAsInterrupt:
    """Turn SIGTERM into KeyboardInterrupt so stages unwind the same way on both signals."""

    def __enter__(self) -> None:
        self._previous = None
        try:
            self._previous = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not in the main thread
            pass

    @staticmethod
    def _raise(signum, frame) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
