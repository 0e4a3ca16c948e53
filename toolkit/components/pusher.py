"""Pusher: copies a blessed SavedModel to ``<destination>/<version>/``, atomically.

Serving systems (TF Serving, and most others) watch a base directory and load
the highest numbered version. So a version must appear complete or not at all:
the model is copied into a hidden folder inside the destination and renamed
into place in one step. Versions are never overwritten; older ones stay for
rollback.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

from toolkit._paths import resolve_within
from toolkit._process import pid_alive
from toolkit.artifacts import InfraBlessing, Model, ModelBlessing, PushedModel
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._model_io import blessing_verdict, has_saved_model, serving_model_path
from toolkit.errors import PushRefused, ToolkitError

#: environment variable naming the folder push destinations must stay inside
PUSH_ROOT_ENV = "TOOLKIT_PUSH_ROOT"


class Pusher(BaseComponent):
    """Pushes a model to a filesystem destination if every blessing given blesses it.

    Args:
        model: the Model channel (a Trainer's ``model``).
        model_blessing: an Evaluator's ``blessing``.
        infra_blessing: an InfraValidator's ``blessing``.
        push_destination: a folder, or TFX's form
            ``{"filesystem": {"base_directory": "serving/taxi"}}``.
        allowed_root: destinations must resolve (symlinks included) inside this
            folder; default: ``$TOOLKIT_PUSH_ROOT``, else the working directory.
        require_blessing: with no blessing wired at all the push is refused; set
            False to push an unvalidated model on purpose.

    A model that a given blessing does not bless is not pushed: the execution
    completes with ``pushed_model.pushed == 0`` and the reason, and in production
    mode the pipeline stops there (``gate``). ``pushed_version`` is an integer, the
    push time in seconds, or one more than the newest existing version if that
    is higher, so versions always increase.
    """

    INPUTS = {"model": InputSpec(Model),
              "model_blessing": InputSpec(ModelBlessing, optional=True),
              "infra_blessing": InputSpec(InfraBlessing, optional=True)}
    OUTPUTS = {"pushed_model": PushedModel}
    PARAMETERS = {"push_destination": ExecutionParameter(object, required=True),
                  "allowed_root": ExecutionParameter(str),
                  "require_blessing": ExecutionParameter(bool, default=True)}

    def __init__(self, model, push_destination: Any, model_blessing=None, infra_blessing=None,
                 allowed_root: str | None = None, require_blessing: bool = True):
        super().__init__(model=model, model_blessing=model_blessing,
                         infra_blessing=infra_blessing,
                         push_destination=_destination_text(push_destination),
                         allowed_root=None if allowed_root is None else os.fspath(allowed_root),
                         require_blessing=bool(require_blessing))

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        model: Model = input_dict["model"][0]
        pushed: PushedModel = output_dict["pushed_model"][0]
        blessings = {k: input_dict.get(k) or [] for k in ("model_blessing", "infra_blessing")}
        destination = resolve_destination(exec_properties["push_destination"],
                                          exec_properties.get("allowed_root"))
        pushed.properties.update(pushed=0, pushed_destination=destination, pushed_version="")
        if not any(blessings.values()):
            if exec_properties.get("require_blessing", True):
                raise PushRefused(
                    f"refusing to push Model #{model.id}: no model_blessing or infra_blessing "
                    "is given. Wire model_blessing=evaluator.outputs['blessing'] (and/or "
                    "infra_blessing=infra_validator.outputs['blessing']), or pass "
                    "require_blessing=False to push an unvalidated model on purpose")
            ctx.log("pushing without a blessing (require_blessing=False)")
        reason = blessing_verdict(model, blessings)
        if reason:
            pushed.properties["reason"] = f"not pushed: {reason}"
            _write_record(pushed, {"pushed": False, "reason": reason, "model_id": model.id,
                                   "destination": destination})
            ctx.log(f"NOT pushed: {reason}")
            return
        source = serving_model_path(model)
        if not has_saved_model(source):
            raise ToolkitError(f"Model #{model.id} has no SavedModel in {source}")
        version, path = push(source, destination)
        pushed.properties.update(pushed=1, pushed_version=str(version))
        _write_record(pushed, {"pushed": True, "model_id": model.id, "model_uri": model.uri,
                               "destination": destination, "version": version, "path": path,
                               "pushed_at": time.time()})
        ctx.log(f"pushed Model #{model.id} as version {version}: {path}")

    def gate(self, outputs, exec_properties) -> str | None:
        """In production mode, a model not pushed for want of a blessing stops the run."""
        pushed = outputs["pushed_model"][0]
        if int(pushed.properties.get("pushed", 0) or 0) == 1:
            return None
        return pushed.properties.get("reason") or "model not pushed"


def resolve_destination(destination: str, allowed_root: str | None) -> str:
    """The destination's real path, refused if it is outside the allowed root."""
    root = allowed_root or os.environ.get(PUSH_ROOT_ENV) or os.getcwd()
    real, real_root, inside = resolve_within(destination, root)
    if not inside:
        raise PushRefused(
            f"push_destination {destination} resolves to {real}, outside the allowed root "
            f"{real_root}; pass allowed_root=... (or set ${PUSH_ROOT_ENV}) to allow it")
    return real


def push(source: str, destination: str) -> tuple[int, str]:
    """Copy ``source`` to ``destination/<version>`` atomically; returns (version, path)."""
    os.makedirs(destination, exist_ok=True)
    _remove_abandoned_copies(destination)
    staging = os.path.join(destination, f".pushing-{os.getpid()}-{time.time_ns()}")
    try:
        shutil.copytree(source, staging)
        version = max(int(time.time()), _newest(destination) + 1)
        for _ in range(1000):
            target = os.path.join(destination, str(version))
            if not os.path.exists(target):
                try:
                    os.rename(staging, target)
                    return version, target
                except OSError:
                    if not os.path.exists(target):
                        raise
            version += 1
        raise ToolkitError(f"{destination}: no free version number after {version}")
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)


def _remove_abandoned_copies(destination: str) -> None:
    """Hidden ``.pushing-<pid>-*`` copies of pushes whose process died (killed mid-copy)."""
    for name in os.listdir(destination):
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != ".pushing" or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid_alive(pid):
            continue
        shutil.rmtree(os.path.join(destination, name), ignore_errors=True)


def versions(destination: str) -> list[int]:
    """The version numbers present in a push destination, oldest first."""
    if not os.path.isdir(destination):
        return []
    return sorted(int(n) for n in os.listdir(destination)
                  if n.isdigit() and os.path.isdir(os.path.join(destination, n)))


def _newest(destination: str) -> int:
    found = versions(destination)
    return found[-1] if found else 0


def _destination_text(destination: Any) -> str:
    """A folder from a path, TFX's dict form, or a PushDestination-like object."""
    if isinstance(destination, (str, os.PathLike)):
        return os.fspath(destination)
    if isinstance(destination, dict):
        filesystem = destination.get("filesystem") or {}
        base = filesystem.get("base_directory") if isinstance(filesystem, dict) else getattr(
            filesystem, "base_directory", None)
    else:
        base = getattr(getattr(destination, "filesystem", None), "base_directory", None)
    if not base:
        raise TypeError("push_destination must be a folder or "
                        "{'filesystem': {'base_directory': folder}}")
    return os.fspath(base)


def _write_record(pushed: PushedModel, record: dict[str, Any]) -> None:
    with open(os.path.join(pushed.uri, "push.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
