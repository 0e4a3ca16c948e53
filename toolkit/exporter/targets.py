"""Export targets: what ``toolkit export --target NAME`` makes of the exported notebook.

Every export writes the parameterized notebook and its parameters file
(:func:`toolkit.exporter.export.export_notebook`); a target is what the command adds:
``papermill`` (the default) nothing, since papermill runs that notebook as it is;
``kfp`` a Kubeflow Pipelines pipeline, ``<name>.kfp.yaml``, compiled from it
(:mod:`toolkit.exporter.kfp`). A target whose file is derived from the exported
notebook brings that file up to date on a plain re-export too (``refresh``), so the two
cannot drift, and ``toolkit export --check`` (:func:`~toolkit.exporter.export.check_export`)
asks every target whether its file is stale.

The command reads the ``--target`` choices, their help and each target's own options
(``--image``, ``--resources``) from :data:`TARGETS`, papermill's engine registry being
the model: adding a target is an :class:`ExportTarget` and ``register_target(...)``, not
an edit of the CLI. ``toolkit --help`` imports this module, so it imports nothing heavy:
each target imports its implementation when it runs.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit._registry import Registry
from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.exporter.kfp import KfpExportResult

#: an :class:`~toolkit.exporter.export.ExportResult` (not imported: the export module asks
#: this registry what to check, so this module does not import it)
ExportResult = Any


class TargetOption:
    """A command-line option of one target: its flags and argparse's keyword arguments."""

    def __init__(self, flags: tuple[str, ...], settings: dict[str, Any] | None = None) -> None:
        self.flags = tuple(flags)
        self.settings = dict(settings or {})

    @property
    def dest(self) -> str:
        """The attribute argparse stores the value under."""
        return self.settings.get("dest") or self.flags[-1].lstrip("-").replace("-", "_")


class ExportTarget:
    """One ``--target``: its name, its help (after ``NAME:`` in ``--target``'s help) and
    its own options. The command calls ``prepare``, ``write`` and ``refresh`` with its
    ``scope``, an :class:`contextlib.ExitStack` left when the command ends;
    :func:`~toolkit.exporter.export.check_export` calls ``recorded_options`` and ``check``."""

    name = ""
    help = ""
    options: tuple[TargetOption, ...] = ()

    def prepare(self, scope: contextlib.ExitStack) -> None:
        """Enter what writing or checking this target's file needs while the command runs;
        called once before the notebooks are exported when this target is chosen, or with
        ``--check``, which covers every target."""

    def write(self, exported: ExportResult, args: argparse.Namespace,
              scope: contextlib.ExitStack) -> str | None:
        """After ``exported`` was written with this target chosen: write what the target
        adds; return the line to print about it, or None."""
        return None

    def refresh(self, exported: ExportResult, scope: contextlib.ExitStack) -> str | None:
        """After ``exported`` was written with another target chosen: bring this target's
        own file beside it up to date when there is one; return the line to print, or None."""
        return None

    def recorded_options(self, exported: ExportResult) -> list[str] | None:
        """The ``toolkit export`` options (``--target`` first) that wrote this target's file
        beside ``exported``, for the command that brings it up to date; None when there is
        no such file."""
        return None

    def check(self, exported: ExportResult) -> list[str]:
        """Why this target's file beside ``exported`` (a fresh export, in memory) is stale;
        empty when it is current or absent."""
        return []


class PapermillTarget(ExportTarget):
    """The exported notebook itself, which papermill (or ``toolkit run``) executes."""

    name = "papermill"
    help = "the parameterized notebook"


class KfpTarget(ExportTarget):
    """A Kubeflow Pipelines pipeline compiled from the exported notebook, one task per
    component (:mod:`toolkit.exporter.kfp`)."""

    name = "kfp"
    help = ("also <name>.kfp.yaml, a Kubeflow Pipelines pipeline compiled from that notebook, "
            "one task per component")
    options = (
        TargetOption(("--image",), dict(
            default=None, metavar="IMAGE",
            help="with --target kfp: the container image every task runs in (default: "
                 "toolkit:latest, built from the Dockerfile)")),
        TargetOption(("--resources",), dict(
            action="append", default=[], metavar="COMPONENT=KEY:VALUE,...",
            help="with --target kfp: a task's settings, e.g. "
                 "Trainer=cpu:4,memory:16G,retries:2,timeout:3600 (keys: cpu, memory, "
                 "accelerator, accelerator_count, retries, timeout, cache; repeatable; wins over "
                 "the cell's kfp: tag)")),
        TargetOption(("--secret",), dict(
            action="append", default=[], metavar="NAME=KEY[:VARIABLE],...",
            help="with --target kfp: give every task these keys of the Kubernetes secret NAME "
                 "as environment variables, e.g. db=TOOLKIT_MYSQL_USER,TOOLKIT_MYSQL_PASSWORD "
                 "(needs kfp-kubernetes; repeatable)")),
        TargetOption(("--volume",), dict(
            action="append", default=[], metavar="CLAIM:/PATH",
            help="with --target kfp: mount the PersistentVolumeClaim CLAIM at /PATH in every "
                 "task (repeatable)")),
        TargetOption(("--requirements",), dict(
            default=None, metavar="FILE",
            help="with --target kfp: also write <name>.Dockerfile, the toolkit's image plus "
                 "the packages FILE lists, to build and give as --image")),
    )

    def prepare(self, scope: contextlib.ExitStack) -> None:
        from toolkit.exporter.kfp import compiler_only_kfp

        # the command only compiles: kfp without its REST client while it runs, and whole
        # again afterwards for a process that goes on (a notebook calling main())
        scope.enter_context(compiler_only_kfp())

    def write(self, exported: ExportResult, args: argparse.Namespace,
              scope: contextlib.ExitStack) -> str | None:
        from toolkit.exporter.kfp import DEFAULT_IMAGE, write_kfp
        from toolkit.exporter.kfp_platform import Platform, write_dockerfile
        from toolkit.exporter.notebook import project_root

        platform = Platform.parse(args.secret, args.volume)
        compiled = write_kfp(exported, args.resources, args.image or DEFAULT_IMAGE, platform)
        lines = [_compiled_line(compiled)]
        if args.requirements:
            project = project_root(Path(exported.notebook))
            dockerfile = write_dockerfile(compiled.pipeline, args.requirements, project,
                                          DEFAULT_IMAGE)
            lines.append(f"wrote {dockerfile} (build it in {project} as its header says, "
                         "then export again with --image and the image's name)")
        return "\n".join(lines)

    def refresh(self, exported: ExportResult, scope: contextlib.ExitStack) -> str | None:
        from toolkit.exporter.kfp import kfp_pipeline_path, refresh_kfp

        if not kfp_pipeline_path(exported.notebook).exists():
            return None
        self.prepare(scope)
        compiled = refresh_kfp(exported)
        return _compiled_line(compiled) if compiled is not None else None

    def recorded_options(self, exported: ExportResult) -> list[str] | None:
        from toolkit.exporter.kfp import DEFAULT_IMAGE, kfp_pipeline_path, recorded_options

        try:
            text = kfp_pipeline_path(exported.notebook).read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        words = ["--target", self.name]
        options = recorded_options(text)
        if options is not None:
            image, resources, platform = options
            if image != DEFAULT_IMAGE:
                words += ["--image", image]
            for component, settings in resources.items():
                if settings:
                    words += ["--resources", component + "=" + ",".join(
                        f"{key}:{value}" for key, value in settings.items())]
            words += platform.options()
        return words

    def check(self, exported: ExportResult) -> list[str]:
        from toolkit.exporter.kfp import check_kfp

        return check_kfp(exported)


def _compiled_line(compiled: KfpExportResult) -> str:
    state = "wrote" if compiled.changed else "unchanged"
    return (f"{state} {compiled.pipeline} ({len(compiled.graph.nodes)} tasks, "
            f"{len(compiled.graph.edges())} edges, image {compiled.image})")


class TargetRegistry(Registry[ExportTarget]):
    """The export targets by name; ``default`` is the one ``toolkit export`` uses unless
    ``--target`` names another."""

    def __init__(self, default: str) -> None:
        super().__init__("export target")
        self.default = default

    def register(self, name: str, entry: ExportTarget) -> ExportTarget:
        if not isinstance(entry, ExportTarget) or entry.name != name:
            raise ToolkitError(f"register_target({name!r}, ...) takes an ExportTarget named "
                               f"{name!r}")
        taken = {flag: other.name for other in self if other.name != name
                 for option in other.options for flag in option.flags}
        clash = [flag for option in entry.options for flag in option.flags if flag in taken]
        if clash:
            raise ToolkitError(f"register_target({name!r}, ...): {clash[0]} is already an option "
                               f"of --target {taken[clash[0]]}; give the option another name")
        return super().register(name, entry)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--target`` (its choices and help from the registered targets), then each
        target's own options."""
        parser.add_argument(
            "--target", choices=self.names(), default=self.default,
            help="; ".join(f"{t.name}{' (default)' if t.name == self.default else ''}: {t.help}"
                           for t in self))
        for target in self:
            for option in target.options:
                parser.add_argument(*option.flags, **option.settings)

    def refuse_options_of_others(self, args: argparse.Namespace, chosen: ExportTarget) -> None:
        """A one-line :class:`ToolkitError` when options of a target not chosen were given."""
        for target in self:
            given = [o for o in target.options if getattr(args, o.dest, None)]
            if target is not chosen and given:
                flags = [o.flags[0] for o in target.options]
                named = flags[0] if len(flags) == 1 else ", ".join(flags[:-1]) + " and " + flags[-1]
                raise ToolkitError(f"{named} go{'es' if len(flags) == 1 else ''} with "
                                   f"--target {target.name}")

    def write(self, chosen: ExportTarget, exported: ExportResult, args: argparse.Namespace,
              scope: contextlib.ExitStack) -> list[str]:
        """What ``chosen`` adds to ``exported``, then every other target's refresh of its
        own file: the lines to print."""
        lines = [chosen.write(exported, args, scope)]
        lines += [target.refresh(exported, scope) for target in self if target is not chosen]
        return [line for line in lines if line]


#: every target ``toolkit export --target`` knows
TARGETS = TargetRegistry(default=PapermillTarget.name)


def register_target(target: ExportTarget) -> ExportTarget:
    """Make ``target`` a choice of ``toolkit export --target`` (``TARGETS.register``)."""
    return TARGETS.register(target.name, target)


register_target(PapermillTarget())
register_target(KfpTarget())
