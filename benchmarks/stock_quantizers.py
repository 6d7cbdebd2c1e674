"""volo-export's INT8 graphs vs ONNX Runtime's stock quantizers, timed interleaved on CPU.

    python benchmarks/stock_quantizers.py FP32.onnx CALIB_DIR OURS_CPU.onnx OURS_TRT.onnx [--threads 1]

Builds from FP32.onnx: `quantize_dynamic` (MatMul, Gemm; per channel), `quantize_static` in
QOperator and QDQ format (uint8 activations, int8 per-channel weights, MatMul/Gemm/Conv,
minmax on 64 images of CALIB_DIR); then times them with the two given volo-export INT8 files
(e.g. from benchmarks/precision_cpu.py --artifacts DIR) in one interleaved run
(volo_export.bench.measure), and prints speed-up and cosine vs FP32 on the timing input.
The table in docs/PRECISION.md came from this script.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import typer


def main(
    fp32: Annotated[Path, typer.Argument(help="FP32 ONNX written by volo-export.")],
    calib: Annotated[Path, typer.Argument(help="Calibration image folder.")],
    ours_cpu: Annotated[Path, typer.Argument(help="volo-export INT8 --target cpu.")],
    ours_trt: Annotated[Path, typer.Argument(help="volo-export INT8 --target tensorrt.")],
    threads: Annotated[int, typer.Option(help="Intra-op threads.")] = 1,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 8,
    iterations: Annotated[int, typer.Option(help="Timed rounds.")] = 6,
) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)
    from rich.console import Console
    from rich.table import Table

    from volo_export.timing import BenchSettings, make_input, measure
    from volo_export.export.metadata import read_info
    from volo_export.preprocess import find_images, preprocess_files
    from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

    prep = read_info(fp32).preprocessing
    data = preprocess_files(find_images(calib)[:64], prep).array

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([data[i:i + 8] for i in range(0, len(data), 8)])

        def get_next(self):
            return next(({"input": b} for b in self.batches), None)

    ops = ["MatMul", "Gemm", "Conv"]
    with tempfile.TemporaryDirectory() as tmp:
        files = {"fp32": fp32, "volo-export cpu": ours_cpu, "volo-export tensorrt": ours_trt}
        files["stock dynamic"] = Path(tmp) / "dyn.onnx"
        quantize_dynamic(fp32, files["stock dynamic"], op_types_to_quantize=["MatMul", "Gemm"], per_channel=True,
                         weight_type=QuantType.QInt8)
        for name, fmt in (("stock static QOperator", QuantFormat.QOperator), ("stock static QDQ", QuantFormat.QDQ)):
            files[name] = Path(tmp) / f"{fmt.name}.onnx"
            quantize_static(fp32, files[name], Reader(), quant_format=fmt, op_types_to_quantize=ops, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}})
        settings = SessionSettings(providers=CPU_ONLY, threads=threads, spinning=False)
        runners = {name: OnnxRuntimeRunner(Path(path), settings) for name, path in files.items()}
        shape = (3, prep.size, prep.size)
        results = {r.backend: r for r in measure(runners, shape, BenchSettings(batch_sizes=(batch,),
                                                                                  iterations=iterations))}
        x = make_input(shape, batch)
        outputs = {name: run(x) for name, run in runners.items()}
    ref = outputs["fp32"]
    table = Table(title=f"INT8 graphs vs FP32, batch {batch}, {threads} thread(s), interleaved")
    for col in ("graph", "p50 ms", "x fp32", "min cosine vs fp32"):
        table.add_column(col, justify="right")
    for name, out in outputs.items():
        cos = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
        r = results[name]
        table.add_row(name, f"{r.p50_ms:.1f}", f"{results['fp32'].p50_ms / r.p50_ms:.2f}", f"{cos.min():.5f}")
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
