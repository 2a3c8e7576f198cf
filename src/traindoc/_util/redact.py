"""Keep secrets out of everything traindoc writes: logs, results, facts, docs and READMEs.

One mechanism, :func:`redact`, applied wherever text leaves a process (the worker's log pump, error
records, results, facts, generated blocks). It masks:

- the value of every environment variable whose name looks secret (``*TOKEN*``, ``*SECRET*``,
  ``*PASSW*``, ``*PASSPHRASE*``, ``DB_PASS``, ``*KEY*``, ``*AUTH*``, ``*CREDENTIAL*``...), also
  URL-encoded, JSON-escaped and base64-encoded (at any byte alignment);
- credentials inside URLs (``scheme://user:password@host``: the password);
- every line of a PEM private key (BEGIN and END lines stay, so the reader sees what was there);
- values of ``password``/``pass``/``passphrase``/``token``/``secret``/``api_key``... keys, as
  ``key=value``, ``key: value``,
  ``"key": "value"`` (JSON) or ``{'key': 'value'}`` (a printed dict);
- well-known token shapes: GitHub (``ghp_``...), Hugging Face (``hf_``), OpenAI-style (``sk-``),
  AWS access key ids (``AKIA``/``ASIA``), Slack (``xox?-``), JWTs.

A line-by-line stream (a log pump) uses :class:`LineRedactor`, which remembers that it is inside a PEM
block. :func:`for_page` adds what a published page must not show: this machine's absolute paths.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sysconfig
from pathlib import Path
from urllib.parse import quote, quote_plus

MASK = "***"
_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSW|PASSPHRASE|(^|_)PASS($|_)|PWD$|KEY|PRIVATE|CREDENTIAL|AUTH|COOKIE|SESSION)", re.I
)
_NOT_SECRET_NAME = re.compile(r"^(PWD|OLDPWD|SSH_AUTH_SOCK|.*_KEYRING.*|XDG_SESSION_.*|SESSION_MANAGER)$", re.I)
_PATTERNS = [
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),
]
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@'\"<>]*):([^\s/@'\"<>]+)@")
_PEM_BLOCK = re.compile(r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)(.*?)(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
_KEY_WORDS = (
    r"(?:token|secret|passw(?:or)?d|passwd|passphrase|(?<![a-z])pass(?![a-z])"
    r"|api[_-]?key|private[_-]?key|access[_-]?key|credentials?)"
)
_ASSIGN = re.compile(
    r"(?i)(?P<key>\b[\w.-]*" + _KEY_WORDS + r"[\w.-]*)"
    r"(?P<sep>['\"]?\s*[=:]\s*)"
    r"(?:(?P<q>['\"])(?P<quoted>(?:(?!(?P=q))[^\\\n]|\\.){3,})(?P=q)|(?P<bare>[^\s'\",&}\]\)]{4,}))"
)
_MIN_SECRET = 6


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET_NAME.match(name)


def _b64_forms(value: str) -> set[str]:
    """The base64 text of ``value`` at each of the three byte alignments (what any encoding of a longer
    text that contains it must contain), standard and URL-safe."""
    raw = value.encode("utf-8")
    forms = set()
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + raw).decode("ascii")
        first = -(-8 * k // 6)
        last = (8 * (k + len(raw))) // 6
        part = enc[first:last]
        if len(part) >= 8:
            forms |= {part, part.replace("+", "-").replace("/", "_")}
    return forms


def _forms(value: str) -> set[str]:
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    forms |= _b64_forms(value)
    return {f for f in forms if len(f) >= _MIN_SECRET}


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Every form of every secret-named variable's value, longest first."""
    env = os.environ if environ is None else environ
    # a value read from a CRLF .env file (docker --env-file) ends in '\r'; the script prints it stripped
    values = {s for k, v in env.items() if _is_secret_name(k) for s in (v, v.strip()) if len(s) >= _MIN_SECRET}
    forms: set[str] = set()
    for v in values:
        forms |= _forms(v)
    return sorted(forms, key=len, reverse=True)


def _assign(m: re.Match[str]) -> str:
    if m.group("q"):
        return f"{m.group('key')}{m.group('sep')}{m.group('q')}{MASK}{m.group('q')}"
    return f"{m.group('key')}{m.group('sep')}{MASK}"


def _pem(m: re.Match[str]) -> str:
    if not m.group(2).strip():
        return m.group(0)
    return f"{m.group(1)}\n{MASK}\n{m.group(3)}" if m.group(3) else f"{m.group(1)}\n{MASK}"


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """``text`` with every secret it contains masked as ``***``."""
    for value in secret_values(environ):
        text = text.replace(value, MASK)
    text = _PEM_BLOCK.sub(_pem, text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    for pat in _PATTERNS:
        text = pat.sub(MASK, text)
    return _ASSIGN.sub(_assign, text)


class LineRedactor:
    """Redacts a stream line by line, masking every body line of a PEM private key that spans lines."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = environ
        self.in_pem = False

    def __call__(self, line: str) -> str:
        if self.in_pem:
            end = _PEM_END.search(line)
            if end:
                self.in_pem = False
                return end.group(0) + redact(line[end.end() :], self.environ)
            return MASK + "\n" if line.endswith("\n") else MASK
        begin = _PEM_BEGIN.search(line)
        if begin and not _PEM_END.search(line, begin.end()):
            self.in_pem = True
            return redact(line[: begin.start()], self.environ) + begin.group(0) + ("\n" if line.endswith("\n") else "")
        return redact(line, self.environ)


def redact_lines(lines: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """Lines of one stream (a log tail, a traceback), PEM blocks included."""
    r = LineRedactor(environ)
    return [r(line) for line in lines]


def machine_paths(root: Path | None = None) -> list[tuple[str, str]]:
    """(absolute prefix, what a page shows instead), longest first: the project root, Python's
    library folders, the home folder and the working directory of the building machine."""
    pairs: dict[str, str] = {}
    home = str(Path.home())
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        pairs[sysconfig.get_paths()[key].rstrip("/") + "/"] = f"<{key}>/"
    if len(home) > 1:
        pairs[home.rstrip("/") + "/"] = "~/"
    for folder in (Path.cwd(), root):
        if folder is not None and len(str(folder)) > 1:
            pairs[str(folder.resolve()).rstrip("/") + "/"] = ""
            pairs[str(folder).rstrip("/") + "/"] = ""
    return sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)


def for_page(text: str, root: Path | None = None, environ: dict[str, str] | None = None) -> str:
    """What a published page or README may show: secrets masked, absolute paths of this machine
    (project root, Python installation, home folder) made relative."""
    text = redact(text, environ)
    for prefix, short in machine_paths(root):
        text = text.replace(prefix, short)
        bare = prefix.rstrip("/")
        text = re.sub(re.escape(bare) + r"(?![\w.-])", short.rstrip("/") or ".", text)
    return text
