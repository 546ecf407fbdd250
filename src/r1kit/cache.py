"""Where r1kit caches what it builds once (converted built-in models): a folder, checked before anything runs."""

from __future__ import annotations

import os
from pathlib import Path

from r1kit.atomic import folder_problem


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
    return folder_problem(cache_root(cache_dir), writing)
