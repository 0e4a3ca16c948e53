"""What the driver reports: a run's result (or why it was skipped), the table of
executions, and lineage.

``InteractiveContext`` returns and renders these; their text forms are their reprs and
their HTML comes from :mod:`toolkit.visualize.run`, registered by class, so that
these records never depend on the views.
"""
from __future__ import annotations

from typing import Any

from toolkit._text import show_controls
from toolkit.artifacts import Artifact
from toolkit.base_component import BaseComponent
from toolkit.cache import encode_parameter
from toolkit.metadata import MetadataStore


class ExecutionResult:
    """The outcome of ``context.run``: what ran, on what, what it produced, cached or not."""

    def __init__(self, component: BaseComponent, execution_id: int,
                 inputs: dict[str, list[Artifact]], outputs: dict[str, list[Artifact]],
                 cached: bool, duration_s: float, outcome: str | None = None):
        self.component = component
        self.component_id = component.id
        self.execution_id = execution_id
        self.inputs = inputs
        self.outputs = outputs
        self.cached = cached
        self.duration_s = duration_s
        #: what the execution did beyond its artifacts, one line (``BaseComponent.outcome``)
        self.outcome = outcome
        self.gate_failure: str | None = None

    def _status(self) -> str:
        return "cached" if self.cached else "ran"

    def __repr__(self) -> str:
        lines = [f"{self.component_id}: {self._status()} (execution {self.execution_id}, "
                 f"{self.duration_s:.2f} s)"]
        if self.outcome:
            lines.append(f"  {self.outcome}")
        for label, group in (("input", self.inputs), ("output", self.outputs)):
            for key, arts in group.items():
                for art in arts:
                    lines.append(f"  {label} {key}: {art.TYPE_NAME} #{art.id} {art.uri}")
        if self.gate_failure:
            lines.append(f"  GATE: {self.gate_failure}")
        return show_controls("\n".join(lines))

    def _repr_html_(self) -> str:
        from toolkit.visualize import view_of

        return view_of(self).html

    def to_dict(self) -> dict[str, Any]:
        def arts(group):
            return {k: [{"id": a.id, "type": a.TYPE_NAME, "uri": a.uri,
                         "properties": a.properties} for a in v] for k, v in group.items()}
        return {"component_id": self.component_id,
                "component_type": type(self.component).__name__,
                "execution_id": self.execution_id, "cached": self.cached,
                "outcome": self.outcome, "duration_s": round(self.duration_s, 4),
                "parameters": encode_parameter(self.component.exec_properties),
                "inputs": arts(self.inputs), "outputs": arts(self.outputs),
                "gate_failure": self.gate_failure}


class SkippedRun:
    """What ``context.run`` returns for a component a policy rules out of this run: not
    executed, not recorded; ``reason`` says why (it names the policy's terms)."""

    cached = False
    gate_failure = None

    def __init__(self, component_id: str, reason: str):
        self.component_id = component_id
        self.reason = reason

    def __repr__(self) -> str:
        return show_controls(f"{self.component_id}: {self.reason}")


class ExecutionsTable(list):
    """A list of execution records that renders as a table."""

    COLUMNS = ("id", "component_id", "component_type", "state", "cached_from", "duration_s",
               "outcome")

    def __repr__(self) -> str:
        if not self:
            return "no executions recorded"
        widths = [max(len(c), *(len(str(r.get(c) or "")) for r in self)) for c in self.COLUMNS]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [fmt.format(*self.COLUMNS)]
        lines += [fmt.format(*(str(r.get(c) or "") for c in self.COLUMNS)) for r in self]
        return show_controls("\n".join(lines))

    def _repr_html_(self) -> str:
        from toolkit.visualize import view_of

        return view_of(self).html


class Lineage:
    """The chain of executions and artifacts upstream of one artifact."""

    def __init__(self, store: MetadataStore, artifact: Artifact, max_depth: int = 50):
        self.artifact = artifact
        self.nodes = self._walk(store, artifact, max_depth)

    @staticmethod
    def _walk(store: MetadataStore, artifact: Artifact, max_depth: int) -> list[dict[str, Any]]:
        nodes, stack, seen = [], [(artifact, 0, None)], set()
        while stack:  # depth first, so each artifact is listed right under its consumer
            art, depth, via = stack.pop()
            if art.id in seen or depth > max_depth:
                continue
            seen.add(art.id)
            exec_id = store.producer_of(art.id)
            node = {"artifact": art, "depth": depth, "via": via, "execution": None, "inputs": {}}
            if exec_id is not None:
                node["execution"] = store.execution(exec_id)
                node["inputs"] = store.inputs_of(exec_id)
                parents = [(a, depth + 1, key) for key, arts in node["inputs"].items()
                           for a in arts]
                stack.extend(reversed(parents))
            nodes.append(node)
        return nodes

    @property
    def executions(self) -> list[dict[str, Any]]:
        return [n["execution"] for n in self.nodes if n["execution"]]

    def __repr__(self) -> str:
        lines = []
        for n in self.nodes:
            art, ex = n["artifact"], n["execution"]
            pad = "  " * n["depth"]
            via = f"{n['via']}: " if n["via"] else ""
            made = (f" <- {ex['component_id']} (execution {ex['id']}, {ex['state'].lower()})"
                    if ex else " (imported)")
            lines.append(f"{pad}{via}{art.TYPE_NAME} #{art.id}{made}  {art.uri}")
        return show_controls("\n".join(lines))

    def _repr_html_(self) -> str:
        from toolkit.visualize import view_of

        return view_of(self).html
