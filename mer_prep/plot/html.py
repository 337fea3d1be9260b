"""Pictures as small PNGs, and the Jinja2 environment that renders them into the report.

Every picture of the report is a :class:`Picture` (a base64 ``data:`` URI and its size); the
templates in ``mer_prep/plot/templates/`` lay them out with autoescaping on, so that text read
from a store (sample ids, file names, error messages) can never become markup."""

from __future__ import annotations

import base64
import functools
import io
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import jinja2
import markupsafe
import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.plot import figures

THUMBNAIL_PX = 160
#: Charts are quantised to this many colours: 3-4x smaller PNGs, no visible change.
CHART_COLOURS = 128


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB uint8 raster as a lossless PNG, as small as cheaply possible (zlib level 9): gray
    when every pixel is gray, a palette when it has at most 256 colours (heat maps, frames with
    landmarks), else RGB. Palette PNGs are 2-3x smaller than RGB for these images."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidArgumentError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return cv2_png(rgb[..., 0])
    packed = (
        (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    )
    colours, index = np.unique(packed.ravel(), return_inverse=True)
    if len(colours) <= 256:
        from PIL import Image  # matplotlib's own image library, used as an encoder only

        image = Image.fromarray(index.reshape(packed.shape).astype(np.uint8), mode="P")
        palette = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
        image.putpalette(palette.astype(np.uint8).ravel().tolist())
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=9)
        # a palette PNG is not filtered: noisy gray faces compress better as filtered RGB
        return min(buffer.getvalue(), cv2_png(rgb[..., ::-1]), key=len)
    return cv2_png(rgb[..., ::-1])


def cv2_png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(
        ".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    if not ok:
        raise InvalidArgumentError(f"cannot encode a {image.shape} image as PNG")
    return encoded.tobytes()


@dataclass(frozen=True)
class Picture:
    """One embedded PNG: its ``data:`` URI, the size it is shown at (CSS px: its pixel size
    times the display factor), its alt text and CSS class (``raster``: pixelated, ``chart``)."""

    src: str
    width: int
    height: int
    alt: str
    css: str = ""


@dataclass(frozen=True)
class Captioned:
    """A picture with its title and caption (a ``<figure>``); ``width`` (CSS px) keeps the
    caption to the picture's width, ``wide`` lets a strip or chart take the whole row."""

    picture: Picture
    title: str
    caption: str = ""
    wide: bool = False
    width: int | None = None


class Images:
    """Every picture of the report, counted in the order made; each also written as a PNG file
    ``<png_dir>/<count>-<name>.png`` when ``png_dir`` is given."""

    def __init__(self, png_dir: Path | None) -> None:
        self.png_dir = png_dir
        self.count = 0
        if png_dir is not None:
            png_dir.mkdir(parents=True, exist_ok=True)

    def tag(self, png: bytes, name: str, alt: str, css: str = "", display: int = 1) -> Picture:
        """``png`` as a :class:`Picture` shown ``display`` times its pixel size (the template
        wraps it in a label whose hidden checkbox enlarges it when clicked: CSS only)."""
        self.count += 1
        if self.png_dir is not None:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80]
            (self.png_dir / f"{self.count:03d}-{safe}.png").write_bytes(png)
        width, height = png_size(png)
        data = base64.b64encode(png).decode("ascii")
        return Picture(f"data:image/png;base64,{data}", width * display, height * display, alt, css)

    def raster(
        self, rgb: np.ndarray, name: str, alt: str, css: str = "raster", display: int = 1
    ) -> Picture:
        return self.tag(png_bytes(rgb), name, alt, css, display)

    def figure(self, figure, name: str, alt: str) -> Picture:
        return self.tag(figures.figure_png(figure, colours=CHART_COLOURS), name, alt, "chart")


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from the PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


# --- templates -----------------------------------------------------------------------------------


def fmt(value, digits: int = 3) -> str:
    """A score as text: ``digits`` decimals for floats, ``n/a`` for None or NaN."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


@functools.cache
def environment() -> jinja2.Environment:
    """The report's templates (``mer_prep/plot/templates/``), autoescaped; an undefined name
    raises instead of rendering as nothing. ``trim_blocks``/``lstrip_blocks`` keep the
    statement lines out of the output."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mer_prep.plot", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    return env


def render(template: str, **context) -> markupsafe.Markup:
    """``template`` (a file of ``mer_prep/plot/templates/``) rendered with ``context``: markup,
    placed unescaped where another template includes it (its own text was escaped)."""
    return markupsafe.Markup(environment().get_template(template).render(**context))
