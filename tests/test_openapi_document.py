"""The web client's API types are generated from web/openapi.json (`make api`); this test
keeps that file equal to what the server publishes, and `make test` (web-test) keeps the
generated types equal to the file. A field the server adds, renames or drops without
`make api` fails here; one the client then misuses fails `tsc`."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import run

COMMITTED = Path(__file__).resolve().parent.parent / "web" / "openapi.json"


def test_the_committed_openapi_document_is_the_servers(env: dict[str, str], tmp_path: Path) -> None:
    env["CALLMETER_MAX_SIGNAL_BYTES"] = "999"  # the shell's settings do not leak into it
    out = tmp_path / "openapi.json"
    run(env, "openapi", "--out", str(out))
    assert out.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8"), (
        "web/openapi.json is stale: run `make api` and commit web/openapi.json and "
        "web/src/api.gen.ts"
    )
