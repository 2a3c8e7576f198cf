"""One escaping function per destination. Every string from a spec, a model, the file system or a
training log passes through exactly one of these on its way into generated text.

=============== ====================================================================================
destination     function (Jinja filter)
=============== ====================================================================================
Markdown text   :func:`md_text` (``md_text``; ``md_cell`` for table cells is the same function)
inline code     :func:`md_code` (``md_code``): a code span longer than any backtick run inside
HTML            :func:`html` (``html``)
Mermaid label   :func:`traindoc.render.mermaid.label` (``mmd_label``): quoted, entity codes
Mermaid comment :func:`mmd_comment` (``mmd_comment``): one line, no ``%``/``{``/``}``
Mermaid node id :func:`mmd_id` (``mmd_id``): checked ``[A-Za-z0-9_]+``; ``spaces``: indentation only
code block      :func:`fence` (``fence``): a fence longer than any backtick run inside
shell word      :func:`sh` (``sh``): POSIX quoting (:func:`shlex.quote`)
terminal text   :func:`txt` (``txt``): control characters (ANSI escapes) removed
number          :func:`num` (``num``): refuses anything but an int or a float
shell line      :func:`shell_line`: only a :class:`ShellLine` (every word quoted by ``sh_join``)
generated block :func:`rendered`: only a :class:`Rendered` (the output of another template)
=============== ====================================================================================

Templates hold presentation only; ``tests/test_escaping.py`` parses every template and checks that
every ``{{ ... }}`` ends in one of these filters (or a number formatter).
"""

from __future__ import annotations

import html as _html
import re
import shlex
import unicodedata
from typing import Any

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()!|])")
# what makes a line a list item, a heading, a rule or a setext underline
_MD_LINE_START = re.compile(r"^(\s*)([-+=]+(?=\s|$)|#+|\d+(?=[.)](?:\s|$)))")
_BACKTICKS = re.compile(r"`+")
_ID_RE = re.compile(r"[A-Za-z0-9_]+")
_ENTITY_RE = re.compile(r"[^\w ]|_", re.ASCII)


def _printable(text: str, keep: str = "") -> str:
    """Control and format characters (ANSI escapes, NUL, bidi overrides...) become spaces; ``keep`` stays."""
    text = text.replace("\r\n", "\n")
    return "".join(ch if ch in keep or not unicodedata.category(ch).startswith("C") else " " for ch in text)


def md_text(value: Any) -> str:
    """Text that shows literally in Markdown (a paragraph or a table cell): one line, HTML escaped, the
    characters that make links, images, emphasis, code and cell breaks backslash-escaped, and a line
    start that would make a list, heading or quote written as an entity."""
    text = " ".join(_printable(str(value)).split("\n")).strip()  # leading spaces could make a code block
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: m.group(1) + "".join(f"&#{ord(c)};" for c in m.group(2)), text)


md_cell = md_text


def html(value: Any) -> str:
    """Text for HTML element content or a quoted attribute."""
    return _html.escape(_printable(str(value), keep="\n\t"), quote=True)


def md_code(value: Any) -> str:
    """Inline code showing ``value`` literally, also inside a table cell.

    A backtick span longer than any run inside (padded when the value starts or ends with a backtick);
    a value with ``|`` becomes ``<code>`` with every punctuation character as a numeric entity, since
    GFM and Python-Markdown disagree on pipes inside code spans in tables (and Markdown is still parsed
    inside inline HTML, so ``[x](javascript:...)`` would otherwise become a link).
    """
    text = " ".join(_printable(str(value)).split("\n"))
    if "|" in text:  # every punctuation character as an entity: Markdown still parses inside inline HTML
        return "<code>" + _ENTITY_RE.sub(lambda m: f"&#{ord(m.group(0))};", text) + "</code>"
    runs = [len(m) for m in _BACKTICKS.findall(text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fence(value: Any, lang: str = "text") -> str:
    """A fenced code block showing ``value`` literally: its fence is longer than any backtick run inside."""
    text = _printable(str(value), keep="\n\t").rstrip("\n")
    runs = [len(m) for m in _BACKTICKS.findall(text)]
    marks = "`" * max(3, max(runs, default=0) + 1)
    if not re.fullmatch(r"[A-Za-z0-9_+-]*", lang):
        raise ValueError(f"not a fence language: {lang!r}")
    return f"{marks}{lang}\n{text}\n{marks}"


def mmd_comment(value: Any) -> str:
    """Text for a Mermaid ``%%`` comment line: one line, and no ``%``, ``{`` or ``}``, so it can never
    form a ``%%{init: ...}%%`` directive or end the comment."""
    text = " ".join(_printable(str(value)).split("\n"))
    return re.sub(r"[%{}`]", " ", text)


def mmd_id(value: Any) -> str:
    """A Mermaid node id made by :func:`traindoc.render.mermaid.node_id`; anything else is a bug."""
    text = str(value)
    if not _ID_RE.fullmatch(text):
        raise ValueError(f"not a safe Mermaid node id: {text!r}")
    return text


def spaces(value: Any) -> str:
    """Indentation: spaces only."""
    text = str(value)
    if text.strip(" "):
        raise ValueError(f"not an indentation: {text!r}")
    return text


def sh(value: Any) -> str:
    """One POSIX shell word: pastes as exactly one argument and expands nothing."""
    return shlex.quote(str(value))


def txt(value: Any) -> str:
    """Text for a terminal: control characters (ANSI escapes, carriage returns, newlines) become spaces."""
    return _printable(str(value))


def num(value: Any) -> str:
    """A number as written; a string here means a template passes text where it promised a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"num: expected a number, got {type(value).__name__} {value!r}")
    return str(value)


class ShellLine(str):
    """A shell line whose every word :func:`traindoc.render.commands.sh_join` quoted."""


class Rendered(str):
    """The output of a traindoc template: everything in it went through these filters already."""


def shell_line(value: Any) -> str:
    """Pass a :class:`ShellLine` through; anything else is refused (it was never quoted)."""
    if not isinstance(value, ShellLine):
        raise TypeError(f"shell_line: expected a line built by commands.sh_join, got {type(value).__name__}")
    return str(value)


def rendered(value: Any) -> str:
    """Pass a :class:`Rendered` block through; anything else is refused (it was never escaped)."""
    if not isinstance(value, Rendered):
        raise TypeError(f"rendered: expected the output of traindoc.render.env.render, got {type(value).__name__}")
    return str(value)


FILTERS = {
    "md_text": md_text,
    "md_cell": md_cell,
    "md_code": md_code,
    "html": html,
    "fence": fence,
    "mmd_comment": mmd_comment,
    "mmd_id": mmd_id,
    "spaces": spaces,
    "sh": sh,
    "txt": txt,
    "num": num,
    "shell_line": shell_line,
    "rendered": rendered,
}
