"""A host's picture: whatever image is uploaded, what is stored and served is a 256x256 JPEG
the server drew from it — no metadata, no embedded anything, a known size."""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageOps, UnidentifiedImageError

from callmeter.errors import ValidationFailed

SIZE = 256
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 25_000_000  # a decompression bomb is refused before it is decoded
ACCEPTED = {"JPEG", "PNG", "WEBP"}
CONTENT_TYPES = {"image/jpeg", "image/png", "image/webp"}


def normalize(upload: bytes) -> tuple[bytes, str]:
    """The stored picture and its ETag; 422 ``validation_error`` for anything that is not a
    JPEG, PNG or WebP image of a sane size. CPU work: call it in a thread."""
    try:
        with Image.open(io.BytesIO(upload)) as image:
            if image.format not in ACCEPTED:
                raise ValidationFailed("the picture must be a JPEG, PNG or WebP image")
            width, height = image.size
            if width * height > MAX_PIXELS or min(width, height) < 1:
                raise ValidationFailed("the picture is too large (at most 25 megapixels)")
            image.draft("RGB", (SIZE * 2, SIZE * 2))  # JPEG: decode at a smaller scale
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ValidationFailed("the picture could not be read as an image") from exc
    square = ImageOps.fit(picture, (SIZE, SIZE), method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    square.save(out, format="JPEG", quality=85, optimize=True)
    content = out.getvalue()
    return content, hashlib.sha256(content).hexdigest()[:32]
