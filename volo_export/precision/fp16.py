"""FP16 by graph conversion, numerically sensitive ops kept in FP32.

Under TensorRT 11's strong typing the graph's types are the engine's precision,
so FP16 means float16 tensors in the ONNX itself. `to_fp16` converts every float
tensor and initializer to float16 with ONNX Runtime's converter, except:

- op types in `KEEP_FP32_OPS`: LayerNormalization (its mean/variance reductions
  overflow float16 on large activations: TensorRT#2564, #3657, #4493), Softmax
  and the sum-like reductions (long sums lose precision in float16);
- nodes whose outputs exceed float16's range on real images (found by
  `overflow_nodes`, threshold `tolerances.FP16_SAFE_ABS`);
- any node or op type the user names.

Casts are inserted at every float32/float16 boundary; graph I/O stays float32
unless `io_dtype` is float16. ONNX Runtime CPU has float16 kernels for few ops;
it inserts its own Casts around the others, so the file runs (slowly) on CPU,
where it is validated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from volo_export.errors import UsageError
from volo_export.passes.casts import drop_noop_casts
from volo_export.passes.graph import topological_sort

KEEP_FP32_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2",
                 "ReduceLogSumExp", "ReduceProd")
IO_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class Fp16Options:
    io_dtype: str = "float32"
    keep_op_types: tuple[str, ...] = KEEP_FP32_OPS
    keep_nodes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.io_dtype not in IO_DTYPES:
            raise UsageError(f"--io-dtype {self.io_dtype!r}: choose {' or '.join(IO_DTYPES)}")


@dataclass
class Fp16Result:
    """The converted model and what stayed float32, as lines for the report."""

    model: object
    kept: list[str] = field(default_factory=list)


def overflow_nodes(model, stats: dict, limit: float) -> dict[str, float]:
    """{node name: largest |output|} for nodes with an output beyond `limit` in `stats` ({tensor: TensorStats})."""
    out = {}
    for n in model.graph.node:
        amax = max((stats[o].amax for o in n.output if o in stats), default=0.0)
        if amax > limit or not np.isfinite(amax):
            out[n.name] = amax
    return out


def scan_overflow(fp32, images: np.ndarray, progress=None) -> dict[str, float]:
    """{node: largest |output|} of the FP32 graph's nodes whose float32 outputs leave float16's safe range
    (`tolerances.FP16_SAFE_ABS`) on `images`: the nodes a float16 graph keeps in float32."""
    from volo_export.activations import collect_stats, float_tensor_names
    from volo_export.tolerances import FP16_SAFE_ABS

    if progress is not None:
        progress.stage("scanning activations for float16 overflow")
    floats = [n for n, t in float_tensor_names(fp32).items() if t == 1]
    stats = collect_stats(fp32, floats, images, batch=len(images), histogram=False)
    return overflow_nodes(fp32, stats, FP16_SAFE_ABS)


def to_fp16(model, options: Fp16Options = Fp16Options(), overflow: dict[str, float] | None = None) -> Fp16Result:
    """Convert `model` to float16 (see module docstring); `overflow` nodes ({name: max |value|}) stay float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    overflow = overflow or {}
    names = {n.name for n in model.graph.node}
    unknown = [n for n in options.keep_nodes if n not in names]
    if unknown:
        raise UsageError(f"--exclude-nodes: no node named {unknown[0]!r} in the graph")
    present = {n.op_type for n in model.graph.node}
    absent = [t for t in options.keep_op_types if t not in present and t not in KEEP_FP32_OPS]
    if absent:
        raise UsageError(f"--exclude-op-types: the graph has no {absent[0]} node")
    keep_ops = [t for t in options.keep_op_types if t in present]
    keep_nodes = list(dict.fromkeys([*options.keep_nodes, *overflow]))
    converted = convert_float_to_float16(model, keep_io_types=options.io_dtype == "float32",
                                         op_block_list=keep_ops or None, node_block_list=keep_nodes or None,
                                         disable_shape_infer=False)
    drop_noop_casts(converted)
    topological_sort(converted.graph)
    kept = [f"{sum(n.op_type == t for n in model.graph.node)} {t} (op type kept float32)" for t in keep_ops]
    kept += [f"{n} (named)" for n in options.keep_nodes]
    kept += [f"{n} (output reaches {overflow[n]:.3g}, beyond float16's safe range)" for n in overflow
             if n not in options.keep_nodes]
    return Fp16Result(converted, kept)


def keep_op_types(extra: Sequence[str]) -> tuple[str, ...]:
    """The default FP32 op types plus the user's."""
    return tuple(dict.fromkeys([*KEEP_FP32_OPS, *extra]))
