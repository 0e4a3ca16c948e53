"""``tfx.orchestration.experimental``: ``KubeflowV2DagRunner``, a ``tfx.dsl.Pipeline``
compiled to a Kubeflow Pipelines (v2) pipeline file.

``KubeflowV2DagRunner(config=KubeflowV2DagRunnerConfig(default_image=...),
output_filename=...).run(pipeline)`` writes the pipeline that ``toolkit export --target
kfp`` writes for a notebook: one task per component, the DAG from the wiring, KFP's own
caching off (the toolkit's cache decides). Each task rebuilds its component, and the
components it reads from, from the pipeline's spec carried in the file
(:mod:`toolkit.pipeline_spec` says why a spec rather than the user's module), and runs it
through the same launcher as ``LocalDagRunner``, reading its upstream from the shared
store (:func:`toolkit.exporter.kfp_task.run_pipeline_task`).

The file is KFP's ``PipelineSpec``, the document ``kfp.Client`` uploads and
``kfp.components.load_component_from_file`` loads: YAML, as the KFP compiler writes it,
when ``output_filename`` ends in ``.yaml``/``.yml``; otherwise (TFX's default name is
``pipeline.json``) the same document as JSON. TFX writes a ``PipelineJob`` wrapper in
JSON for Vertex AI; Vertex AI accepts the ``PipelineSpec`` too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from toolkit.errors import ToolkitError

__all__ = ["KubeflowV2DagRunner", "KubeflowV2DagRunnerConfig"]

NOT_PROVIDED = {
    "KubeflowDagRunner": "Kubeflow Pipelines v1 is not supported; use KubeflowV2DagRunner",
    "KubeflowDagRunnerConfig": "Kubeflow Pipelines v1 is not supported; use "
                               "KubeflowV2DagRunnerConfig",
    "exit_handler": "a compiled pipeline has no exit handler; run a last component that "
                    "reads what it needs instead",
    "FinalStatusStr": "a compiled pipeline has no exit handler",
    "get_default_kubeflow_metadata_config": "the tasks share the store the pipeline's "
                                            "metadata_connection_config names (or the MySQL "
                                            "store of the task's environment)",
}

#: TFX's key, in a ``default_image`` mapping, of the image for components not named in it
DEFAULT_IMAGE_PATH_KEY = "default_image_path"
#: TFX's default output file name
DEFAULT_OUTPUT_FILENAME = "pipeline.json"


class KubeflowV2DagRunnerConfig:
    """TFX's runner config: ``display_name`` (the pipeline's description in KFP) and
    ``default_image``: the container image every task runs in (one with this project and
    the toolkit installed), or a mapping of component id -> image with
    ``default_image_path`` for the rest. ``default_commands`` and TFX's ``PipelineConfig``
    arguments (launcher classes, component configs) configure TFX's own container
    entry point, which these tasks do not use: they are refused.
    ``use_pipeline_spec_2_1`` is accepted; the file has the schema version of the
    installed ``kfp`` compiler either way."""

    def __init__(self, display_name: str | None = None,
                 default_image: str | Mapping[str, str] | None = None,
                 default_commands: list[str] | None = None,
                 use_pipeline_spec_2_1: bool = False, **kwargs: Any):
        if kwargs:
            raise ToolkitError(f"KubeflowV2DagRunnerConfig does not take "
                               f"{', '.join(sorted(kwargs))}: TFX's launcher and component "
                               "configs do not apply to the toolkit's tasks; remove them")
        if default_commands is not None:
            raise ToolkitError("KubeflowV2DagRunnerConfig(default_commands=...) is not supported: "
                               "each task runs the toolkit's own command; remove the argument")
        if default_image is not None and not isinstance(default_image, (str, Mapping)):
            raise ToolkitError("KubeflowV2DagRunnerConfig(default_image=...) takes an image name "
                               f"or a mapping of component id -> image, not "
                               f"{type(default_image).__name__}")
        self.display_name = display_name
        self.default_image = default_image
        self.default_commands = None
        self.use_pipeline_spec_2_1 = bool(use_pipeline_spec_2_1)

    def image(self) -> str | dict[str, str]:
        """The image argument of the compile: one image, or one per component id with
        ``default`` for the others."""
        from toolkit.exporter.kfp import DEFAULT_IMAGE

        if self.default_image is None:
            return DEFAULT_IMAGE
        if isinstance(self.default_image, str):
            return self.default_image
        images = dict(self.default_image)
        images["default"] = images.pop(DEFAULT_IMAGE_PATH_KEY, None) or DEFAULT_IMAGE
        return images


class KubeflowV2DagRunner:
    """TFX's ``KubeflowV2DagRunner``: compiles a ``Pipeline`` to a Kubeflow Pipelines file
    at ``<output_dir>/<output_filename>`` (defaults: the working directory and
    ``pipeline.json``); see the module's doc for the file's format."""

    def __init__(self, config: KubeflowV2DagRunnerConfig, output_dir: str | None = None,
                 output_filename: str | None = None):
        if not isinstance(config, KubeflowV2DagRunnerConfig):
            raise ToolkitError("KubeflowV2DagRunner needs config=KubeflowV2DagRunnerConfig(...), "
                               f"got {type(config).__name__}")
        self._config = config
        self._output_dir = os.fspath(output_dir) if output_dir else os.getcwd()
        self._output_filename = output_filename or DEFAULT_OUTPUT_FILENAME

    @property
    def output_path(self) -> str:
        return os.path.join(self._output_dir, self._output_filename)

    def set_exit_handler(self, exit_handler: Any) -> None:
        raise ToolkitError("KubeflowV2DagRunner.set_exit_handler is not supported: add the "
                           "component to the pipeline, reading the outputs it needs")

    def run(self, pipeline: Any, parameter_values: Mapping[str, Any] | None = None,
            write_out: bool = True) -> dict[str, Any]:
        """Compile ``pipeline``; write the file unless ``write_out`` is False; return the
        pipeline spec as a dict (TFX returns a ``PipelineJob`` dict around it)."""
        from toolkit.exporter.kfp import compiler_only_kfp
        from toolkit.exporter.kfp_pipeline import compile_pipeline_object
        from toolkit.exporter.notebook import write_atomic
        from toolkit.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline):
            raise ToolkitError(f"KubeflowV2DagRunner.run expects a tfx.dsl.Pipeline, got "
                               f"{type(pipeline).__name__}")
        if parameter_values:
            raise ToolkitError("KubeflowV2DagRunner.run(parameter_values=...) is not supported: "
                               "a toolkit Pipeline has no runtime parameters; give the values "
                               "to the components")
        if not pipeline.components:
            raise ToolkitError(f"pipeline {pipeline.pipeline_name!r} has no components: a "
                               "Kubeflow pipeline needs at least one task")
        if not pipeline.pipeline_root:
            raise ToolkitError(f"pipeline {pipeline.pipeline_name!r} has no pipeline_root: pass "
                               "Pipeline(..., pipeline_root=...) where every task can write")
        description = self._config.display_name or (
            f"{pipeline.pipeline_name}: compiled from a Pipeline by KubeflowV2DagRunner, one "
            "task per component.")
        with compiler_only_kfp():
            text = compile_pipeline_object(pipeline, self._config.image(), description)
        import yaml

        spec = yaml.safe_load(text)
        if write_out:
            if os.path.exists(self._output_dir) and not os.path.isdir(self._output_dir):
                raise ToolkitError(f"output_dir {self._output_dir} is a file: give a folder")
            os.makedirs(self._output_dir, exist_ok=True)
            path = self.output_path
            body = text if path.endswith((".yaml", ".yml")) else \
                json.dumps(spec, indent=2, sort_keys=True) + "\n"
            write_atomic(Path(path), body)
        return spec


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
