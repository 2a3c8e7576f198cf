"""Never inject, never leak: hostile text in every source (spec, model names, file names, training logs)
lands escaped for its destination; secrets planted in every form appear nowhere traindoc writes."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from html import unescape
from pathlib import Path
from urllib.parse import quote

import jinja2
import jinja2.nodes as jn
import markdown
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, TINY_MODULES, free_port, traindoc_cli
from traindoc import spec
from traindoc._util import redact
from traindoc.render import escape, mermaid

TEMPLATE_FILES = sorted((REPO / "src" / "traindoc" / "render" / "templates").glob("*.j2")) + sorted(
    (REPO / "templates").glob("*.j2")
)
SAFE_FILTERS = set(escape.FILTERS) | {"mmd_label", "nid", "q", "cell", "code", "thousands", "human", "bytes", "fmt"}


# --- 1. every template expression goes through the escaping filter of its destination -----------------


def _safe(node: jn.Node, macros: set[str]) -> bool:
    if isinstance(node, jn.Const):
        return True  # text written in the template itself
    if isinstance(node, jn.Filter):
        if node.name in SAFE_FILTERS:
            return True
        inner = node.node
        return (  # `xs | map("num") | join(", ")`: every item escaped, joined with template text
            node.name == "join"
            and isinstance(inner, jn.Filter)
            and inner.name == "map"
            and bool(inner.args)
            and isinstance(inner.args[0], jn.Const)
            and inner.args[0].value in SAFE_FILTERS
        )
    if isinstance(node, jn.CondExpr):
        return _safe(node.expr1, macros) and (node.expr2 is None or _safe(node.expr2, macros))
    if isinstance(node, jn.Concat):
        return all(_safe(n, macros) for n in node.nodes)
    if isinstance(node, (jn.Or, jn.And)):
        return _safe(node.left, macros) and _safe(node.right, macros)
    if isinstance(node, jn.Call) and isinstance(node.node, jn.Name):
        return node.node.name in macros  # a macro's output is template output
    return False


def template_expressions(path: Path) -> tuple[int, list[str]]:
    """(number of ``{{ ... }}`` expressions, the ones that do not end in an escaping filter)."""
    ast = jinja2.Environment().parse(path.read_text(encoding="utf-8"))
    macros = {m.name for m in ast.find_all(jn.Macro)}
    total, bad = 0, []
    for out in ast.find_all(jn.Output):
        for node in out.nodes:
            if isinstance(node, jn.TemplateData):
                continue
            total += 1
            if not _safe(node, macros):
                bad.append(f"{path.name}({node.lineno}): {node}")
    return total, bad


def test_every_template_expression_goes_through_an_escaping_filter() -> None:
    assert len(TEMPLATE_FILES) >= 18
    counts = {p.name: template_expressions(p) for p in TEMPLATE_FILES}
    bad = [b for _, found in counts.values() for b in found]
    assert not bad, "\n".join(bad)
    assert sum(n for n, _ in counts.values()) > 300  # the check saw the templates, not empty files


def test_the_checker_catches_an_unescaped_expression(tmp_path: Path) -> None:
    t = tmp_path / "x.md.j2"
    t.write_text("| {{ facts.name }} | {{ a ~ b | md_cell }} | {{ r.x | md_cell }} | {{ 'ok' if c }} |\n")
    total, bad = template_expressions(t)
    assert total == 4 and len(bad) == 2 and "facts" in bad[0]


# --- escaping functions, property-tested against real Markdown and real shells ------------------------


def _md_text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html)).strip()


MARKUP = list("`*_[](){}<>&#|!-+=.:;/\\\"'~%$ ")
CHUNKS = ["javascript:", "<script>", "```", "%%{init:", "&amp;", "1. ", "- ", "# ", "    "]
PRINTABLE = st.lists(
    st.sampled_from(MARKUP + CHUNKS)
    | st.characters(min_codepoint=33, max_codepoint=126)
    | st.characters(blacklist_categories=("Cc", "Cs", "Cf", "Cn", "Co", "Zl", "Zp", "Zs")),
    min_size=1,
    max_size=30,
).map("".join)


@given(PRINTABLE.filter(lambda s: s.strip()))
def test_md_code_shows_the_value_literally(value: str) -> None:
    html = markdown.markdown("x " + escape.md_code(value) + " y", extensions=["tables"])
    (code,) = re.findall(r"<code>(.*?)</code>", html, re.S)
    assert _md_text_of(code).strip() == value.strip()


@given(PRINTABLE.filter(lambda s: s.strip()))
def test_md_text_in_a_table_cell_is_one_cell_and_shows_literally(value: str) -> None:
    table = f"| a | b |\n|---|---|\n| {escape.md_cell(value)} | end |\n"
    html = markdown.markdown(table, extensions=["tables"])
    cells = re.findall(r"<td>(.*?)</td>", html, re.S)
    assert len(cells) == 2 and cells[1] == "end"
    assert _md_text_of(cells[0]) == " ".join(value.split()) or _md_text_of(cells[0]) == value.strip()
    assert "<a" not in cells[0] and "<img" not in cells[0] and "<script" not in cells[0]
    paragraph = markdown.markdown("text\n" + escape.md_text(value), extensions=["tables"])
    assert paragraph.startswith("<p>") and paragraph.count("<p>") == 1 and "<a" not in paragraph, paragraph
    assert _md_text_of(paragraph) == "text\n" + value.strip()


@given(st.text(min_size=0, max_size=200))
def test_a_fence_cannot_be_ended_by_its_content(value: str) -> None:
    html = markdown.markdown("before\n\n" + escape.fence(value, "text") + "\n\nafter", extensions=["fenced_code"])
    assert html.count("<pre>") == 1 and html.rstrip().endswith("<p>after</p>")


@given(st.text(max_size=60))
def test_a_shell_word_is_one_argument_and_runs_nothing(value: str) -> None:
    value = value.replace("\x00", "")
    assert shlex.split(escape.sh(value)) == [value]


@given(PRINTABLE | st.text(max_size=80))
def test_a_mermaid_label_or_comment_never_leaves_its_line_or_forms_a_directive(value: str) -> None:
    label = mermaid.label(value)
    assert label.startswith('"') and label.endswith('"') and '"' not in label[1:-1]
    body = label.replace(mermaid.LINE_BREAK, "")
    comment = escape.mmd_comment(value)
    for text in (body, comment):
        assert "\n" not in text and "\r" not in text and "%%" not in text
    assert "<" not in body and not set("%{}") & set(comment)


def test_shell_lines_run_in_a_real_shell_as_one_argument(tmp_path: Path) -> None:
    """The quick start's ``traindoc run`` and the docker line, pasted into ``sh -c``: the hostile path
    arrives as one argv element and nothing else runs."""
    from traindoc.facts.introspect import facts as compute
    from traindoc.render import commands, content
    from traindoc.spec.loader import load

    hostile = 'my pipe\'line $(touch pwned); `touch pwned2` "q" ${HOME}.py'
    root = tmp_path / "proj"
    (root / "pipeline").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "pipeline" / "tinymods.py").write_text(TINY_MODULES)
    (root / "pipeline" / "hostile_model.py").write_text(HOSTILE_MODEL)
    body = _tiny_pipeline(volume_host="./data dir/$(touch pwned3);x")
    (root / "pipeline" / hostile).write_text(body)
    spec_, file = load(str(root / "pipeline" / hostile))
    facts = compute(spec_, file, root)
    quick = content.block("quickstart", facts)
    lines = [ln.split("#")[0].strip() for ln in quick.splitlines() if ln.startswith(("traindoc run", "docker run"))]
    assert len(lines) == 3
    show = f"{sys.executable} -c 'import json,sys; print(json.dumps(sys.argv[1:]))'"
    script = f'traindoc() {{ {show} "$@"; }}\ndocker() {{ {show} "$@"; }}\n' + "\n".join(lines)
    out = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    argvs = [json.loads(x) for x in out.splitlines()]
    assert argvs[1] == ["run", f"pipeline/{hostile}"] and argvs[2] == ["run", f"pipeline/{hostile}", "--docs"]
    vols = [argvs[0][i + 1] for i, a in enumerate(argvs[0]) if a == "-v"]
    assert f"{tmp_path}/data dir/$(touch pwned3);x:/data:ro" in vols  # only $PWD expanded
    assert not list(tmp_path.rglob("pwned*"))
    assert commands.sh_join(["a b", commands.Expand("PWD", "/x y")]) == "'a b' \"$PWD\"'/x y'"


# --- 4. validators -----------------------------------------------------------------------------------

BASE_SPEC: dict[str, object] = {
    "name": "t",
    "environment": {"image": "img:1", "volumes": [{"host": "./d", "container": "/d"}]},
    "access": {"ssh": {"user": "dev"}, "jupyter": {"token_env": "T"}},
    "model": {"factory": "m:f", "sample_input": {"shape": [1]}},
    "data": {"train": "m:t", "batch_size": 1},
    "optim": {"optimizer": "m:o"},
    "checkpoint": {"dir": "/c"},
    "distributed": {"rdzv_endpoint": "host-1.example:29500"},
}
STRING_FIELDS = [
    ("name",),
    ("description",),
    ("environment", "image"),
    ("environment", "user"),
    ("environment", "workdir"),
    ("environment", "shm_size"),
    ("environment", "volumes", 0, "host"),
    ("environment", "volumes", 0, "container"),
    ("access", "ssh", "user"),
    ("access", "jupyter", "bind"),
    ("access", "jupyter", "token_env"),
    ("checkpoint", "dir"),
    ("distributed", "rdzv_endpoint"),
    ("distributed", "rdzv_id"),
    ("monitoring", "log_file"),
    ("model", "factory"),
]
GOOD = {
    "name": "t",
    "description": "a b",
    "image": "img:1",
    "user": "dev",
    "workdir": "/w",
    "shm_size": "8g",
    "host": "./d",
    "container": "/d",
    "bind": "0.0.0.0",
    "token_env": "T",
    "dir": "/c",
    "rdzv_endpoint": "h:1",
    "rdzv_id": "r",
    "log_file": "train.log",
    "factory": "m:f",
}


def _with_field(path: tuple[object, ...], value: str) -> dict[str, object]:
    data = json.loads(json.dumps(BASE_SPEC))
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return data


def test_the_base_spec_is_valid() -> None:
    for path in STRING_FIELDS:
        spec.Pipeline.model_validate(_with_field(path, GOOD[str(path[-1])]))


@pytest.mark.parametrize("path", STRING_FIELDS, ids=lambda p: ".".join(map(str, p)))
@given(bad=st.sampled_from(["\n", "\r\n", "\x1b[31m", "\x00", "\u202e", "\x7f", "\t"]))
def test_every_string_field_rejects_newlines_and_control_characters(path: tuple[object, ...], bad: str) -> None:
    good = GOOD[str(path[-1])]
    for value in (good + bad, good[:1] + bad + good[1:]):
        if path == ("description",) and bad in ("\t", "\n", "\r\n") and not value.endswith(bad):
            continue  # a paragraph may hold a newline or a tab; never a trailing one
        with pytest.raises(Exception) as exc:
            spec.Pipeline.model_validate(_with_field(path, value))
        assert "ValidationError" in type(exc.value).__name__


@given(st.from_regex(r"[a-z_][a-z0-9_-]{0,20}(:[0-9]{1,5})?", fullmatch=True))
def test_user_names_and_ids_are_accepted(user: str) -> None:
    spec.Pipeline.model_validate(_with_field(("environment", "user"), user))


@pytest.mark.parametrize(
    "path,value",
    [
        (("environment", "user"), "root; rm -rf /"),
        (("environment", "user"), "a b"),
        (("environment", "user"), "$(id)"),
        (("access", "ssh", "user"), "dev@evil"),
        (("access", "ssh", "user"), "-oProxyCommand=x"),
        (("distributed", "rdzv_endpoint"), "$(touch x):29500"),
        (("distributed", "rdzv_endpoint"), "a b:29500"),
        (("distributed", "rdzv_endpoint"), "-host:29500"),
        (("distributed", "rdzv_endpoint"), "host:29500\n"),
        (("monitoring", "log_file"), "../../escape.log"),
    ],
)
def test_user_ssh_user_rendezvous_host_and_log_file_have_real_patterns(path: tuple[object, ...], value: str) -> None:
    with pytest.raises(Exception, match="validation error"):
        spec.Pipeline.model_validate(_with_field(path, value))


# --- 5. a page or README may only name pipelines inside the project ----------------------------------


def test_a_readme_marker_may_not_name_a_pipeline_outside_the_project(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "evil.py"
    outside.parent.mkdir()
    outside.write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n")
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    rel = os.path.relpath(outside, root)
    for ref in (rel, str(outside)):
        (root / "README.md").write_text(f"<!-- traindoc:begin system pipeline={ref} -->\n<!-- traindoc:end -->\n")
        proc = traindoc_cli(root, "readme", "README.md")
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "inside the project" in proc.stderr
        assert not (tmp_path / "imported").exists()


# --- 6. redaction ------------------------------------------------------------------------------------

SECRET = "Zq9/s3cr3t+val=ue&x"  # URL-, JSON- and base64-encoding all change it


def test_redact_masks_every_form() -> None:
    env = {"HOSTILE_TOKEN": SECRET, "MY_KEY": "key-value-8f3a9c", "PLAIN": "not-a-secret-value"}
    forms = {
        "raw": SECRET,
        "url-encoded": quote(SECRET, safe=""),
        "json-escaped": json.dumps({"a": SECRET + '"'})[7:-3],
        "base64": base64.b64encode(("user:" + SECRET).encode()).decode(),
        "key-named": "key-value-8f3a9c",
    }
    for name, text in forms.items():
        out = redact.redact(f"log {text} end", env)
        assert text not in out and "log " in out, name
    assert "not-a-secret-value" in redact.redact("not-a-secret-value", env)
    samples = {
        "url": ("postgres://alice:urlpass-93kd@db:5432/x", "urlpass-93kd"),
        "dict": ("{'password': 'dictpass-77aa', 'n': 1}", "dictpass-77aa"),
        "json": ('{"token": "json tok 55bb"}', "json tok 55bb"),
        "assign": ("API_KEY=assignval99", "assignval99"),
        "ghp": ("ghp_" + "a1" * 18, "ghp_" + "a1" * 18),
        "hf": ("hf_" + "Ab12" * 6, "hf_" + "Ab12" * 6),
        "sk": ("sk-" + "x9" * 12, "sk-" + "x9" * 12),
        "aws": ("AKIA" + "ABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
    }
    for name, (text, secret) in samples.items():
        assert secret not in redact.redact(text, {}), name
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\nQyNTUxOQAAACBk\nAAA=\n-----END OPENSSH PRIVATE KEY-----"
    for out in (redact.redact(pem, {}), "\n".join(redact.redact_lines(pem.splitlines(), {}))):
        assert "b3BlbnNz" not in out and "QyNTUx" not in out and "AAA=" not in out and "BEGIN OPENSSH" in out


def _decodes_to(piece: str, value: str) -> bool:
    for offset in range(4):
        chunk = piece[offset:]
        chunk = chunk[: len(chunk) // 4 * 4]
        try:
            if value.encode() in base64.b64decode(chunk, validate=True):
                return True
        except ValueError:
            continue
    return False


@given(
    value=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=8, max_size=30),
    prefix=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=5),
)
def test_any_secret_value_is_masked_in_every_encoding(value: str, prefix: str) -> None:
    env = {"SOME_API_KEY": value}
    encodings = {
        "raw": value,
        "url": quote(value, safe=""),
        "json": json.dumps(value)[1:-1],
        "b64": base64.b64encode((prefix + value).encode()).decode(),
    }
    for name, text in encodings.items():
        out = redact.redact(f"x {text} y", env)
        if name == "b64":  # no unmasked piece decodes back to the value, at any alignment
            assert not any(_decodes_to(piece, value) for piece in out[2:-2].split(redact.MASK)), out
        else:
            assert text not in out, name


# --- 2 + 6. a hostile project, run, README and site: nothing runs, nothing leaks -------------------------

TRAP = "window['__pwned']=1"
EVIL = f'<img src=x onerror="{TRAP}"><script>{TRAP}</script>[x](javascript:{TRAP}) ``` | `'
CLASS_NAME = "Evil\nclick n_x call alert()\n%%{init: {'theme':'forest'}}%%" + EVIL
MODULE_NAME = f"mod <img src=x onerror={TRAP}> ` | x"


def _tiny_pipeline(*, volume_host: str = "./data", extra_env: str = "", description: str = "'tiny'") -> str:
    return textwrap.dedent(
        f"""
        import torch
        from tinymods import dataset, loss
        from traindoc.spec import Pipeline

        pipeline = Pipeline(
            name="tiny",
            description={description},
            environment={{"image": "pytorch:2.13-cpu", "user": "1000:1000", "env": ["HOSTILE_TOKEN"{extra_env}],
                          "volumes": [{{"host": "./ckpt", "container": "/checkpoints"}},
                                      {{"host": {volume_host!r}, "container": "/data", "read_only": True}}]}},
            devices="cpu",
            model={{"factory": "hostile_model:model", "sample_input": {{"shape": [2, 8]}}}},
            data={{"train": lambda: dataset(256, 0), "val": lambda: dataset(64, 1), "batch_size": 32}},
            optim={{"optimizer": lambda p: torch.optim.SGD(p, lr=0.1), "loss": "hostile_model:loss", "seed": 0}},
            training={{"epochs": 1, "log_every": 1, "docs_run": {{"max_steps": 6, "max_seconds": 60}}}},
            checkpoint={{"dir": "/checkpoints", "every_steps": 2, "keep_last": 1}},
            distributed={{"backend": "gloo", "rdzv_endpoint": "127.0.0.1:{free_port()}"}},
        )
        """
    )


HOSTILE_MODEL = f"""
import base64, json, os, urllib.parse
import torch
from torch import nn
from torch.nn import functional as F

CLASS_NAME = {CLASS_NAME!r}
MODULE_NAME = {MODULE_NAME!r}
EVIL = {EVIL!r}
STEP = [0]


def model():
    net = nn.Module()
    evil = type(CLASS_NAME, (nn.Linear,), {{}})
    net.add_module(MODULE_NAME, evil(8, 4))
    net.forward = lambda x: getattr(net, MODULE_NAME)(x)
    return net


def loss(out, y):
    STEP[0] += 1
    s = os.environ["HOSTILE_TOKEN"]
    print("log line", EVIL)
    print("````\\n<script>window['__pwned']=1</script>\\n````")
    print("raw", s, "url", urllib.parse.quote(s, safe=""), "json", json.dumps({{"v": s}}))
    print("b64", base64.b64encode(("user:" + s).encode()).decode(), "key", os.environ["MY_KEY"])
    print("db", os.environ["DB_URL"])
    print({{"password": "dictpass-" + "77aa"}}, json.dumps({{"token": "jsontok-" + "55bb"}}))
    print("ghp_" + "a1" * 18, "sk-" + "x9" * 12, "AKIA" + "ABCDEFGHIJKLMNOP", "hf_" + "Zz34" * 6)
    print("-----BEGIN RSA PRIVATE KEY-----")
    print("MIIEpemline" + "1" * 20)
    print("pemline" + "2" * 20 + "==")
    print("-----END RSA PRIVATE KEY-----")
    if STEP[0] == 3:
        raise RuntimeError("boom " + EVIL)
    return F.cross_entropy(out, y)
"""

SECRET_ENV = {
    "HOSTILE_TOKEN": SECRET,
    "MY_KEY": "key-value-" + "8f3a9c",
    "DB_URL": "postgres://alice:" + "urlpass-93kd" + "@db.example:5432/x",
}
PLANTED = {  # form -> the text that must appear nowhere traindoc writes
    "env value (raw)": SECRET,
    "env value (URL-encoded)": quote(SECRET, safe=""),
    "env value (JSON-escaped)": json.dumps(SECRET)[1:-1],
    "env value (base64)": base64.b64encode(("user:" + SECRET).encode()).decode()[8:-4],
    "*KEY* variable": "key-value-8f3a9c",
    "URL credentials (log)": "urlpass-93kd",
    "URL credentials (spec description)": "descpass-k29d",
    "token in spec description": "hf_" + "Qw56" * 6,
    "printed dict password": "dictpass-77aa",
    "JSON token": "jsontok-55bb",
    "GitHub token": "ghp_" + "a1" * 18,
    "OpenAI-style key": "sk-" + "x9" * 12,
    "AWS access key id": "AKIAABCDEFGHIJKLMNOP",
    "Hugging Face token (log)": "hf_" + "Zz34" * 6,
    "PEM body line 1": "MIIEpemline" + "1" * 20,
    "PEM body line 2": "pemline" + "2" * 20,
}
PAGES = {
    "index.md": "".join(
        f"## {s}\n\n```traindoc\npipeline: tiny\nshow: {s}\n```\n\n"
        for s in ("system", "model", "data", "distributed", "environment", "model-table", "lint", "commands")
    ),
    "run.md": "# Run\n\n```traindoc\npipeline: tiny\nshow: run\n```\n\n```traindoc\npipeline: tiny\nshow: quickstart\n```\n",
    "outside.md": "# Outside\n\n```traindoc\npipeline: ../../etc/x.py\nshow: system\n```\n",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A project with hostile names, logs and planted secrets: ``traindoc run``, ``lint``, ``readme`` and a
    real ``mkdocs build`` (not strict: the run fails by design)."""
    root = tmp_path_factory.mktemp("hostile") / "proj"
    (root / "pipeline").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "pyproject.toml").write_text('[tool.traindoc]\npipelines = { tiny = "pipeline/tiny.py" }\n')
    (root / "pipeline" / "tinymods.py").write_text(TINY_MODULES)
    (root / "pipeline" / "hostile_model.py").write_text(HOSTILE_MODEL)
    description = '"see https://bob:" + "descpass-k29d" + "@host/x and hf_" + "Qw56" * 6'
    (root / "pipeline" / "tiny.py").write_text(_tiny_pipeline(volume_host=f"./data {EVIL}", description=description))
    for name, text in PAGES.items():
        (root / "docs" / name).write_text(text)
    (root / "mkdocs.yml").write_text(
        "site_name: hostile\ntheme:\n  name: material\n  font: false\nplugins:\n  - search\n"
        "  - traindoc:\n      mermaid: local\n      strict: false\nmarkdown_extensions:\n  - tables\n  - pymdownx.superfences:\n"
        "      custom_fences:\n        - name: mermaid\n          class: mermaid\n"
        "          format: !!python/name:pymdownx.superfences.fence_code_format\n"
    )
    sections = ("system", "model", "model-table", "environment", "quickstart", "lint", "run")
    (root / "README.md").write_text(
        "".join(f"<!-- traindoc:begin {s} pipeline=tiny -->\n<!-- traindoc:end -->\n\n" for s in sections)
    )
    env = {
        **os.environ,
        **SECRET_ENV,
        "TRAINDOC_MERMAID_DIR": os.environ.get("TRAINDOC_MERMAID_DIR", str(REPO / ".cache" / "mermaid" / "11.12.0")),
        "NO_MKDOCS_2_WARNING": "1",
    }
    run = traindoc_cli(root, "run", "tiny", "--docs", "--json", env=env)
    lint = traindoc_cli(root, "lint", "tiny", env=env)
    readme = traindoc_cli(root, "readme", "README.md", env=env)
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build"], cwd=root, capture_output=True, text=True, env=env, check=False
    )
    return {"root": root, "run": run, "lint": lint, "readme": readme, "build": build}


@pytest.mark.slow
def test_hostile_project_runs_fails_and_lints(hostile: dict[str, object]) -> None:
    run, lint, readme, build = (hostile[k] for k in ("run", "lint", "readme", "build"))
    assert json.loads(run.stdout)["status"] == "failed", run.stderr  # type: ignore[union-attr]
    assert "secret-in-spec" in lint.stdout and "description" in lint.stdout  # type: ignore[union-attr]
    assert readme.returncode == 0, readme.stderr  # type: ignore[union-attr]
    assert build.returncode == 0, build.stderr  # type: ignore[union-attr]
    outside = (hostile["root"] / "site" / "outside" / "index.html").read_text()  # type: ignore[operator]
    assert "could not generate this block" in outside and "inside the project" in outside


def _everything_written(root: Path) -> dict[str, str]:
    """Every file under the project except the sources the test itself wrote (and Python's bytecode)."""
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith("pipeline/") and "__pycache__" not in rel:
            out[rel] = p.read_bytes().decode("utf-8", "replace")
    return out


@pytest.mark.slow
def test_no_planted_secret_in_any_form_appears_anywhere_traindoc_wrote(hostile: dict[str, object]) -> None:
    root = hostile["root"]
    assert isinstance(root, Path)
    files = _everything_written(root)
    kinds = {"site": "site/", "search index": "site/search/", "README": "README.md", "cache": ".cache/"}
    for what, prefix in kinds.items():
        assert any(k.startswith(prefix) for k in files), f"nothing written under {what}"
    assert any(k.endswith(".log") for k in files) and any(k.endswith("results.json") for k in files)
    assert "log line" in "".join(files.values())  # the training log was captured
    streams = "".join(str(getattr(hostile[k], s)) for k in ("run", "lint", "readme") for s in ("stdout", "stderr"))
    leaks = [
        f"{form} in {name}"
        for form, value in PLANTED.items()
        for name, text in [*files.items(), ("command output", streams)]
        if value in text
    ]
    assert not leaks, leaks
    assert "HOSTILE_TOKEN" in files["README.md"]  # by name only


@pytest.mark.slow
def test_no_absolute_path_of_this_machine_on_any_page(hostile: dict[str, object]) -> None:
    root = hostile["root"]
    assert isinstance(root, Path)
    pages = {k: v for k, v in _everything_written(root).items() if k.startswith("site/") or k == "README.md"}
    for needle in (str(root), str(root.resolve()), str(Path.home()) + "/", sys.prefix):
        assert not [k for k, v in pages.items() if needle in v], needle


NO_SCRIPT_JS = """
() => {
  const all = [];
  const walk = (root) => { for (const el of root.querySelectorAll('*')) { all.push(el); if (el.shadowRoot) walk(el.shadowRoot); } };
  walk(document);
  const handlers = all.flatMap(el => Array.from(el.attributes).filter(a => /^on/i.test(a.name))
                                       .map(a => el.tagName + ' ' + a.name));
  const js = all.filter(el => /^\\s*javascript:/i.test(el.getAttribute('href') || el.getAttribute('xlink:href') || ''))
                .map(el => el.outerHTML.slice(0, 80));
  const scripts = all.filter(el => el.tagName === 'SCRIPT' && /__pwned/.test(el.textContent)).length;
  const diagrams = all.filter(el => el.tagName.toLowerCase() === 'svg').map(el => el.textContent).join(' ');
  const text = all.map(el => el.shadowRoot ? el.shadowRoot.textContent : '').join(' ') + document.body.innerText;
  return {pwned: window.__pwned || 0, handlers, js, scripts, text, diagrams};
}
"""


@pytest.mark.slow
@pytest.mark.browser
def test_no_script_from_hostile_text_runs_in_the_built_site(
    hostile: dict[str, object], session_browser: object
) -> None:
    browser = session_browser  # one Playwright per test session: a second sync instance cannot start beside it
    from sitecheck import COUNT_JS, serve
    from traindoc.export.browser import OPEN_SHADOW_ROOTS

    root = hostile["root"]
    assert isinstance(root, Path)
    site = root / "site"
    pages = sorted(p.relative_to(site).parent.as_posix() for p in site.rglob("index.html") if "search" not in p.parts)
    assert len(pages) == 3
    seen_text = diagram_text = ""
    with serve(site) as base:
        context = browser.new_context()  # type: ignore[attr-defined]
        context.add_init_script(OPEN_SHADOW_ROOTS + "\nwindow.__pwned = 0;")
        dialogs: list[str] = []
        for rel in pages:
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(base + ("" if rel == "." else rel + "/"), wait_until="load")
            blocks = page.evaluate(COUNT_JS)
            for el in page.query_selector_all("a"):  # follow every link a payload might have made
                href = el.get_attribute("href") or ""
                assert not href.strip().lower().startswith("javascript:"), href
            result = page.evaluate(NO_SCRIPT_JS)
            assert result["pwned"] == 0 and not result["handlers"] and not result["js"], (rel, result)
            assert result["scripts"] == 0, rel
            if rel == ".":
                assert len(blocks) == 4 and all(b["svg"] and not b["error"] for b in blocks), blocks
            seen_text += result["text"]
            diagram_text += result["diagrams"]
            page.close()
        context.close()
    assert not dialogs
    # the hostile text shows literally: in tables, in diagram labels and in the failed run's log tail
    assert "onerror=" in seen_text and "<script>" in seen_text and "%%{init:" in seen_text
    assert "javascript:" in seen_text and "click n_x call alert()" in seen_text
    # inside the model diagram: the class name's lines and the directive are label text, not Mermaid
    assert "%%{init: {'theme':'forest'}}%%" in diagram_text and "click n_x call alert()" in diagram_text
