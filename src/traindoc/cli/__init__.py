"""Command line: parses arguments and dispatches to the library. ``main(argv) -> int``.

Exit codes: 0 ok · 1 other error · 2 pipeline not found/picked · 3 invalid spec · 4 error in user
code · 5 run failed or missed expectations · 6 bad README markers · 7 ``--check`` found stale
content · 8 no browser / Mermaid build · 9 ``lint --strict`` found warnings · 10 run folder refused
(``--out`` is a file, a protected folder, or a non-empty folder traindoc did not create).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import ChartError, TraindocError

if TYPE_CHECKING:
    from ..facts import Facts


KIND_HELP = "which diagram (default: system)"
DIRECTION_HELP = "system/data/distributed layout: auto (top-down, fits a docs column), TB or LR (slides)"
DEPTH_HELP = "model diagram only: module tree depth (default: the deepest that fits a slide and a docs column)"


def _facts(args: argparse.Namespace) -> Facts:
    from ..facts import service

    if getattr(args, "no_cache", False):
        return service.introspect_here(service.target(args.pipeline))
    return service.facts_for(args.pipeline, cache_dir=args.cache_dir, in_process=True)


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..render.env import project_templates_dir, render

    facts = _facts(args)
    if args.json_file:
        from .._util.atomic import write_text

        write_text(Path(args.json_file), json.dumps(facts.model_dump(mode="json"), ensure_ascii=False))
    elif args.json:
        print(json.dumps(facts.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print(render("inspect.txt.j2", project_templates_dir(Path.cwd()), facts=facts), end="")
        if not facts.model.traced:  # the rest was described; the model's problem is still an error here
            from ..errors import UserCodeError

            first, _, rest = facts.model.untraced_reason.partition("\n")
            raise UserCodeError(first, rest)
    return 0


def cmd_diagram(args: argparse.Namespace) -> int:
    from ..render import mermaid
    from ..render.diagrams import diagram
    from ..render.env import project_templates_dir

    d = diagram(_facts(args), args.kind, args.depth, project_templates_dir(Path.cwd()), args.direction)
    print(mermaid.fenced(d.text) if args.format == "md" else d.text, end="")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..run import runner

    result = runner.run(
        args.pipeline,
        runner.RunOptions(
            docs=args.docs,
            resume=args.resume,
            force=args.force,
            nproc=args.nproc,
            timeout_s=args.timeout,
            max_steps=args.max_steps,
            cache_dir=Path(args.cache_dir) if args.cache_dir else None,
            run_dir=Path(args.out) if args.out else None,
            progress=not args.json,
        ),
    )
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print(runner.summary(result))
    return 0 if result.ok else 5


def cmd_readme(args: argparse.Namespace) -> int:
    from ..pages import readme

    changed, diff = readme.update_file(Path(args.file), check=args.check, cache_dir=args.cache_dir)
    if args.check:
        if changed:
            sys.stdout.write(diff)
            print(f"{args.file}: generated sections are stale; run `traindoc readme {args.file}`", file=sys.stderr)
            return 7
        print(f"{args.file}: up to date")
        return 0
    print(f"{args.file}: {'updated' if changed else 'unchanged'}")
    return 0


def cmd_commands(args: argparse.Namespace) -> int:
    from ..render import commands

    print(commands.render_commands(_facts(args), args.kind), end="")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export

    fmt = export.format_for(Path(args.output), args.format)  # checked before any work
    facts = _facts(args)
    out = export.export(
        facts,
        args.kind,
        fmt,
        Path(args.output),
        theme=args.theme,
        scale=args.scale,
        depth=args.depth,
        direction=args.direction,
    )
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


def cmd_chart(args: argparse.Namespace) -> int:
    from .._util import atomic
    from ..render import content
    from ..run import runner

    result = runner.latest(args.pipeline, runner.RunOptions(cache_dir=Path(args.cache_dir) if args.cache_dir else None))
    if result is None:
        raise ChartError(f"{args.pipeline}: no recorded run; run `traindoc run {args.pipeline} --docs` first")
    svg = content.run_chart(result, standalone=True)
    if not svg:
        raise ChartError(f"{args.pipeline}: the last run recorded no loss values")
    atomic.write_text(Path(args.output), svg + "\n")
    print(f"wrote {args.output}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .._util import atomic
    from ..compare import compare_pipelines, page
    from ..export import export
    from ..render.env import project_templates_dir

    fmt = export.format_for(Path(args.diagram), None) if args.diagram else None  # checked before any work
    expect = json.loads(args.expect) if args.expect else None
    c = compare_pipelines(
        args.a,
        args.b,
        seeds=args.seeds,
        docs=args.docs,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        expect=expect,
        progress=not args.json,
        nproc=args.nproc,
    )
    templates = project_templates_dir(Path.cwd())
    if args.markdown:
        atomic.write_text(Path(args.markdown), page.block(c, templates, docs=args.docs))
    if fmt is not None:
        export.export_text(page.diagram(c, templates), "model diff", fmt, Path(args.diagram))
    if args.json:
        print(json.dumps(page.as_dict(c), indent=2, ensure_ascii=False))
    else:
        print(page.summary(c))
    if not c.ok:
        from ..errors import RunFailed

        raise RunFailed("the comparison failed: a run failed or an expectation on B − A was not met")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from ..render import lint

    findings = lint.lint(_facts(args))
    if args.json:
        print(json.dumps([f.model_dump() for f in findings], indent=2))
    else:
        print(lint.format_findings(findings), end="")
    if args.strict and lint.failing(findings):
        return 9
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    from ..render import reference

    text = reference.page(args.what)
    if not args.output:
        print(text, end="")
        return 0
    out = Path(args.output)
    current = out.read_text(encoding="utf-8") if out.is_file() else None
    if args.check:
        if current != text:
            print(f"{out}: stale; run `traindoc reference {args.what} -o {out}`", file=sys.stderr)
            return 7
        print(f"{out}: up to date")
        return 0
    if current != text:
        from .._util.atomic import write_text

        write_text(out, text)
    print(f"{out}: {'updated' if current != text else 'unchanged'}")
    return 0


def cmd_mermaid_fetch(args: argparse.Namespace) -> int:
    from ..export import assets

    path = assets.fetch_mermaid(args.version)
    print(f"Mermaid: {path}")
    return 0


def cmd_mermaid_install(args: argparse.Namespace) -> int:
    from ..export import assets

    path = assets.install_mermaid(Path(args.docs_dir))
    print(f"Mermaid {assets.MERMAID_VERSION}: {path}; list '{assets.SITE_PATH}' under extra_javascript")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="traindoc", description="Documentation-as-code for PyTorch training pipelines.")
    p.add_argument("--version", action="version", version=f"traindoc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def pipeline_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "pipeline",
            help="pipeline reference: file.py, file.py:name, package.module:name, or a name from pyproject.toml",
        )
        sp.add_argument("--cache-dir", default=None, help="cache folder (default .cache/traindoc)")
        sp.add_argument("--no-cache", action="store_true", help="neither read nor write cached facts")

    sp = sub.add_parser("inspect", help="print what traindoc learns about a pipeline")
    pipeline_arg(sp)
    sp.add_argument("--json", action="store_true", help="print the facts as JSON")
    sp.add_argument("--json-file", default=None, help=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser("diagram", help="print a Mermaid diagram")
    pipeline_arg(sp)
    sp.add_argument("--kind", choices=["system", "model", "data", "distributed"], default="system", help=KIND_HELP)
    sp.add_argument("--depth", type=int, default=None, help=DEPTH_HELP)
    sp.add_argument("--direction", choices=["auto", "TB", "LR"], default="auto", help=DIRECTION_HELP)
    sp.add_argument(
        "--format", choices=["mmd", "md"], default="mmd", help="mmd = Mermaid text; md = a ```mermaid fence"
    )
    sp.set_defaults(func=cmd_diagram)

    sp = sub.add_parser("run", help="run the training (child process; torchrun for DDP) and record results")
    pipeline_arg(sp)
    sp.add_argument("--docs", action="store_true", help="use the spec's docs_run budget (few steps)")
    sp.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    sp.add_argument("--force", action="store_true", help="ignore a cached result and run again")
    sp.add_argument("--json", action="store_true", help="print the results record as JSON")
    sp.add_argument("--nproc", type=int, default=None, help="override distributed.nproc_per_node")
    sp.add_argument("--max-steps", type=int, default=None, help="override the step budget")
    sp.add_argument("--timeout", type=float, default=None, help="hard timeout in seconds (default: training.timeout_s)")
    sp.add_argument(
        "--out",
        default=None,
        help="run folder (default: a folder in the cache); must be new, empty, or one traindoc created",
    )
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("readme", help="fill <!-- traindoc:begin ... --> sections in a Markdown file")
    sp.add_argument("file", help="the Markdown file (e.g. README.md)")
    sp.add_argument("--check", action="store_true", help="change nothing; exit 7 with a diff when stale")
    sp.add_argument("--cache-dir", default=None, help="cache folder (default .cache/traindoc)")
    sp.set_defaults(func=cmd_readme)

    sp = sub.add_parser("commands", help="print docker / ssh / torchrun / Kubernetes launch commands")
    pipeline_arg(sp)
    sp.add_argument(
        "--kind",
        choices=["all", "docker", "access", "torchrun", "kubernetes"],
        default="all",
        help="which commands (default: all)",
    )
    sp.set_defaults(func=cmd_commands)

    sp = sub.add_parser("export", help="render a diagram to SVG/PNG in headless Chromium, or write .mmd")
    pipeline_arg(sp)
    sp.add_argument("--kind", choices=["system", "model", "data", "distributed"], default="system", help=KIND_HELP)
    sp.add_argument(
        "--format",
        choices=["svg", "png", "mmd"],
        default=None,
        help="svg, png or mmd; default: from the output's extension (a mismatch is an error)",
    )
    sp.add_argument("-o", "--output", required=True, help="file to write: .svg, .png or .mmd")
    sp.add_argument("--theme", choices=["light", "dark"], default="light", help="colours (default: light)")
    sp.add_argument("--scale", type=float, default=2.0, help="PNG pixel ratio (default: 2)")
    sp.add_argument("--depth", type=int, default=None, help=DEPTH_HELP)
    sp.add_argument("--direction", choices=["auto", "TB", "LR"], default="auto", help=DIRECTION_HELP)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("chart", help="write the last run's training chart (loss, lr, throughput) as an SVG file")
    sp.add_argument(
        "pipeline",
        help="pipeline reference: file.py, file.py:name, package.module:name, or a name from pyproject.toml",
    )
    sp.add_argument("-o", "--output", required=True, help="SVG file to write (e.g. docs/loss.svg for a README)")
    sp.add_argument("--cache-dir", default=None, help="cache folder (default .cache/traindoc)")
    sp.set_defaults(func=cmd_chart)

    sp = sub.add_parser("compare", help="run two pipelines over the same seeds and compare them (verdict, diff)")
    sp.add_argument("a", help="pipeline A (the baseline): a reference or a name from pyproject.toml")
    sp.add_argument("b", help="pipeline B (the change)")
    sp.add_argument("--seeds", type=int, default=3, help="runs per side, seeds 0..N-1 (default 3; fewer: no verdict)")
    sp.add_argument("--docs", action="store_true", help="use each spec's docs_run budget (few steps)")
    sp.add_argument("--nproc", type=int, default=None, help="processes per run, both sides (default: each spec's)")
    sp.add_argument(
        "--expect", default=None, help='bounds on B − A as JSON, e.g. \'{"val_accuracy": {"min_delta": 0}}\''
    )
    sp.add_argument("--markdown", default=None, help="also write the comparison as Markdown to this file")
    sp.add_argument("--diagram", default=None, help="also export the model diff diagram (.svg, .png or .mmd)")
    sp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    sp.add_argument("--cache-dir", default=None, help="cache folder (default .cache/traindoc)")
    sp.set_defaults(func=cmd_compare)

    sp = sub.add_parser("lint", help="check the pipeline against training-system best practice")
    pipeline_arg(sp)
    sp.add_argument("--strict", action="store_true", help="exit 9 when there are warnings")
    sp.add_argument("--json", action="store_true", help="print the findings as JSON")
    sp.set_defaults(func=cmd_lint)

    sp = sub.add_parser("reference", help="print the spec or CLI reference as Markdown")
    sp.add_argument("what", choices=["spec", "cli"], help="spec = the pipeline spec's fields; cli = this CLI")
    sp.add_argument("-o", "--output", default=None, help="write to this file (unchanged files are not rewritten)")
    sp.add_argument("--check", action="store_true", help="with -o: change nothing; exit 7 when the file is stale")
    sp.set_defaults(func=cmd_reference)

    sp = sub.add_parser("mermaid-fetch", help="fetch the pinned Mermaid build with `npm pack` into .cache/mermaid")
    sp.add_argument("--version", default=None, help="Mermaid version (default: the pinned one)")
    sp.set_defaults(func=cmd_mermaid_fetch)

    sp = sub.add_parser(
        "mermaid-install", help="copy the pinned Mermaid into a docs folder (Zensical: served offline, no CDN)"
    )
    sp.add_argument("docs_dir", help="the site's docs folder (docs_dir); the file lands in assets/traindoc/")
    sp.set_defaults(func=cmd_mermaid_install)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .._util.procs import install_signal_handlers

    restore = install_signal_handlers()  # SIGTERM/SIGHUP/SIGINT: kill all traindoc started, then unwind
    try:
        code: int = args.func(args)
        return code
    except TraindocError as exc:
        for line in exc.lines():
            print(f"traindoc: {line}" if "\n" not in line else line, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"traindoc: {exc or 'interrupted'}; every process it started was stopped", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))
    finally:
        restore()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
