"""What the C++ app buys a user: examples/cpp's volo_infer vs `volo-export predict --runtime openvino`, end to end
(decode + preprocess + inference) on the same images and model, both in OpenVINO on the CPU, interleaved.

    python benchmarks/cpp_vs_python.py --model volo_d1_224.onnx              # the shipped photos, batch 8
    python benchmarks/cpp_vs_python.py --model tiny.onnx --rounds 5 --report benchmarks/results/cpp_vs_python.json

Per round (the order of the two alternates), each side on every image:
- pipeline: images/s of decode + preprocess + inference with the model already loaded and compiled for the
  batch; C++ from `volo_infer --timing` (its own clock around those stages), Python in this process through
  the library calls `volo-export predict` makes (`preprocess_paths` + `run_in_batches` on the OpenVINO runner);
- process: images/s of one whole command (`volo_infer MODEL IMAGES --json` vs `volo-export predict IMAGES
  --runtime openvino --json`), start, model load/compile and output included (Python's runner loads the
  compiled model from OpenVINO's model cache after the first round; volo_infer compiles every time).
Both compile with the same OpenVINO settings (f32 hint, latency mode, one stream, every core) and the same
batch. volo_infer is built in Release (-O2) from examples/cpp into --build unless it is there already.
The CPU and its SIMD flags are printed and written to the report; on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "cpp"


def build_app(build: Path) -> Path:
    """volo_infer (Release, OpenVINO backend from the pip wheel) in `build`; built once."""
    import openvino.utils

    app = build / "volo_infer"
    if not app.exists():
        subprocess.run(["cmake", "-S", str(SOURCE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        f"-DOpenVINO_DIR={openvino.utils.get_cmake_path()}"], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 1), "--target", "volo_infer"],
                       check=True, capture_output=True)
    return app


def run_cpp(app: Path, model: Path, images: list[Path], batch: int) -> dict:
    start = time.perf_counter()
    out = subprocess.run([str(app), str(model), *map(str, images), "--json", "--timing", "--batch", str(batch)],
                         check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads(out.stdout)
    return {"pipeline": report["timing"]["images_per_s"], "process": len(images) / wall,
            "top1": [p["top"][0]["index"] for p in report["predictions"]],
            "decode_preprocess_s": report["timing"]["decode_preprocess_s"], "infer_s": report["timing"]["infer_s"]}


def run_python_pipeline(runner, info, images: list[Path], batch: int) -> dict:
    from volo_export.preprocess import preprocess_paths
    from volo_export.runtime.base import run_in_batches

    start = time.perf_counter()
    x = preprocess_paths(images, info.preprocessing)
    mid = time.perf_counter()
    logits = run_in_batches(runner, x, batch)
    end = time.perf_counter()
    return {"pipeline": len(images) / (end - start), "decode_preprocess_s": mid - start, "infer_s": end - mid,
            "top1": logits.argmax(1).tolist()}


def run_python_process(model: Path, images: list[Path], batch: int) -> dict:
    cli = Path(sys.executable).with_name("volo-export")
    start = time.perf_counter()
    out = subprocess.run([str(cli), "predict", *map(str, images), "--model", str(model), "--runtime", "openvino",
                          "--json", "--batch-size", str(batch)], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    return {"process": len(images) / wall, "top1": [p["top"][0]["index"] for p in json.loads(out.stdout)["predictions"]]}


def main(
    model: Annotated[Path, typer.Option(help="An ONNX written by volo-export (FP32, or INT8 --target openvino).")],
    images: Annotated[Optional[list[Path]], typer.Option(help="Image files (default: the shipped photos, as many "
                                                         "whole batches as they fill).")] = None,
    batch: Annotated[int, typer.Option(help="Images per inference, both sides.")] = 8,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds (C++ and Python alternate who goes first).")] = 3,
    build: Annotated[Path, typer.Option(help="Build folder for volo_infer.")] = Path(tempfile.gettempdir()) / "volo_infer_bench",
    report: Annotated[Optional[Path], typer.Option(help="Also write the results as JSON.")] = None,
) -> None:
    from volo_export.bench.machine import environment
    from volo_export.preprocess import sample_photos
    from volo_export.runtime import open_runner

    files = images or [p for p in sample_photos() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp")]
    files = files[:len(files) // batch * batch] or files  # whole batches: no extra compile for a last, smaller one
    app = build_app(build)
    runner = open_runner(model, runtime="openvino", batch=batch)
    info = runner.info
    env = environment(threads=0)
    print(f"CPU: {env['cpu']} ({env['isa']}; flags {' '.join(env['cpu_flags'])}), {env['usable_cpus']} usable cores; "
          f"{runner.describe()}; {len(files)} images, batch {batch}, model {model.name}")
    results: dict[str, list[dict]] = {"cpp": [], "python_pipeline": [], "python_process": []}
    for r in range(rounds):
        order = ["cpp", "python"] if r % 2 == 0 else ["python", "cpp"]
        for side in order:
            if side == "cpp":
                results["cpp"].append(run_cpp(app, model, files, batch))
            else:
                results["python_pipeline"].append(run_python_pipeline(runner, info, files, batch))
                results["python_process"].append(run_python_process(model, files, batch))
    agree = all(x["top1"] == results["python_pipeline"][0]["top1"]
                for x in results["cpp"] + results["python_pipeline"] + results["python_process"])

    def median(rows: list[dict], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    table = {
        "C++ volo_infer": {"pipeline": median(results["cpp"], "pipeline"), "process": median(results["cpp"], "process"),
                           "decode_preprocess_s": median(results["cpp"], "decode_preprocess_s"),
                           "infer_s": median(results["cpp"], "infer_s")},
        "Python volo-export predict": {"pipeline": median(results["python_pipeline"], "pipeline"),
                                       "process": median(results["python_process"], "process"),
                                       "decode_preprocess_s": median(results["python_pipeline"], "decode_preprocess_s"),
                                       "infer_s": median(results["python_pipeline"], "infer_s")},
    }
    print(f"\n{'':28} {'pipeline img/s':>15} {'process img/s':>14} {'decode+prep s':>14} {'inference s':>12}")
    for name, row in table.items():
        print(f"{name:28} {row['pipeline']:15.1f} {row['process']:14.1f} {row['decode_preprocess_s']:14.3f} "
              f"{row['infer_s']:12.3f}")
    cpp, py = table["C++ volo_infer"], table["Python volo-export predict"]
    print(f"C++ / Python: pipeline {cpp['pipeline'] / py['pipeline']:.2f}x, process {cpp['process'] / py['process']:.2f}x"
          f" (medians of {rounds} interleaved rounds); top-1 equal on every image in every run: {agree}")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({"model": str(model), "model_name": info.model, "precision": info.precision,
                                      "images": [str(p) for p in files], "batch": batch, "rounds": rounds,
                                      "runtime": runner.describe(), "environment": env, "medians": table,
                                      "runs": results, "top1_agree": agree}, indent=2) + "\n")
        print(f"wrote {report}")


if __name__ == "__main__":
    typer.run(main)
