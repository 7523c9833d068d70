"""Request parameters every router shares: an id in the path, and cursor pagination
(``limit`` and ``before``, an id from the previous page's ``next_before``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from callmeter.kit.text import MAX_ID

PathId = Annotated[int, Path(ge=1, le=MAX_ID)]  # a row's id in the URL

Limit = Annotated[int, Query(ge=1, le=200, description="page size, at most 200")]
Before = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="the previous page's next_before"),
]
DEFAULT_LIMIT = 50
