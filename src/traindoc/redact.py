"""Keep secrets out of everything traindoc writes: logs, results, docs and READMEs.

Two nets: values of environment variables whose names look secret (``*TOKEN*``, ``*SECRET*``,
``*PASSWORD*``, ``*KEY*``...) are replaced wherever they appear, and well-known token shapes
(GitHub, Hugging Face, OpenAI-style, AWS, Slack, JWT, ``password=...``) are masked.
"""

from __future__ import annotations

import os
import re

MASK = "***"
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSW|PASSWD|API_?KEY|PRIVATE|CREDENTIAL|ACCESS_KEY|AUTH)", re.I)
_PATTERNS = [
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]
_ASSIGN = re.compile(
    r"(?i)\b([\w.-]*(?:token|secret|passw(?:or)?d|api[_-]?key|private[_-]?key)[\w.-]*)(\s*[=:]\s*)(['\"]?)([^\s'\"&]{4,})"
)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return sorted(
        {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 6},
        key=len,
        reverse=True,
    )


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    for value in secret_values(environ):
        text = text.replace(value, MASK)
    for pat in _PATTERNS:
        text = pat.sub(MASK, text)
    return _ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}", text)


def looks_secret(text: str, environ: dict[str, str] | None = None) -> bool:
    return redact(text, environ) != text
