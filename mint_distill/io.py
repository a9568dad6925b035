"""Atomic writes, JSON lines and hashing: the file primitives every stage uses."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _hidden_sibling(path)
    mode = _create_as_open_would(tmp_path)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)  # a writer that replaces the file (safetensors) makes it 0o600
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _hidden_sibling(target: Path) -> Path:
    """A new name beside `target` for what becomes `target` once renamed."""
    return target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"


def _create_as_open_would(path: Path) -> int:
    """Create the empty file `path` with the mode open() gives (0o666 less the umask, unlike
    mkstemp's 0o600) and return that mode; reading the umask instead would change it
    process-wide for an instant."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return os.stat(path).st_mode & 0o777


def staging_folder(target: Path) -> Path:
    """A new empty folder beside `target` to build it in before a rename, with the mode mkdir
    gives (0o777 less the umask; mkdtemp's 0o700 would hide a published bundle or export from
    other users)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _hidden_sibling(target)
    staging.mkdir()
    return staging


def output_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be written (its nearest existing parent is a file, or refuses a new
    file), or None; for checking an output before the work that makes it."""
    folder = next((parent for parent in Path(path).absolute().parents if parent.exists()), Path("/"))
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    probe = _hidden_sibling(folder / "write-probe")
    try:
        _create_as_open_would(probe)
    except OSError as error:
        return f"cannot write in {folder} ({error.strerror})"
    probe.unlink()
    return None


def publish_modes(folder: Path) -> None:
    """Give every file under `folder` the mode a new file gets here (0o666 less the umask), as
    some writers (safetensors: 0o600) keep theirs private; before the folder is published."""
    probe = _hidden_sibling(folder / "mode-probe")
    mode = _create_as_open_would(probe)
    probe.unlink()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict]) -> int:
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_json(path: str | os.PathLike) -> Any:
    """The file's JSON value; a malformed file is a DataError naming it and the line."""
    from .errors import DataError

    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield records of a JSON lines file, ignoring a torn last line left by a killed writer; a
    malformed line is a DataError naming the file and the line."""
    from .errors import DataError

    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                return
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None


def numbered_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each line of a stage's JSON lines output; a missing file or a bad
    line is a DataError naming the file (and line)."""
    from .errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found; has the stage that writes it finished? (mint-distill run RECIPE --until <stage>)")
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a UTF-8 file, a leading byte-order mark dropped; bytes
    that are not UTF-8 are a DataError naming the file and the line."""
    from .errors import DataError

    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield number, line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}, line {number}: not UTF-8 text ({error.reason})") from None


class JsonlAppender:
    """Append records to a JSON lines file, flushing and fsyncing each batch.

    A process killed mid-write leaves at most a torn last line, which `read_jsonl` skips and
    `open` truncates away before appending again, so resumed writers never duplicate or corrupt.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_torn_tail(self.path)
        self._handle = open(self.path, "a", encoding="utf-8")

    def write_batch(self, records: Iterable[dict]) -> None:
        for record in records:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _truncate_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        handle.truncate(data.rfind(b"\n") + 1)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: str | os.PathLike, exclude: Iterable[str] = ()) -> str:
    """One digest over every file under `root` (relative names and contents), in sorted order."""
    root = Path(root)
    excluded = set(exclude)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = file.relative_to(root).as_posix()
        if relative in excluded or any(part.startswith(".") for part in file.relative_to(root).parts):
            continue
        digest.update(relative.encode() + b"\0" + sha256_file(file).encode() + b"\n")
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
