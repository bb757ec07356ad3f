"""Weights & Biases settings shared by training runs and reports: whether credentials exist for the
configured server (so runs go online or stay offline), and finishing the active run."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_BASE_URL = "https://api.wandb.ai"


def wandb_host() -> str:
    """The W&B server's host name: ``WANDB_BASE_URL``'s (a self-hosted server), else api.wandb.ai."""
    url = os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    return urlparse(url if "//" in url else f"https://{url}").hostname or "api.wandb.ai"


def wandb_credentials_available() -> bool:
    """True when W&B would log online: ``WANDB_API_KEY`` in the environment, or a netrc entry (``NETRC``
    or ~/.netrc, as ``wandb login`` writes) for the server's host (:func:`wandb_host`). False when
    ``WANDB_MODE`` is offline, dryrun or disabled."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return False
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.is_file():
        return False
    try:
        entry = netrc.netrc(str(path)).authenticators(wandb_host())
    except (netrc.NetrcParseError, OSError):
        return False
    return bool(entry and entry[2])


def finish_wandb() -> None:
    """End the active W&B run, so that the next multirun job starts its own, and wait until its
    records are on disk: ``wandb.finish`` can return before the W&B service has written an offline
    run's ``.wandb`` file, and the service's own flush at exit is skipped in joblib workers."""
    try:
        import wandb
    except ImportError:  # pragma: no cover
        return
    if wandb.run is not None:
        wandb.finish()
        wandb.teardown()
