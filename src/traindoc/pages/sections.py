"""README sections between markers, in the spirit of cog: markers stay, only their insides change.

    <!-- traindoc:begin system pipeline=digits -->
    ...generated...
    <!-- traindoc:end -->

Bytes outside sections are never touched (line endings kept); markers inside code fences are
plain text, and so are markers indented by four or more columns (an indented code block, or the
inside of a fence nested in a list item: how a README shows the markers as an example); a UTF-8 byte
order mark before the first marker is ignored. Unbalanced, nested or unknown markers raise
:class:`MarkerError` naming the line, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from ..errors import MarkerError

BEGIN = re.compile(r"^\s*<!--\s*traindoc:begin\b(?P<args>.*?)-->\s*$")
END = re.compile(r"^\s*<!--\s*traindoc:end\s*-->\s*$")
ANY = re.compile(r"<!--\s*traindoc:(begin|end)\b")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class Section:
    kind: str
    params: dict[str, str] = field(default_factory=dict)
    begin: int = 0  # index of the begin-marker line
    end: int = 0  # index of the end-marker line
    line_no: int = 0  # 1-based line of the begin marker


def _indent(line: str) -> int:
    """Columns of leading whitespace (a tab reaches the next multiple of four, as in CommonMark)."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(4))


def _parse_args(text: str, filename: str, line_no: int) -> tuple[str, dict[str, str]]:
    parts = text.split()
    if not parts:
        raise MarkerError(f"{filename}({line_no}): traindoc:begin needs a section kind, e.g. 'traindoc:begin system'")
    params: dict[str, str] = {}
    for p in parts[1:]:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise MarkerError(f"{filename}({line_no}): marker parameter {p!r} must be key=value")
        params[key] = value
    return parts[0], params


def parse(text: str, filename: str = "<text>", kinds: Collection[str] | None = None) -> list[Section]:
    lines = text.splitlines(keepends=True)
    sections: list[Section] = []
    fence: str | None = None
    open_: tuple[int, str, dict[str, str]] | None = None
    for i, raw in enumerate(lines):
        line = raw.rstrip("\r\n")
        if i == 0:
            line = line.removeprefix("\ufeff")
        if open_ is None:
            m = FENCE.match(line)
            if fence is not None:
                if (
                    m
                    and m.group(1)[0] == fence[0]
                    and len(m.group(1)) >= len(fence)
                    and not line.strip()[len(m.group(1)) :].strip()
                ):
                    fence = None
                continue
            if m:
                fence = m.group(1)
                continue
            if _indent(line) >= 4:  # Markdown shows it as code (or it is code nested in a list): text
                continue
        b, e = BEGIN.match(line), END.match(line)
        if b:
            if open_ is not None:
                raise MarkerError(
                    f"{filename}({i + 1}): nested traindoc:begin "
                    f"(the section opened on line {open_[0] + 1} is not closed)"
                )
            kind, params = _parse_args(b.group("args"), filename, i + 1)
            if kinds is not None and kind not in kinds:
                raise MarkerError(
                    f"{filename}({i + 1}): unknown section kind {kind!r}; allowed: {', '.join(sorted(kinds))}"
                )
            open_ = (i, kind, params)
        elif e:
            if open_ is None:
                raise MarkerError(f"{filename}({i + 1}): traindoc:end without a matching traindoc:begin")
            sections.append(Section(kind=open_[1], params=open_[2], begin=open_[0], end=i, line_no=open_[0] + 1))
            open_ = None
        elif open_ is None and ANY.search(line):
            raise MarkerError(f"{filename}({i + 1}): a traindoc marker must stand alone on its line")
    if open_ is not None:
        raise MarkerError(
            f"{filename}({open_[0] + 1}): traindoc:begin {open_[1]} is never closed with <!-- traindoc:end -->"
        )
    return sections


def _eol(lines: list[str], index: int) -> str:
    line = lines[index]
    if line.endswith("\r\n"):
        return "\r\n"
    if line.endswith("\n"):
        return "\n"
    return "\n"


def replace(
    text: str,
    generate: Callable[[Section], str],
    filename: str = "<text>",
    kinds: Collection[str] | None = None,
) -> str:
    """Regenerate every section's inside. Raises before producing anything if markers are bad."""
    sections = parse(text, filename, kinds)
    if not sections:
        return text
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0
    for s in sections:
        eol = _eol(lines, s.begin)
        out.extend(lines[cursor : s.begin + 1])
        if not lines[s.begin].endswith(("\n", "\r")):
            out.append(eol)  # a begin marker on the file's last line without newline cannot happen (end follows)
        body = generate(s).replace("\r\n", "\n")
        if body and not body.endswith("\n"):
            body += "\n"
        out.append(body.replace("\n", eol))
        cursor = s.end
    out.extend(lines[cursor:])
    return "".join(out)
