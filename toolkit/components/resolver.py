"""The latest blessed model: the baseline an Evaluator compares a candidate with.

TFX expresses this as a ``Resolver`` node with ``LatestBlessedModelStrategy``. Here
it is a query on the pipeline's metadata store that returns a channel, usable
directly as an Evaluator's ``baseline_model``::

    baseline = latest_blessed_model(context, exclude=trainer.outputs["model"])
    evaluator = Evaluator(examples=..., model=trainer.outputs["model"],
                          baseline_model=baseline, eval_config=...)

On the first run there is no blessed model yet: the channel is empty and the
Evaluator evaluates the candidate alone, as in TFX.
"""
from __future__ import annotations

import os
from typing import Any

from toolkit.artifacts import Artifact, Model, ModelBlessing
from toolkit.base_component import Channel


def latest_blessed_model(context: Any, exclude: Any = None,
                         producer: str | None = None) -> Channel:
    """A channel holding the newest Model some ModelBlessing blessed (or no artifact).

    Args:
        context: the ``InteractiveContext`` whose metadata store is searched.
        exclude: a model (a channel or artifact, typically the Trainer's current
            ``model``) never to return. Pass the candidate: when the notebook is run
            again with a cached Trainer, the candidate was blessed by the earlier run
            and would otherwise become its own baseline.
        producer: only consider blessings produced by this component id (when a
            pipeline has several Evaluators).

    A blessing counts when ``blessed == 1``; its model is ``current_model_id``, or
    the ``model`` input of the execution that produced the blessing. Models whose
    files are gone are skipped.
    """
    store = context.store
    excluded = _ids(exclude)
    blessings = [b for b in store.artifacts(ModelBlessing.TYPE_NAME)
                 if int(b.properties.get("blessed", 0) or 0) == 1
                 and getattr(b, "state", "LIVE") == "LIVE"
                 and (producer is None or b.producer == producer)]
    for blessing in sorted(blessings, key=lambda b: b.id or 0, reverse=True):
        model = _blessed_model(store, blessing)
        if model is None or model.id in excluded:
            continue
        if getattr(model, "state", "LIVE") != "LIVE" or not os.path.isdir(model.uri):
            continue
        return Channel(Model, artifacts=[model])
    return Channel(Model, artifacts=[])


def _blessed_model(store: Any, blessing: Artifact) -> Artifact | None:
    model_id = blessing.properties.get("current_model_id")
    if model_id not in (None, "", 0):
        try:
            return store.artifact(int(model_id))
        except Exception:  # a blessing pointing at a model from another store
            return None
    execution = store.producer_of(blessing.id)
    if execution is None:
        return None
    models = store.inputs_of(execution).get("model") or []
    return models[0] if models else None


def _ids(item: Any) -> set[int]:
    if item is None:
        return set()
    if isinstance(item, Channel):
        return {a.id for a in item.get() if a.id is not None}
    if isinstance(item, Artifact):
        return {item.id} if item.id is not None else set()
    if isinstance(item, (list, tuple, set)):
        return set().union(*(_ids(i) for i in item)) if item else set()
    raise TypeError(f"exclude must be a channel, an artifact or a list of them, "
                    f"got {type(item).__name__}")
