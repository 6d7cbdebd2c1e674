"""The honest limit a benchmark row is measured against: the best GEMM of every installed library per data
type (FP32, BF16, INT8), and the theoretical FMA peak of this CPU (`bench.isa`).

"% of ORT's GEMM" (the interleaved ONNX Runtime FP32 MatMul, `bench.machine.gemm_runner`) says how well
a graph uses ONNX Runtime; it is not the machine's limit. Here every library that is installed times
an n x n x n product (2 n^3 operations, best of REPEATS blocks of at least MIN_TIME_S, standalone,
the benchmark's thread count):

    fp32  ONNX Runtime MatMul, numpy @ (its BLAS), torch.matmul, OpenVINO MatMul (f32 hint)
    bf16  torch.matmul on bfloat16 tensors, OpenVINO MatMul with the bf16 hint (CPUs with bf16 only)
    int8  ONNX Runtime Q/DQ MatMul (uint8 activations x int8 weights -> MatMulIntegerToFloat),
          torch._int_mm, OpenVINO Q/DQ MatMul (same graph, its int8 brgemm)

A row's "% best GEMM" divides by the best library of its data type (FP16 graphs compute in FP32 on
CPU, INT8 rows by the INT8 best) and "% FMA peak" by the theoretical peak of that type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from volo_export.bench.isa import TheoreticalPeak, theoretical_peak
from volo_export.bench.machine import GemmPeak, _best_rate, _matmul_model, gemm_operands, onnxruntime_gemm
from volo_export.errors import first_line
from volo_export.hardware import cpu_isa

# The data type a backend's arithmetic runs in, for choosing its yardstick.
COMPUTE_DTYPE = {"fp32": "fp32", "fp16": "fp32", "bf16": "bf16", "int8": "int8"}


@dataclass
class GemmRate:
    """One library's n^3 product: G(FL)OP/s (None with `error`)."""

    library: str
    dtype: str
    gops: float | None
    how: str
    error: str | None = None


@dataclass
class Limits:
    """Measured library GEMMs and the theoretical peak, per data type."""

    n: int
    threads: int
    gemms: list[GemmRate]
    theoretical: TheoreticalPeak
    notes: list[str] = field(default_factory=list)

    def best(self, dtype: str) -> GemmRate | None:
        rates = [g for g in self.gemms if g.dtype == dtype and g.gops]
        return max(rates, key=lambda g: g.gops) if rates else None

    def to_dict(self) -> dict:
        return {"n": self.n, "threads": self.threads, "gemms": [asdict(g) for g in self.gemms],
                "best": {d: asdict(b) for d in ("fp32", "bf16", "int8") if (b := self.best(d))},
                "theoretical": self.theoretical.to_dict(), "notes": self.notes}


REPEATS, MIN_TIME_S = 3, 0.3  # each library's rate: best of REPEATS blocks of at least MIN_TIME_S


def measure_limits(peak: GemmPeak, n: int, threads: int, spinning: bool = False) -> Limits:
    """Every installed library's GEMM per data type (ONNX Runtime and numpy FP32 from `peak`, measured
    by `machine.gemm_peak` already) and the theoretical peak of `threads` cores."""
    a, b = gemm_operands(n)
    ops = 2.0 * n**3
    isa = cpu_isa()
    gemms = [GemmRate("ONNX Runtime", "fp32", peak.onnxruntime_gflops, "MatMul node"),
             GemmRate("numpy", "fp32", peak.numpy_gflops, "a @ b, numpy's BLAS")]

    def add(library: str, dtype: str, how: str, make: Callable[[], Callable[[], object]]) -> None:
        try:
            fn = make()
            gemms.append(GemmRate(library, dtype, _best_rate(fn, ops, REPEATS, MIN_TIME_S), how))
        except ImportError:
            return  # library not installed: no row
        except Exception as e:  # a library that fails here is reported, the benchmark goes on
            gemms.append(GemmRate(library, dtype, None, how, first_line(e, typed=True)[:160]))

    add("ONNX Runtime", "int8", "Q/DQ MatMul u8 x s8 -> MatMulIntegerToFloat",
        lambda: onnxruntime_gemm(_int8_matmul_model(b), a, threads, spinning))
    add("torch", "fp32", "torch.matmul", lambda: _torch(a, b, threads, "float32"))
    if isa.bf16:
        add("torch", "bf16", "torch.matmul on bfloat16", lambda: _torch(a, b, threads, "bfloat16"))
    add("torch", "int8", "torch._int_mm", lambda: _torch(a, b, threads, "int8"))
    add("OpenVINO", "fp32", "MatMul, f32 hint", lambda: _openvino(_matmul_model(b), a, threads, "f32"))
    if isa.bf16:
        add("OpenVINO", "bf16", "MatMul, bf16 hint", lambda: _openvino(_matmul_model(b), a, threads, "bf16"))
    add("OpenVINO", "int8", "Q/DQ MatMul u8 x s8, int8 brgemm",
        lambda: _openvino(_int8_matmul_model(b), a, threads, "f32"))
    return Limits(n, threads, gemms, theoretical_peak(threads, isa))


def _openvino(model: bytes, a: np.ndarray, threads: int, hint: str):
    from volo_export.errors import RuntimeUnavailable
    from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings

    try:
        runner = OpenVinoRunner(model, OpenVinoSettings(threads=threads, inference_precision=hint, cache=False))
    except RuntimeUnavailable as e:  # not installed: no row
        raise ImportError(str(e)) from None
    return lambda: runner(a)


def _torch(a: np.ndarray, b: np.ndarray, threads: int, dtype: str):
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    if dtype == "int8":
        x = torch.from_numpy(np.clip(np.round(a * 30), -127, 127).astype(np.int8))
        y = torch.from_numpy(np.clip(np.round(b * 30), -127, 127).astype(np.int8).T.copy()).T
        op = torch._int_mm
    else:
        x, y = torch.from_numpy(a).to(getattr(torch, dtype)), torch.from_numpy(b).to(getattr(torch, dtype))
        op = torch.matmul

    def run():
        with torch.inference_mode():
            return op(x, y)

    return run


def _int8_matmul_model(b: np.ndarray) -> bytes:
    """Y = DQ(Q(X, uint8, zero point 128)) @ DQ(int8 B per column): what an INT8 linear layer is."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = b.shape[0]
    scale = (np.abs(b).max(0) / 127).astype(np.float32)
    inits = [numpy_helper.from_array(np.array(4.0 / 127, np.float32), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(np.clip(np.round(b / scale), -127, 127).astype(np.int8), "wq"),
             numpy_helper.from_array(scale, "ws"), numpy_helper.from_array(np.zeros(n, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["Y"])]
    graph = helper.make_graph(nodes, "int8_gemm", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()
