"""A probe of an FP32 ONNX graph's intermediate tensors (activations) on real inputs.

The graph runs in ONNX Runtime (CPU) with the tensors of interest added as
outputs. `collect_stats` keeps per tensor min, max and a histogram of |x|: INT8
calibration derives ranges from them (`calibration.methods`), FP16 conversion
finds the tensors that would overflow float16. `capture` returns the values of one
batch: the INT8 fallback measures each layer's sensitivity on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from volo_export.progress import SILENT, Progress
from volo_export.runtime.base import batch_range_of

HIST_BINS = 2048


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


def _probe(model_proto, names: Sequence[str]):
    """An ONNX Runtime CPU session of the FP32 graph that also returns `names`. Optimisation 'basic'
    keeps the tensors as the graph names them (higher levels fuse some of them away)."""
    from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

    return OnnxRuntimeRunner(with_outputs(model_proto, names).SerializeToString(),
                             SessionSettings(providers=CPU_ONLY, optimization="basic"))


def collect_stats(model_proto, names: Sequence[str], array: np.ndarray, *, batch: int = 8, histogram: bool = True,
                  progress: Progress = SILENT) -> dict[str, TensorStats]:
    """Run the FP32 `model_proto` on `array` (N, 3, S, S) in batches the graph takes and return
    statistics of every tensor in `names`. Rows repeated to fill a static batch count twice (ranges do
    not change; intermediate tensors need not have a batch axis to cut them off by)."""
    names = list(dict.fromkeys(names))
    runner = _probe(model_proto, names)
    stats = {n: TensorStats.empty(histogram) for n in names}
    batches = batch_range_of(model_proto)
    chunks = batches.chunks(len(array), None if batches.static else batch)
    for i, (index, _) in enumerate(chunks):
        values = runner.run({runner.input_name: np.ascontiguousarray(array[index])}, names)
        for name, v in zip(names, values):
            stats[name].update(v)
        progress.advance(i + 1, len(chunks))
    return stats


def capture(model_proto, names: Sequence[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """The values of tensors `names` when the FP32 model runs on one batch `x` (a batch the graph takes)."""
    names = list(dict.fromkeys(names))
    runner = _probe(model_proto, names)
    return dict(zip(names, runner.run({runner.input_name: np.ascontiguousarray(x)}, names)))
