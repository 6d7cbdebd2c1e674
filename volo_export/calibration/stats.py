"""Activation statistics of an FP32 ONNX graph on calibration samples.

The graph runs in ONNX Runtime (CPU) with the tensors of interest added as
outputs; per tensor we keep min, max and a histogram of |x| that the range
methods (`calibration.methods`) read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

HIST_BINS = 2048

ProgressCallback = Callable[[int, int], None]


@dataclass
class TensorStats:
    """Running statistics of one tensor: min, max and a histogram of |x| over [0, edge]."""

    minimum: float
    maximum: float
    hist: np.ndarray | None  # int64 (HIST_BINS,) counts of |x|, or None when not collected
    edge: float  # upper end of the histogram (>= max |x| seen)

    @classmethod
    def empty(cls, histogram: bool = True) -> "TensorStats":
        return cls(np.inf, -np.inf, np.zeros(HIST_BINS, np.int64) if histogram else None, 0.0)

    @property
    def amax(self) -> float:
        return float(max(abs(self.minimum), abs(self.maximum)))

    def update(self, x: np.ndarray) -> None:
        """Fold one batch of values in. The histogram widens (re-binning old counts) when |x| grows."""
        x = np.asarray(x, dtype=np.float32)
        if x.size == 0:
            return
        self.minimum = min(self.minimum, float(x.min()))
        self.maximum = max(self.maximum, float(x.max()))
        if self.hist is None:
            return
        amax = self.amax
        if amax > self.edge:
            self._widen(amax)
        if self.edge > 0:
            counts, _ = np.histogram(np.abs(x), bins=HIST_BINS, range=(0.0, self.edge))
            self.hist += counts

    def _widen(self, amax: float) -> None:
        if self.edge > 0 and self.hist.any():
            width = self.edge / HIST_BINS
            centres = (np.arange(HIST_BINS) + 0.5) * width
            target = np.minimum((centres / (amax / HIST_BINS)).astype(np.int64), HIST_BINS - 1)
            self.hist = np.bincount(target, weights=self.hist, minlength=HIST_BINS).astype(np.int64)
        self.edge = amax

    def to_dict(self) -> dict:
        d = {"min": self.minimum, "max": self.maximum, "edge": self.edge}
        if self.hist is not None:
            d["hist"] = self.hist.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TensorStats":
        hist = np.asarray(d["hist"], np.int64) if "hist" in d else None
        return cls(float(d["min"]), float(d["max"]), hist, float(d["edge"]))


def float_tensor_names(model_proto) -> dict[str, int]:
    """Every tensor produced by a node, with its ONNX element type (from shape inference)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model_proto)
    types = {v.name: v.type.tensor_type.elem_type for v in
             (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)}
    produced = [o for n in model_proto.graph.node for o in n.output if o]
    return {name: types[name] for name in produced if name in types}


def with_outputs(model_proto, names: Sequence[str]):
    """A copy of the model that also returns `names` (float tensors) as graph outputs."""
    import onnx
    from onnx import helper

    out = onnx.ModelProto()
    out.CopyFrom(model_proto)
    present = {o.name for o in out.graph.output}
    types = float_tensor_names(model_proto)
    for name in names:
        if name not in present:
            out.graph.output.append(helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None))
    return out


def fixed_batch(model_proto) -> int | None:
    """The graph's static batch size, or None when the batch is dynamic."""
    dim = model_proto.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else None


def sample_batches(array: np.ndarray, batch: int, fixed: int | None) -> Iterable[np.ndarray]:
    """Consecutive batches of `array`; for a static-batch graph exactly `fixed` rows each (cycling the data)."""
    size = fixed or batch
    if fixed and len(array) % fixed:
        array = array[np.arange(-(-len(array) // fixed) * fixed) % len(array)]
    for i in range(0, len(array), size):
        yield array[i:i + size]


def collect_stats(model_proto, names: Sequence[str], array: np.ndarray, *, batch: int = 8, histogram: bool = True,
                  on_progress: ProgressCallback = lambda done, total: None) -> dict[str, TensorStats]:
    """Run the FP32 `model_proto` on `array` (N, 3, S, S) and return statistics of every tensor in `names`."""
    from volo_export.runtime import OnnxRuntimeRunner, SessionSettings

    names = list(dict.fromkeys(names))
    runner = OnnxRuntimeRunner(with_outputs(model_proto, names).SerializeToString(),
                               SessionSettings(providers=("CPUExecutionProvider",), optimization="basic"))
    stats = {n: TensorStats.empty(histogram) for n in names}
    chunks = list(sample_batches(array, batch, fixed_batch(model_proto)))
    for i, x in enumerate(chunks):
        values = runner.run({runner.input_name: np.ascontiguousarray(x)}, names)
        for name, v in zip(names, values):
            stats[name].update(v)
        on_progress(i + 1, len(chunks))
    return stats


def capture(model_proto, names: Sequence[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """The values of tensors `names` when the FP32 model runs on one batch `x`."""
    from volo_export.runtime import OnnxRuntimeRunner, SessionSettings

    names = list(dict.fromkeys(names))
    runner = OnnxRuntimeRunner(with_outputs(model_proto, names).SerializeToString(),
                               SessionSettings(providers=("CPUExecutionProvider",), optimization="basic"))
    return dict(zip(names, runner.run({runner.input_name: np.ascontiguousarray(x)}, names)))
