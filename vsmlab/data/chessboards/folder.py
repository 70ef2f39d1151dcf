"""ChessImages folders on disk: :func:`write_chess` writes the released layout (``<split>_images/<id>.png``,
``<split>_fen.json``) atomically; :func:`find_chess_folder` reads and checks a folder's layout (released, or
PNG boards directly in the folder) and :func:`validate_chess_folder` validates every board in batches."""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vsmlab.core.outputs import OutputKind, owned_folder, prepare_output, staged_folder
from vsmlab.data.chessboards.generate import SIZES, _check_size, lab_tiles, placement_to_classes, random_positions, render_boards
from vsmlab.data.chessboards.validate import MAX_RMSE, lab_templates, templates_from_boards, validate_chess
from vsmlab.data.pngs import encode_png, iter_png_batches, list_pngs, png_header

__all__ = ["CHESS_FOLDER", "write_chess", "ChessFolder", "find_chess_folder", "ChessFolderReport",
           "validate_chess_folder"]


def _owned_chess(path: Path) -> str | None:
    return owned_folder(path, (r"(train|test)_images/", r"(train|test)_images/\d+\.png", r"(train|test)_fen\.json"),
                        (r"(train|test)_fen\.json", r"(train|test)_images/"),
                        "a ChessImages folder: <split>_images/, <split>_fen.json")


#: what :func:`write_chess` writes: ``<split>_images/<id>.png`` and ``<split>_fen.json``
CHESS_FOLDER = OutputKind("a ChessImages folder", folder=True, owned=_owned_chess)


def write_chess(
    out: str | os.PathLike, n: int, seed: int = 0, split: str = "train", size: int = 256, split_seed: int = 0,
    max_plies: int = 160, force: bool = False,
) -> Path:
    """Write ``n`` boards in the released layout: ``out/<split>_images/<id>.png`` and ``out/<split>_fen.json``
    ({id: full FEN}).

    Atomic: everything is written into a temporary folder beside ``out`` and published in one step
    (:func:`vsmlab.core.outputs.staged_folder`; the other split's files are carried over), so a killed run
    never leaves a partial ``out``; the next run removes the stale temporary folder. Refuses
    (FileExistsError) an existing ``<split>_fen.json`` or a non-empty ``<split>_images/`` unless ``force``
    (which replaces that split only), and any ``out`` that is not a ChessImages folder vsmlab wrote (a file,
    a folder holding other files, the working folder). Returns the JSON path."""
    _check_size(size)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    out, _ = prepare_output(out, CHESS_FOLDER, force=True, flag="out")  # vsmlab's own folder, or new
    index_path, img_dir = out / f"{split}_fen.json", out / f"{split}_images"
    if index_path.exists() and not force:
        raise FileExistsError(f"{index_path}: already exists; pass --force (force=True) to replace the {split} split, "
                              "or choose another --out (nothing was overwritten)")
    if img_dir.is_dir() and any(img_dir.iterdir()) and not force:
        raise FileExistsError(f"{img_dir}: not empty (no {index_path.name}: an interrupted write?); pass --force "
                              f"(force=True) to replace the {split} split, or choose another --out (nothing was overwritten)")
    fens = random_positions(n, seed, split, split_seed, max_plies)
    tiles = lab_tiles(size)
    width = max(6, len(str(n - 1)))
    other = "test" if split == "train" else "train"
    keep = re.compile(rf"({other}_images/\d+\.png|{other}_fen\.json)")
    with staged_folder(out, keep=lambda rel: bool(keep.fullmatch(rel))) as stage:
        (stage / img_dir.name).mkdir()
        index: dict[str, str] = {}
        for start in range(0, n, 512):
            chunk = fens[start : start + 512]
            boards = render_boards(np.stack([placement_to_classes(f) for f in chunk]), tiles)
            for j, (fen, board) in enumerate(zip(chunk, boards)):
                ident = f"{start + j:0{width}d}"
                with open(stage / img_dir.name / f"{ident}.png", "wb") as fh:
                    fh.write(encode_png(board))
                index[ident] = fen
        (stage / index_path.name).write_bytes(json.dumps(index, indent=0, sort_keys=True).encode())
    return index_path


@dataclass(frozen=True)
class ChessFolder:
    """A ChessImages folder: ``files`` (PNG boards, all ``size`` px), ``ids`` and ``fens`` (None for a
    plain folder of samples) and ``layout`` ("released": ``<split>_images/`` + ``<split>_fen.json``;
    "samples": PNGs directly in the folder)."""

    root: Path
    layout: str
    files: list[Path]
    ids: list[str]
    fens: list[str] | None
    size: int


def _load_fen_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        raise ValueError(f"{path}: expected a JSON object {{id: FEN}} ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{path}: expected a JSON object mapping each image id (file name without .png) to a FEN string")
    for ident, fen in data.items():
        try:
            placement_to_classes(fen)
        except ValueError as exc:
            raise ValueError(f"{path}: entry {ident!r}: {exc}") from exc
    return data


def find_chess_folder(path: str | os.PathLike, split: str | None = None) -> ChessFolder:
    """Read a ChessImages folder's layout and check it before anything is validated.

    Released layout: for each split present (or only ``split``), ``<split>_images/<id>.png`` and
    ``<split>_fen.json`` ({id: FEN}); a FEN naming a missing file, an image without a FEN, a split with
    only one of the two, boards not all 256x256 (or all 128x128) or not 8-bit L / RGB PNGs raise ValueError
    naming the file and what was expected. Otherwise PNG boards directly in ``path`` are read as samples (no FENs).
    """
    root = Path(path)
    if split not in (None, "train", "test"):
        raise ValueError(f"split: expected 'train', 'test' or None (both), got {split!r}")
    if not root.is_dir():
        raise ValueError(f"{root}: expected a ChessImages folder (train_images/ + train_fen.json, or PNG boards), not found")
    splits = [s for s in ("train", "test") if (root / f"{s}_images").is_dir() or (root / f"{s}_fen.json").is_file()]
    files: list[Path] = []
    ids: list[str] = []
    fens: list[str] | None = None
    if splits:
        layout, fens = "released", []
        chosen = [s for s in splits if split in (None, s)]
        if not chosen:
            raise ValueError(f"{root}: no {split}_images/ + {split}_fen.json here (found {', '.join(splits)})")
        for s in chosen:
            img_dir, index = root / f"{s}_images", root / f"{s}_fen.json"
            if not index.is_file():
                raise ValueError(f"{root}: found {s}_images/ but no {s}_fen.json; expected both ({s}_images/<id>.png and {s}_fen.json mapping <id> to a FEN)")
            if not img_dir.is_dir():
                raise ValueError(f"{root}: found {s}_fen.json but no {s}_images/; expected both ({s}_images/<id>.png and {s}_fen.json mapping <id> to a FEN)")
            table = _load_fen_json(index)
            for ident in sorted(table):
                png = img_dir / f"{ident}.png"
                if not png.is_file():
                    raise ValueError(f"{index}: names {ident!r} but {png} is missing (expected one PNG per FEN)")
            for png in list_pngs(img_dir):
                if png.stem not in table:
                    raise ValueError(f"{png}: no entry in {index} (expected one FEN per image)")
            for ident in sorted(table):
                files.append(img_dir / f"{ident}.png")
                ids.append(ident if len(chosen) == 1 else f"{s}/{ident}")
                fens.append(table[ident])
        if not files:
            raise ValueError(f"{root}: the FEN files list no images; expected <split>_fen.json entries with their PNGs")
    else:
        layout = "samples"
        files = list_pngs(root)
        ids = [p.stem for p in files]
        if not files:
            raise ValueError(
                f"{root}: expected the released layout (train_images/<id>.png + train_fen.json, and/or test_) "
                "or PNG boards directly in the folder; found neither"
            )
    size, _ = png_header(files[0])  # 8-bit L or RGB PNGs only (a 16-bit copy would read as all white)
    if size not in ((256, 256), (128, 128)):
        raise ValueError(f"{files[0]}: board is {size[0]}x{size[1]}, expected 256x256 (or 128x128)")
    for p in files[1:]:
        other, _ = png_header(p)
        if other != size:
            raise ValueError(f"{p}: board is {other[0]}x{other[1]}, expected {size[0]}x{size[1]} like {files[0].name}")
    return ChessFolder(root, layout, files, ids, fens, size[0])


@dataclass(frozen=True)
class ChessFolderReport:
    """Validation of a folder: per board ``hallucinated``, ``categories`` and ``released_hallucinated``;
    ``fen_checked`` / ``fen_exact`` (boards with a FEN, and those whose placement was read exactly), the
    ``templates`` source and ``warnings``."""

    files: list[str]
    hallucinated: torch.Tensor
    categories: list[tuple[str, ...]]
    released_hallucinated: torch.Tensor
    fen_checked: int
    fen_exact: int
    templates: str
    warnings: list[str]


def validate_chess_folder(
    path: str | os.PathLike,
    split: str | None = None,
    templates: str = "auto",
    released_rule: bool = False,
    max_rmse: float = MAX_RMSE,
    batch_size: int = 256,
) -> ChessFolderReport:
    """Validate every board of a ChessImages folder (:func:`find_chess_folder`).

    templates: "lab" (the lab's tiles), "own" (learned from up to 2,000 of the folder's own labelled boards:
    reads another artwork, needs FENs), "auto" (own where FENs exist, else lab). The lab's tiles match only
    the lab's art: a warning says so where they are used on a released folder.
    """
    if templates not in ("auto", "lab", "own"):
        raise ValueError(f"templates: expected 'auto', 'lab' or 'own', got {templates!r}")
    folder = find_chess_folder(path, split)
    notes: list[str] = []
    if templates == "own" and folder.fens is None:
        raise ValueError(f"{folder.root}: templates='own' needs the released layout's FEN files; found only PNG boards")
    use_own = templates == "own" or (templates == "auto" and folder.fens is not None)
    if use_own:
        k = min(len(folder.files), 2000)
        boards = torch.cat([b for _, b in iter_png_batches(folder.files[:k], 3, (folder.size, folder.size), batch_size)])
        tpl = templates_from_boards(boards, folder.fens[:k])
        if tpl.missing:
            notes.append(f"{folder.root}: no labelled example of {', '.join(tpl.missing)}; the lab's tiles stand in for them")
    else:
        if folder.size not in SIZES:  # pragma: no cover - find_chess_folder already refuses other sizes
            raise ValueError(f"{folder.root}: the lab renders 256 or 128 px boards, got {folder.size}")
        tpl = lab_templates(folder.size)
        if folder.layout == "released":
            notes.append(f"{folder.root}: reading with the lab's own piece tiles, which will not match another artwork")
    for note in notes:
        warnings.warn(note, stacklevel=2)
    flagged, released, categories, checked, exact = [], [], [], 0, 0
    start = 0
    for paths, batch in iter_png_batches(folder.files, 3, (folder.size, folder.size), batch_size):
        verdict = validate_chess(batch, tpl, released_rule, max_rmse)
        flagged.append(verdict.hallucinated)
        released.append(verdict.released_hallucinated)
        categories.extend(verdict.categories)
        if folder.fens is not None:
            for placement, fen in zip(verdict.placements, folder.fens[start : start + len(paths)]):
                checked += 1
                exact += int(placement == fen.strip().split(" ")[0])
        start += len(paths)
    return ChessFolderReport(
        [str(p) for p in folder.files], torch.cat(flagged), categories, torch.cat(released), checked, exact, tpl.source, notes
    )
