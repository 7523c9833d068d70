"""Process-level memory settings for the long-running commands."""

from __future__ import annotations

import gc

# The collector's thresholds in a serving process (CPython's defaults: 700, 10, 10). A busy
# server allocates fast: at 700 allocations a young collection runs every millisecond or
# so, and whatever a request holds across it — most of an in-flight request — is soon
# promoted to the old generation. Each time what was promoted since the last full
# collection reaches a quarter of the old generation, a full collection walks all of it:
# with thousands of open event streams (some 150 objects each) that was 0.1-0.5 s with the
# event loop stopped, every few seconds (the capacity benchmark's heartbeat p99 at 2,000
# calls: 150-200 ms; with these thresholds 32 ms, and 25 % less CPU in the API processes).
# Young collections of 50,000 objects take a few milliseconds; objects then die young.
GC_THRESHOLDS = (50_000, 20, 10)


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, the app, the engine) into the
    collector's permanent generation, so a full collection in a busy loop no longer walks
    them, and set the collector's thresholds for serving (``GC_THRESHOLDS``). Call once per
    process, after start-up and before serving; never from a library function or a test
    (a frozen object is never collected)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
