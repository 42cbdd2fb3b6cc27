"""Pages of sections, rendered as Markdown and as self-contained HTML.

A section is `(title, [block])`, a block `("text", str)`, `("table", header,
rows)` or `("image", file name in the page's folder)`. The report
(`report.py`) and `mmkeras explain` (`explain_rows.py`) build sections; this
module writes them.
"""

import base64
import html
import os


def _markdown(sections, title="Evaluation report"):
    lines = [f"# {title}", ""]
    for title, blocks in sections:
        lines += [f"## {title}", ""]
        for block in blocks:
            if block[0] == "text":
                lines += [block[1], ""]
            elif block[0] == "table":
                _, header, rows = block
                cells = lambda row: "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"
                lines += [cells(header), "|" + "---|" * len(header)] + [cells(r) for r in rows] + [""]
            else:
                lines += [f"![{block[1]}]({block[1]})", ""]
    return "\n".join(lines)


_HTML_STYLE = (
    "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%;margin:0.5em 0}"
)


def _html(sections, out_dir, title="Evaluation report"):
    # PNGs are embedded as data URIs so the HTML stays complete when mailed or moved.
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_HTML_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for title, blocks in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for block in blocks:
            if block[0] == "text":
                parts.append(f"<p>{html.escape(block[1])}</p>")
            elif block[0] == "table":
                _, header, rows = block
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
                for row in rows:
                    parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
                parts.append("</table>")
            else:
                with open(os.path.join(out_dir, block[1]), "rb") as f:
                    data = base64.b64encode(f.read()).decode("ascii")
                parts.append(f"<img alt='{html.escape(block[1])}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_page(title, sections, out_dir, name):
    """Writes `sections` (see `_report_sections`) as `<name>.md` and `<name>.html` in `out_dir`."""
    with open(os.path.join(out_dir, f"{name}.md"), "w", encoding="utf-8") as f:
        f.write(_markdown(sections, title))
    with open(os.path.join(out_dir, f"{name}.html"), "w", encoding="utf-8") as f:
        f.write(_html(sections, out_dir, title))
