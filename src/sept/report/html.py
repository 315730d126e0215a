"""A static HTML page: sections of tables and PNG figures (relative links), no scripts, no network."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 1.5rem 2rem 4rem; color: #1d1d1f; line-height: 1.45; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.6rem; border-bottom: 2px solid #ddd; padding-bottom: .2rem; }
h3 { margin-top: 1.8rem; }
.meta { color: #555; font-size: .92rem; } .meta code { background: #f3f3f3; padding: 0 .3rem; border-radius: 3px; }
table { border-collapse: collapse; margin: 1rem 0 .3rem; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .4rem; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .28rem .7rem; text-align: left; white-space: nowrap; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pos { text-align: right; color: #0a7a2f; font-weight: 600; } td.neg { text-align: right; color: #b3261e; font-weight: 600; }
tbody tr:hover { background: #fafafa; }
.note { color: #666; font-size: .82rem; margin: .1rem 0; }
.figs { display: flex; flex-wrap: wrap; gap: 1.2rem; }
figure { margin: .6rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .85rem; }
.wide figure { width: 100%; } .tables { overflow-x: auto; }
"""


@dataclass
class Figure:
    """A PNG file (path relative to the page), its caption, and a ``key`` saying what it shows
    (e.g. ``("neighbours", dataset, host)``) for sections that pick figures."""

    src: str
    caption: str
    wide: bool = False
    key: tuple[str, ...] = ()


@dataclass
class Section:
    title: str
    intro: str = ""
    tables: list[str] = field(default_factory=list)  # HTML fragments
    figures: list[Figure] = field(default_factory=list)
    level: int = 2


def render_page(title: str, meta: list[str], sections: list[Section]) -> str:
    """The whole page; ``meta`` lines may hold HTML (already escaped by the caller)."""
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p class='meta'>{line}</p>" for line in meta),
    ]
    for s in sections:
        parts.append(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>")
        if s.intro:
            parts.append(f"<p>{html.escape(s.intro)}</p>")
        parts += [f"<div class='tables'>{t}</div>" for t in s.tables]
        if s.figures:
            wide = [f for f in s.figures if f.wide]
            narrow = [f for f in s.figures if not f.wide]
            for group, cls in ((narrow, "figs"), (wide, "figs wide")):
                if group:
                    parts.append(f"<div class='{cls}'>")
                    for f in group:
                        src, cap = html.escape(f.src, quote=True), html.escape(f.caption)
                        parts.append(
                            f"<figure><a href='{src}'><img src='{src}' alt='{cap}' loading='lazy'></a>"
                            f"<figcaption>{cap}</figcaption></figure>"
                        )
                    parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
