"""How many tokens an image or a text costs a model: the fixed-grid and native-resolution (NaFlex) image
schemes, and text tokens from a stored tokenizer count or a characters-per-token estimate.

>>> ImageTokens(scheme="fixed", tokens_per_tile=256, tile_size=448, max_tiles=6, thumbnail=True).count(1000, 500)
768
>>> ImageTokens(scheme="naflex", patch_size=16, max_patches=256).count(640, 480)
252
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

SCHEMES = ("fixed", "naflex")


@dataclass(frozen=True)
class ImageTokens:
    """Tokens per image under one scheme.

    fixed: `tokens_per_tile` per tile (729 for a 384 px SigLIP at patch 14). With `max_tiles` > 1 the
        image is cut into the grid InternVL's `dynamic_preprocess` picks (the closest aspect ratio
        among grids of `min_tiles`..`max_tiles` tiles of `tile_size` px), plus one thumbnail tile
        when `thumbnail` and the grid has more than one tile.
    naflex: native resolution as SigLIP 2's NaFlex resizes it: the largest scale whose grid of
        `patch_size` patches (each side rounded up) holds at most `max_patches`; tokens are the
        patches / `merge`**2 (a 2x2 spatial merge, as Qwen2-VL's, gives merge=2).
    `extra_tokens` per image (begin/end markers) are added in both schemes.
    """

    scheme: str = "fixed"
    tokens_per_tile: int = 729
    tile_size: int = 448
    min_tiles: int = 1
    max_tiles: int = 1
    thumbnail: bool = False
    patch_size: int = 16
    max_patches: int = 256
    merge: int = 1
    extra_tokens: int = 0

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"image token scheme must be one of {SCHEMES}, got {self.scheme!r}")
        positive = ("tokens_per_tile", "tile_size", "min_tiles", "max_tiles", "patch_size", "max_patches", "merge")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"image tokens: {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.min_tiles > self.max_tiles:
            raise ValueError(f"image tokens: min_tiles {self.min_tiles} > max_tiles {self.max_tiles}")
        if self.extra_tokens < 0:
            raise ValueError(f"image tokens: extra_tokens must be >= 0, got {self.extra_tokens}")

    def count(self, width: Optional[int], height: Optional[int]) -> Optional[int]:
        """Tokens for an image of width x height pixels; None when the size is unknown (URL-only, undecodable)."""
        if not width or not height or width < 1 or height < 1:
            return None
        return _count(self, int(width), int(height))

    def tiles(self, width: int, height: int) -> tuple[int, int]:
        """The (columns, rows) grid InternVL's dynamic_preprocess cuts an image into."""
        return _grid(self.min_tiles, self.max_tiles, self.tile_size, width, height)

    def column(self, width: Column, height: Column) -> Column:
        """`count` as a Spark column over width and height columns (a pandas UDF, cached per distinct size)."""
        scheme = self

        @F.pandas_udf("long")
        def image_tokens(widths: pd.Series, heights: pd.Series) -> pd.Series:
            return pd.Series([scheme.count(w, h) if pd.notna(w) and pd.notna(h) else None
                              for w, h in zip(widths, heights)], dtype="Int64")

        return image_tokens(width, height)


@lru_cache(maxsize=65536)
def _count(scheme: ImageTokens, width: int, height: int) -> int:
    if scheme.scheme == "fixed":
        columns, rows = scheme.tiles(width, height)
        tiles = columns * rows + (1 if scheme.thumbnail and columns * rows > 1 else 0)
        return tiles * scheme.tokens_per_tile + scheme.extra_tokens
    target_height, target_width = naflex_size(height, width, scheme.patch_size, scheme.max_patches)
    patches = (target_height // scheme.patch_size) * (target_width // scheme.patch_size)
    return patches // (scheme.merge * scheme.merge) + scheme.extra_tokens


@lru_cache(maxsize=256)
def _ratios(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    """InternVL's candidate grids, in its order: by tile count, ties in its set's iteration order."""
    candidates = {(i, j) for n in range(min_tiles, max_tiles + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                  if min_tiles <= i * j <= max_tiles}
    return tuple(sorted(candidates, key=lambda r: r[0] * r[1]))


def _grid(min_tiles: int, max_tiles: int, tile_size: int, width: int, height: int) -> tuple[int, int]:
    """InternVL's find_closest_aspect_ratio: the grid whose aspect ratio is closest to the image's; on a tie the
    later (larger) grid when the image has more than half its pixels."""
    aspect, area = width / height, width * height
    best, best_diff = (1, 1), float("inf")
    for ratio in _ratios(min_tiles, max_tiles):
        diff = abs(aspect - ratio[0] / ratio[1])
        if diff < best_diff:
            best, best_diff = ratio, diff
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * ratio[0] * ratio[1]:
            best = ratio
    return best


def naflex_size(height: int, width: int, patch_size: int, max_patches: int, eps: float = 1e-5) -> tuple[int, int]:
    """SigLIP 2's `get_image_size_for_max_num_patches`: the (height, width), multiples of patch_size, that the
    image is resized to; a binary search for the largest scale whose patch grid fits `max_patches`."""
    def scaled(scale: float, size: int) -> int:
        return int(max(patch_size, math.ceil(size * scale / patch_size) * patch_size))

    low, high = eps / 10, 100.0
    while high - low >= eps:
        scale = (low + high) / 2
        if (scaled(scale, height) / patch_size) * (scaled(scale, width) / patch_size) <= max_patches:
            low = scale
        else:
            high = scale
    return scaled(low, height), scaled(low, width)


@dataclass(frozen=True)
class TextTokens:
    """Tokens per text: the `n_tokens` a `text_tokens` table stored for the item (a real tokenizer's count), or
    ceil(characters / `chars_per_token`) when `table` is None or has no row for the item."""

    table: Optional[str] = None
    chars_per_token: float = 4.0

    def __post_init__(self):
        if not self.chars_per_token > 0:
            raise ValueError(f"text tokens: chars_per_token must be > 0, got {self.chars_per_token}")

    def estimate(self, text: Column) -> Column:
        """ceil(characters / chars_per_token) of a text column, as a long (0 for null)."""
        return F.coalesce(F.ceil(F.char_length(text) / F.lit(float(self.chars_per_token))), F.lit(0)).cast("long")
