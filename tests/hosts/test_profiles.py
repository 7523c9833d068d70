"""Host profiles (issue 16): a bio, languages and tags a client can search, and a picture
that is always a small JPEG the server drew itself, whatever was uploaded."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from callmeter.models import Role
from tests.calls.driver import CallDriver


def image(fmt: str, size: tuple[int, int] = (600, 400), exif: bool = False) -> bytes:
    picture = Image.new("RGB", size, (200, 30, 30))
    out = io.BytesIO()
    if exif:
        data = Image.Exif()
        data[0x010E] = "secret location notes"  # ImageDescription
        picture.save(out, format=fmt, exif=data)
    else:
        picture.save(out, format=fmt)
    return out.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG header for a giant image (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def test_a_profile_is_shown_and_searched(driver: CallDriver) -> None:
    viewer = await driver.party(Role.client)
    ana, bob = await driver.party(Role.host), await driver.party(Role.host)
    r = await driver.client.put(
        "/v1/hosts/me",
        json={
            "display_name": "Ana López",
            "bio": "Profesora de matemáticas",
            "languages": ["es", "en", "es"],
            "tags": ["Math", "algebra", "math"],
        },
        headers=ana.headers,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["languages"], r.json()["tags"]) == (["es", "en"], ["Math", "algebra"])
    await driver.client.put(
        "/v1/hosts/me", json={"languages": ["en"], "tags": ["chess"]}, headers=bob.headers
    )

    async def names(query: str) -> list[str]:
        r = await driver.client.get(f"/v1/hosts{query}", headers=viewer.headers)
        assert r.status_code == 200, r.text
        return [h["display_name"] for h in r.json()]

    assert await names("?language=es") == ["Ana López"]
    assert await names("?tag=MATH") == ["Ana López"]
    assert await names("?q=profesora%20MATEM") == ["Ana López"]
    assert sorted(await names("?language=en")) == sorted(["Ana López", bob.user.display_name])
    assert await names("?q=nobody") == []
    r = await driver.client.put("/v1/hosts/me", json={"bio": ""}, headers=ana.headers)
    assert r.json()["bio"] == ""  # cleared


async def test_a_profile_refuses_what_it_cannot_show(driver: CallDriver) -> None:
    host = await driver.party(Role.host)
    for body in (
        {"languages": ["spanish"]},
        {"languages": ["ES"]},
        {"tags": [f"t{n}" for n in range(11)]},
        {"tags": ["<script>"]},
        {"bio": "line\u202eevil"},
        {"bio": "x" * 1001},
        {"display_name": "   "},
    ):
        r = await driver.client.put("/v1/hosts/me", json=body, headers=host.headers)
        assert r.status_code == 422, body
    client = await driver.party(Role.client)
    r = await driver.client.put("/v1/hosts/me", json={"bio": "hi"}, headers=client.headers)
    assert r.status_code == 403


async def test_the_picture_is_a_small_jpeg_the_server_drew(driver: CallDriver) -> None:
    host = await driver.party(Role.host)
    viewer = await driver.party(Role.client)
    upload = image("PNG", (600, 400))
    r = await driver.client.put(
        "/v1/hosts/me/avatar",
        content=upload,
        headers={**host.headers, "Content-Type": "image/png"},
    )
    assert r.status_code == 200, r.text
    url = r.json()["avatar_url"]
    assert url.startswith(f"/v1/hosts/{host.user.id}/avatar?v=")
    listed = (await driver.client.get("/v1/hosts", headers=viewer.headers)).json()
    assert next(h for h in listed if h["id"] == host.user.id)["avatar_url"] == url

    picture = await driver.client.get(url)  # public: an <img> sends no token
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/jpeg"
    assert picture.headers["x-content-type-options"] == "nosniff"
    with Image.open(io.BytesIO(picture.content)) as shown:
        assert (shown.format, shown.size) == ("JPEG", (256, 256))
    again = await driver.client.get(url, headers={"If-None-Match": picture.headers["etag"]})
    assert again.status_code == 304

    # nothing of the upload's metadata survives
    r = await driver.client.put(
        "/v1/hosts/me/avatar",
        content=image("JPEG", exif=True),
        headers={**host.headers, "Content-Type": "image/jpeg"},
    )
    stored = (await driver.client.get(r.json()["avatar_url"])).content
    assert b"secret location" not in stored

    r = await driver.client.delete("/v1/hosts/me/avatar", headers=host.headers)
    assert (r.status_code, r.json()["avatar_url"]) == (200, None)
    assert (await driver.client.get(f"/v1/hosts/{host.user.id}/avatar")).status_code == 404


async def test_a_picture_that_is_not_one_is_refused(driver: CallDriver) -> None:
    host = await driver.party(Role.host)

    async def put(content: bytes, content_type: str) -> int:
        r = await driver.client.put(
            "/v1/hosts/me/avatar",
            content=content,
            headers={**host.headers, "Content-Type": content_type},
        )
        return r.status_code

    assert await put(b"<svg onload=alert(1)>", "image/png") == 422
    assert await put(image("PNG"), "text/html") == 415
    assert await put(image("GIF"), "image/png") == 422  # the bytes decide, not the header
    assert await put(huge_png(60_000, 60_000), "image/png") == 422  # never decoded
    assert await put(b"\xff" * (2 * 1024 * 1024 + 1), "image/jpeg") == 413
    assert (await driver.client.get(f"/v1/hosts/{host.user.id}/avatar")).status_code == 404
