"""The command line's grammar: ``build_parser()`` and nothing else (the CLI reference page reads it too).

It imports no command: :mod:`traindoc.cli` maps ``args.command`` to its handler, so the parser, the CLI
and the reference page form no cycle.
"""

from __future__ import annotations

import argparse

from .. import __version__
from ..errors import exit_codes

KIND_HELP = "which diagram (default: system)"
DIRECTION_HELP = "system/data/distributed layout: auto (top-down, fits a docs column), TB or LR (slides)"
DEPTH_HELP = (
    "model diagram only: module tree depth (default: the deepest that fits a slide and a docs column; "
    "a depth given that would miss the slide is drawn compact)"
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="traindoc",
        description="Documentation-as-code for PyTorch training pipelines.",
        epilog="exit codes: "
        + " · ".join(f"{code} {meaning}" for code, meaning in exit_codes())
        + " · 128+N stopped by signal N",
    )
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

    sp = sub.add_parser("diagram", help="print a Mermaid diagram")
    pipeline_arg(sp)
    sp.add_argument("--kind", choices=["system", "model", "data", "distributed"], default="system", help=KIND_HELP)
    sp.add_argument("--depth", type=int, default=None, help=DEPTH_HELP)
    sp.add_argument("--direction", choices=["auto", "TB", "LR"], default="auto", help=DIRECTION_HELP)
    sp.add_argument(
        "--format", choices=["mmd", "md"], default="mmd", help="mmd = Mermaid text; md = a ```mermaid fence"
    )

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

    sp = sub.add_parser("readme", help="fill <!-- traindoc:begin ... --> sections in a Markdown file")
    sp.add_argument("file", help="the Markdown file (e.g. README.md)")
    sp.add_argument("--check", action="store_true", help="change nothing; exit 7 with a diff when stale")
    sp.add_argument("--cache-dir", default=None, help="cache folder (default .cache/traindoc)")

    sp = sub.add_parser("commands", help="print docker / ssh / torchrun / Kubernetes launch commands")
    pipeline_arg(sp)
    sp.add_argument(
        "--kind",
        choices=["all", "docker", "access", "torchrun", "kubernetes"],
        default="all",
        help="which commands (default: all)",
    )

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
    sp.add_argument(
        "--text",
        choices=["outline", "live"],
        default="outline",
        help="outline (default): labels drawn in the pinned fonts, as glyph outlines in SVG, so the file looks "
        "the same on every machine (needs `traindoc fonts-fetch`); live: SVG text in named font families",
    )

    sp = sub.add_parser("chart", help="write the last run's training chart (loss, lr, throughput) as an SVG file")
    sp.add_argument(
        "pipeline",
        help="pipeline reference: file.py, file.py:name, package.module:name, or a name from pyproject.toml",
    )
    sp.add_argument("-o", "--output", required=True, help="SVG file to write (e.g. docs/loss.svg for a README)")
    sp.add_argument("--cache-dir", default=None, help="cache folder (default .cache/traindoc)")

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

    sp = sub.add_parser("lint", help="check the pipeline against training-system best practice")
    pipeline_arg(sp)
    sp.add_argument("--strict", action="store_true", help="exit 9 when there are warnings")
    sp.add_argument("--json", action="store_true", help="print the findings as JSON")

    sp = sub.add_parser("reference", help="print the spec or CLI reference as Markdown")
    sp.add_argument("what", choices=["spec", "cli"], help="spec = the pipeline spec's fields; cli = this CLI")
    sp.add_argument("-o", "--output", default=None, help="write to this file (unchanged files are not rewritten)")
    sp.add_argument("--check", action="store_true", help="with -o: change nothing; exit 7 when the file is stale")

    fonts_help = "fetch the pinned export fonts (DejaVu Sans, Noto Sans SC) with `npm pack` into .cache/fonts"
    sub.add_parser("fonts-fetch", help=fonts_help)
    sp = sub.add_parser("mermaid-fetch", help="fetch the pinned Mermaid build with `npm pack` into .cache/mermaid")
    sp.add_argument("--version", default=None, help="Mermaid version (default: the pinned one)")

    sp = sub.add_parser(
        "mermaid-install", help="copy the pinned Mermaid into a docs folder (Zensical: served offline, no CDN)"
    )
    sp.add_argument("docs_dir", help="the site's docs folder (docs_dir); the file lands in assets/traindoc/")
    return p
