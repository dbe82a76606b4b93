"""Ablation rows: names, the config overrides they stand for, and the paper's numbers for them.

A row name is ``d<depth>_c<crop level>`` with optional suffixes ``_nograph`` (``use_graph=False``,
Tables 5 and 8), ``_mirror`` (``mirror_inputs=True``, Table 6) and ``_literal`` / ``_residual``
(``llcd_reading``; without one the run config's reading applies): ``d6_c3`` is the paper's full
model, ``d1_c1_nograph`` its base model of Table 8. ``pooled_c<crop level>`` is the plain baseline
(``model.arch = pooled``: the backbone on the whole k*M input, global average pooling, a linear
head). Everything else (backbone, view size M, data, optimiser, epochs) is shared by all rows of
one ablation run.

Crop level follows the paper: the backbone view size M (``model.image_size``) stays fixed and the
input is ``k*M`` pixels, so level k sees the image at k times the resolution of level 1 (more
pixels, same content). On the synthetic dataset this means the scene is drawn at ``k*M`` pixels
(its geometry is relative to the image side, so every level shows the same objects).

Groups name the paper's tables, restricted to what this code can express (no 8-layer row: the
paper's Table 4/6 ``8x`` rows are ``d8_c1``/``d8_c1_mirror`` if wanted):

    table4  d1_c1 d2_c1 d4_c1 d6_c1                      decoder depth, crop level 1 (COCO)
    table5  d1_c1_nograph ... d6_c1_nograph              the same without the label graph (COCO)
    table6  d1_c1_mirror ... d6_c1_mirror                image and graph inputs swapped (COCO)
    table7  d1_c1 d1_c2 d1_c3 d1_c4                      crop levels, 1 decoder layer (VOC)
    table8  d6_c1_nograph d6_c1 d6_c3_nograph d6_c3      graph x Crop-Forwarding (COCO)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Row", "GROUPS", "PAPER", "parse_row", "expand_rows"]

_ROW = re.compile(
    r"^d(?P<depth>[1-9][0-9]*)_c(?P<crop>[1-9][0-9]*)"
    r"(?P<flags>(_nograph|_mirror|_literal|_residual)*)$"
)
_POOLED = re.compile(r"^pooled_c(?P<crop>[1-9][0-9]*)$")


@dataclass(frozen=True)
class Row:
    name: str
    depth: int  # LLCD layers (model.num_layers); 0 for the pooled baseline
    crop_level: int  # Crop-Forwarding level k (model.crop_level); input k*M px
    use_graph: bool = True
    mirror_inputs: bool = False
    reading: str | None = None  # model.llcd_reading; None = the run config's
    arch: str = "lcnet"  # lcnet | pooled

    def model_kwargs(self) -> dict:
        """The model settings this row sets (everything else is shared)."""
        if self.arch == "pooled":
            return {"arch": "pooled", "crop_level": self.crop_level}
        out = {
            "num_layers": self.depth,
            "crop_level": self.crop_level,
            "use_graph": self.use_graph,
            "mirror_inputs": self.mirror_inputs,
        }
        if self.reading is not None:
            out["llcd_reading"] = self.reading
        return out

    def overrides(self, view_size: int, dataset: str) -> dict:
        """Run-config overrides (dotted keys) for lcnet_fast.config.apply_overrides."""
        out = {"model.arch": self.arch}
        out.update({f"model.{key}": value for key, value in self.model_kwargs().items()})
        if dataset == "synthetic":
            # the scene is drawn at the model's input resolution k*M (validated by RunConfig)
            out["data.synthetic_image_size"] = self.crop_level * view_size
        return out


def parse_row(name: str) -> Row:
    pooled = _POOLED.match(name.strip())
    if pooled is not None:
        return Row(name.strip(), 0, int(pooled.group("crop")), use_graph=False, arch="pooled")
    match = _ROW.match(name.strip())
    if match is None:
        raise ValueError(
            f"unknown ablation row {name!r}: expected "
            "d<depth>_c<crop level>[_nograph][_mirror][_literal|_residual] (e.g. d2_c1, "
            f"d6_c1_nograph_residual), pooled_c<crop level> or a group ({', '.join(GROUPS)})"
        )
    flags = match.group("flags").split("_")[1:]
    if len(flags) != len(set(flags)):
        raise ValueError(f"ablation row {name!r} repeats a suffix")
    readings = [flag for flag in flags if flag in ("literal", "residual")]
    if len(readings) > 1:
        raise ValueError(f"ablation row {name!r} names both readings of eq. (1)")
    return Row(
        name=name.strip(),
        depth=int(match.group("depth")),
        crop_level=int(match.group("crop")),
        use_graph="nograph" not in flags,
        mirror_inputs="mirror" in flags,
        reading=readings[0] if readings else None,
    )


GROUPS: dict[str, list[str]] = {
    "table4": ["d1_c1", "d2_c1", "d4_c1", "d6_c1"],
    "table5": ["d1_c1_nograph", "d2_c1_nograph", "d4_c1_nograph", "d6_c1_nograph"],
    "table6": ["d1_c1_mirror", "d2_c1_mirror", "d4_c1_mirror", "d6_c1_mirror"],
    "table7": ["d1_c1", "d1_c2", "d1_c3", "d1_c4"],
    "table8": ["d6_c1_nograph", "d6_c1", "d6_c3_nograph", "d6_c3"],
}


def expand_rows(spec: str | list[str]) -> list[Row]:
    """'table4,d6_c3' -> rows in order; a row named twice (shared by two tables) runs once."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    rows: list[Row] = []
    seen: set[str] = set()
    for name in (n.strip() for n in names):
        if not name:
            continue
        for member in GROUPS.get(name, [name]):
            row = parse_row(member)
            if row.name not in seen:
                seen.add(row.name)
                rows.append(row)
    if not rows:
        raise ValueError("no ablation rows given")
    return rows


# The paper's numbers for the rows it reports: row -> [(table, dataset, mAP, F1, F1 top-3)].
# Tables 4-6 and 8 are MS-COCO 2014 at crop level 1 unless stated; Table 7 is Pascal VOC 2007.
PAPER: dict[str, list[tuple[str, str, float, float | None, float | None]]] = {
    "d1_c1": [("T4", "COCO", 89.1, 85.4, 81.0), ("T7", "VOC", 93.37, 90.5, 96.5)],
    "d2_c1": [("T4", "COCO", 89.5, 85.7, 81.2)],
    "d4_c1": [("T4", "COCO", 89.7, 85.9, 81.2)],
    "d6_c1": [("T4", "COCO", 89.8, 86.0, 81.4), ("T8", "COCO", 89.4, 85.3, None)],
    "d8_c1": [("T4", "COCO", 89.8, 85.9, 81.3)],
    "d1_c1_nograph": [("T5", "COCO", 85.3, 81.5, 80.6)],
    "d2_c1_nograph": [("T5", "COCO", 86.1, 81.9, 81.0)],
    "d4_c1_nograph": [("T5", "COCO", 86.7, 82.4, 81.7)],
    "d6_c1_nograph": [("T5", "COCO", 87.9, 83.9, 82.6), ("T8", "COCO", 86.13, 81.1, None)],
    "d1_c1_mirror": [("T6", "COCO", 37.5, 24.1, 17.4)],
    "d2_c1_mirror": [("T6", "COCO", 38.9, 23.8, 17.6)],
    "d4_c1_mirror": [("T6", "COCO", 39.0, 25.7, 24.3)],
    "d6_c1_mirror": [("T6", "COCO", 42.6, 27.4, 26.2)],
    "d8_c1_mirror": [("T6", "COCO", 37.8, 24.8, 18.3)],
    "d1_c2": [("T7", "VOC", 93.84, 90.9, 98.3)],
    "d1_c3": [("T7", "VOC", 94.04, 91.0, 98.5)],
    "d1_c4": [("T7", "VOC", 91.5, 88.6, 96.4)],
    "d6_c3_nograph": [("T8", "COCO", 87.42, 81.3, None)],
    "d6_c3": [("T8", "COCO", 90.2, 86.0, 81.9)],
}


def paper_text(row: str) -> str:
    """'T4 89.1 / T7 93.37' (the paper's mAP for this row), or '' when it reports none."""
    return " / ".join(f"{table} {m_ap:g}" for table, _, m_ap, _, _ in PAPER.get(row, []))
