"""The pinned Mermaid build: fetched once from the npm registry (``npm pack``) into an ignored cache.

Never a floating version, never committed. The docs site copies it in (``mermaid: local``), the
browser tests and ``traindoc export`` load it from here.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from .._util import procs
from ..errors import BrowserUnavailable

MERMAID_VERSION = "11.12.0"
FILES = ("mermaid.min.js",)
NPM_TIMEOUT_S = 300.0  # npm pack over a dead network must not hang `traindoc mermaid-fetch`


def mermaid_dir(version: str | None = None, root: Path | None = None) -> Path:
    env = os.environ.get("TRAINDOC_MERMAID_DIR")
    if env:
        return Path(env)
    from ..project import find_root

    return (root or find_root()) / ".cache" / "mermaid" / (version or MERMAID_VERSION)


def mermaid_js(version: str | None = None, root: Path | None = None) -> Path:
    """Path of the pinned ``mermaid.min.js``; a clear error says how to fetch it when missing."""
    path = mermaid_dir(version, root) / "mermaid.min.js"
    if not path.is_file():
        raise BrowserUnavailable(
            f"{path}: pinned Mermaid {version or MERMAID_VERSION} not found; run `traindoc mermaid-fetch` "
            f"(it uses `npm pack mermaid@{version or MERMAID_VERSION}`) or set TRAINDOC_MERMAID_DIR"
        )
    return path


def fetch_mermaid(version: str | None = None, root: Path | None = None) -> Path:
    version = version or MERMAID_VERSION
    target = mermaid_dir(version, root)
    if (target / "mermaid.min.js").is_file():
        return target / "mermaid.min.js"
    npm = shutil.which("npm")
    if npm is None:
        raise BrowserUnavailable("npm not found: install Node.js/npm (Debian: apt-get install npm) to fetch Mermaid")
    with tempfile.TemporaryDirectory() as tmp:
        code, _, err = procs.run([npm, "pack", f"mermaid@{version}", "--silent"], cwd=tmp, timeout_s=NPM_TIMEOUT_S)
        if code != 0:
            why = f"timed out after {NPM_TIMEOUT_S:g} s" if code is None else f"failed: {err.strip()[-500:]}"
            raise BrowserUnavailable(f"npm pack mermaid@{version} {why}")
        tgz = next(Path(tmp).glob("mermaid-*.tgz"))
        target.parent.mkdir(parents=True, exist_ok=True)  # staged beside the target: os.replace never crosses disks
        staging = Path(tempfile.mkdtemp(dir=target.parent))
        try:
            with tarfile.open(tgz) as tar:
                for name in FILES:
                    member = tar.getmember(f"package/dist/{name}")
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    (staging / name).write_bytes(extracted.read())
                lic = tar.extractfile(tar.getmember("package/LICENSE"))
                if lic is not None:
                    (staging / "LICENSE").write_bytes(lic.read())
            replace_build(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target / "mermaid.min.js"


def replace_build(staging: Path, target: Path, ours: set[str] | None = None) -> None:
    """Put a fetched build in place. ``target`` may come from TRAINDOC_MERMAID_DIR or TRAINDOC_FONT_DIR (a
    path a user typed): it is replaced only when it holds nothing but the files traindoc writes there
    (``ours``), never deleted wholesale."""
    ours = ours if ours is not None else {*FILES, "LICENSE"}
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        shutil.rmtree(staging, ignore_errors=True)
        raise BrowserUnavailable(f"{target}: not a folder traindoc created; nothing was replaced")
    if target.exists():
        foreign = sorted(p.name for p in target.iterdir() if p.name not in ours or not p.is_file())
        if foreign:
            shutil.rmtree(staging, ignore_errors=True)
            raise BrowserUnavailable(
                f"{target}: holds files traindoc did not write ({', '.join(foreign[:5])}); nothing was replaced"
            )
        for p in target.iterdir():
            p.unlink()
        target.rmdir()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)  # a half-fetched build is never seen


SITE_PATH = "assets/traindoc/mermaid.min.js"  # where the plugin, and mermaid-install, put it in a site


def install_mermaid(docs_dir: Path, root: Path | None = None) -> Path:
    """Copy the pinned build into ``docs_dir`` (for Zensical, which runs no MkDocs plugin): the site then
    serves it and loads nothing from a CDN. Only this one file is written; it is never deleted."""
    from .._util import atomic

    target = docs_dir / SITE_PATH
    data = mermaid_js(root=root).read_bytes()
    if not (target.is_file() and target.read_bytes() == data):
        atomic.write_bytes(target, data)
    return target
