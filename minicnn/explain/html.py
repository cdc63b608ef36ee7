"""Small HTML builders for the explainer: escaping, tables, numbers carrying their exact value.
No external CSS, script, font or image: the page is one self-contained file."""
import html

CSS = """
body { font-family: sans-serif; max-width: 1150px; margin: 1em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
.formula { font-family: monospace; } .note { color: #555; font-size: 0.9em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.fmap { margin: 0.4em 0; } .fmap h3 { font-size: 0.95em; margin: 0.3em 0; }
.scroll { overflow-x: auto; } .hi { background: #ffe9a8; font-weight: bold; }
"""


def esc(text):
    return html.escape(str(text))


def num(value, digits=4, cls=None, ident=None):
    """A number shown rounded, its exact value (repr) in data-value for a program to read."""
    attrs = f' data-value="{float(value)!r}"'
    attrs += f' class="{cls}"' if cls else ""
    attrs += f' id="{ident}"' if ident else ""
    return f"<span{attrs}>{float(value):.{digits}f}</span>"


def table(header, rows, left=(0,), cls=None):
    """header: column titles; rows: lists of cells (already HTML); `left`: columns aligned left."""
    head = "".join(f'<th class="{"l" if i in left else ""}">{h}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i in left else ""}">{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<table{f" class={cls!r}" if cls else ""}><tr>{head}</tr>{body}</table>'


def img(uri, alt, width=None):
    return f'<img src="{uri}" alt="{esc(alt)}"{f" width={width}" if width else ""}>'


def section(ident, title, body, note=None):
    intro = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{ident}"><h2>{esc(title)}</h2>{intro}{body}</section>\n'


def document(title, sections, contents=()):
    """The page: title, a line of links to the sections ((anchor, label) pairs), the sections."""
    links = " · ".join(f'<a href="#{ident}">{esc(label)}</a>' for ident, label in contents)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n"
            + (f'<p class="note">{links}</p>\n' if links else "") + "".join(sections) + "</body></html>\n")
