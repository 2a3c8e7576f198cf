"""Safe Mermaid primitives: stable node ids, quoted and escaped labels, and the size budget.

Every label is emitted as ``id["..."]`` with Mermaid entity codes for anything that could end
the string, start an entity, start Markdown-string mode or become HTML. So any text, including the
article's ``NVIDIA GPU (如 A100/V100)`` that breaks unquoted Mermaid 11, yields a valid diagram.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

MAX_TEXT_SIZE = 50_000  # Mermaid's default maxTextSize
MAX_EDGES = 500  # Mermaid's default maxEdges
BUDGET_TEXT = 45_000  # we stay under with room for a user's edits
BUDGET_EDGES = 450

_ENTITIES = {
    "#": "#35;",  # first: it starts every entity code
    '"': "#quot;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "`": "#96;",
    "\\": "#92;",  # Mermaid eats a backslash before some characters ("\\:" showed as ":")
    "*": "#42;",  # Mermaid 11 applies Markdown emphasis to labels: "*a*" became an <em>
    "%": "#37;",  # Mermaid finds "%%{init: ...}%%" directives anywhere in the text, even inside a label
}
# "_" only where it can open or close emphasis (a word boundary); "c_attn" stays readable.
_UNDERSCORE_RE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_ENTITY_RE = re.compile("[" + re.escape("".join(_ENTITIES)) + "]")
_ID_OK = re.compile(r"^[A-Za-z0-9]+$")
LINE_BREAK = "<br>"
MAX_LABEL = 200


def escape(text: object, *, max_len: int = MAX_LABEL) -> str:
    """Escape text for use inside a double-quoted Mermaid label. Newlines become ``<br>``."""
    raw = str(text)
    raw = "".join(
        ch if ch == "\n" or not unicodedata.category(ch).startswith("C") else " "
        for ch in raw.replace("\r\n", "\n").replace("\r", "\n")
    )
    if len(raw) > max_len:
        raw = raw[: max_len - 1] + "…"
    lines = [
        _UNDERSCORE_RE.sub("#95;", _ENTITY_RE.sub(lambda m: _ENTITIES[m.group(0)], line)) for line in raw.split("\n")
    ]
    return LINE_BREAK.join(lines)


def label(text: object) -> str:
    """A quoted, escaped label: ``"..."``."""
    return f'"{escape(text)}"'


def node_id(name: object, prefix: str = "n") -> str:
    """A stable id from a qualified name: readable, never a Mermaid keyword, never colliding.

    Pure alphanumeric names keep their spelling (``n_conv1``); anything else is sanitised and gets a
    short hash of the original, so ``a.b`` and ``a_b`` never share an id.
    """
    text = str(name)
    if _ID_OK.match(text):
        return f"{prefix}_{text}"
    clean = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:48]
    digest = hashlib.sha1(text.encode()).hexdigest()[:6]
    return f"{prefix}_{clean}_{digest}" if clean else f"{prefix}_{digest}"


@dataclass(frozen=True)
class Size:
    chars: int
    edges: int

    @property
    def within_budget(self) -> bool:
        return self.chars <= BUDGET_TEXT and self.edges <= BUDGET_EDGES


_EDGE_RE = re.compile(r"(<?-->|---|-\.->?|<?==>|--o|--x)")


def measure(text: str) -> Size:
    """Characters and edges of a flowchart (edges counted per arrow, as Mermaid counts them)."""
    edges = 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("%%"):
            continue
        edges += len(_EDGE_RE.findall(_strip_strings(stripped)))
    return Size(chars=len(text), edges=edges)


def _strip_strings(line: str) -> str:
    return re.sub(r'"[^"]*"', '""', line)


def fenced(text: str) -> str:
    """A ```` ```mermaid ```` fence ready to paste into a README (GitHub and GitLab render it)."""
    from .escape import fence

    return fence(text, "mermaid") + "\n"
