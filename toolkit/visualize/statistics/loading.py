"""Reading statistics for the view: from a DataFrame (through TFDV), a proto, a
``FeatureStats.pb`` path, an artifact folder, an ExampleStatistics artifact or a channel;
and labelling the datasets to show side by side."""
from __future__ import annotations

import os
import sys
from typing import Any, Mapping

from toolkit import storage
from toolkit.artifacts import STATS_FILE, files_by_split, read_statistics
from toolkit.errors import ToolkitError
from toolkit.visualize.reading import splits_with, toolkit_artifact
from toolkit.visualize.statistics.model import Dataset, DatasetList


def _stats_from_folder(folder: str) -> dict[str, DatasetList]:
    direct = storage.join(folder, STATS_FILE)
    if storage.is_file(direct):
        return {"": read_statistics(direct)}
    found = files_by_split(folder, STATS_FILE)
    if not found:
        raise ToolkitError(f"no statistics in {folder!r}: expected Split-<name>/FeatureStats.pb "
                           "files (an ExampleStatistics artifact folder) or FeatureStats.pb")
    return {split: read_statistics(path) for split, path in found.items()}


def _is_dataframe(obj: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def artifact_statistics(source: Any) -> dict[str, DatasetList]:
    """Statistics per split of an ExampleStatistics artifact (the toolkit's, TFX's or any
    object with its ``uri``), read by ``ExampleStatistics.load``."""
    artifact = toolkit_artifact(source, "ExampleStatistics")
    splits = splits_with(artifact, STATS_FILE)
    if not splits:
        return _stats_from_folder(artifact.uri)
    return {split: artifact.load(split) for split in splits}


def _is_statistics_artifact(source: Any) -> bool:
    type_name = getattr(source, "type_name", None) or getattr(source, "TYPE_NAME", None)
    return hasattr(source, "uri") and (hasattr(source, "stats_path")
                                       or type_name == "ExampleStatistics")


def load_statistics(source: Any) -> dict[str, DatasetList]:
    """Statistics keyed by split (``""`` for a single unnamed set) from any supported source.

    ``source`` may be a pandas DataFrame (statistics computed with TFDV), a
    ``DatasetFeatureStatisticsList`` or ``DatasetFeatureStatistics`` proto, a path
    to a ``FeatureStats.pb`` file or to an artifact folder with
    ``Split-*/FeatureStats.pb`` files, an ExampleStatistics artifact, or a channel
    holding one.
    """
    if isinstance(source, DatasetList):
        return {"": source}
    if isinstance(source, Dataset):
        wrapped = DatasetList()
        wrapped.datasets.add().CopyFrom(source)
        return {"": wrapped}
    if _is_dataframe(source):
        import tensorflow_data_validation as tfdv

        # A filtered frame's index would otherwise appear as a feature.
        frame = source.reset_index(drop=True)
        return {"": tfdv.generate_statistics_from_dataframe(frame)}
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if storage.is_dir(path):
            return _stats_from_folder(path)
        if storage.is_file(path):
            return {"": read_statistics(path)}
        raise ToolkitError(f"statistics path {path!r} does not exist")
    if _is_statistics_artifact(source):
        return artifact_statistics(source)
    if hasattr(source, "get") and callable(source.get) and not isinstance(source, Mapping):
        artifacts = list(source.get())
        if len(artifacts) != 1:
            raise ToolkitError(f"expected one ExampleStatistics artifact in the channel, "
                               f"found {len(artifacts)}")
        return load_statistics(artifacts[0])
    raise ToolkitError(
        f"cannot show statistics of a {type(source).__name__}: pass a pandas DataFrame, "
        "a DatasetFeatureStatisticsList, a FeatureStats.pb path, an artifact folder or an "
        "ExampleStatistics artifact")


def labelled_datasets(stats_by_name: Mapping[str, Any]) -> list[tuple[str, Dataset]]:
    """Flatten {name: list-or-dataset} into labelled datasets, in order."""
    out: list[tuple[str, Dataset]] = []
    for name, value in stats_by_name.items():
        if isinstance(value, Dataset):
            out.append((name or value.name or "data", value))
            continue
        datasets = list(value.datasets)
        for ds in datasets:
            if len(datasets) == 1:
                label = name or ds.name or "data"
            else:
                label = f"{name}/{ds.name}" if name else (ds.name or "data")
            out.append((label, ds))
    seen: dict[str, int] = {}
    unique = []
    for label, ds in out:
        seen[label] = seen.get(label, 0) + 1
        unique.append((label if seen[label] == 1 else f"{label} ({seen[label]})", ds))
    return unique
