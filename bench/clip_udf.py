"""CLIP image embeddings: the `image_embeddings` stage on Spark vs a bare batched torch loop vs Spark's
`predict_batch_udf`, on the same model and the same images, in one run.

    python bench/clip_udf.py --images 1000                           # CPU, a small open_clip ViT
    python bench/clip_udf.py --images 20000 --architecture ViT-B-32 --device cuda --cores 8 --batch-size 512

The model is random-initialised (no download) and saved as an open_clip hf-hub-style directory,
loaded by every side through `open_clip.create_model_and_transforms`. The images are the demo
shards' photos, screenshots and figures re-encoded as distinct JPEGs and stored as an `images`
Delta table (ours, predict_batch_udf) and a local Parquet file (bare loop). All sides decode with
Pillow and preprocess with open_clip's transform; outputs are checked equal. Spark's Python workers
are warmed first (torch imported); each case runs --repeat times and its fastest run counts.

- bare loop: one process, decode + preprocess then forward in batches of --batch-size.
- ours: the `ImageEmbeddings` stage from the Delta `images` table written to a Delta table, local[--cores]
  (also `steps.annotate` once end to end: the same plus its anti-join and commit bookkeeping).
- predict_batch_udf: the same model in `pyspark.ml.functions.predict_batch_udf`, decoding in its
  predict function, written to the noop sink.
On CUDA it also times the bare fp16 forward alone (preprocessed tensors already on the GPU: the
ceiling) and samples GPU utilisation with nvidia-smi during each case.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import report, run, timed  # noqa: E402
from image_signals import unique_jpegs  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

SMALL = {"embed_dim": 256, "vision_cfg": {"image_size": 224, "layers": 4, "width": 256, "patch_size": 32},
         "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 2}}


def save_model(path: str, architecture: str | None) -> str:
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    config = open_clip.get_model_config(architecture) if architecture else SMALL
    model = open_clip.CLIP(**config)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": config, "preprocess_cfg": {}}, f)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(path, "open_clip_model.safetensors"))
    return path


class GpuSampler:
    """Mean GPU utilisation (nvidia-smi, every 0.2 s) while a case runs; None without a GPU."""

    def __init__(self, enabled: bool):
        self.enabled, self.samples, self._stop = enabled, [], threading.Event()

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(0.2):
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.split()[0]))

    def __exit__(self, *exc):
        self._stop.set()

    @property
    def mean(self):
        return sum(self.samples) / len(self.samples) if self.samples else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--architecture", default=None, help="an open_clip built-in config (ViT-B-32); default small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cores", type=int, default=2, help="Spark local[N]")
    parser.add_argument("--decode-threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the fastest counts")
    args = parser.parse_args()

    import open_clip
    import torch
    from PIL import Image
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import types as T

    from mmcurate import steps
    from mmcurate.annotate.embeddings import ImageEmbeddings
    from mmcurate.images import sha256_hex
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.models.runner import torch_dtype
    from mmcurate.spark import get_spark

    cuda = args.device.startswith("cuda")
    work = Path(tempfile.mkdtemp(prefix="mmcurate-bench-clip-"))
    try:
        model_dir = save_model(str(work / "model"), args.architecture)
        blobs = unique_jpegs(args.images)
        ids = [sha256_hex(b) for b in blobs]
        local = str(work / "images.parquet")
        pq.write_table(pa.table({"image_id": ids, "binary_content": blobs}), local)
        stage = ImageEmbeddings(model_path=model_dir, device=args.device, precision=args.precision,
                                batch_size=args.batch_size, decode_threads=args.decode_threads)
        spark = get_spark(master=f"local[{args.cores}]", conf=stage.spark_conf)
        lake = Lakehouse.open(spark, str(work / "lake"), backend="embedded")
        lake.write(spark.read.parquet(local).repartition(args.cores * 2), "images")
        spark.range(4).count()
        dtype = torch_dtype(args.precision, args.device)

        model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + model_dir)
        model = model.to(args.device, dtype).eval()
        bare_out: dict[str, np.ndarray] = {}

        def embed(pixels):
            with torch.inference_mode():
                features = model.encode_image(pixels.to(args.device, dtype))
                return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

        def bare():
            table = pq.read_table(local)
            keys, data = table.column("image_id").to_pylist(), table.column("binary_content").to_pylist()
            for start in range(0, len(data), args.batch_size):
                pixels = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB"))
                                      for b in data[start:start + args.batch_size]])
                for key, vector in zip(keys[start:start + args.batch_size], embed(pixels)):
                    bare_out[key] = vector

        def ours():
            # the annotate step's own write, without its bookkeeping, so repeats can overwrite
            written = lake.write(stage(lake.read("images")), "bench_embeddings", mode="overwrite")
            assert written.rows_added == args.images, written

        def ours_annotate():
            [done] = steps.annotate(lake, [stage])
            assert done.rows_added == args.images, done

        def make_predict():
            import open_clip as oc
            import torch as th

            m, _, pre = oc.create_model_and_transforms("local-dir:" + model_dir)
            m = m.to(args.device, dtype).eval()

            def predict(data):
                pixels = th.stack([pre(Image.open(io.BytesIO(bytes(b))).convert("RGB")) for b in data])
                with th.inference_mode():
                    features = m.encode_image(pixels.to(args.device, dtype))
                    return th.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

            return predict

        baseline_udf = predict_batch_udf(make_predict, return_type=T.ArrayType(T.FloatType()),
                                         batch_size=args.batch_size)

        def spark_baseline():
            lake.read("images").select(baseline_udf("binary_content").alias("e")).write.format("noop").mode(
                "overwrite").save()

        times, utilisation = {}, {}
        cases = {"bare batched torch loop": bare, "image_embeddings stage, Delta in/out": ours,
                 "predict_batch_udf": spark_baseline}
        if cuda:
            pixels = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB"))
                                  for b in blobs[:args.batch_size]]).to(args.device, dtype)
            embed(pixels)  # warm up kernels

            def forward_only():
                for _ in range(0, args.images, args.batch_size):
                    embed(pixels)
                torch.cuda.synchronize()

            cases = {"bare fp16 forward only (ceiling)": forward_only, **cases}
        # warm: Python workers started with torch and open_clip imported, as in any job past its first stage
        spark.range(args.cores * 2, numPartitions=args.cores * 2).mapInPandas(
            lambda frames: (f.assign(ok=[len(open_clip.list_models())] * len(f)) for f in frames),
            "id long, ok long").collect()
        annotate_seconds = timed(ours_annotate)  # once, end to end (bookkeeping and commit info included)
        for _ in range(args.repeat):
            for name, fn in cases.items():
                with GpuSampler(cuda) as sampler:
                    seconds = timed(fn)
                if seconds < times.get(name, float("inf")):
                    times[name], utilisation[name] = seconds, sampler.mean

        stored = {r.image_id: np.array(r.embedding) for r in lake.read("bench_embeddings").collect()}
        worst = max(float(np.abs(stored[k] - bare_out[k]).max()) for k in ids)
        assert worst < (1e-4 if not cuda else 2e-2), f"ours and the bare loop disagree by {worst}"
        name = args.architecture or "small ViT (4 layers, width 256, 224 px)"
        print(f"{args.images} distinct JPEGs, open_clip {name}, {args.device} {str(dtype).split('.')[-1]}, "
              f"batch {args.batch_size}, local[{args.cores}], max |ours - bare| = {worst:.1e}")
        baseline = "bare batched torch loop"
        ratio = report("image embeddings, seconds (lower is better)", times, baseline, goal=1.15)
        for case, seconds in times.items():
            gpu = f", GPU {utilisation[case]:.0f}% busy" if utilisation[case] is not None else ""
            print(f"  {case:<40} {args.images / seconds:9.0f} images/s{gpu}")
        print(f"  steps.annotate end to end (first run): {annotate_seconds:.2f} s")
        print(f"\nRESULT clip_stage_vs_bare={times['image_embeddings stage, Delta in/out'] / times[baseline]:.2f} "
              f"clip_stage_vs_predict_batch_udf="
              f"{times['image_embeddings stage, Delta in/out'] / times['predict_batch_udf']:.2f}")
        if cuda:
            ceiling = times["bare fp16 forward only (ceiling)"]
            print(f"RESULT clip_stage_fraction_of_forward_ceiling="
                  f"{ceiling / times['image_embeddings stage, Delta in/out']:.2f} (goal >= 0.70)")
        del ratio
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main)
