"""Pictures as small PNGs and the HTML pieces of the report: escaped text, tables, figures
with embedded ``data:`` images."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
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
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) \
        | rgb[..., 2]
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
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image),
                               [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise InvalidArgumentError(f"cannot encode a {image.shape} image as PNG")
    return encoded.tobytes()


class Images:
    """Every image of the report: embedded as data URIs, optionally also written as files."""

    def __init__(self, png_dir: Path | None) -> None:
        self.png_dir = png_dir
        self.count = 0
        if png_dir is not None:
            png_dir.mkdir(parents=True, exist_ok=True)

    def tag(self, png: bytes, name: str, alt: str, css: str = "", display: int = 1) -> str:
        """The ``<img>`` of ``png``, shown ``display`` times its pixel size, inside a label
        whose hidden checkbox enlarges it to the window when clicked (CSS only, no script)."""
        self.count += 1
        if self.png_dir is not None:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80]
            (self.png_dir / f"{self.count:03d}-{safe}.png").write_bytes(png)
        width, height = png_size(png)
        data = base64.b64encode(png).decode("ascii")
        return (f'<label class=zoom><input type=checkbox>'
                f'<img src="data:image/png;base64,{data}" width="{width * display}" '
                f'height="{height * display}" alt="{html.escape(alt)}" '
                f'title="{html.escape(alt)} (click to enlarge)"'
                f'{f" class={chr(34)}{css}{chr(34)}" if css else ""}></label>')

    def raster(self, rgb: np.ndarray, name: str, alt: str, css: str = "raster",
               display: int = 1) -> str:
        return self.tag(png_bytes(rgb), name, alt, css, display)

    def figure(self, figure, name: str, alt: str) -> str:
        return self.tag(figures.figure_png(figure, colours=CHART_COLOURS), name, alt, "chart")


def png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


# --- HTML pieces ---------------------------------------------------------------------------------

CSS = """
body{font:13px/1.4 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:16px 24px;
color:#222;max-width:1500px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;border-bottom:1px solid #ccc;margin-top:28px}
h3{font-size:14px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 6px;
text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#f4f4f4}
table.kv th{width:11em}
pre{background:#f7f7f7;padding:6px;overflow:auto;max-height:320px;font-size:12px}
.panels{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}
figure{margin:0;max-width:420px}figure.wide{max-width:none}
figcaption{font-size:11px;color:#444}
figure.wide figcaption{max-width:900px}
img.raster{image-rendering:pixelated}
.zoom{cursor:zoom-in}.zoom input{display:none}
.zoom input:checked+img{position:fixed;inset:0;margin:auto;width:auto;height:auto;
min-width:min(60vw,60vh);max-width:96vw;max-height:92vh;object-fit:contain;z-index:10;
background:#fff;cursor:zoom-out;box-shadow:0 0 0 100vmax rgba(0,0,0,.6)}
.card{border:1px solid #ddd;border-radius:4px;padding:6px;margin:8px 0}
.card-head{margin-bottom:4px}.muted{color:#777}
.leaky{color:#c00;font-weight:bold}.bad{color:#c00}
.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}
"""


def esc(value) -> str:
    return html.escape(str(value))


def kv_html(rows: Sequence[tuple[str, object]]) -> str:
    return "<table class=kv>" + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>"
                                        for k, v in rows) + "</table>"


def table_html(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_html(img: str, title: str, caption: str = "", wide: bool = False,
            width: int | None = None) -> str:
    """An image with its title and caption; ``width`` (px) keeps the caption to the image's
    width."""
    text = f"<b>{esc(title)}</b>" + (f"<br>{esc(caption)}" if caption else "")
    style = f' style="width:{max(int(width), 120)}px"' if width else ""
    return (f'<figure{" class=wide" if wide else ""}{style}>{img}'
            f'<figcaption>{text}</figcaption></figure>')


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else esc(value)
