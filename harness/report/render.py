"""Render a report's tables: markdown, LaTeX (booktabs), self-contained HTML, tidy CSV.

Each table cell is `value detail marker`; the value is bold where it is the best of its column.
HTML embeds every figure as a base64 PNG, so the single file opens offline.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from harness.markdown import markdown_table

SECTION_TITLES = {"holistic": "Holistic leaderboard", "accuracy": "Leaderboards",
                  "fairness": "Fairness (per group)",
                  "robustness": "Robustness (perturbed inputs)",
                  "robustness-summary": "Robustness summary (worst case, stability)",
                  "efficiency": "Efficiency"}


def _cell_md(c) -> str:
    value = f"**{c.value}**" if c.best else c.value
    return " ".join(p for p in (value, c.detail, c.marker) if p).replace("|", "\\|")


def table_md(t) -> str:
    return markdown_table([t.row_header] + list(t.columns),
                          [[label] + [_cell_md(c) for c in cells] for label, cells in t.rows])


def to_markdown(report, plot_dir: Path | None = None) -> str:
    """The full report as GitHub-flavoured markdown (figures linked relative to `plot_dir`)."""
    parts = [f"# Report: {', '.join(report.suites)}", ""] + [f"- {s}" for s in report.header]
    section = None
    for n, t in report.numbered():
        if t.section != section:
            section = t.section
            parts += ["", f"## {SECTION_TITLES[section]}"]
        parts += ["", f"### Table {n}: {t.title}", ""]
        parts += [f"> {note}" for note in t.notes]
        parts += ["", table_md(t)]
        for p in report.plots_for(n):
            rel = p["png"].relative_to(plot_dir) if plot_dir else p["png"]
            parts += ["", f"![{p['title']}]({rel})"]
    return "\n".join(parts) + "\n"


_LATEX_ESC = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
              "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
              "^": r"\textasciicircum{}", "±": r"$\pm$", "†": r"$^\dagger$",
              "≠": r"$\neq$", "−": "-", "–": "--", "·": r"$\cdot$", "Δ": r"$\Delta$",
              "<": r"$<$", ">": r"$>$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESC.get(ch, ch) for ch in str(text))


def table_latex(t, number: int) -> str:
    cols = "l" + "r" * len(t.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\scriptsize",
             rf"\caption{{Table {number}: {latex_escape(t.title)}. "
             + latex_escape(" ".join(t.notes)) + "}",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in [t.row_header] + list(t.columns)) + r" \\",
             r"\midrule"]
    for label, cells in t.rows:
        out = [latex_escape(label)]
        for c in cells:
            value = rf"\textbf{{{latex_escape(c.value)}}}" if c.best else latex_escape(c.value)
            out.append(" ".join(p for p in (value, latex_escape(c.detail),
                                            latex_escape(c.marker)) if p))
        lines.append(" & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def to_latex(report) -> str:
    """Every table as a booktabs `table` environment (needs \\usepackage{booktabs})."""
    head = [f"% harness report: {', '.join(report.suites)}", "% requires \\usepackage{booktabs}"]
    head += [f"% {s}" for s in report.header]
    return "\n".join(head) + "\n\n" + "\n\n".join(
        table_latex(t, n) for n, t in report.numbered()) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em} h2{margin-top:2em;border-bottom:1px solid #ccc} h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left} thead th{background:#f3f3f3}
.d{color:#666;font-size:.9em} .m{color:#b00} .note{color:#555;font-size:.85em;margin:.2em 0}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
ul.hdr{font-size:.85em;color:#444} .wrap{overflow-x:auto;max-width:100%}
"""


def table_html(t, number: int) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [t.row_header] + list(t.columns))
    body = []
    for label, cells in t.rows:
        tds = [f"<td>{html.escape(label)}</td>"]
        for c in cells:
            v = html.escape(c.value)
            v = f"<b>{v}</b>" if c.best else v
            if c.detail:
                v += f' <span class="d">{html.escape(c.detail)}</span>'
            if c.marker:
                cls = "m" if c.marker.startswith("†") else "d"
                v += f' <span class="{cls}">{html.escape(c.marker)}</span>'
            tds.append(f"<td>{v}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (f'<div class="wrap"><table id="table-{number}" class="{t.section}"><thead><tr>'
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def to_html(report) -> str:
    """One self-contained HTML page: tables, notes, figures as embedded base64 PNG."""
    title = f"harness report: {', '.join(report.suites)}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", '<ul class="hdr">']
    parts += [f"<li>{html.escape(s)}</li>" for s in report.header] + ["</ul>"]
    section = None
    for n, t in report.numbered():
        if t.section != section:
            section = t.section
            parts.append(f"<h2>{SECTION_TITLES[section]}</h2>")
        parts.append(f"<h3>Table {n}: {html.escape(t.title)}</h3>")
        parts += [f'<p class="note">{html.escape(note)}</p>' for note in t.notes]
        parts.append(table_html(t, n))
        for p in report.plots_for(n):
            data = base64.b64encode(Path(p["png"]).read_bytes()).decode()
            parts.append(f'<figure><img alt="{html.escape(p["title"])}" '
                         f'src="data:image/png;base64,{data}"><figcaption class="note">'
                         f"{html.escape(p['title'])}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def to_csv_frame(report) -> pd.DataFrame:
    """All tables' numbers, tidy: one row per (table, model, column) with table key fields."""
    frames = []
    for n, t in report.numbered():
        d = t.data.copy()
        if "table" in d.columns:
            d = d.drop(columns="table")
        d.insert(0, "table", n)
        d.insert(1, "section", t.section)
        for i, (f, v) in enumerate(t.key.items()):
            d.insert(2 + i, f, v)
        frames.append(d)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
