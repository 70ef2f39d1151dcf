"""Cards folders on disk: :func:`write_cards` writes the released layout (``card_imgs/<split>_<i>.png``,
``templates/<code>.png``, ``<split>_cards.json``) atomically; :func:`find_cards_folder` reads and checks a
folder's layout (released, or PNG grids directly in the folder), :func:`load_templates` a ``templates/``
folder, and :func:`validate_cards_folder` validates every grid of a folder in batches."""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vsmlab.core.checks import check_int
from vsmlab.core.outputs import OutputKind, owned_folder, prepare_output, staged_folder
from vsmlab.data.cards.generate import CARD_CODES, N_CARDS, SIZES, _check_common, assemble_grids, choose_cards, lab_faces
from vsmlab.data.cards.validate import THRESHOLD, CardTemplates, lab_templates, validate_cards
from vsmlab.data.pngs import encode_png, iter_png_batches, list_pngs, png_header, read_png

__all__ = ["CARDS_FOLDER", "write_cards", "load_templates", "CardsFolder", "find_cards_folder", "CardsFolderReport",
           "validate_cards_folder"]


def _split_files(split: str) -> re.Pattern:
    return re.compile(rf"(card_imgs/{split}_\d+\.png|{split}_cards\.json)")


def _owned_cards(path: Path) -> str | None:
    return owned_folder(path, (r"card_imgs/", r"card_imgs/(train|test)_\d+\.png", r"templates/",
                               rf"templates/({'|'.join(CARD_CODES)})\.png", r"(train|test)_cards\.json"),
                        (r"(train|test)_cards\.json", r"templates/", r"card_imgs/(train|test)_\d+\.png"),
                        "a Cards folder: card_imgs/, templates/, <split>_cards.json")


#: what :func:`write_cards` writes: ``card_imgs/<split>_<i>.png``, ``templates/<code>.png``, ``<split>_cards.json``
CARDS_FOLDER = OutputKind("a Cards folder", folder=True, owned=_owned_cards)


def write_cards(
    out: str | os.PathLike,
    n: int,
    seed: int = 0,
    rgb: bool = False,
    split: str = "train",
    size: int = 128,
    split_seed: int = 0,
    chunk: int = 1024,
    force: bool = False,
) -> Path:
    """Write ``n`` grids as ``out/card_imgs/<split>_<i>.png``, the faces as ``out/templates/<code>.png``
    and ``out/<split>_cards.json`` ({id: [TL, TR, BL, BR codes]}).

    Atomic: everything is written into a temporary folder beside ``out`` and published in one step
    (:func:`vsmlab.core.outputs.staged_folder`; the other split's files are carried over), so a reader or a
    killed run never leaves a partial ``out``; the next run removes the stale temporary folder.

    Refuses (FileExistsError) a ``split`` already in ``out`` (its ``<split>_cards.json`` or its images)
    unless ``force`` (which replaces that split only), a ``templates/`` folder holding other faces while the
    other split uses them, and any ``out`` that is not a Cards folder vsmlab wrote (a file, a folder holding
    other files, the working folder); two splits (same size and mode) share one folder. Returns the JSON path.
    """
    _check_common(n, size)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    check_int("chunk", chunk, low=1)
    out, _ = prepare_output(out, CARDS_FOLDER, force=True, flag="out")  # vsmlab's own folder, or new
    other = "test" if split == "train" else "train"
    index_path = out / f"{split}_cards.json"
    mine, theirs = _split_files(split), _split_files(other)
    if out.is_dir():
        present = [p for p in out.rglob("*") if mine.fullmatch(p.relative_to(out).as_posix())]
        if present and not force:
            if index_path.exists():
                raise FileExistsError(f"{index_path}: already exists; pass --force (force=True) to replace the {split} "
                                      "split, or choose another --out (nothing was overwritten)")
            raise FileExistsError(f"{out / 'card_imgs'}: holds {len(present)} {split} images but no {index_path.name} "
                                  f"(an interrupted write?); pass --force (force=True) to replace the {split} split, "
                                  "or choose another --out (nothing was overwritten)")
        keeps_other = any(theirs.fullmatch(p.relative_to(out).as_posix()) for p in out.rglob("*"))
    else:
        keeps_other = False
    cards = choose_cards(n, seed, split, split_seed)  # argument errors before anything is written
    faces = lab_faces(size // 2, rgb)
    face_bytes = {CARD_CODES[i]: encode_png(faces[i]) for i in range(N_CARDS)}
    tdir = out / "templates"
    if keeps_other:
        for code, data in face_bytes.items():
            path = tdir / f"{code}.png"
            if path.exists() and path.read_bytes() != data:
                raise FileExistsError(f"{path}: holds another face (other size or mode) used by the {other} split; "
                                      "choose another --out")
    width = max(6, len(str(n - 1)))
    with staged_folder(out, keep=lambda rel: bool(theirs.fullmatch(rel))) as stage:
        (stage / "card_imgs").mkdir(exist_ok=True)
        (stage / "templates").mkdir(exist_ok=True)
        for code, data in face_bytes.items():
            (stage / "templates" / f"{code}.png").write_bytes(data)
        labels: dict[str, list[str]] = {}
        for start in range(0, n, chunk):
            grids = assemble_grids(cards[start : start + chunk], faces)
            for j, grid in enumerate(grids):
                ident = f"{split}_{start + j:0{width}d}"
                with open(stage / "card_imgs" / f"{ident}.png", "wb") as fh:
                    fh.write(encode_png(grid))
                labels[ident] = [CARD_CODES[c] for c in cards[start + j].tolist()]
        (stage / index_path.name).write_bytes(json.dumps(labels, indent=0, sort_keys=True).encode())
    return index_path

def load_templates(folder: str | os.PathLike, face: int | None = None) -> CardTemplates:
    """Read a ``templates/`` folder: exactly 40 square 8-bit (L or RGB) PNG faces of one size (names = file
    stems); ``face``: the side they must have (half the grid side). Each refusal is a ValueError naming the
    folder or file and what is allowed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: expected a folder of 40 template PNGs, not found")
    paths = list_pngs(folder)
    if len(paths) != N_CARDS:
        raise ValueError(f"{folder}: expected {N_CARDS} template PNGs (one face per card), found {len(paths)}")
    size, mode = png_header(paths[0])
    want = f"{face}x{face}" if face is not None else "square"
    if size[0] != size[1] or (face is not None and size[0] != face):
        raise ValueError(f"{paths[0]}: template is {size[0]}x{size[1]}, expected a {want} face"
                         + (f" (half the {2 * face}-px grid)" if face is not None else ""))
    for p in paths[1:]:
        other, _ = png_header(p)
        if other != size:
            raise ValueError(f"{p}: template is {other[0]}x{other[1]}, expected {size[0]}x{size[1]} like {paths[0].name}")
    channels = 1 if mode == "L" else 3
    faces = np.stack([read_png(p, channels, size) for p in paths])
    return CardTemplates(tuple(p.stem for p in paths), torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous(), str(folder))


@dataclass(frozen=True)
class CardsFolder:
    """A Cards folder on disk: ``images`` (PNG grids, all ``size`` x ``size``, ``channels`` 1 or 3),
    ``templates_dir`` (its ``templates/`` or None) and ``labels`` ({image stem: codes} from any
    ``*_cards.json`` the lab wrote, or None)."""

    root: Path
    images: list[Path]
    size: int
    channels: int
    templates_dir: Path | None
    labels: dict[str, list[str]] | None


_LAB_IMAGE = re.compile(r"(train|test)_\d+")


def find_cards_folder(path: str | os.PathLike) -> CardsFolder:
    """Read a Cards folder's layout: PNG grids in ``path/card_imgs/`` (the released layout) or directly in
    ``path``, optional ``path/templates/``. Checked from the headers before anything is read, each refusal a
    ValueError naming the file and what is allowed: every image an 8-bit L or RGB PNG, square, 128x128 or
    64x64 (the Cards sizes), all the size of the first. Where the lab's ``<split>_cards.json`` labels exist,
    every labelled image must exist and every lab-named image (``<split>_<i>.png``) must be labelled; lab-named
    images beside ``templates/`` with no labels at all are refused as an interrupted write."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root}: expected a Cards folder (card_imgs/*.png or *.png, optional templates/), not found")
    img_dir = root / "card_imgs" if (root / "card_imgs").is_dir() else root
    images = list_pngs(img_dir)
    if not images:
        raise ValueError(
            f"{root}: expected PNG grids in {root / 'card_imgs'}/ (the released layout) or directly in {root}/, found none"
        )
    size, mode = png_header(images[0])
    if size[0] != size[1] or size[0] not in SIZES:
        raise ValueError(f"{images[0]}: image is {size[0]}x{size[1]}, expected a square Cards grid of 128x128 or 64x64")
    for p in images[1:]:
        other, _ = png_header(p)
        if other != size:
            raise ValueError(f"{p}: image is {other[0]}x{other[1]}, expected {size[0]}x{size[1]} like {images[0].name}")
    labels: dict[str, list[str]] | None = None
    indexes = sorted(root.glob("*_cards.json"))
    for index in indexes:
        try:
            table = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{index}: expected a JSON object {{id: [4 card codes]}} ({exc})") from exc
        if not isinstance(table, dict):
            raise ValueError(f"{index}: expected a JSON object {{id: [4 card codes]}} mapping each image id to its cards")
        for ident in sorted(table):
            if not (img_dir / f"{ident}.png").is_file():
                raise ValueError(f"{index}: names {ident!r} but {img_dir / (ident + '.png')} is missing "
                                 "(expected one PNG per label)")
        labels = {**(labels or {}), **table}
    lab_named = [p for p in images if _LAB_IMAGE.fullmatch(p.stem)]
    if labels is not None:
        for p in lab_named:
            if p.stem not in labels:
                raise ValueError(f"{p}: no entry in {', '.join(i.name for i in indexes)} (a stale image of an earlier or "
                                 "interrupted write?); expected one label per lab-named image")
    elif lab_named and (root / "templates").is_dir():
        raise ValueError(f"{root}: card_imgs/ holds {len(lab_named)} lab-named images ({lab_named[0].name}, ...) but no "
                         "<split>_cards.json: an interrupted `vsmlab data cards`; write it again (with --force), or "
                         "validate a folder of sample PNGs")
    tdir = root / "templates"
    return CardsFolder(root, images, size[0], 1 if mode == "L" else 3, tdir if tdir.is_dir() else None, labels)


@dataclass(frozen=True)
class CardsFolderReport:
    """Validation of a folder: per file ``hallucinated`` and ``categories``, the ``templates`` source,
    ``labels_checked`` / ``labels_agree`` (images with a lab label, and those read exactly), ``warnings``."""

    files: list[str]
    hallucinated: torch.Tensor
    categories: list[tuple[str, ...]]
    worst_score: torch.Tensor
    templates: str
    labels_checked: int
    labels_agree: int
    warnings: list[str]


def validate_cards_folder(
    path: str | os.PathLike, templates: str | os.PathLike | None = None, threshold: float = THRESHOLD, batch_size: int = 256
) -> CardsFolderReport:
    """Validate every grid of a Cards folder against ``templates`` (a folder of 40 faces), else the
    folder's own ``templates/``, else the lab's faces (with a warning: they match only the lab's art)."""
    folder = find_cards_folder(path)
    notes: list[str] = []
    if templates is not None:
        tpl = load_templates(templates, folder.size // 2)
    elif folder.templates_dir is not None:
        tpl = load_templates(folder.templates_dir, folder.size // 2)
    else:
        tpl = lab_templates(max(8, folder.size // 2), folder.channels == 3)
        notes.append(
            f"{folder.root}: no templates/ folder; matching against the lab's own faces, which will not match "
            "another artwork (give the released templates/ with --templates)"
        )
        warnings.warn(notes[-1], stacklevel=2)
    flagged, categories, worst, checked, agree = [], [], [], 0, 0
    for paths, batch in iter_png_batches(folder.images, folder.channels, (folder.size, folder.size), batch_size):
        verdict = validate_cards(batch, tpl, threshold)
        flagged.append(verdict.hallucinated)
        worst.append(verdict.worst_score)
        categories.extend(verdict.categories)
        if folder.labels:
            for i, p in enumerate(paths):
                if p.stem in folder.labels:
                    checked += 1
                    agree += int(verdict.codes(i) == list(folder.labels[p.stem]))
    return CardsFolderReport(
        [str(p) for p in folder.images], torch.cat(flagged), categories, torch.cat(worst), tpl.source, checked, agree, notes
    )
