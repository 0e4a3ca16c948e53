"""Running a component's Beam pipeline: one place that builds it from ``beam_pipeline_args``,
runs it to the end, and turns a runner's failure into one line naming the runner and its
flags.

Every data-heavy component that takes ``beam_pipeline_args`` goes through
:func:`beam_pipeline`, so an unknown runner, an unreachable job endpoint or a crashing
worker reads the same everywhere.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

from toolkit._quiet import offline_beam
from toolkit.components._shipping import runner_label, worker_import_failure
from toolkit.errors import ToolkitError, UserCodeError


@contextlib.contextmanager
def beam_pipeline(beam_args: Sequence[str], label: str) -> Iterator:
    """A ``beam.Pipeline`` built from ``beam_args``; it runs, and is waited for, when the
    ``with`` block ends.

    ``label`` names the work for messages ("CsvExampleGen reading input_base"). A failure
    raises a :class:`~toolkit.errors.ToolkitError` whose message is one line naming the
    runner and its flags; the runner's traceback stays chained for the log.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    offline_beam()
    args = list(beam_args)
    try:
        with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
            yield pipeline
    except ToolkitError:
        raise
    except Exception as exc:
        raise pipeline_failure(exc, label, args) from exc


def pipeline_failure(exc: BaseException, label: str, beam_args: Sequence[str]) -> ToolkitError:
    """The one-line error for a Beam pipeline that failed."""
    args = list(beam_args)
    unshipped = worker_import_failure(exc, label, args)
    if unshipped is not None:
        return UserCodeError(unshipped)
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                 type(exc).__name__)
    return ToolkitError(f"{label} failed on Beam, {runner_label(args)}: {first}")
