"""Report parts, tables and figures as data, rendered to Markdown (terminals, GitHub; figures as files beside it) and
to self-contained HTML (failures in red, figures inline). A Heading opens a part (level 2); tables and figures are
level 3."""

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


@dataclass
class Heading:
    """A part of the report (a seed paper): its title and paragraphs, above the tables and figures that follow."""

    title: str
    paragraphs: list[str] = field(default_factory=list)


Section = Table | Figure | Heading


def percent(summary: dict) -> str:
    """'83.7 [79.1, 87.4]': an accuracy summary (accuracy_summary) in % with its 95% interval."""
    return f"{100 * summary['accuracy']:.1f} [{100 * summary['ci95_low']:.1f}, {100 * summary['ci95_high']:.1f}]"


def paired_text(paired: dict) -> str:
    """'+2.0 [-1.5, +5.5]': a paired difference (pipeline/evaluation/intervals.paired_bootstrap) in points with its
    95% interval; "n/a" without images to compare."""
    if paired["mean"] is None:
        return "n/a"
    return f"{100 * paired['mean']:+.1f} [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}]"


def _markdown_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|")
    return f"**FAIL: {text}**" if cell.fail else text


def render_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        if isinstance(section, Heading):
            lines += [f"## {section.title}", ""] + [line for text in section.paragraphs for line in (text, "")]
        elif isinstance(section, Figure):
            lines += [f"### {section.title}", "", f"![{section.title}](figures/{section.file})", ""]
            lines += [section.caption, ""] if section.caption else []
        else:
            lines += [f"### {section.title}", "", "| " + " | ".join(section.header) + " |",
                      "|" + "---|" * len(section.header)]
            lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in section.rows]
            lines += [""] + [f"- {note}" for note in section.notes] + ([""] if section.notes else [])
    return "\n".join(lines)


STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin-bottom:1em}"
         "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}td.fail{color:#fff;background:#c62828}"
         "h2{border-top:2px solid #444;padding-top:.6em;margin-top:2em}p.claim{max-width:60em}"
         "img{max-width:min(100%,1100px)}figcaption{color:#444;max-width:60em}")


def _html_section(section: Section) -> str:
    if isinstance(section, Heading):
        return f"<h2>{html.escape(section.title)}</h2>" + "".join(
            f"<p class='claim'>{html.escape(text)}</p>" for text in section.paragraphs)
    if isinstance(section, Figure):
        return (f"<h3>{html.escape(section.title)}</h3><figure><img alt='{html.escape(section.title)}' "
                f"src='data:image/png;base64,{base64.b64encode(section.png).decode()}'>"
                + (f"<figcaption>{html.escape(section.caption)}</figcaption>" if section.caption else "") + "</figure>")
    rows = "".join("<tr>" + "".join(f"<td class='fail'>{html.escape(c.text)}</td>" if c.fail
                                    else f"<td>{html.escape(c.text)}</td>" for c in row) + "</tr>"
                   for row in section.rows)
    return (f"<h3>{html.escape(section.title)}</h3><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in section.header) + f"</tr>{rows}</table>"
            + "".join(f"<p>{html.escape(n)}</p>" for n in section.notes))


def render_html(title: str, sections: list[Section]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            + "".join(_html_section(section) for section in sections) + "</body></html>\n")
