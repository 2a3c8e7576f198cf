"""Attacks on traindoc's safety guarantees (docs/safety.md) that once succeeded, kept as regressions.

Each test performs the attack for real (a FIFO planted where a file is expected, a README whose
example markers sit in an indented code block, ...) and asserts the guarantee holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ProjectFactory
from traindoc._util import redact
from traindoc.errors import RunFolderRefused, TimedOut
from traindoc.facts import service
from traindoc.run import runfolder

# --- hang: a FIFO where a file is expected -----------------------------------------------------------
# A CI cache restored from a tarball, or a run folder someone prepared, can hold a named pipe with the
# name of an entry. Opening a FIFO for reading blocks until a writer appears: forever.


def test_a_fifo_planted_as_a_facts_cache_entry_does_not_hang_inspect(make_project: ProjectFactory) -> None:
    root = make_project()
    t = service.target("tiny", root)
    fifo = root / ".cache" / "traindoc" / "facts" / f"{service.facts_fingerprint(t).key}.json"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "traindoc", "inspect", "tiny"],
            cwd=root,
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("traindoc inspect hung on a FIFO in the cache") from exc
    assert r.returncode == 0, r.stderr
    assert "tiny" in r.stdout


_FIFO_PROBE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from traindoc import cache
    from traindoc._util import procs
    from traindoc.run import runner
    from traindoc.train import checkpoint
    from traindoc.errors import CacheCorrupt

    d = Path(sys.argv[1])
    out = {}
    ck = d / "checkpoints"
    ck.mkdir()
    os.mkfifo(ck / "step_00000020.pt")                    # the checkpoint itself
    (ck / "step_00000010.pt").write_bytes(b"x")
    os.mkfifo(ck / "step_00000010.pt.sha256.json")        # its checksum file
    found = checkpoint.find(ck)
    out["checkpoint"] = [s.path for s in found.skipped]
    out["checksum_ok"] = checkpoint._checksum_ok(ck / "step_00000010.pt")
    os.mkfifo(d / "entry.json")
    try:
        cache.read_entry(d / "entry.json")
        out["entry"] = "served"
    except CacheCorrupt:
        out["entry"] = "corrupt"
    os.mkfifo(d / "results.json")                         # what --resume reads first
    out["finished"] = runner._finished(d, "k", 1)
    os.mkfifo(d / "procs.json")                           # what every run reads first
    out["leftovers"] = procs.clear_leftovers(d)
    print(json.dumps(out))
    """
)


def test_fifos_in_a_run_folder_or_checkpoint_folder_are_refused_not_waited_on(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        r = subprocess.run(
            [sys.executable, "-c", _FIFO_PROBE, str(tmp_path / "run")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("reading a FIFO in a run folder blocked") from exc
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out == {
        "checkpoint": ["step_00000020.pt", "step_00000010.pt"],
        "checksum_ok": False,
        "entry": "corrupt",
        "finished": None,
        "leftovers": [],
    }


# --- lose data: README markers shown as an example, a byte order mark, a README that is a link --------

_EXAMPLE = (
    "To add a diagram, put these lines in your README:\n"
    "\n"
    "    <!-- traindoc:begin system pipeline=tiny -->\n"
    "    (traindoc fills this in)\n"
    "    <!-- traindoc:end -->\n"
    "\n"
    "- or, in a list:\n"
    "\n"
    "      ```\n"
    "      <!-- traindoc:begin model pipeline=tiny -->\n"
    "      my own words\n"
    "      <!-- traindoc:end -->\n"
    "      ```\n"
    "\n"
    "\t<!-- traindoc:begin system -->\n"
    "\t<!-- traindoc:end -->\n"
)


def test_readme_keeps_example_markers_in_indented_code_and_reads_a_bom_and_a_link(
    make_project: ProjectFactory,
) -> None:
    root = make_project()
    readme = root / "README.md"
    readme.write_text(
        "\ufeff<!-- traindoc:begin system pipeline=tiny -->\r\nold\r\n<!-- traindoc:end -->\r\n\r\n" + _EXAMPLE,
        newline="",
    )
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text(
        "# Tiny\n\n<!-- traindoc:begin model pipeline=tiny -->\n<!-- traindoc:end -->\n"
    )
    (root / "LINK.md").symlink_to(Path("docs") / "index.md")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in ("README.md", "LINK.md"):
        r = subprocess.run(
            [sys.executable, "-m", "traindoc", "readme", name], cwd=root, capture_output=True, text=True, env=env
        )
        assert r.returncode == 0, r.stderr
    data = readme.read_bytes().decode("utf-8")
    assert data.startswith("\ufeff<!-- traindoc:begin system pipeline=tiny -->\r\n")
    assert "\r\nold\r\n" not in data and "flowchart" in data  # the real section was generated
    assert data.endswith("\r\n\r\n" + _EXAMPLE), "the example in indented code was rewritten"
    assert (root / "LINK.md").is_symlink(), "the README's symbolic link was replaced by a file"
    assert "flowchart" in (root / "docs" / "index.md").read_text()


# --- leak: secrets in variables named the way databases and GnuPG name them ----------------------------

_PASS_SECRETS = {
    "DB_PASS": "hunter2-db-Zq81",
    "GPG_PASSPHRASE": "correct horse battery Zq82",
    "SMTP_PASS": "s3cr3t-Zq83",
}


@pytest.mark.slow
def test_pass_and_passphrase_variables_never_reach_what_a_run_writes(make_project: ProjectFactory) -> None:
    root = make_project(
        docs_steps=4,
        min_acc=0.0,
        extra='\nimport os\nprint("creds", os.environ["DB_PASS"], os.environ["GPG_PASSPHRASE"], os.environ["SMTP_PASS"],'
        ' "db_pass=plain-Zq84", flush=True)\n',
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **_PASS_SECRETS}
    r = subprocess.run(
        [sys.executable, "-m", "traindoc", "run", "tiny", "--docs", "--out", "runs/leak"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert r.returncode == 0, r.stderr
    written = [p for p in (root / "runs").rglob("*") if p.is_file()] + [
        p for p in (root / ".cache").rglob("*") if p.is_file()
    ]
    log = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in written)
    assert "creds ***" in log, "the training script's line is not in the run's log"
    for secret in [*_PASS_SECRETS.values(), "plain-Zq84"]:
        assert secret not in log and secret not in r.stdout + r.stderr, secret


# --- lose data: a fresh run into a folder that holds another run's live folder -------------------------


def test_a_fresh_run_never_clears_a_folder_holding_a_live_nested_run(tmp_path: Path) -> None:
    outer = tmp_path / "runs"
    with runfolder.claim(outer, resume=False):  # an earlier run made runs/ a run folder
        pass
    inner = outer / "exp1"
    with runfolder.claim(inner, resume=False) as live:  # a run trains in runs/exp1 ...
        (live / "step_00000100.pt").write_bytes(b"weights")
        with pytest.raises(RunFolderRefused, match="exp1 inside it is in use"), runfolder.claim(outer, resume=False):
            pass  # ... and another `traindoc run --out runs` starts
        assert (live / "step_00000100.pt").read_bytes() == b"weights"
    with runfolder.claim(outer, resume=False) as folder:  # once that run is over, runs/ is cleared as before
        assert [p.name for p in folder.iterdir()] == [runfolder.MARKER]


# --- leak: a secret whose variable holds surrounding whitespace (a CRLF .env file) ---------------------


def test_a_secret_from_a_crlf_env_file_is_masked_when_printed_stripped() -> None:
    env = {"HF_TOKEN": "Zq9token-value-1234\r", "API_KEY": "  spaced-key-5678 \n"}
    line = "token Zq9token-value-1234 key spaced-key-5678 json " + json.dumps({"k": "Zq9token-value-1234"})
    out = redact.redact(line, env)
    assert "Zq9token" not in out and "spaced-key" not in out, out
    assert out.startswith("token *** key *** json")


# --- hang: the run holding a folder was stopped with Ctrl-Z ---------------------------------------------

_HOLDER = "import sys, time\nfrom pathlib import Path\nfrom traindoc.run import runfolder\n" + (
    "with runfolder.claim(Path(sys.argv[1]), resume=False):\n    print('held', flush=True)\n    time.sleep(600)\n"
)


def test_a_stopped_run_holding_the_folder_cannot_hang_the_next_one_past_its_timeout(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        os.kill(holder.pid, signal.SIGSTOP)  # Ctrl-Z in the terminal of the first run
        said: list[str] = []
        t0 = time.monotonic()
        with (
            pytest.raises(TimedOut, match="another traindoc run still holds it"),
            runfolder.claim(tmp_path / "out", resume=False, on_wait=said.append, wait_s=1.5),
        ):
            pass
        assert 1.5 <= time.monotonic() - t0 < 10
        assert said == [f"{tmp_path / 'out'} is in use by another traindoc run; waiting for it to finish"]
    finally:
        holder.kill()
        holder.wait()


_LOCK_HOLDER = "import sys, time\nfrom pathlib import Path\nfrom traindoc._util.atomic import locked\n" + (
    "with locked(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n"
)


def test_a_stopped_build_holding_the_cache_lock_cannot_hang_a_run_past_its_timeout(
    make_project: ProjectFactory,
) -> None:
    root = make_project()
    key = service.facts_fingerprint(service.target("tiny", root)).key
    lock = root / ".cache" / "traindoc" / "locks" / f"facts-{key}.lock"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(lock)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        os.kill(holder.pid, signal.SIGSTOP)  # a `mkdocs serve` introspecting this pipeline, stopped with Ctrl-Z
        try:
            r = subprocess.run(
                [sys.executable, "-m", "traindoc", "run", "tiny", "--docs", "--timeout", "12"],
                cwd=root,
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("traindoc run --timeout 12 waited on the cache lock far past 12 s") from exc
        assert r.returncode == 5, r.stderr
        assert "timed out after" in r.stderr and "waiting for another traindoc process" in r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_resumed_run_folder_loses_planted_fifos_before_anything_opens_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with runfolder.claim(out, resume=False) as folder:
        (folder / "checkpoints").mkdir()
        (folder / "steps.jsonl").write_text('{"step": 1}\n')
    for name in ("launcher0.log", "rank0.log", "checkpoints/step_00000010.pt"):
        os.mkfifo(out / name)  # opening any of these for writing blocks until a reader comes: never
    with runfolder.claim(out, resume=True) as folder:
        left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert left == [runfolder.MARKER, "checkpoints", "steps.jsonl"]
    assert (out / "steps.jsonl").read_text() == '{"step": 1}\n'  # what a resume needs is kept


def test_mermaid_fetch_never_deletes_a_folder_it_did_not_fill(tmp_path: Path) -> None:
    """TRAINDOC_MERMAID_DIR=~ then `traindoc mermaid-fetch` must not wipe the home folder."""
    from traindoc.errors import BrowserUnavailable
    from traindoc.export.assets import replace_build

    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "mermaid.min.js").write_text("js")
    with pytest.raises(BrowserUnavailable, match="did not write"):
        replace_build(staging, home)
    assert (home / "thesis.tex").read_text() == "years of work"
    ours = tmp_path / "mermaid"  # a folder holding only traindoc's own files is replaced
    ours.mkdir()
    (ours / "mermaid.min.js").write_text("old")
    staging.mkdir(exist_ok=True)
    (staging / "mermaid.min.js").write_text("new")
    replace_build(staging, ours)
    assert (ours / "mermaid.min.js").read_text() == "new" and not staging.exists()
