"""Files and folders that are complete or absent: a kill never leaves half of one behind."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (hold_folder goes on unguarded there)
    fcntl = None

COMPLETE_MARKER = "r1kit_complete.json"  # written last: a folder without it is incomplete
REMOVED = ".removed"  # where remove_folder puts a folder it deletes: out of reach of the globs that find stages

logger = logging.getLogger("r1kit")


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a kill leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        # UTF-8 whatever the locale: reports and traces hold "·", "→" and the model's own text (LANG=C is ASCII)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # a process killed between its write and its rename (kill -9) left its temporary file: a hidden copy each time
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid = leftover.name.rpartition("-")[2]
        if pid.isdigit() and not _running(int(pid)):
            leftover.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Whether process `pid` runs on this machine (one of another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        pass
    return True


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, json.dumps(value, indent=2, default=jsonable) + "\n")


def jsonable(value: Any) -> Any:
    """json.dumps fallback: numpy / torch scalars become numbers, anything else its text."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def folder_problem(path: Path, writing: bool = True) -> str | None:
    """Why folder `path` cannot be used (a file or a link to nothing in its place or on its way, no permission), or
    None; `writing` False: only read. Creates nothing.

    >>> folder_problem(Path("/dev/null")), folder_problem(Path("/dev/null/x"))
    ('is a file, not a folder', 'lies under /dev/null, which is a file')
    """
    try:  # a folder on the way the user may not search (another user's home) raises PermissionError here
        dangling = next((p for p in (path, *path.parents) if p.is_symlink() and not p.exists()), None)
        existing = next(p for p in (path, *path.parents) if p.exists())
    except PermissionError as error:
        return f"cannot be reached ({error.strerror}: {error.filename})"
    if dangling is not None:  # mkdir would fail with a bare FileExistsError
        return "is a link to nothing" if dangling == path else f"lies under {dangling}, a link to nothing"
    if not existing.is_dir():
        return "is a file, not a folder" if existing == path else f"lies under {existing}, which is a file"
    if writing and not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be created or written ({existing} is not writable)"
    if not os.access(existing, os.R_OK | os.X_OK):
        return f"cannot be read ({existing} is not readable)"
    return None


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).exists()


def commit_folder(staging: Path, dest: Path, info: dict[str, Any]) -> None:
    """Mark a fully written folder complete and rename it into place (atomic on one filesystem). A folder it
    replaces is first renamed aside, then deleted: deleted in place, a kill half way left `dest` with its marker and
    without some of its files, which then read as complete. Its files are readable as the umask allows any file:
    safetensors writes its weights for their owner alone (0600), so a shared cache or a colleague's run did not
    load."""
    readable = 0o666 & ~_umask()
    for path in staging.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & 0o7777 | readable)
    (staging / COMPLETE_MARKER).write_text(json.dumps(info))
    dest.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: one left by a killed process stays out of the way (a process id repeats in a container)
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:12]}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(staging, dest)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    """The process's umask (read by setting it: there is no other way, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_folder(folder: Path) -> None:
    """Delete `folder` at once for anyone reading it: moved into its parent's `.removed` folder, then deleted. A kill
    half way leaves the rest there, two levels down, where no `*/manifest.json` finds it as a stage; the next removal
    in the same parent (or `remove_leftovers`) deletes it."""
    if folder.exists():
        aside = folder.parent / REMOVED / f"{folder.name}-{uuid.uuid4().hex[:12]}"
        aside.parent.mkdir(exist_ok=True)
        os.replace(folder, aside)
    remove_leftovers(folder.parent)


def remove_leftovers(parent: Path) -> None:
    """Delete what `remove_folder` left in `parent` (killed while deleting)."""
    shutil.rmtree(parent / REMOVED, ignore_errors=True)


def build_complete(
    dest: Path, build: Callable[[Path], None], info: dict[str, Any], usable: Callable[[Path], bool] | None = None
) -> Path:
    """Build a folder in a temporary sibling and commit it; a kill mid-build leaves no `dest` behind, and its
    temporary folder is removed by the next build (a converted model's is half a gigabyte). Builds in one folder
    take turns (a lock on it): two processes committing the same `dest` at once failed in `os.replace`, and a build
    could not tell another process's folder in progress from a dead one's (by process id, which containers share).
    `usable`: a complete `dest` it accepts is kept (a cache, where the process that waited uses what another built;
    judged under the lock, so two processes that found it damaged build it once); None: `dest` is built anew."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(dest.parent):
        if usable is not None and is_complete(dest) and usable(dest):
            return dest
        name = glob.escape(dest.name)  # a GGUF file's `[Q4]` is a pattern's character class
        for leftover in [*dest.parent.glob(f".{name}.tmp-*"), *dest.parent.glob(f".{name}.old-*")]:
            shutil.rmtree(leftover, ignore_errors=True)  # no build of dest runs but this one: a killed one's
        staging = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}")
        staging.mkdir()
        try:
            build(staging)
            commit_folder(staging, dest, info)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


_HELD: dict[Path, int] = {}  # the folders this process holds the lock of → their descriptors


def hold_folder(folder: Path, wait: bool = True) -> bool:
    """Take the exclusive lock on `folder` for this process until `let_go_of` (a kill releases it too): True once it
    is held, False where another process holds it and `wait` is False (with `wait`, a line says what it waits for).
    A folder this process holds already is held at once: a lock taken again through another descriptor would wait
    for this process itself. Where the system or file system cannot lock (Windows; some network file systems), work
    goes on unguarded; on NFS a folder's lock holds between the processes of one machine only."""
    folder = folder.resolve()
    if folder in _HELD or fcntl is None:
        return True
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not wait:
            os.close(descriptor)
            return False
        logger.warning("another process is at work in %s (building the same model?): waiting for it", folder)
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_EX)
    except OSError:  # a file system that cannot lock
        pass
    _HELD[folder] = descriptor
    return True


def let_go_of(folder: Path) -> None:
    """Release this process's lock on `folder` (`hold_folder`), if it holds one."""
    descriptor = _HELD.pop(folder.resolve(), None)
    if descriptor is not None:
        os.close(descriptor)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """`folder`'s lock for as long as the block runs; one this process held before the block it keeps."""
    held_before = folder.resolve() in _HELD
    hold_folder(folder)
    try:
        yield
    finally:
        if not held_before:
            let_go_of(folder)


def json_digest(value: Any) -> str:
    """A short sha256 of a JSON-able value (dict keys in any order): a key for what a result was made from. A
    sequence JSON does not know (a datasets Column) counts as its items: as text it was a preview of its first five.

    >>> json_digest({"a": 1, "b": [2]}) == json_digest({"b": [2], "a": 1})
    True
    """
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=_as_json).encode()).hexdigest()[:16]


def _as_json(value: Any) -> Any:
    return list(value) if isinstance(value, Sequence) else str(value)


def sampled_hash(path: Path, sample: int = 1 << 20) -> str:
    """sha256 over a file's or a folder's file names, sizes, and first and last `sample` bytes: what a model holds,
    whatever its path, in a few reads however large its weights (`content_hash` reads all of them). Two fine-tunes
    of one model differ there; the same weights copied elsewhere do not."""
    digest = hashlib.sha256()
    for name, file in _named_files(path):
        size = file.stat().st_size
        digest.update(f"{name}:{size}".encode())
        with file.open("rb") as stream:
            digest.update(stream.read(sample))
            stream.seek(max(sample, size - sample))
            digest.update(stream.read(sample))
    return digest.hexdigest()[:16]


def content_hash(path: Path) -> str:
    """sha256 over a file, or over a folder's files (names and contents; the completion marker left out): what a
    file or model folder holds, whatever its path or time."""
    return files_hash(_named_files(path))


def files_hash(named: Iterable[tuple[str, Path]]) -> str:
    """sha256 over (name, file) pairs in order: each name, then its file's contents."""
    digest = hashlib.sha256()
    for name, file in named:
        digest.update(name.encode())
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _named_files(path: Path) -> Iterator[tuple[str, Path]]:
    """A file (by its name), or a folder's files in order (by their paths in it), the completion marker left out:
    what the hashes of a file or model folder read."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file.name != COMPLETE_MARKER:
            yield str(file.relative_to(path) if path.is_dir() else file.name), file
