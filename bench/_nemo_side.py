"""The NeMo Curator half of bench/vs_nemo.py: runs inside NeMo's interpreter (not ours).

    /tmp/nemo-venv/bin/python bench/_nemo_side.py IN_DIR OUT_DIR --min-ratio 0.001 --max-ratio 0.1

Pipeline: InterleavedWebdatasetReader(materialize_on_read=True, sample_id_field="sample_id")
-> InterleavedBlurFilterStage(100.0) -> InterleavedQRCodeFilterStage(0.05)
-> InterleavedImageToTextRatioFilterStage(min, max) -> InterleavedWebdatasetWriterStage, on
RayDataExecutor with a local Ray of --num-cpus CPUs started beforehand (so its start-up is timed
apart: the executor's own ray.init(ignore_reinit_error=True) then reuses it). Prints one line
`NEMO_RESULT {json}` with import, ray-init and pipeline seconds.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time

_T0 = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("in_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--min-ratio", type=float, required=True)
    parser.add_argument("--max-ratio", type=float, required=True)
    parser.add_argument("--blur", type=float, default=100.0)
    parser.add_argument("--qr", type=float, default=0.05)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--executor", choices=("ray_data", "xenna"), default="ray_data")
    args = parser.parse_args()

    import ray

    from nemo_curator.pipeline import Pipeline
    from nemo_curator.stages.interleaved.filter import (
        InterleavedBlurFilterStage,
        InterleavedImageToTextRatioFilterStage,
        InterleavedQRCodeFilterStage,
    )
    from nemo_curator.stages.interleaved.io.reader import InterleavedWebdatasetReader
    from nemo_curator.stages.interleaved.io.writers.webdataset import InterleavedWebdatasetWriterStage

    imported = time.perf_counter()

    started = time.perf_counter()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, ignore_reinit_error=True)
    ray_init = time.perf_counter() - started

    shards = sorted(glob.glob(os.path.join(args.in_dir, "*.tar")))
    pipeline = Pipeline(name="vs_nemo", description="blur -> qrcode -> image/text ratio")
    pipeline.add_stage(InterleavedWebdatasetReader(file_paths=shards, materialize_on_read=True,
                                                   sample_id_field="sample_id"))
    pipeline.add_stage(InterleavedBlurFilterStage(score_threshold=args.blur))
    pipeline.add_stage(InterleavedQRCodeFilterStage(score_threshold=args.qr))
    pipeline.add_stage(InterleavedImageToTextRatioFilterStage(min_ratio=args.min_ratio, max_ratio=args.max_ratio))
    pipeline.add_stage(InterleavedWebdatasetWriterStage(path=args.out_dir, mode="overwrite"))

    if args.executor == "ray_data":
        from nemo_curator.backends.ray_data import RayDataExecutor

        executor = RayDataExecutor()
    else:
        from nemo_curator.backends.xenna import XennaExecutor

        executor = XennaExecutor()

    started = time.perf_counter()
    results = pipeline.run(executor)
    run = time.perf_counter() - started
    outputs = sorted(glob.glob(os.path.join(args.out_dir, "*.tar")))
    print("NEMO_RESULT " + json.dumps({
        "import_s": imported - _T0, "ray_init_s": ray_init, "pipeline_s": run,
        "executor": args.executor, "output_tasks": len(results or []), "output_tars": len(outputs),
    }), flush=True)


if __name__ == "__main__":
    main()
