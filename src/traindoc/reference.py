"""Reference pages generated from the code itself: the spec's field descriptions and the CLI parser."""

from __future__ import annotations

import argparse

from .render import render
from .spec import Pipeline, describe_fields


def spec_reference() -> str:
    rows = [
        {
            "path": path,
            "type": t,
            "default": d,
            "description": desc,
            "depth": path.count("."),
        }
        for path, t, d, desc in describe_fields(Pipeline)
    ]
    return render("spec_reference.md.j2", None, rows=rows)


def _wide(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=100)  # fixed width: the page must not depend on the terminal


def cli_reference() -> str:
    from .cli import __doc__ as cli_doc
    from .cli import build_parser

    parser = build_parser()
    commands = []
    for action in parser._actions:  # argparse keeps subcommands here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                sub.formatter_class = _wide
                options = [
                    {
                        "flags": ", ".join(a.option_strings) or a.dest,
                        "help": a.help or "",
                        "choices": ", ".join(map(str, a.choices)) if a.choices else "",
                        "default": "" if a.default in (None, False, argparse.SUPPRESS) else str(a.default),
                    }
                    for a in sub._actions
                    if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS
                ]
                commands.append(
                    {"name": name, "help": helps.get(name, ""), "usage": sub.format_usage().strip(), "options": options}
                )
    exit_codes = (cli_doc or "").split("Exit codes:", 1)[-1].strip()
    return render("cli_reference.md.j2", None, commands=commands, exit_codes=" ".join(exit_codes.split()))
