"""What a compiled Kubeflow pipeline asks of Kubernetes beyond its image: secrets as
environment variables and mounted volumes (through ``kfp-kubernetes``), and the
``Dockerfile`` of a project that needs packages beyond the toolkit's.

Credentials reach a task only by reference: ``--secret db=TOOLKIT_MYSQL_PASSWORD`` names
a Kubernetes secret and the keys it holds, never a value, so the YAML can be shared.
Each option is also read back from a compiled file (:meth:`Platform.recorded`), so a
re-export keeps them as ``--image`` and ``--resources`` are kept.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from toolkit.errors import ExportError

#: Kubernetes object names (RFC 1123 subdomain) and environment variable names
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Platform:
    """Secrets, as ``(secret name, ((key, variable), ...))``, and volumes, as
    ``(claim name, mount path)``, given to every task."""

    secrets: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    volumes: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.secrets or self.volumes)

    @classmethod
    def parse(cls, secrets: Iterable[str] = (), volumes: Iterable[str] = ()) -> "Platform":
        """From ``--secret NAME=KEY[:VARIABLE],...`` and ``--volume CLAIM:/mount/path``."""
        parsed: dict[str, dict[str, str]] = {}
        for text in secrets:
            name, _, keys = text.partition("=")
            name = name.strip()
            if not _NAME.fullmatch(name) or not keys.strip():
                raise ExportError(f"--secret {text!r}: expected NAME=KEY[:VARIABLE],... with a "
                                  "Kubernetes secret name, e.g. db=TOOLKIT_MYSQL_PASSWORD")
            for item in keys.split(","):
                key, _, variable = item.strip().partition(":")
                variable = variable or key
                if not key or not _ENV.fullmatch(variable) or not re.fullmatch(r"[-._A-Za-z0-9]+", key):
                    raise ExportError(f"--secret {text!r}: {item.strip()!r} is not KEY or "
                                      "KEY:VARIABLE (a secret key and an environment variable name)")
                parsed.setdefault(name, {})[key] = variable
        mounts: dict[str, str] = {}
        for text in volumes:
            claim, _, path = text.partition(":")
            if not _NAME.fullmatch(claim.strip()) or not path.startswith("/"):
                raise ExportError(f"--volume {text!r}: expected CLAIM:/mount/path, with the name of "
                                  "a PersistentVolumeClaim and an absolute path")
            if path in mounts.values():
                raise ExportError(f"--volume {text!r}: {path} is already a mount path")
            mounts[claim.strip()] = str(PurePosixPath(path))
        return cls(tuple((name, tuple(keys.items())) for name, keys in parsed.items()),
                   tuple(mounts.items()))

    def apply(self, task: Any) -> None:
        """Add the secrets and volumes to one ``kfp`` task."""
        from kfp import kubernetes

        for name, keys in self.secrets:
            kubernetes.use_secret_as_env(task, secret_name=name, secret_key_to_env=dict(keys))
        for claim, path in self.volumes:
            kubernetes.mount_pvc(task, pvc_name=claim, mount_path=path)

    def options(self) -> list[str]:
        """The ``toolkit export`` words that give this platform."""
        words: list[str] = []
        for name, keys in self.secrets:
            words += ["--secret", name + "=" + ",".join(
                key if key == variable else f"{key}:{variable}" for key, variable in keys)]
        for claim, path in self.volumes:
            words += ["--volume", f"{claim}:{path}"]
        return words

    @classmethod
    def recorded(cls, document: Mapping[str, Any] | None) -> "Platform":
        """The platform a compiled file's ``platforms`` document gives its first task
        (every task gets the same)."""
        executors = (((document or {}).get("platforms") or {}).get("kubernetes") or {}) \
            .get("deploymentSpec", {}).get("executors") or {}
        if not executors:
            return cls()
        first = executors[sorted(executors)[0]]
        secrets = tuple((entry["secretName"], tuple((k["secretKey"], k["envVar"]) for k in entry["keyToEnv"]))
                        for entry in first.get("secretAsEnv") or [])
        volumes = tuple((entry["constant"], entry["mountPath"]) for entry in first.get("pvcMount") or [])
        return cls(secrets, volumes)


def write_dockerfile(pipeline: Path, requirements: str | Path, project: Path,
                     base_image: str) -> Path:
    """Write ``<name>.Dockerfile`` beside ``pipeline``: ``base_image`` (the toolkit's image)
    plus the packages ``requirements`` lists, built from ``project`` (the build context).
    Returns its path."""
    from toolkit.exporter.notebook import write_atomic

    requirements = Path(requirements)
    if not requirements.is_file():
        raise ExportError(f"--requirements {requirements}: no such file")
    try:
        inside = requirements.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        raise ExportError(f"--requirements {requirements}: the file must be inside the project "
                          f"folder {project}, the image's build context") from None
    if any(ord(c) < 32 for c in inside):
        raise ExportError(f"--requirements {requirements!r}: rename the file without control characters")
    name = pipeline.name.removesuffix(".kfp.yaml")
    target = pipeline.with_name(name + ".Dockerfile")
    context = project.resolve()
    relative = target.resolve().relative_to(context).as_posix() if target.resolve().is_relative_to(context) \
        else str(target)
    lines = [
        f"# The image of the tasks of {pipeline.name}: the toolkit's image and {inside}.",
        "# Build it from the project folder, then compile with its name as --image:",
        f"#   docker build -f {relative} --build-arg TOOLKIT_IMAGE={base_image} -t IMAGE .",
        f"ARG TOOLKIT_IMAGE={base_image}",
        "FROM ${TOOLKIT_IMAGE}",
        _copy_instruction(inside, "/tmp/project-requirements.txt"),
        "RUN python -m uv pip install --system --no-cache -r /tmp/project-requirements.txt",
        "",
    ]
    write_atomic(target, "\n".join(lines))
    return target


def _copy_instruction(source: str, target: str) -> str:
    """``COPY``, in its JSON form when a path needs quoting (spaces, quotes)."""
    import json

    if re.fullmatch(r"[-./\w]+", source):
        return f"COPY {source} {target}"
    return "COPY " + json.dumps([source, target])
