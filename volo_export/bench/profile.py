"""Where an ONNX graph's time goes: each runtime's own profiler, kernel time by op type.

`profile_onnx`: ONNX Runtime's profiler, by op type. `profile_openvino`: OpenVINO's per-node counters
(PERF_COUNT), by layer type and kernel (e.g. "FullyConnected brgemm_avx512_i8"), which also says what
OpenVINO turned the graph into."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from volo_export.bench.machine import usable_cpus
from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings
from volo_export.timing import make_input


@dataclass
class OpTime:
    """Kernel time of one op type per run (ms), its share, how many nodes ran, and GFLOP/s where known."""

    op_type: str
    ms_per_run: float
    share: float
    nodes: int
    gflops: float | None = None


def profile_onnx(path: Path, batch_size: int, threads: int = 0, runs: int = 3,
                 optimization: str = "all") -> list[OpTime]:
    """Run `path` `runs` times at `batch_size` under ONNX Runtime's profiler and average kernel time
    by op type, largest first (the first run, with its allocations, is included). MatMul, FusedMatMul
    and Gemm get GFLOP/s from their shapes (K = last axis of the first input)."""
    with tempfile.TemporaryDirectory(prefix="volo-profile-") as tmp:
        runner = OnnxRuntimeRunner(Path(path), SessionSettings(
            providers=CPU_ONLY, threads=threads or usable_cpus(), optimization=optimization, spinning=False,
            profile_prefix=str(Path(tmp) / "ort")))
        size = runner.info.preprocessing.size
        x = make_input((3, size, size), batch_size)
        for _ in range(runs):
            runner(x)
        events = json.loads(runner.end_profiling().read_text())
    time_us, nodes, flop = {}, {}, {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op = e["args"]["op_name"]
        time_us[op] = time_us.get(op, 0) + e["dur"]
        nodes[op] = nodes.get(op, 0) + 1
        if op in ("MatMul", "FusedMatMul", "Gemm"):
            a = list(e["args"]["input_type_shape"][0].values())[0]
            out = list(e["args"]["output_type_shape"][0].values())[0]
            flop[op] = flop.get(op, 0) + 2 * math.prod(out) * a[-1]
    total = sum(time_us.values()) or 1
    rows = [OpTime(op, us / 1e3 / runs, us / total, nodes[op] // runs,
                   flop[op] / (us / 1e6) / 1e9 if op in flop and us else None)
            for op, us in time_us.items()]
    return sorted(rows, key=lambda r: -r.ms_per_run)


def profile_openvino(path: Path, batch_size: int, threads: int = 0, runs: int = 3,
                     inference_precision: str | None = None) -> list[OpTime]:
    """Run `path` in OpenVINO `runs` times at `batch_size` with per-node counters and average the time
    by (layer type, kernel), largest first (after one untimed warm-up call)."""
    from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings

    runner = OpenVinoRunner(Path(path), OpenVinoSettings(threads=threads or usable_cpus(), perf_count=True,
                                                         inference_precision=inference_precision, cache=False))
    size = runner.info.preprocessing.size
    x = make_input((3, size, size), batch_size)
    runner(x)
    time_ms, nodes = {}, {}
    for _ in range(runs):
        runner(x)
        for layer, kernel, ms in runner.profile():
            key = f"{layer} {kernel}"
            time_ms[key] = time_ms.get(key, 0.0) + ms
            nodes[key] = nodes.get(key, 0) + 1
    total = sum(time_ms.values()) or 1
    rows = [OpTime(key, ms / runs, ms / total, nodes[key] // runs) for key, ms in time_ms.items()]
    return sorted(rows, key=lambda r: -r.ms_per_run)
