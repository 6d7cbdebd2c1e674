"""`volo-export engine`: a TensorRT or TensorRT-RTX engine (bare plan) + its X.engine.json provenance sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import note, result_line, user_errors, warning
from volo_export.cli.options import Output, Plugins
from volo_export.cli.progress import progress
from volo_export.errors import first_line


def command(
    model: Annotated[Path, typer.Argument(help="ONNX file exported by volo-export (FP32, FP16 or INT8 Q/DQ), or a "
                                          "VOLO ONNX from elsewhere with --model-name.")],
    output: Output,
    model_name: Annotated[Optional[str], typer.Option(
        "--model-name", help="For an ONNX without volo-export metadata (timm's onnx_export.py, a plain "
        "torch.onnx.export): the registered variant whose preprocessing and labels the engine's sidecar "
        "records.")] = None,
    min_batch: Annotated[Optional[int], typer.Option(help="Smallest batch of the profile (default 1).")] = None,
    opt_batch: Annotated[Optional[int], typer.Option(
        help="Batch TensorRT tunes for (default 8, within min..max).")] = None,
    max_batch: Annotated[Optional[int], typer.Option(help="Largest batch of the profile (default 32).")] = None,
    workspace: Annotated[Optional[int], typer.Option(help="Workspace limit in MiB (default: TensorRT's).")] = None,
    opt_level: Annotated[int, typer.Option(help="Builder optimization level 0-5 (TensorRT default 3).")] = 3,
    timing_cache: Annotated[Optional[Path], typer.Option(
        help="Timing cache file: loaded if present, saved after.")] = None,
    hardware_compat: Annotated[str, typer.Option(
        help="none | ampere-plus | same-compute-capability: run on other GPUs, maybe slower.")] = "none",
    version_compatible: Annotated[bool, typer.Option(help="Plan loads on newer TensorRT of the same major.")] = False,
    plugins: Plugins = None,
    strongly_typed: Annotated[bool, typer.Option(help="Strongly typed network (precision from the graph); "
                                                 "TensorRT 11 and TensorRT-RTX know no other mode.")] = True,
    check: Annotated[bool, typer.Option(help="Run the offline TensorRT check first.")] = True,
    runtime: Annotated[str, typer.Option(
        help="auto | tensorrt | rtx: the product that builds (auto: TensorRT if installed, else TensorRT-RTX, "
        "which builds without a GPU).")] = "auto",
    compute_capability: Annotated[Optional[list[str]], typer.Option(
        help="TensorRT-RTX only: target GPUs, e.g. sm86,sm89,sm120 (sm75 sm80 sm86 sm89 sm120 sm121; default: "
        "TensorRT-RTX's portable default, 8.0/8.6/8.9/12.0 and later).")] = None,
) -> None:
    """Build a TensorRT or TensorRT-RTX engine (bare plan) + X.engine.json provenance sidecar."""
    with user_errors():
        from volo_export.trt.build import EngineRequest, build_engine
        from volo_export.trt.config import BuildSettings
        from volo_export.trt.products import PRODUCTS

        settings = BuildSettings(min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                                 workspace_mib=workspace, opt_level=opt_level, timing_cache=timing_cache,
                                 hardware_compat=hardware_compat, version_compatible=version_compatible,
                                 plugins=tuple(plugins or ()), strongly_typed=strongly_typed, runtime=runtime,
                                 compute_capabilities=tuple(compute_capability or ()))
        with progress() as shown:
            result = build_engine(EngineRequest(model, output, settings, check, model_name), shown)
        prov = result.provenance
        label = PRODUCTS[prov.product].label
        for line in result.notes:
            note(line)
        for line in result.warnings[:5]:
            warning(f"{label}: {first_line(line)}")
        lo, opt, hi = prov.profile.batches
        result_line(f"wrote {output} ({prov.engine_bytes / 1e6:.1f} MB) + {result.sidecar.name} in "
                    f"{result.seconds:.0f} s: {prov.environment.describe(prov.product)}, batch {lo}/{opt}/{hi}")
        if result.layers:
            result_line(f"layers: {result.layers.summary()}")
            result_line(f"layer mix: {result.layers.mix()}")
            wide = result.layers.wider_than_graph()
            if wide:
                warning(f"{len(wide)} MatMul/Gemm/Conv run in a wider type than the graph gives them (e.g. INT8 "
                        f"nodes as fp32 layers): {', '.join(wide[:6])}{' ...' if len(wide) > 6 else ''}")
        if prov.trtexec:
            result_line(f"trtexec equivalent: {prov.trtexec}")
