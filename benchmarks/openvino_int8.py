"""INT8 on the CPU at the hardware limit: ONNX Runtime vs OpenVINO, and what each step of the OpenVINO INT8 form
(`--target openvino`) bought, all in one interleaved run.

    python benchmarks/openvino_int8.py                                  # volo_d1_224, seeded random weights, batch 8
    python benchmarks/openvino_int8.py --batch 8,1 --iterations 10 --profile \\
        --report benchmarks/results/openvino_int8_volo_d1_224.json

1. Export the FP32 graph (the trunk on 3-D tokens, as `volo-export onnx` writes it) and, to price that
   change, the same model with the transformer trunk on 4-D (B, H, W, C) tensors as before.
2. Calibrate once on the photos that ship with the dependencies (as `volo-export bench` does) and build
   ONNX Runtime's best INT8 (`--target cpu`) and the OpenVINO form step by step, each on top of the last:
       trt          the tensorrt form: symmetric int8 Q/DQ on every weighted op
       +attn        the attention matmuls quantised (the outlook aggregation stays float)
       +u8-softmax  softmax outputs uint8 (zero point 0)
       +avgpool     outlook pooling as AveragePool (exact pass)
       +ln3d+nd     LayerNorm on 3-D views, Gemm as N-D MatMul (exact passes)
       +hoist       Q/DQ above Reshape/Transpose
       +heads       the fused qkv/kv projections split per part before the heads (exact pass)
                    = `--target openvino`, gated like `quantize`
       4-D trunk    `--target openvino` built from the 4-D-trunk export
3. Judge every graph against eager PyTorch on the held-out photos (min cosine).
4. Time them all interleaved (round-robin, rotating order), with ONNX Runtime FP32 (the baseline; and
   on the 4-D trunk: the 3-D export must not slow it) and OpenVINO FP32/BF16, and print ms,
   x ONNX Runtime FP32, x the previous step (wall and CPU time).
5. --profile: kernel time by op of ONNX Runtime FP32 / INT8 cpu and OpenVINO FP32 / INT8 openvino.

On a shared machine compare ratios from one run only; the CPU-time ratios are the ones other load
distorts least.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # eager/torch threads must not spin between calls


@contextlib.contextmanager
def trunk_on_4d(model):
    """The transformer stages on (B, H, W, C), as volo-export exported them before the 3-D-token trunk."""
    import torch

    def forward_tokens(self, x):
        x = self.patch_embed(x).permute(0, 2, 3, 1)
        x = self.network[1](self.network[0](x)) + self.pos_embed
        for stage in self.network[2:]:
            x = stage(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x.flatten(1, 2)], dim=1)
        for block in self.post_network:
            x = block(x)
        return self.norm(x)

    model.forward_tokens = forward_tokens.__get__(model)
    try:
        yield model
    finally:
        del model.forward_tokens


def openvino_steps(fp32, ranges: dict) -> dict:
    """The cumulative steps towards the OpenVINO INT8 form (module docstring), as ModelProtos."""
    import onnx

    from volo_export.passes.layernorm import layernorm_on_tokens
    from volo_export.passes.matmul import gemm_as_matmul
    from volo_export.passes.pooling import window_mean_as_avgpool
    from volo_export.precision import openvino
    from volo_export.precision.int8 import Selection, find_targets, quantize_qdq

    steps = {"trt": quantize_qdq(fp32, find_targets(fp32, Selection()), ranges)}
    attention = Selection(activation_matmuls=True)
    chosen = [t.node for t in openvino.select(fp32, find_targets(fp32, attention))]
    steps["+attn"] = quantize_qdq(fp32, openvino.targets_in(fp32, chosen, attention), ranges)
    steps["+u8-softmax"] = quantize_qdq(fp32, openvino.targets_in(fp32, chosen, attention), ranges,
                                        unsigned=openvino.softmax_outputs(fp32))
    pooled = onnx.ModelProto()
    pooled.CopyFrom(fp32)
    window_mean_as_avgpool(pooled)
    steps["+avgpool"] = quantize_qdq(pooled, openvino.targets_in(pooled, chosen, attention), ranges,
                                     unsigned=openvino.softmax_outputs(pooled))
    edited, aliases = onnx.ModelProto(), {}
    edited.CopyFrom(pooled)
    layernorm_on_tokens(edited)
    gemm_as_matmul(edited, aliases)
    aliased = {**ranges, **{new: ranges[old] for new, old in aliases.items() if old in ranges}}
    targets = openvino.targets_in(edited, chosen, attention)
    steps["+ln3d+nd"] = quantize_qdq(edited, targets, aliased, unsigned=openvino.softmax_outputs(edited))
    steps["+hoist"] = openvino.build(edited, targets, aliased)
    return steps  # + split_heads = openvino.prepare_graph: the gated `--target openvino` artifact


def main(
    model: Annotated[str, typer.Option(help="Registered variant.")] = "volo_d1_224",
    checkpoint: Annotated[Optional[Path], typer.Option(help="Weights (default: seeded random weights).")] = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "8",
    threads: Annotated[int, typer.Option(help="Threads for every runtime.")] = 2,
    iterations: Annotated[int, typer.Option(help="Timed rounds per batch size.")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed calls per graph and batch size.")] = 2,
    seed: Annotated[int, typer.Option(help="torch seed for random weights.")] = 0,
    profile: Annotated[bool, typer.Option(help="Also profile kernel time by op in both runtimes.")] = False,
    artifacts: Annotated[Optional[Path], typer.Option(help="Keep the ONNX files here.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write every number as JSON.")] = None,
) -> None:
    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from volo_export.bench.machine import environment
    from volo_export.io import write_json
    from volo_export.timing import BenchSettings, measure
    from volo_export.calibration import calibrate
    from volo_export.calibration.data import load_calibration_data
    from volo_export.calibration.samples import write_samples
    from volo_export.export.to_onnx import export_model, finalize, save_onnx
    from volo_export.gate import eager_reference, gate_inputs, plan_for
    from volo_export.gate.compare import compare_logits
    from volo_export.hardware import cpu_isa
    from volo_export.models.checkpoint import load_model
    from volo_export.precision.convert import PrecisionRequest, lower_precision, lowering_data
    from volo_export.precision.forms import qdq_calibration_tensors
    from volo_export.progress import StageLog
    from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings
    from volo_export.runtime.base import run_in_batches
    from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings

    console = Console(width=160)
    log = StageLog(console.log)
    sizes = tuple(int(b) for b in batch.split(","))
    torch.manual_seed(seed)
    loaded = load_model(model, checkpoint)
    reference = eager_reference(loaded.model)
    with tempfile.TemporaryDirectory(prefix="openvino-int8-") as tmp:
        work = Path(artifacts or tmp)
        work.mkdir(parents=True, exist_ok=True)
        log.stage("exporting FP32 (3-D token trunk) and the 4-D-trunk variant")
        fp32, info = export_model(loaded)
        with trunk_on_4d(loaded.model):
            fp32_4d, _ = export_model(loaded)
        calib_dir, val_dir = write_samples(model, work / "samples")
        files = {"fp32": work / "fp32.onnx", "fp32-4d": work / "fp32_4d.onnx"}
        save_onnx(fp32, files["fp32"])
        save_onnx(fp32_4d, files["fp32-4d"])

        cache = work / "calib.json"
        bf16 = cpu_isa().bf16  # else no BF16 row: OpenVINO would refuse the hint on this CPU
        for name, source, precision, target in (("ort-int8-cpu", fp32, "int8", "cpu"), ("bf16", fp32, "bf16", None),
                                                ("ov-int8 (+heads)", fp32, "int8", "openvino"),
                                                ("ov-int8 4-D trunk", fp32_4d, "int8", "openvino")):
            if precision == "bf16" and not bf16:
                continue
            int8 = precision == "int8"
            request = PrecisionRequest(precision=precision, target=target, calib_data=str(calib_dir) if int8 else None,
                                       calib_cache=(cache if source is fp32 else work / "calib_4d.json") if int8 else None)
            data = lowering_data(info.preprocessing, request, val_dir, log)
            lowered = lower_precision(source, info, reference, request, work / f"{name}.onnx", data, log)
            if not lowered.report.passed:
                raise SystemExit(f"{name} failed its gate: {lowered.report.failures[0]}")
            files[name] = work / f"{name.replace(' ', '_')}.onnx"
            save_onnx(lowered.model, files[name])

        log.stage("building the steps of the OpenVINO form from the same calibration")
        calib = load_calibration_data(str(calib_dir), info.preprocessing)
        tensors = qdq_calibration_tensors(fp32)
        ranges, _ = calibrate(fp32, tensors, calib, "minmax", info.preprocessing, cache, log)
        for step, proto in openvino_steps(fp32, ranges).items():  # +heads, the last step, is gated above
            files[f"ov-int8 {step}"] = work / f"ov_int8_{step.strip('+')}.onnx"
            stamped = dataclasses.replace(info, precision="int8", target="openvino")
            save_onnx(finalize(proto, stamped), files[f"ov-int8 {step}"])

        ort = lambda p: OnnxRuntimeRunner(p, SessionSettings(providers=CPU_ONLY, threads=threads, spinning=False))
        ov = lambda p, hint=None: OpenVinoRunner(p, OpenVinoSettings(threads=threads, inference_precision=hint,
                                                                      cache=False))
        order = ["ort-fp32", "ort-fp32 4-D trunk", "ort-int8-cpu", "ov-fp32", "ov-fp32 4-D trunk", "ov-bf16",
                 "ov-int8 trt", "ov-int8 +attn", "ov-int8 +u8-softmax", "ov-int8 +avgpool", "ov-int8 +ln3d+nd",
                 "ov-int8 +hoist", "ov-int8 (+heads)", "ov-int8 4-D trunk"]
        make = {"ort-fp32": lambda: ort(files["fp32"]), "ort-fp32 4-D trunk": lambda: ort(files["fp32-4d"]),
                "ort-int8-cpu": lambda: ort(files["ort-int8-cpu"]),
                "ov-fp32": lambda: ov(files["fp32"]), "ov-fp32 4-D trunk": lambda: ov(files["fp32-4d"]),
                "ov-bf16": lambda: ov(files["bf16"])}
        order = [name for name in order if bf16 or name != "ov-bf16"]
        runners = {name: (make[name]() if name in make else ov(files[name])) for name in order}
        log.stage("min cosine of every graph vs eager PyTorch on the held-out photos")
        held_out = gate_inputs(info.preprocessing, plan_for("int8", val_dir))[0]
        x = np.concatenate([s.array for s in held_out])
        expected = reference.predict(x)
        gates = {name: compare_logits(name, expected, run_in_batches(r, x, 8)).min_cosine
                 for name, r in runners.items()}
        log.stage(f"timing {len(runners)} graphs interleaved, batch {list(sizes)}, {threads} threads; "
                  f"load average {os.getloadavg()}")
        load_before = os.getloadavg()
        rows = measure(runners, (3, info.preprocessing.size, info.preprocessing.size),
                       BenchSettings(batch_sizes=sizes, warmup=warmup, iterations=iterations), log)
        load_after = os.getloadavg()
        env = environment(threads)
        console.print(f"CPU: {env['cpu']} ({env['isa']}; {' '.join(env['cpu_flags'])}), {threads} threads; "
                      f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after", highlight=False)
        for b in sizes:
            at = {r.backend: r for r in rows if r.batch_size == b}
            base = at["ort-fp32"]
            table = Table(title=f"{model}, batch {b}, {threads} threads, {iterations} interleaved rounds")
            for col in ("graph", "p50 ms", "min ms", "cpu ms", "x ORT FP32", "x (cpu)", "x previous", "min cosine"):
                table.add_column(col, justify="left" if col == "graph" else "right")
            previous = None
            for name in order:
                r = at[name]
                if r.status != "ok":
                    table.add_row(name, r.status, r.reason or "")
                    continue
                step = f"{previous.p50_ms / r.p50_ms:.2f}" if previous is not None and name.startswith("ov-int8 ") \
                    and previous.backend.startswith("ov-int8") else ""
                table.add_row(name, f"{r.p50_ms:.1f}", f"{r.min_ms:.1f}", f"{r.cpu_p50_ms:.1f}",
                              f"{base.p50_ms / r.p50_ms:.2f}", f"{base.cpu_p50_ms / r.cpu_p50_ms:.2f}", step,
                              f"{gates[name]:.5f}")
                previous = r
            console.print(table)
        profiles = {}
        if profile:
            from volo_export.bench.profile import profile_onnx, profile_openvino

            b = max(sizes)
            log.stage(f"profiling at batch {b}")
            profiles = {"ORT FP32": profile_onnx(files["fp32"], b, threads),
                        "ORT INT8 cpu": profile_onnx(files["ort-int8-cpu"], b, threads),
                        "OV FP32": profile_openvino(files["fp32"], b, threads),
                        "OV INT8 openvino": profile_openvino(files["ov-int8 (+heads)"], b, threads)}
            for title, ops in profiles.items():
                table = Table(title=f"{title}, batch {b}, {threads} threads")
                for col in ("op / kernel", "ms", "share", "nodes"):
                    table.add_column(col, justify="left" if col.startswith("op") else "right")
                for o in ops[:16]:
                    table.add_row(o.op_type, f"{o.ms_per_run:.1f}", f"{o.share:.1%}", str(o.nodes))
                table.add_row("total (kernel time per run)", f"{sum(o.ms_per_run for o in ops):.1f}", "", "")
                console.print(table)
    if report:
        data = {"environment": env, "load_average": [load_before, load_after], "gates_min_cosine": gates,
                "results": [r.to_dict(with_samples=True) for r in rows],
                "profiles": {k: [vars(o) for o in v] for k, v in profiles.items()}}
        report.parent.mkdir(parents=True, exist_ok=True)
        write_json(report, data, indent=1)


if __name__ == "__main__":
    typer.run(main)
