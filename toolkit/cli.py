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
from typing import Callable, Sequence

from toolkit import __version__
from toolkit._text import squeeze
from toolkit.errors import ToolkitError

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
    for register in (_add_export, _add_run, _add_models):
        register(commands)
    return parser


def _add_export(commands: argparse._SubParsersAction) -> None:
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
        help="write nothing; exit 1 if the existing export (and its <name>.kfp.yaml, when there is "
        "one) differs from a fresh one",
    )
    cmd.add_argument(
        "--target", choices=("papermill", "kfp"), default="papermill",
        help="papermill (default): the parameterized notebook; kfp: also <name>.kfp.yaml, a Kubeflow "
        "Pipelines pipeline compiled from that notebook, one task per component",
    )
    cmd.add_argument(
        "--image", default=None, metavar="IMAGE",
        help="with --target kfp: the container image every task runs in (default: toolkit:latest, "
        "built from the Dockerfile)",
    )
    cmd.add_argument(
        "--resources", action="append", default=[], metavar="COMPONENT=KEY:VALUE,...",
        help="with --target kfp: a task's settings, e.g. Trainer=cpu:4,memory:16G,retries:2,timeout:3600 "
        "(keys: cpu, memory, accelerator, accelerator_count, retries, timeout, cache; repeatable; "
        "wins over the cell's kfp: tag)",
    )
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
    cmd.add_argument("-q", "--quiet", action="store_true", help="no per-cell progress lines")
    cmd.add_argument(
        "--help-notebook", action="store_true",
        help="list the notebook's parameters (name, type, default, help) and exit",
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
        usage="toolkit models [rollback | show | verify] SERVING_DIR [VERSION] [--to VERSION] "
        "[--pipeline-root DIR]",
    )
    cmd.add_argument("words", nargs="+", metavar="[rollback | show | verify] SERVING_DIR [VERSION]")
    cmd.add_argument("--to", metavar="VERSION", help="with rollback: the version to serve again")
    cmd.add_argument(
        "--pipeline-root", metavar="DIR",
        help="read (and record in) DIR/metadata.sqlite instead of the store the versions name; "
        "TOOLKIT_MYSQL_* variables select a MySQL store",
    )
    cmd.set_defaults(handler=_models)


def _models(args: argparse.Namespace) -> int:
    words = list(args.words)
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


def _export(args: argparse.Namespace) -> int:
    from toolkit.exporter.kfp import compiler_only_kfp

    # the command only compiles: kfp without its REST client while it runs, and whole
    # again afterwards for a process that goes on (a notebook calling main())
    with contextlib.ExitStack() as kfp_scope:
        return _export_notebooks(args, lambda: kfp_scope.enter_context(compiler_only_kfp()))


def _export_notebooks(args: argparse.Namespace, compiler_only: Callable[[], None]) -> int:
    from toolkit.exporter import check_export, export_notebook
    from toolkit.exporter.kfp import DEFAULT_IMAGE, kfp_pipeline_path, refresh_kfp, write_kfp

    if args.target == "kfp" or args.check:
        compiler_only()
    if args.target != "kfp" and (args.image or args.resources):
        raise ToolkitError("--image and --resources go with --target kfp")
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
        compiled = None
        if args.target == "kfp":
            compiled = write_kfp(exported, args.resources, args.image or DEFAULT_IMAGE)
        elif kfp_pipeline_path(exported.notebook).exists():
            compiler_only()
            compiled = refresh_kfp(exported)  # a plain re-export keeps the KFP pipeline current too
        if compiled is not None:
            state = "wrote" if compiled.changed else "unchanged"
            print(f"{state} {compiled.pipeline} ({len(compiled.graph.nodes)} tasks, "
                  f"{len(compiled.graph.edges())} edges, image {compiled.image})")
    return status


def _run(args: argparse.Namespace) -> int:
    if args.help_notebook:
        from toolkit.exporter.inspection import describe_parameters

        print(describe_parameters(args.notebook))
        return EXIT_OK
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
