"""Where r1kit caches what it builds once (converted built-in models): a folder, checked before anything runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache_dir: str | None = None) -> Path:
    return Path(cache_dir or os.environ.get("R1KIT_CACHE") or Path.home() / ".cache" / "r1kit").expanduser()


def cache_setting(cache_dir: str | None = None) -> str:
    """The setting that names the cache folder, for messages."""
    return "model.cache_dir" if cache_dir else "R1KIT_CACHE" if os.environ.get("R1KIT_CACHE") else "the cache"


def cache_problem(cache_dir: str | None = None, writing: bool = True) -> str | None:
    """Why the cache folder cannot be used (a file in its place, no permission), or None. Creates nothing.
    `writing` False: only read (a cache built already, shared read-only: a team's, a container image's).

    >>> cache_problem("/dev/null")
    'is a file, not a folder'
    """
    path = cache_root(cache_dir)
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
