"""HTML (saved web pages) with BeautifulSoup + lxml: the main text only, headings from h1–h4.

Scripts, styles, navigation, headers, footers, asides, forms and elements hidden or named like
menus, cookie banners or share bars are removed; when the page has a <main> or <article>, only
that is read. Every block (paragraph, list item, table row, quote) becomes a paragraph of clean
running text; the text is built here, so offsets point into exactly what is stored.
"""

from __future__ import annotations

import re
from pathlib import Path

from qa.documents.builder import TextBuilder, clean_inline, table_rows
from qa.documents.document import Document, Unreadable
from qa.documents.text import decode

DROP_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
             "iframe", "svg", "button", "select", "input", "textarea", "canvas", "object", "embed", "dialog")
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4}
BLOCKS = {"p", "li", "dt", "dd", "blockquote", "pre", "figcaption", "caption", "address", "h5", "h6",
          "div", "section", "article", "main", "ul", "ol", "dl", "table", "thead", "tbody", "tfoot", "tr",
          "figure", "details", "summary", "center", "td", "th", "body", "html", "header", "footer", "hgroup"}
_BOILERPLATE_RE = re.compile(
    r"(^|[\s_-])(nav|navbar|menu|sidebar|breadcrumbs?|cookies?|consent|share|social|newsletter|banner|"
    r"footer|header|masthead|advert|ads|promo|related|comments?|skip)($|[\s_-])", re.IGNORECASE)
_DECLARED_CHARSET_RE = re.compile(rb"<meta[^>]+charset\s*=", re.IGNORECASE)
_HIDDEN_RE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def read_html(data: bytes, doc_id: str, path: Path) -> Document:
    from bs4 import BeautifulSoup  # lazy: a heavy library, loaded on first use

    # A declared charset (<meta charset>, BOM) is trusted; otherwise the text decoder's rules (UTF-8,
    # then Windows-1252) beat bs4's guess, which reads undeclared French cp1252 as cp1250.
    declared = _DECLARED_CHARSET_RE.search(data[:4096]) or data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))
    soup = BeautifulSoup(data if declared else decode(data), "lxml")
    page_title = clean_inline(soup.title.get_text()) if soup.title else ""
    for tag in soup.find_all(DROP_TAGS):
        if tag.name in ("header", "footer") and _holds_content(tag):
            continue  # an article's own <header> holds its <h1>
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(" ")
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        attrs = tag.attrs or {}
        names = " ".join([*(attrs.get("class") or []), str(attrs.get("id") or ""), str(attrs.get("role") or "")])
        if (attrs.get("hidden") is not None or attrs.get("aria-hidden") == "true"
                or _HIDDEN_RE.search(str(attrs.get("style") or ""))
                or (tag.name not in ("body", "html", "main", "article") and _BOILERPLATE_RE.search(names)
                    and not _holds_content(tag))):
            tag.decompose()
    mains = soup.find_all(["main", "article"])
    root = max(mains, key=lambda t: len(t.get_text())) if mains else (soup.body or soup)
    builder = TextBuilder()
    h1 = root.find("h1") or soup.find("h1")
    title = clean_inline(h1.get_text(" ")) if h1 else page_title
    if title:
        builder.title(title)
    _walk(root, builder, skip=h1)
    if not builder.paragraphs:
        raise Unreadable("page HTML sans texte principal")
    return builder.document(doc_id, title or path.stem, data)


def _holds_content(tag) -> bool:
    """Whether removing `tag` would remove the page's main text: it wraps <main>, <article> or <h1>
    (a class such as "layout-with-sidebar" on the page's wrapper names its layout, not its content)."""
    return tag.find(["main", "article", "h1"]) is not None


def _walk(node, builder: TextBuilder, skip=None) -> None:
    """Emit headings and leaf blocks in document order; loose inline text between blocks is a paragraph."""
    from bs4 import NavigableString, Tag  # lazy: a heavy library, loaded on first use

    loose: list[str] = []

    def flush() -> None:
        if loose:
            builder.paragraph(" ".join(loose))
            loose.clear()

    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString and child.strip():  # not comments, CDATA or doctypes
                loose.append(str(child))
            continue
        if not isinstance(child, Tag) or child is skip:
            continue
        if child.name in HEADINGS:
            flush()
            builder.heading(child.get_text(""), HEADINGS[child.name])
        elif child.name == "table":
            flush()
            own = [tr for tr in child.find_all("tr") if tr.find_parent("table") is child]  # not a nested table's rows
            rows = [[c.get_text(" ") for c in tr.find_all(["td", "th"], recursive=False)] for tr in own]
            first = child.find("tr")
            header = bool(first and first.find("th", recursive=False) and not first.find("td", recursive=False))
            for row in table_rows(rows, header):
                builder.paragraph(row)
        elif child.name in BLOCKS:
            flush()
            if child.find(list(BLOCKS | set(HEADINGS))) is None or child.name in ("p", "h5", "h6"):
                builder.paragraph(child.get_text(""))
            else:
                _walk(child, builder, skip)
        else:
            loose.append(child.get_text(""))
    flush()
