"""TFX's published tutorial notebooks, run headless against the toolkit.

The notebooks in ``tests/fixtures/tfx_tutorials/`` are TFX's files byte for byte. The
changes that let them run here are made by :func:`prepare`, at run time, and are only
these (``tests/fixtures/tfx_tutorials/README.md`` lists them with their reasons):

1. ``from tfx import v1 as tfx`` becomes ``from toolkit import v1 as tfx``, and the
   interactive notebooks' ``InteractiveContext`` import and ``%load_ext`` line become the
   toolkit's (:data:`IMPORT_LINES`; not inside a ``%%writefile`` cell: the module files a
   notebook writes stay as published);
2. a cell that runs ``pip install`` becomes a comment;
3. a URL of TFX's data becomes the local copy of that file (:data:`LOCAL_COPIES`);
4. the non-public "just for showcase" cells are replaced by the cells of
   ``<name>.replaced.py`` (``# %% cell <cell id>`` then the new source), which use
   ``toolkit.latest_artifacts`` and ``toolkit.show``.

Anything else that still imports ``tfx`` outside a ``%%writefile`` cell stops
:func:`prepare`, so a new tutorial cannot pass by running TFX internals. Adding a tutorial
is one line in :data:`TUTORIALS` (plus its ``.replaced.py`` when it has showcase cells).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from datapaths import REPO, TAXI_CSV

FOLDER = Path(REPO) / "tests" / "fixtures" / "tfx_tutorials"
PENGUIN_CSV = Path(REPO) / "tests" / "fixtures" / "tfx_penguin" / "data" / "penguins_processed.csv"
PENGUIN_SIZE_CSV = FOLDER / "data" / "penguins_size.csv"
PENGUIN_RAW_SCHEMA = FOLDER / "data" / "schema.pbtxt"

#: TFX's data URLs -> the local copies (with their provenance beside them)
LOCAL_COPIES = {
    "https://raw.githubusercontent.com/tensorflow/tfx/master/tfx/examples/penguin/data/"
    "labelled/penguins_processed.csv": PENGUIN_CSV,
    "https://storage.googleapis.com/download.tensorflow.org/data/palmer_penguins/"
    "penguins_size.csv": PENGUIN_SIZE_CSV,
    "https://raw.githubusercontent.com/tensorflow/tfx/master/tfx/examples/penguin/schema/"
    "raw/schema.pbtxt": PENGUIN_RAW_SCHEMA,
    "https://raw.githubusercontent.com/tensorflow/tfx/master/tfx/examples/"
    "chicago_taxi_pipeline/data/simple/data.csv": Path(TAXI_CSV),
}

#: the tutorials that run, one line each: name -> pipeline name(s) the notebook uses
TUTORIALS = {
    "penguin_simple": ["penguin-simple"],
    "penguin_tfdv": ["penguin-tfdv-schema", "penguin-tfdv"],
    "penguin_tfma": ["penguin-tfma"],
    "penguin_tft": ["penguin-transform"],
    "components_keras": [],  # InteractiveContext: a temporary pipeline root and store
}

TFX_IMPORT = "from tfx import v1 as tfx"
TOOLKIT_IMPORT = "from toolkit import v1 as tfx"
#: TFX's interactive-notebook import lines -> the toolkit's (docs/coming-from-tfx.md)
IMPORT_LINES = {
    TFX_IMPORT: TOOLKIT_IMPORT,
    "from tfx.orchestration.experimental.interactive.interactive_context import "
    "InteractiveContext": "from toolkit import InteractiveContext",
    "%load_ext tfx.orchestration.experimental.interactive.notebook_extensions.skip":
        "%load_ext toolkit",
}
PIP_NOTE = ("# pip install: not needed here; the toolkit's environment provides the "
            "libraries (tests/fixtures/tfx_tutorials/README.md)")


def published(name: str) -> dict:
    with open(FOLDER / f"{name}.ipynb", encoding="utf-8") as handle:
        return json.load(handle)


def replaced_cells(name: str) -> dict[str, str]:
    """Cell id -> new source, from ``<name>.replaced.py`` (empty when there is none)."""
    path = FOLDER / f"{name}.replaced.py"
    if not path.exists():
        return {}
    cells: dict[str, str] = {}
    for chunk in re.split(r"^# %% cell ", path.read_text(encoding="utf-8"), flags=re.M)[1:]:
        cell_id, _, source = chunk.partition("\n")
        cells[cell_id.strip()] = source.rstrip("\n")
    return cells


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def is_module_file(cell: dict) -> bool:
    return source(cell).lstrip().startswith("%%writefile")


def prepare(name: str) -> tuple[dict, list[tuple[str, str]]]:
    """The notebook with the allowed changes made, and the changes as (cell id, rule)."""
    notebook = published(name)
    replacements = replaced_cells(name)
    changes: list[tuple[str, str]] = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code" or is_module_file(cell):
            continue
        cell_id = cell.get("metadata", {}).get("id") or cell.get("id", "")
        text = source(cell)
        if cell_id in replacements:
            text = replacements.pop(cell_id)
            changes.append((cell_id, "showcase cell replaced"))
        elif "pip install" in text:
            text = PIP_NOTE
            changes.append((cell_id, "pip install"))
        else:
            if any(line in text for line in IMPORT_LINES):
                for line, replacement in IMPORT_LINES.items():
                    text = text.replace(line, replacement)
                changes.append((cell_id, "import line"))
            for url, path in LOCAL_COPIES.items():
                if url in text:
                    text = text.replace(url, path.as_uri())
                    changes.append((cell_id, "data download"))
        if re.search(r"^\s*(from tfx[. ]|import tfx)", text, flags=re.M):
            raise AssertionError(f"{name}: cell {cell_id} still imports tfx:\n{text}")
        cell["source"] = text
        cell["outputs"] = []
        cell["execution_count"] = None
    if replacements:
        raise AssertionError(f"{name}: no cells with the ids {sorted(replacements)}")
    return notebook, changes


def run(name: str, workdir: Path, timeout: int = 1200):
    """Run the prepared tutorial headless (papermill) in ``workdir``, which becomes its
    working folder and temporary folder. Returns the executed notebook; a failing cell
    raises papermill's error, the partly executed notebook being written first."""
    import nbformat
    import papermill

    notebook, _ = prepare(name)
    workdir.mkdir(parents=True, exist_ok=True)
    prepared = workdir / f"{name}.prepared.ipynb"
    prepared.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    executed = workdir / f"{name}.executed.ipynb"
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    saved = {key: os.environ.get(key) for key in ("TMPDIR",)}
    os.environ["TMPDIR"] = str(tmp)
    try:
        papermill.execute_notebook(str(prepared), str(executed), cwd=str(workdir),
                                   kernel_name="python3", progress_bar=False,
                                   execution_timeout=timeout)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nbformat.read(str(executed), as_version=4)
