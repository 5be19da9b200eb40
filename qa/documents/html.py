"""HTML (saved web pages) with BeautifulSoup + lxml: the main text only, headings from h1–h4.

Scripts, styles, navigation, headers, footers, asides, forms and elements hidden or named like
menus, cookie banners or share bars are removed; when the page has a <main> or <article>, only
that is read. Every block (paragraph, list item, table row, quote) becomes a paragraph of clean
running text; the text is built here, so offsets point into exactly what is stored.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup, CData, NavigableString, Tag

from qa.documents.document import Document, TextBuilder, Unreadable, clean_inline, table_rows
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
CONTENT = ("main", "article", "h1")  # what a tag must not hold to be removed as page furniture
_HIDDEN_RE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def read_html(data: bytes, doc_id: str, path: Path) -> Document:
    """Every step is one pass over the tree (or over disjoint subtrees), never a search below each
    tag, and the walk keeps its own stack: 100,000 nested <div> read in linear time, without recursion."""
    # A declared charset (<meta charset>, BOM) is trusted; otherwise the text decoder's rules (UTF-8,
    # then Windows-1252) beat bs4's guess, which reads undeclared French cp1252 as cp1250.
    declared = _DECLARED_CHARSET_RE.search(data[:4096]) or data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))
    soup = BeautifulSoup(data if declared else decode(data), "lxml")
    page_title = clean_inline(soup.title.get_text()) if soup.title else ""
    content = _holding(soup, CONTENT)
    # an article's own <header> holds its <h1>
    _prune(soup, lambda tag: tag.name in DROP_TAGS and not (tag.name in ("header", "footer") and id(tag) in content))
    for br in soup.find_all("br"):
        br.replace_with(" ")
    content = _holding(soup, CONTENT)  # what the first pass left
    _prune(soup, lambda tag: _furniture(tag, content))
    mains = soup.find_all(["main", "article"])
    if mains:
        lengths = _text_lengths(soup)
        root = max(mains, key=lambda t: lengths.get(id(t), 0))
    else:
        root = soup.body or soup
    h1 = root.find("h1") or soup.find("h1")
    title = clean_inline(h1.get_text(" ")) if h1 else page_title
    builder = TextBuilder(title)
    _walk(root, builder, skip=h1, nested=_holding(soup, BLOCKS | set(HEADINGS)))
    if not builder.paragraphs:
        raise Unreadable("page HTML sans texte principal")
    return builder.document(doc_id, title or path.stem, data)


def _furniture(tag, content: set[int]) -> bool:
    """A hidden element, or a navigation-like one (named menu, cookie banner, share bar…) that does not
    wrap the page's main text (its id not in `content`). Tags come in document order, so when one is
    looked at none of its descendants is removed yet: `content`, computed before the pass, holds."""
    attrs = tag.attrs or {}
    names = " ".join([*(attrs.get("class") or []), str(attrs.get("id") or ""), str(attrs.get("role") or "")])
    return (attrs.get("hidden") is not None or attrs.get("aria-hidden") == "true"
            or bool(_HIDDEN_RE.search(str(attrs.get("style") or "")))
            or (tag.name not in ("body", "html", "main", "article") and bool(_BOILERPLATE_RE.search(names))
                and id(tag) not in content))


def _prune(soup, drop) -> None:
    """Decompose every tag for which `drop(tag)` holds, in one pass in document order. A tag under a
    removed one is passed over, known by its parent's id noted before any removal: bs4's own
    `tag.decomposed` is no help, as on a live tag it searches the whole subtree for a child tag named
    "_decomposed" (Tag.__getattr__), which made this pass quadratic in the nesting depth."""
    tags = [(tag, id(tag.parent)) for tag in soup.find_all(True)]
    gone: set[int] = set()
    for tag, parent in tags:
        if parent in gone or drop(tag):
            gone.add(id(tag))
            if parent not in gone:
                tag.decompose()


def _holding(soup, names) -> set[int]:
    """The ids of the tags with a descendant named in `names`, in one bottom-up pass: in reversed
    document order every node comes before its parent. (Removing such a tag would remove the page's
    main text when `names` is CONTENT: a class such as "layout-with-sidebar" on the page's wrapper
    names its layout, not its content.)"""
    held: set[int] = set()
    for node in reversed(list(soup.descendants)):
        if isinstance(node, Tag) and node.parent is not None and (node.name in names or id(node) in held):
            held.add(id(node.parent))
    return held


def _text_lengths(soup) -> dict[int, int]:
    """len(tag.get_text()) of every tag, in one bottom-up pass (strings of the types get_text keeps)."""
    lengths: dict[int, int] = {}
    for node in reversed(list(soup.descendants)):
        if node.parent is None:
            continue
        if isinstance(node, Tag):
            size = lengths.get(id(node), 0)
        else:
            size = len(node) if type(node) in (NavigableString, CData) else 0
        if size:
            lengths[id(node.parent)] = lengths.get(id(node.parent), 0) + size
    return lengths


def _walk(root, builder: TextBuilder, skip, nested: set[int]) -> None:
    """Emit headings and leaf blocks in document order; loose inline text between blocks is a paragraph.
    A block holding other blocks or headings (its id in `nested`) is walked into, on an explicit stack."""
    stack: list[tuple] = [(iter(root.children), [])]
    while stack:
        children, loose = stack[-1]
        child = next(children, None)
        if child is None:
            _flush(loose, builder)
            stack.pop()
        elif isinstance(child, NavigableString):
            if type(child) is NavigableString and child.strip():  # not comments, CDATA or doctypes
                loose.append(str(child))
        elif not isinstance(child, Tag) or child is skip:
            continue
        elif child.name not in HEADINGS and child.name not in BLOCKS:
            loose.append(child.get_text(""))
        else:
            _flush(loose, builder)
            if child.name in HEADINGS:
                builder.heading(child.get_text(""), HEADINGS[child.name])
            elif child.name == "table":
                _table(child, builder)
            elif id(child) not in nested or child.name in ("p", "h5", "h6"):
                builder.paragraph(child.get_text(""))
            else:
                stack.append((iter(child.children), []))


def _flush(loose: list[str], builder: TextBuilder) -> None:
    builder.paragraph(" ".join(loose))  # nothing when there is no loose text
    loose.clear()


def _table(table, builder: TextBuilder) -> None:
    """Each of the table's own rows (not a nested table's) as a paragraph, cells labelled by a header
    row. The rows are found in one walk that does not enter nested tables (rather than a climb from
    each row to its table)."""
    rows, stack = [], list(reversed(table.contents))
    while stack:
        node = stack.pop()
        if isinstance(node, Tag) and node.name != "table":
            if node.name == "tr":
                rows.append([c.get_text(" ") for c in node.find_all(["td", "th"], recursive=False)])
            stack.extend(reversed(node.contents))
    first = table.find("tr")
    header = bool(first and first.find("th", recursive=False) and not first.find("td", recursive=False))
    for row in table_rows(rows, header):
        builder.paragraph(row)
