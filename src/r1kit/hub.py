"""The Hugging Face hub, asked only when a hub id is about to be loaded (a run on local files contacts no host).

Where the hub's host name does not resolve (no network), the libraries are switched to their offline mode for the
rest of the process and its children: a model or dataset cached before loads at once, and anything else fails at
once, instead of after half a minute of retries.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sys
import threading
import urllib.request
from urllib.parse import urlparse

from huggingface_hub import constants

logger = logging.getLogger("r1kit")

# the name lookup of the hub's host: a working resolver answers in milliseconds, one whose first name server is
# down after its 5 s timeout (glibc's default), so the limit leaves room for that
LOOKUP_SECONDS = 15.0


@functools.cache
def unreachable() -> str | None:
    """Why the hub cannot be reached (its host name does not resolve), or None (reachable, or offline already)."""
    if constants.HF_HUB_OFFLINE:  # the user's HF_HUB_OFFLINE=1: the libraries never ask, and say so themselves
        return None
    endpoint = urlparse(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    # the proxy of the endpoint's own scheme: an http:// mirror goes through HTTP_PROXY
    proxies = urllib.request.getproxies()
    if (proxies.get(endpoint.scheme or "https") or proxies.get("all")) and not urllib.request.proxy_bypass(host):
        return None  # behind a proxy a host may not resolve here and still be reached
    answer: list[BaseException | None] = []

    def look_up() -> None:
        try:
            socket.getaddrinfo(host, 443)
            answer.append(None)
        except OSError as error:
            answer.append(error)

    # A name server that does not answer leaves getaddrinfo waiting for its own retries (minutes with some resolver
    # settings), and the lookup cannot be cancelled: it is left to finish in a thread of its own.
    lookup = threading.Thread(target=look_up, daemon=True)
    lookup.start()
    lookup.join(LOOKUP_SECONDS)
    if not answer:
        return f"the hub ({host}) cannot be reached from this machine (no answer to its name in {LOOKUP_SECONDS:g} s)"
    if answer[0] is not None:
        return f"the hub ({host}) cannot be reached from this machine"
    return None


def offline_reason() -> str | None:
    """Why hub ids load from the local cache only: the hub cannot be reached (r1kit turned offline mode on), or the
    user's own HF_HUB_OFFLINE (a load failing there was blamed on the network); None where it is online."""
    reason = unreachable()
    if reason is None and constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set in this environment"
    return reason


def offline_if_unreachable() -> str | None:
    """Switch huggingface_hub, transformers and datasets to offline mode where the hub cannot be reached; the reason,
    or None."""
    reason = unreachable()
    if reason and not constants.HF_HUB_OFFLINE:
        os.environ["HF_HUB_OFFLINE"] = "1"  # processes started from here (accelerate launch)
        constants.HF_HUB_OFFLINE = True  # read at each call by huggingface_hub and transformers
        if "datasets.config" in sys.modules:  # datasets keeps its own copy, read at each call too
            sys.modules["datasets.config"].HF_HUB_OFFLINE = True
        logger.warning("r1kit: %s: hub ids load from the local cache only", reason)
    return reason
