"""Process-level memory settings for the long-running commands."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, the app, the engine) into the
    collector's permanent generation, so a full collection in a busy loop no longer walks
    them. Call once per process, after start-up and before serving; never from a library
    function or a test (a frozen object is never collected)."""
    gc.collect()
    gc.freeze()
