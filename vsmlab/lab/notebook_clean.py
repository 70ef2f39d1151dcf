"""Executed notebooks as stable text: re-running the same notebook gives the same ``.ipynb``, so re-runs diff cleanly.

:func:`clean_notebook` (what the figure runner, :mod:`vsmlab.lab.runner`, applies to every executed notebook
before publishing it) removes volatile metadata (timings, papermill bookkeeping), replaces the random
ipywidgets model ids by ids derived from the widget tree (:func:`stable_widget_ids`) and gives every cell an
id derived from its type and source (:func:`stable_cell_ids`). All three edit the nbformat notebook in place.
"""

from __future__ import annotations

__all__ = ["VOLATILE_NB_KEYS", "VOLATILE_CELL_KEYS", "clean_notebook", "stable_widget_ids", "stable_cell_ids"]

VOLATILE_NB_KEYS = ("papermill",)
VOLATILE_CELL_KEYS = ("papermill", "execution", "collapsed", "scrolled")


def clean_notebook(nb) -> None:
    """Remove volatile metadata (timings, papermill bookkeeping), fix widget and cell ids: re-runs diff cleanly."""
    for key in VOLATILE_NB_KEYS:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
    stable_widget_ids(nb)
    stable_cell_ids(nb)


def stable_widget_ids(nb) -> None:
    """Replace the random ipywidgets model ids (saved widget state, widget-view outputs) by ids that depend
    only on the widget tree: numbered depth-first from the displayed widgets (cell order, then attribute
    names), so re-running the same notebook gives the same text. Widgets never displayed keep their ids."""
    import hashlib

    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    if not state:
        return

    def refs(value):
        if isinstance(value, str) and value.startswith("IPY_MODEL_"):
            yield value[len("IPY_MODEL_"):]
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from refs(v)
        elif isinstance(value, dict):
            for k in sorted(value):
                yield from refs(value[k])

    order: list[str] = []

    def visit(model_id: str) -> None:
        if model_id in state and model_id not in order:
            order.append(model_id)
            for ref in refs(state[model_id].get("state", {})):
                visit(ref)

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if isinstance(view, dict) and "model_id" in view:
                visit(view["model_id"])
    ids = {old: hashlib.sha256(f"vsmlab-widget-{i}".encode()).hexdigest()[:32] for i, old in enumerate(order)}

    def swap(value):
        if isinstance(value, dict):
            return type(value)((ids.get(k, k), swap(v)) for k, v in value.items())
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, str):
            if value in ids:
                return ids[value]
            if value.startswith("IPY_MODEL_") and value[len("IPY_MODEL_"):] in ids:
                return "IPY_MODEL_" + ids[value[len("IPY_MODEL_"):]]
        return value

    nb.metadata["widgets"] = swap(nb.metadata["widgets"])
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = swap(cell.outputs)


def stable_cell_ids(nb) -> None:
    """Give every cell an id derived from its type and source (a repeat gets a -2, -3 ... suffix), so a
    re-run keeps the ids and an edit changes only the edited cell's id (nbformat 4.5 ids)."""
    import hashlib

    seen: dict[str, int] = {}
    for cell in nb.cells:
        base = hashlib.sha256(f"{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:12]
        seen[base] = seen.get(base, 0) + 1
        cell["id"] = base if seen[base] == 1 else f"{base}-{seen[base]}"
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):
        nb.nbformat, nb.nbformat_minor = 4, 5
