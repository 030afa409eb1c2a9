"""Report tables and figures as data, rendered to Markdown (terminals, GitHub; figures as files beside it) and to
self-contained HTML (failures in red, figures inline)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cell:
    text: str
    fail: bool = False          # a failed check: red in HTML, marked FAIL in Markdown


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Figure:
    title: str
    file: str                   # its name under the report's figures/ folder
    png: bytes
    caption: str = ""


Section = Table | Figure


def percent(summary: dict) -> str:
    """'83.7 [79.1, 87.4]': an accuracy summary (accuracy_summary) in % with its 95% interval."""
    return f"{100 * summary['accuracy']:.1f} [{100 * summary['ci95_low']:.1f}, {100 * summary['ci95_high']:.1f}]"


def paired_text(paired: dict) -> str:
    """'+2.0 [-1.5, +5.5]': a paired difference (pipeline/evaluation/intervals.paired_bootstrap) in points with its
    95% interval."""
    return f"{100 * paired['mean']:+.1f} [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}]"


def _markdown_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|")
    return f"**FAIL: {text}**" if cell.fail else text


def render_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for table in sections:
        if isinstance(table, Figure):
            lines += [f"## {table.title}", "", f"![{table.title}](figures/{table.file})", ""]
            lines += [table.caption, ""] if table.caption else []
            continue
        lines += [f"## {table.title}", "", "| " + " | ".join(table.header) + " |",
                  "|" + "---|" * len(table.header)]
        lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in table.rows]
        lines += [""] + [f"- {note}" for note in table.notes] + ([""] if table.notes else [])
    return "\n".join(lines)


STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
         "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}td.fail{color:#fff;background:#c62828}"
         "img{max-width:min(100%,1100px)}figcaption{color:#444;max-width:60em}")


def render_html(title: str, sections: list[Section]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for table in sections:
        if isinstance(table, Figure):
            parts.append(f"<h2>{html.escape(table.title)}</h2><figure><img alt='{html.escape(table.title)}' "
                         f"src='data:image/png;base64,{base64.b64encode(table.png).decode()}'>"
                         + (f"<figcaption>{html.escape(table.caption)}</figcaption>" if table.caption else "")
                         + "</figure>")
            continue
        parts.append(f"<h2>{html.escape(table.title)}</h2><table><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in table.header) + "</tr>")
        for row in table.rows:
            parts.append("<tr>" + "".join(f"<td class='fail'>{html.escape(c.text)}</td>" if c.fail
                                          else f"<td>{html.escape(c.text)}</td>" for c in row) + "</tr>")
        parts.append("</table>" + "".join(f"<p>{html.escape(n)}</p>" for n in table.notes))
    return "".join(parts) + "</body></html>\n"
