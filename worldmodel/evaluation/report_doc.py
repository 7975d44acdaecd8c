"""The report's building blocks: reading stage outputs, number formatting, and :class:`Doc`, which writes a
self-contained HTML page (images embedded as base64, no script, no external file) and its markdown twin (images as
relative paths) side by side."""
from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from worldmodel.utils.atomic import write_text


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl file (one dict per logged step); bad lines are skipped."""
    rows: list[dict] = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def fmt(x: Any, digits: int = 3) -> str:
    """Number formatting for tables: '—' for missing, percentages left to the caller."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        if isinstance(x, float) and not math.isfinite(x):
            return "—"
        return f"{x:.{digits}g}" if isinstance(x, float) else str(x)
    if isinstance(x, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in x)
    return str(x)


def last(x: Any) -> Any:
    """Last element of a per-horizon list (the largest horizon), or the value itself."""
    if isinstance(x, (list, tuple)):
        return x[-1] if x else None
    return x


def pct(v: Any) -> str:
    """A rate in [0, 1] as a whole percentage, '—' when absent."""
    return "—" if v is None else f"{100 * v:.0f}%"


def ci_text(ci: Any) -> str:
    """A 95% interval [lo, hi] of a rate as '[lo, hi]' in percent, '—' when absent."""
    return f"[{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else "—"


CSS = ("body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 16px;color:#222;"
       "line-height:1.45}h1{font-size:26px}h2{font-size:21px;border-bottom:2px solid #ddd;padding-bottom:3px;"
       "margin-top:2em}h3{font-size:17px;margin-top:1.5em}table{border-collapse:collapse;margin:0.5em 0 1.2em;"
       "max-width:100%}td,th{border:1px solid #bbb;padding:3px 7px;font-size:13px;text-align:left;"
       "vertical-align:top;overflow-wrap:break-word}th{background:#eee}td.n{text-align:right;white-space:nowrap}"
       "caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}img{max-width:100%;height:auto}"
       ".gifs{display:flex;flex-wrap:wrap;gap:12px}figure{margin:4px 0}figcaption{font-size:12px;color:#555;"
       "max-width:300px}.gifs img{image-rendering:pixelated}ul{padding-left:1.3em}")


NUMERIC = re.compile(r"^[-+\d.,%\[\]\s–—e]*$")  # cells right-aligned and kept on one line


class Doc:
    """Builds the HTML and markdown documents side by side."""

    def __init__(self, root: Path):
        self.root = root
        self.html: list[str] = []
        self.md: list[str] = []

    def heading(self, text: str, level: int = 2, anchor: str = "") -> None:
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.html.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {text}\n")

    def para(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def items(self, lines: list[str]) -> None:
        """A bulleted list."""
        if lines:
            self.html.append("<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in lines) + "</ul>")
            self.md.extend([f"- {t}" for t in lines] + [""])

    def table(self, header: list[str], rows: list[list[Any]], caption: str = "", css_class: str = "") -> None:
        """A table with a title (``caption``); numbers formatted with :func:`fmt`."""
        cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        cls = f' class="{css_class}"' if css_class else ""
        h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = "".join("<tr>" + "".join(("<td class='n'>" if NUMERIC.match(c) else "<td>") + html.escape(c) + "</td>"
                                        for c in row) + "</tr>" for row in cells)
        self.html.append(f"<table{cls}>{cap}<tr>{h}</tr>{body}</table>")
        if caption:
            self.md.append(f"**{caption}**\n")
        self.md.append("| " + " | ".join(header) + " |")
        self.md.append("|" + "---|" * len(header))
        self.md.extend("| " + " | ".join(row) + " |" for row in cells)
        self.md.append("")

    def image(self, path: str | Path | None, alt: str, width: int | None = None) -> bool:
        """Embed an image (PNG or GIF) as base64 in the HTML, relative path in the markdown; False if absent."""
        tag = self._img(path, alt, width)
        if tag:
            self.html.append(tag)
        return bool(tag)

    def gallery(self, figures: list[tuple[str | Path, str]], width: int) -> None:
        """Images side by side, each with its caption (``[(path, caption)]``)."""
        tags = [(self._img(p, c, width), c) for p, c in figures]
        tags = [(t, c) for t, c in tags if t]
        if tags:
            self.html.append('<div class="gifs">' + "".join(
                f"<figure>{t}<figcaption>{html.escape(c)}</figcaption></figure>" for t, c in tags) + "</div>")

    def _img(self, path: str | Path | None, alt: str, width: int | None) -> str:
        if not path or not Path(path).exists():
            return ""
        p = Path(path)
        mime = "image/gif" if p.suffix.lower() == ".gif" else "image/png"
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        w = f' width="{width}"' if width else ""
        try:
            rel = p.resolve().relative_to(self.root.resolve())
        except ValueError:
            rel = p.resolve()
        self.md.append(f"![{alt}]({rel.as_posix()})\n")
        return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{data}"{w}/>'

    def save(self, title: str) -> dict:
        """Write ``report.html`` and ``report.md`` into the root (atomically); returns their paths."""
        html_path, md_path = self.root / "report.html", self.root / "report.md"
        write_text(html_path, "<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
                              f"content='width=device-width'><title>{html.escape(title)}</title><style>{CSS}</style>"
                              f"</head><body>{''.join(self.html)}</body></html>")
        write_text(md_path, "\n".join(self.md) + "\n")
        return {"html": str(html_path), "md": str(md_path)}
