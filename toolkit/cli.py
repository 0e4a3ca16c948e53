"""The ``toolkit`` command: a thin layer over :mod:`toolkit.exporter` (export, check,
:mod:`~toolkit.exporter.inspection` for ``--help-notebook``), :mod:`toolkit.runner` and
:mod:`toolkit.models` (``toolkit models``: list pushed versions, show one's report, roll back).

Exit codes: 0 success; 1 a run failed or an export is stale; 2 a usage or
validation error (bad arguments, bad parameter values, a notebook that cannot be
exported). Errors are one line on stderr. Heavy imports (papermill, nbclient,
IPython) happen inside the commands that need them, so ``toolkit --help`` is fast.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from toolkit import __version__, _env
from toolkit._text import squeeze
from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.exporter.targets import ExportTarget

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="toolkit",
        description="Run ML pipeline notebooks interactively, export them to parameterized pipelines, "
        "and run the exports headless.",
    )
    parser.add_argument("--version", action="version", version=f"toolkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in (_add_export, _add_run, _add_models, _add_compare):
        register(commands)
    return parser


def _add_export(commands: argparse._SubParsersAction) -> None:
    from toolkit.exporter.targets import TARGETS

    cmd = commands.add_parser(
        "export",
        help="export notebooks to parameterized pipeline notebooks",
        description="Export each NOTEBOOK to OUTPUT_DIR/<name>.ipynb plus <name>.params.yaml, by static "
        "analysis only (the notebook's code is never run).",
    )
    cmd.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    cmd.add_argument(
        "-o", "--output-dir", default="export", help="where to write the export (default: export/)"
    )
    cmd.add_argument(
        "--param", action="append", default=None, metavar="NAME",
        help="move the top-level literal assignment of NAME into the parameters cell (repeatable)",
    )
    cmd.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 if the existing export (and each target's own file beside it, "
        "when there is one) differs from a fresh one",
    )
    TARGETS.add_arguments(cmd)  # --target, and each target's own options
    cmd.set_defaults(handler=_export)


def _add_run(commands: argparse._SubParsersAction) -> None:
    cmd = commands.add_parser(
        "run",
        help="run an exported notebook headless with typed parameters",
        description="Check parameter values against the notebook's declared types, execute it with "
        "papermill, and write the executed notebook and summary.json to the run folder.",
    )
    cmd.add_argument("notebook", metavar="NOTEBOOK")
    cmd.add_argument(
        "-p", "--parameter", action="append", nargs=2, default=[], metavar=("NAME", "VALUE"),
        help="set a parameter; VALUE is converted by the declared type (repeatable)",
    )
    cmd.add_argument("-f", "--parameter-file", metavar="FILE", help="YAML or JSON mapping of values")
    cmd.add_argument(
        "-o", "--run-dir", metavar="RUN_DIR", help="run folder (default: runs/<name>/<UTC time>/)"
    )
    cmd.add_argument(
        "--cwd", metavar="DIR",
        help="working directory of the kernel, against which relative paths in the notebook and in "
        "path parameters resolve (default: the source notebook's folder recorded by export, else the "
        "current directory)",
    )
    cmd.add_argument("--timeout", type=float, metavar="SECONDS", help="fail a cell running longer than this")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no per-cell progress lines, nor the components' stage lines (with --grid: no per-point lines)")
    cmd.add_argument(
        "--help-notebook", action="store_true",
        help="list the notebook's parameters (name, type, default, help) and exit",
    )
    cmd.add_argument(
        "--grid", action="append", default=[], metavar="NAME=V1,V2,...",
        help="sweep: run the notebook at every combination of these values (repeatable), each "
        "point in RUN_DIR/point-<n>/, with RUN_DIR/sweep.json and compare.html",
    )
    cmd.add_argument(
        "--parallel", type=int, default=1, metavar="N",
        help="with --grid: run N points at a time (default 1)",
    )
    cmd.set_defaults(handler=_run)


def _add_models(commands: argparse._SubParsersAction) -> None:
    cmd = commands.add_parser(
        "models",
        help="list the model versions pushed to a serving directory, show one's report, or roll "
        "back to one",
        description="`toolkit models SERVING_DIR` lists the pushed versions (model, blessing and its "
        "metrics, data spans, when, by which run). `toolkit models show SERVING_DIR VERSION` prints "
        "where the version's report page is and a short summary of it. `toolkit models rollback "
        "SERVING_DIR --to VERSION` re-publishes VERSION as the newest version number, atomically, "
        "deleting nothing, and records it in the metadata store (reason rollback) when one is found. "
        "`toolkit models verify SERVING_DIR [VERSION]` hashes every file of VERSION (default: every "
        "version) against what its push recorded and exits 1 naming each file that differs.",
        usage="toolkit models [rollback | show | verify | compare] SERVING_DIR [VERSION ...] "
        "[--to VERSION] [--pipeline-root DIR]",
        epilog="`toolkit models compare SERVING_DIR V1 V2` prints the two versions' blessing "
        "evaluations side by side (V1 the reference) and writes "
        "SERVING_DIR/toolkit-compare-V1-V2.html, plus SERVING_DIR/toolkit-versions.html: every "
        "version's metric per slice (a server loads only the numbered folders).",
    )
    cmd.add_argument("words", nargs="+",
                     metavar="[rollback | show | verify | compare] SERVING_DIR [VERSION ...]")
    cmd.add_argument("--to", metavar="VERSION", help="with rollback: the version to serve again")
    cmd.add_argument(
        "--pipeline-root", metavar="DIR",
        help="read (and record in) DIR/metadata.sqlite instead of the store the versions name; "
        f"{_env.MYSQL_PREFIX}* variables select a MySQL store",
    )
    cmd.set_defaults(handler=_models)


def _models(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words[0] == "compare" and len(words) > 1:
        return _models_compare(words[1:], args)
    rolling_back = len(words) == 2 and words[0] == "rollback"
    showing = words[0] == "show" and len(words) > 1
    verifying = words[0] == "verify" and len(words) in (2, 3)
    if showing and len(words) != 3:
        raise ToolkitError("show needs SERVING_DIR and VERSION: `toolkit models show SERVING_DIR "
                           "VERSION` (see `toolkit models SERVING_DIR` for the versions)")
    if not (showing or verifying) and (len(words) > 2 or (len(words) == 2 and not rolling_back)):
        raise ToolkitError(f"unexpected arguments {' '.join(words)}; use `toolkit models "
                           "SERVING_DIR`, `toolkit models show SERVING_DIR VERSION`, `toolkit models verify "
                           "SERVING_DIR [VERSION]` or `toolkit models rollback SERVING_DIR --to "
                           "VERSION`")
    if rolling_back and args.to is None:
        raise ToolkitError("rollback needs --to VERSION (see `toolkit models SERVING_DIR`)")
    if not rolling_back and args.to is not None:
        raise ToolkitError("--to is for `toolkit models rollback SERVING_DIR --to VERSION`")
    from toolkit import models
    from toolkit.metadata_config import mysql_config_from_env

    store = {"metadata_connection_config": mysql_config_from_env(),
             "pipeline_root": args.pipeline_root}
    if showing:
        print(str(models.show(words[1], words[2], **store)))
        return EXIT_OK
    if verifying:
        checked = models.verify(words[1], words[2] if len(words) == 3 else None)
        for one in checked:
            print(one.line())
        return EXIT_OK if all(one.ok for one in checked) else EXIT_FAILED
    if not rolling_back:
        print(repr(models.list_versions(words[0], **store)))
        return EXIT_OK
    done = models.rollback(words[1], args.to, **store)
    print(done.version)
    print(f"version {done.from_version} re-published as version {done.version}; "
          f"{squeeze(done.note)}", file=sys.stderr)
    return EXIT_OK


def _add_compare(commands: argparse._SubParsersAction) -> None:
    cmd = commands.add_parser(
        "compare",
        help="compare a sweep's points (or evaluation folders) side by side",
        description="`toolkit compare SWEEP_DIR` writes SWEEP_DIR/compare.html (metrics per slice "
        "with their differences to the first point, blessings, the parameters that differ, "
        "curves) and prints the overall metrics as a table. Evaluation folders (ModelEvaluation "
        "outputs) may be given instead, the first one the reference; their page goes to -o.",
    )
    cmd.add_argument("paths", nargs="+", metavar="SWEEP_DIR | EVALUATION_DIR")
    cmd.add_argument("-o", "--output", metavar="HTML",
                     help="where to write the page (default: SWEEP_DIR/compare.html, or "
                     "compare.html here for evaluation folders)")
    cmd.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    import os

    from toolkit.comparison import SWEEP_FILE, compare

    comparison = compare(*args.paths)
    sweep_dir = args.paths[0] if len(args.paths) == 1 and os.path.isfile(
        os.path.join(args.paths[0], SWEEP_FILE)) else None
    output = args.output or (os.path.join(sweep_dir, "compare.html") if sweep_dir
                             else "compare.html")
    print(comparison.text())
    print(f"compare: {comparison.write(output)}")
    return EXIT_OK


def _models_compare(words: list[str], args: argparse.Namespace) -> int:
    import os

    from toolkit.comparison import compare, write_versions_page
    from toolkit.metadata import sqlite_config
    from toolkit.metadata_config import mysql_config_from_env

    if len(words) != 3:
        raise ToolkitError("compare needs SERVING_DIR and two versions: `toolkit models compare "
                           "SERVING_DIR V1 V2` (see `toolkit models SERVING_DIR` for the versions)")
    serving, first, second = words
    config = mysql_config_from_env()
    if config is None and args.pipeline_root is not None:
        config = sqlite_config(os.path.join(os.path.abspath(args.pipeline_root), "metadata.sqlite"))
    comparison = compare((serving, first), (serving, second), metadata_connection_config=config)
    print(comparison.text())
    page = os.path.join(serving, f"toolkit-compare-{first}-{second}.html")
    print(f"compare: {comparison.write(page, title=f'Versions {first} and {second} of {serving}')}")
    print(f"versions: {write_versions_page(serving, metadata_connection_config=config)}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from toolkit.exporter.targets import TARGETS

    # what a target needs while the command runs (kfp: its compiler without the REST
    # client) is entered into this scope, and left when the command ends
    with contextlib.ExitStack() as scope:
        return _export_notebooks(args, TARGETS.get(args.target), scope)


def _export_notebooks(args: argparse.Namespace, target: ExportTarget,
                      scope: contextlib.ExitStack) -> int:
    from toolkit.exporter import check_export, export_notebook
    from toolkit.exporter.targets import TARGETS

    for prepared in (TARGETS if args.check else [target]):  # --check covers every target
        prepared.prepare(scope)
    TARGETS.refuse_options_of_others(args, target)
    status = EXIT_OK
    for notebook in args.notebooks:
        if args.check:
            result = check_export(notebook, args.output_dir, args.param)
            print(str(result), file=sys.stdout if not result.stale else sys.stderr)
            status = status if not result.stale else EXIT_FAILED
            continue
        exported = export_notebook(notebook, args.output_dir, args.param or ())
        for note in exported.notes:
            print(f"note: {squeeze(note)}", file=sys.stderr)
        state = "wrote" if exported.changed else "unchanged"
        count = len(exported.parameters)
        print(f"{state} {exported.notebook} and {exported.params_file.name} ({count} parameters)")
        # the target's own file; a plain re-export keeps the other targets' files current
        for line in TARGETS.write(target, exported, args, scope):
            print(line)
    return status


def _run(args: argparse.Namespace) -> int:
    if args.help_notebook:
        from toolkit.exporter.inspection import describe_parameters

        print(describe_parameters(args.notebook))
        return EXIT_OK
    if args.grid:
        return _sweep(args)
    if args.parallel != 1:
        raise ToolkitError("--parallel is for sweeps: add --grid NAME=V1,V2,...")
    from toolkit import runner

    result = runner.run_notebook(
        args.notebook,
        cli_parameters=[tuple(pair) for pair in args.parameter],
        parameter_file=args.parameter_file,
        run_dir=args.run_dir,
        cwd=args.cwd,
        execution_timeout=args.timeout,
        progress=None if args.quiet else runner.print_progress,
        announce=runner.print_progress,
    )
    summary = result.summary
    print(f"executed notebook: {result.notebook}")
    print(f"summary: {result.summary_path}")
    if not result.ok:
        where = f"cell {summary['failing_cell']['cell']} failed: " if summary.get("failing_cell") else ""
        print(f"toolkit run: {where}{result.reason}", file=sys.stderr)
        return EXIT_FAILED
    print(_describe_success(summary))
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    from toolkit.sweeps import parse_grid, sweep

    result = sweep(
        args.notebook,
        grid_texts=parse_grid(args.grid),
        cli_parameters=[tuple(pair) for pair in args.parameter],
        parameter_file=args.parameter_file,
        parallel=args.parallel,
        output_dir=args.run_dir,
        cwd=args.cwd,
        execution_timeout=args.timeout,
        progress=_silent if args.quiet else None,
    )
    print(f"sweep: {result.sweep_json}")
    print(f"compare: {result.compare_html}")
    if not result.ok:
        print(f"toolkit run: {result.failure_line()}", file=sys.stderr)
        return EXIT_FAILED
    best = f", best by {result.best_by}: point {result.best}" if result.best else ""
    print(f"sweep succeeded in {result.duration_s:.1f}s: {len(result.points)} points{best}")
    return EXIT_OK


def _silent(line: str) -> None:
    """``-q``: no per-point lines."""


def _describe_success(summary: dict) -> str:
    executions = summary["executions"]
    cached = sum(1 for e in executions if e.get("cached"))
    parts = [
        f"run succeeded in {summary['duration_s']:.1f}s",
        f"{len(executions)} executions ({cached} cached)",
    ]
    if summary.get("blessing") is not None:
        parts.append("model blessed" if summary["blessing"] else "model NOT blessed")
    parts.extend(_describe_push(summary.get("push")))
    return ", ".join(parts)


def _describe_push(push: dict | None) -> list[str]:
    if not push:
        return []
    if not push.get("pushed"):
        return [f"not pushed: {squeeze(str(push.get('reason') or 'model not pushed'))}"]
    if push.get("cached"):
        return [f"already pushed as version {push['version']} (cached)"]
    return [f"pushed version {push['version']}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ToolkitError as exc:
        print(f"toolkit {args.command}: error: {squeeze(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"toolkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
