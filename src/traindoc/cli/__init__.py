"""Command line: parses arguments (:mod:`traindoc.cli.parser`) and dispatches to the library.

Handlers call the library, print, and raise :class:`~traindoc.errors.TraindocError` subclasses; they
never return an exit code. ``main(argv) -> int`` is the only place codes appear, built from the error
classes (:func:`traindoc.errors.exit_codes` lists them; ``traindoc --help`` prints them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ChartError, LintFailed, RunFailed, StaleError, TraindocError
from .parser import build_parser

if TYPE_CHECKING:
    from ..facts import Facts


def _facts(args: argparse.Namespace) -> Facts:
    from ..facts import service

    if getattr(args, "no_cache", False):
        return service.introspect_here(service.target(args.pipeline))
    return service.facts_for(args.pipeline, cache_dir=args.cache_dir, in_process=True)


def cmd_inspect(args: argparse.Namespace) -> None:
    from ..render.env import project_templates_dir, render

    facts = _facts(args)
    if args.json:
        print(json.dumps(facts.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print(render("inspect.txt.j2", project_templates_dir(Path.cwd()), facts=facts), end="")
        if not facts.model.traced:  # the rest was described; the model's problem is still an error here
            from ..errors import UserCodeError

            first, _, rest = facts.model.untraced_reason.partition("\n")
            raise UserCodeError(first, rest)


def cmd_diagram(args: argparse.Namespace) -> None:
    from ..render import mermaid
    from ..render.diagrams import diagram
    from ..render.env import project_templates_dir

    d = diagram(_facts(args), args.kind, args.depth, project_templates_dir(Path.cwd()), args.direction)
    print(mermaid.fenced(d.text) if args.format == "md" else d.text, end="")


def cmd_run(args: argparse.Namespace) -> None:
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
        from ..render.content import run_summary

        print(run_summary(result))
    if not result.ok:
        raise RunFailed(f"{args.pipeline}: the run failed or missed its expectations (the summary above says why)")


def cmd_readme(args: argparse.Namespace) -> None:
    from ..pages import readme

    changed, diff = readme.update_file(Path(args.file), check=args.check, cache_dir=args.cache_dir)
    if args.check:
        if changed:
            sys.stdout.write(diff)
            raise StaleError(f"{args.file}: generated sections are stale; run `traindoc readme {args.file}`")
        print(f"{args.file}: up to date")
        return
    print(f"{args.file}: {'updated' if changed else 'unchanged'}")


def cmd_commands(args: argparse.Namespace) -> None:
    from ..render import commands

    print(commands.render_commands(_facts(args), args.kind), end="")


def cmd_export(args: argparse.Namespace) -> None:
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
        text_mode=args.text,
    )
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


def cmd_chart(args: argparse.Namespace) -> None:
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


def cmd_compare(args: argparse.Namespace) -> None:
    from .._util import atomic
    from ..compare import compare_pipelines, page
    from ..compare.run import valid_expect
    from ..errors import CompareError
    from ..export import export
    from ..render.env import project_templates_dir

    fmt = export.format_for(Path(args.diagram), None) if args.diagram else None  # checked before any work
    try:
        expect = json.loads(args.expect) if args.expect else None
    except ValueError as exc:
        raise CompareError(f'--expect is not JSON ({exc}); e.g. \'{{"val_accuracy": {{"min_delta": 0}}}}\'') from None
    if expect is not None and not valid_expect(expect):
        raise CompareError('--expect must map metrics to {"min_delta": N} and/or {"max_delta": N}')
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
        raise RunFailed("the comparison failed: a run failed or an expectation on B − A was not met")


def cmd_lint(args: argparse.Namespace) -> None:
    from ..render import lint

    findings = lint.lint(_facts(args))
    if args.json:
        print(json.dumps([f.model_dump() for f in findings], indent=2))
    else:
        print(lint.format_findings(findings), end="")
    if args.strict and lint.failing(findings):
        raise LintFailed(f"{args.pipeline}: lint --strict found warnings (listed above)")


def cmd_reference(args: argparse.Namespace) -> None:
    from ..render import reference

    text = reference.page(args.what, build_parser() if args.what == "cli" else None)
    if not args.output:
        print(text, end="")
        return
    out = Path(args.output)
    if out.is_dir():
        raise TraindocError(f"{out}: is a folder; -o takes the file to write, e.g. docs/reference/{args.what}.md")
    current = out.read_text(encoding="utf-8") if out.is_file() else None
    if args.check:
        if current != text:
            raise StaleError(f"{out}: stale; run `traindoc reference {args.what} -o {out}`")
        print(f"{out}: up to date")
        return
    if current != text:
        from .._util.atomic import write_text

        write_text(out, text)
    print(f"{out}: {'updated' if current != text else 'unchanged'}")


def cmd_fonts_fetch(args: argparse.Namespace) -> None:
    from ..export import fonts

    print(f"fonts in {fonts.fetch_fonts()}")


def cmd_mermaid_fetch(args: argparse.Namespace) -> None:
    from ..export import assets

    path = assets.fetch_mermaid(args.version)
    print(f"Mermaid: {path}")


def cmd_mermaid_install(args: argparse.Namespace) -> None:
    from ..export import assets

    path = assets.install_mermaid(Path(args.docs_dir))
    print(f"Mermaid {assets.MERMAID_VERSION}: {path}; list '{assets.SITE_PATH}' under extra_javascript")


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "inspect": cmd_inspect,
    "diagram": cmd_diagram,
    "run": cmd_run,
    "readme": cmd_readme,
    "commands": cmd_commands,
    "export": cmd_export,
    "chart": cmd_chart,
    "compare": cmd_compare,
    "lint": cmd_lint,
    "reference": cmd_reference,
    "mermaid-fetch": cmd_mermaid_fetch,
    "fonts-fetch": cmd_fonts_fetch,
    "mermaid-install": cmd_mermaid_install,
}


def _say(lines: list[str]) -> None:
    """Error lines to stderr, every secret masked (the in-process paths print user code's own words)."""
    from .._util.redact import redact

    for line in lines:
        text = redact(line)
        print(f"traindoc: {text}" if "\n" not in text else text, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .._util.procs import install_signal_handlers

    restore = install_signal_handlers()  # SIGTERM/SIGHUP/SIGINT: kill all traindoc started, then unwind
    try:
        COMMANDS[args.command](args)
        return 0
    except TraindocError as exc:
        _say(exc.lines())
        return exc.exit_code
    except OSError as exc:  # a path the user gave: missing, a folder where a file goes, no permission
        where = f"{exc.filename}: " if exc.filename else ""
        _say([f"{where}{exc.strerror or exc}"])
        return TraindocError.exit_code
    except KeyboardInterrupt as exc:
        print(f"traindoc: {exc or 'interrupted'}; every process it started was stopped", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))
    finally:
        restore()
