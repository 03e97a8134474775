"""A grid of image tiles under column titles, for the docs' figures (scripts/follow_grid.py, memory_grid.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def save(out: Path, columns: tuple[str, ...], rows: list[list[Image.Image]], side: int = 160) -> None:
    head = 18
    grid = Image.new("RGB", (side * len(columns), head + side * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for j, title in enumerate(columns):
        draw.text((j * side + 6, 3), title, fill="black")
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            grid.paste(img.resize((side, side), Image.Resampling.LANCZOS), (j * side, head + i * side))
    grid.save(out, optimize=True)
    print(f"wrote {out} ({np.prod(grid.size) // 1000} K pixels)")
