"""Generated MINT-1T / NeMo-layout WebDataset input, and its curated output read back for comparison: shared by
the benchmarks so each system is fed, and checked on, the same bytes."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Append one in-memory member to an open tar."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def noise_jpeg(seed: int, height: int = 700, width: int = 700, quality: int = 95) -> bytes:
    """A JPEG of uniform RGB noise: sharp (high Laplacian variance), no QR code, incompressible."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_samples(folder: Path, n_samples: int, per_shard: int = 5000, bases: Optional[Sequence[bytes]] = None,
                  max_images: int = 2, word_counts: Sequence[int] = (60,)) -> int:
    """n_samples MINT-style documents in shards of per_shard samples; returns the number of images.

    Sample n is a first paragraph, 1 + n % max_images images, then a closing paragraph; its paragraphs hold
    word_counts[n % len(word_counts)] random words (so the image/word ratio varies when several are given).
    Image i of sample n is bases[(n + i) % len(bases)] (default: 16 small noise JPEGs) followed by the sample
    key: decoders ignore trailing bytes, so pixels and scores are the base's, but every image's bytes (and
    sha256) are distinct and nothing is deduplicated away. PNG bases are stored as `.png`, others as `.jpg`."""
    bases = bases or [noise_jpeg(seed, 96, 128, 80) for seed in range(16)]
    rng = np.random.default_rng(0)
    images = 0
    for shard in range(0, n_samples, per_shard):
        with tarfile.open(folder / f"gen-{shard // per_shard:06d}.tar", "w") as tar:
            for n in range(shard, min(shard + per_shard, n_samples)):
                key = f"s{n:07d}"
                words = " ".join(f"w{int(x)}" for x in rng.integers(0, 5000, word_counts[n % len(word_counts)]))
                texts, members = [f"{key} first paragraph {words}"], [None]
                for i in range(1 + n % max_images):
                    base = bases[(n + i) % len(bases)]
                    ext = "png" if base.startswith(b"\x89PNG") else "jpg"
                    member = f"{key}.{len(texts)}.{ext}"
                    add_member(tar, member, base + f"{key}-{i}".encode())
                    texts.append(None)
                    members.append(member)
                    images += 1
                texts.append(f"closing paragraph of {key} {words[:200]}")
                members.append(None)
                add_member(tar, f"{key}.json", json.dumps({"sample_id": key, "texts": texts, "images": members}).encode())
    return images


def read_output(out_dir: Path) -> dict[str, tuple]:
    """{sample_id: ((modality, text | sha256 | "missing:<name>" | None), ...)} from every tar under out_dir: a
    sample's content in position order, images by the digest of their bytes."""
    samples: dict[str, tuple] = {}
    for path in sorted(out_dir.glob("*.tar")):
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
        for name, data in members.items():
            if not name.endswith(".json"):
                continue
            record = json.loads(data)
            content = []
            for text, image in zip(record["texts"], record["images"]):
                if text is not None:
                    content.append(("text", text))
                if image is not None:
                    blob = members.get(image)
                    content.append(("image", hashlib.sha256(blob).hexdigest() if blob is not None else f"missing:{image}"))
                if text is None and image is None:
                    content.append(("gap", None))
            sid = record.get("sample_id", name[:-5])
            if sid in samples:
                raise AssertionError(f"sample {sid!r} written twice under {out_dir}")
            samples[sid] = tuple(content)
    return samples


def compare(expected: dict, actual: dict, limit: int = 5) -> dict:
    """Sample-by-sample difference of two read_output results, with up to `limit` differing examples."""
    only_expected = sorted(set(expected) - set(actual))
    only_actual = sorted(set(actual) - set(expected))
    differing = sorted(s for s in set(expected) & set(actual) if expected[s] != actual[s])
    return {
        "expected_samples": len(expected), "actual_samples": len(actual), "only_expected": only_expected,
        "only_actual": only_actual, "differing": differing,
        "identical": not (only_expected or only_actual or differing),
        "examples": [(s, _short(expected[s]), _short(actual[s])) for s in differing[:limit]],
    }


def _short(content: tuple) -> list:
    return [(m, (v[:40] + "...") if isinstance(v, str) and len(v) > 43 else v) for m, v in content]
