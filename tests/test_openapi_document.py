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


def _codes_written_in_the_source() -> set[str]:
    """Every error code a module of the server spells out: a domain error's ``code = "…"``,
    the connection layer's refusals and the handlers' literal codes."""
    import re

    package = Path(__file__).resolve().parent.parent / "callmeter"
    patterns = [
        re.compile(r'^\s+code = "([a-z_]+)"$', re.M),  # a CallmeterError subclass
        re.compile(r'_refuse\(\s*\d+,\s*"([a-z_]+)"', re.M),  # kit/http_server.py
        re.compile(r'_error\(\s*\d+,\s*"([a-z_]+)"', re.M),  # app.py's handlers
        re.compile(r'"error": "([a-z_]+)"'),  # hand-written bodies (kit/body_limit.py)
    ]
    found: set[str] = set()
    for module in package.rglob("*.py"):
        text = module.read_text(encoding="utf-8")
        for pattern in patterns:
            found.update(pattern.findall(text))
    return found


def test_the_document_lists_every_error_code_the_server_answers_with() -> None:
    """The web client maps each listed code to a sentence (web/src/errors.test.ts); a code the
    list lacks would reach users as an English server sentence."""
    import json

    listed = set(
        json.loads(COMMITTED.read_text(encoding="utf-8"))["components"]["schemas"]["ErrorOut"][
            "properties"
        ]["error"]["enum"]
    )
    written = _codes_written_in_the_source()
    assert len(written) > 40
    assert written <= listed, f"codes missing from ErrorOut's enum: {sorted(written - listed)}"
