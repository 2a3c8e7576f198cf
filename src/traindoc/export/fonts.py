"""Pinned fonts for exports, so an exported diagram looks the same on every machine.

Two font packages are fetched once from the npm registry (``traindoc fonts-fetch``) into an ignored cache:
DejaVu Sans (Latin, Greek, Cyrillic, arrows, ``×``, ``·``; regular and bold) and Noto Sans SC (CJK, in the
~100 unicode-range chunks Fontsource publishes). The export page loads them before Mermaid lays out a
diagram, so box sizes fit these fonts; an SVG export then draws every label as outlines of the very same
glyphs (:func:`outline`), so the file names no font at all. Both fonts are under free licences (DejaVu's
Bitstream Vera licence, the SIL OFL), whose texts are kept beside the files.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .._util import procs
from ..errors import BrowserUnavailable
from .assets import NPM_TIMEOUT_S, replace_build

# (npm package, version, member inside the tarball → file name here)
DEJAVU = ("dejavu-fonts-ttf", "2.37.3")
NOTO_SC = ("@fontsource/noto-sans-sc", "5.3.0")
FONTS_ID = f"dejavu-{DEJAVU[1]}+noto-sc-{NOTO_SC[1]}"
SANS, CJK = "traindoc-sans", "traindoc-cjk"  # the families the export page declares
COVERAGE = "coverage.json"


def fonts_dir(root: Path | None = None) -> Path:
    env = os.environ.get("TRAINDOC_FONT_DIR")
    if env:
        return Path(env)
    from ..project import find_root

    return (root or find_root()) / ".cache" / "fonts" / FONTS_ID


def missing_reason(root: Path | None = None) -> str | None:
    path = fonts_dir(root) / COVERAGE
    if path.is_file():
        return None
    return (
        f"{path.parent}: the pinned export fonts (DejaVu Sans {DEJAVU[1]}, Noto Sans SC {NOTO_SC[1]}) are not "
        "fetched; run `traindoc fonts-fetch` (npm pack, once), set TRAINDOC_FONT_DIR, or export with "
        "`--text live` (labels as text in named font families)"
    )


# --- fetching ----------------------------------------------------------------------------------------------


def _pack(npm: str, package: str, version: str, tmp: Path) -> Path:
    code, _, err = procs.run([npm, "pack", f"{package}@{version}", "--silent"], cwd=tmp, timeout_s=NPM_TIMEOUT_S)
    if code != 0:
        why = f"timed out after {NPM_TIMEOUT_S:g} s" if code is None else f"failed: {err.strip()[-500:]}"
        raise BrowserUnavailable(f"npm pack {package}@{version} {why}")
    stem = package.lstrip("@").replace("/", "-")
    return next(tmp.glob(f"{stem}-{version}.tgz"))


def _copy(tar: tarfile.TarFile, member: str, to: Path) -> None:
    data = tar.extractfile(tar.getmember(member))
    if data is None:
        raise BrowserUnavailable(f"{member}: not a file in the font package")
    to.write_bytes(data.read())


def fetch_fonts(root: Path | None = None) -> Path:
    """Fetch both pinned packages (only the files an export uses) and index which characters each covers."""
    target = fonts_dir(root)
    if (target / COVERAGE).is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise BrowserUnavailable("npm not found: install Node.js/npm (Debian: apt-get install npm) to fetch fonts")
    target.parent.mkdir(parents=True, exist_ok=True)  # staged beside the target: os.replace never crosses disks
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tempfile.mkdtemp(dir=target.parent))
        try:
            with tarfile.open(_pack(npm, *DEJAVU, Path(tmp))) as tar:
                for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
                    _copy(tar, f"package/ttf/{name}", staging / name)
                _copy(tar, "package/LICENSE", staging / "LICENSE-DejaVu")
            with tarfile.open(_pack(npm, *NOTO_SC, Path(tmp))) as tar:
                chunk = re.compile(r"package/files/(noto-sans-sc-\d+-400-normal\.woff)")
                for member in tar.getnames():
                    m = chunk.fullmatch(member)
                    if m:
                        _copy(tar, member, staging / m.group(1))
                _copy(tar, "package/LICENSE", staging / "LICENSE-NotoSansSC")
            _index(staging)
            replace_build(staging, target, ours={p.name for p in staging.iterdir()})
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _ranges(codepoints: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for cp in sorted(codepoints):
        if out and cp == out[-1][1] + 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def _index(folder: Path) -> None:
    from fontTools.ttLib import TTFont

    def key(p: Path) -> int:
        return int(p.name.split("-")[3])

    faces = [{"file": "DejaVuSans.ttf", "family": SANS, "weight": 400}]
    faces += [{"file": "DejaVuSans-Bold.ttf", "family": SANS, "weight": 700}]
    faces += [{"file": p.name, "family": CJK, "weight": 400} for p in sorted(folder.glob("*.woff"), key=key)]
    for face in faces:
        with TTFont(str(folder / str(face["file"])), lazy=True) as font:
            face["ranges"] = _ranges(list(font.getBestCmap()))
    (folder / COVERAGE).write_text(json.dumps({"id": FONTS_ID, "faces": faces}), encoding="utf-8")


# --- using them --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Face:
    file: str
    family: str
    weight: int
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def covers(self, cp: int) -> bool:
        i = bisect.bisect_right(self.starts, cp) - 1
        return i >= 0 and cp <= self.ends[i]

    def unicode_range(self) -> str:
        return ",".join(f"U+{a:X}" if a == b else f"U+{a:X}-{b:X}" for a, b in zip(self.starts, self.ends, strict=True))


class FontSet:
    """The fetched faces: which one draws a character (DejaVu first, as the page's font list says)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        broken = f"{folder / COVERAGE}: not the index `traindoc fonts-fetch` writes; delete {folder} and fetch again"
        try:
            data = json.loads((folder / COVERAGE).read_text(encoding="utf-8"))
            if data.get("id") != FONTS_ID or not data.get("faces"):
                raise BrowserUnavailable(broken)
            self.faces = self._faces(data)
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise BrowserUnavailable(broken) from None

    @staticmethod
    def _faces(data: dict[str, Any]) -> list[Face]:
        return [
            Face(f["file"], f["family"], f["weight"], *(tuple(r[i] for r in f["ranges"]) for i in (0, 1)))
            for f in data["faces"]
        ]

    def face_for(self, ch: str, bold: bool = False) -> Face | None:
        cp = ord(ch)
        sans = [f for f in self.faces if f.family == SANS and (f.weight >= 700) == bold]
        for face in sans + [f for f in self.faces if f.family == CJK]:
            if face.covers(cp):
                return face
        return None

    def faces_for(self, text: str) -> list[Face]:
        """Every DejaVu face, and the CJK chunks the text needs (a CJK page loads a few of ~100)."""
        chars = {c for c in text if not c.isspace()}
        need = {id(f) for c in chars if (f := self.face_for(c)) is not None and f.family == CJK}
        return [f for f in self.faces if f.family == SANS or id(f) in need]

    def font(self, face: Face) -> Any:
        return _load(str(self.folder / face.file))


@cache
def _load(path: str) -> Any:
    from fontTools.ttLib import TTFont

    return TTFont(path, lazy=True)


_ENTITY = re.compile(r"#(\d+|[a-zA-Z]+);")
_NAMED = {"quot": '"', "amp": "&", "lt": "<", "gt": ">", "apos": "'", "nbsp": "\u00a0"}


def mermaid_chars(text: str) -> str:
    """The characters a Mermaid text draws, its ``#35;``/``#quot;`` entity codes decoded."""

    def decode(m: re.Match[str]) -> str:
        v = m.group(1)
        if v.isdigit():
            return chr(int(v)) if int(v) < 0x110000 else ""
        return _NAMED.get(v, "")

    return text + _ENTITY.sub(decode, text)


@dataclass(frozen=True)
class Outline:
    regular: str  # path data, filled
    fake_bold: str  # glyphs with no bold face (CJK): filled and stroked ``stroke`` wide, as Chromium does
    stroke: float


def fake_bold_width(size: float) -> float:
    """Skia's synthetic-bold stroke: 1/24 of the size at 9 px, 1/32 at 36 px, interpolated between."""
    t = min(max((size - 9) / 27, 0.0), 1.0)
    return size * ((1 - t) / 24 + t / 32)


def outline(
    fonts: FontSet, glyphs: list[dict[str, Any]], size: float, bold: bool, matrix: list[float] | None = None
) -> Outline | None:
    """SVG path data drawing ``glyphs`` ({ch, x, y, w}: where Chromium placed each character, its
    advance) in the pinned fonts; None when a character has no pinned glyph or its advance is not the
    glyph's (give or take kerning, which pulls a pair like ``Te`` up to a third of a glyph closer): the
    label then stays text, never a wrong outline. ``matrix`` (SVG ``a b c d e f``) maps the positions'
    space (the page, for an HTML label) into the user space the path is drawn in."""
    from fontTools.misc.transform import Transform
    from fontTools.pens.svgPathPen import SVGPathPen
    from fontTools.pens.transformPen import TransformPen

    to_user = Transform(*(matrix or (1, 0, 0, 1, 0, 0)))
    parts: list[str] = []
    embolden: list[str] = []
    for g in glyphs:
        ch = g["ch"]
        if ch.isspace():
            continue
        face = fonts.face_for(ch, bold)
        if face is None:
            return None
        font = fonts.font(face)
        name = font.getBestCmap().get(ord(ch))
        if name is None:
            return None
        k = size / font["head"].unitsPerEm
        advance = font["hmtx"][name][0] * k
        if abs(advance - g["w"]) > 0.5 + 0.35 * advance:
            return None
        glyph_set = font.getGlyphSet()
        pen = SVGPathPen(glyph_set, ntos=lambda v: f"{v:.2f}".rstrip("0").rstrip("."))
        place = Transform(k, 0, 0, -k, g["x"], g["y"])  # font units, y up → px at the baseline, y down
        glyph_set[name].draw(TransformPen(pen, to_user.transform(place)))
        (embolden if bold and face.weight < 700 else parts).append(pen.getCommands())
    return Outline(" ".join(p for p in parts if p), " ".join(p for p in embolden if p), fake_bold_width(size))
