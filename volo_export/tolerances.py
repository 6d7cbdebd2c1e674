"""Every pass/fail threshold of volo-export, with the reason for its value.

Errors are measured on logits. `max_abs` is relative to the reference's
largest |logit| (at least 1), so one tolerance serves random weights
(logits ~1) and trained ones (logits ~10-20).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from volo_export.errors import UsageError
from volo_export.names import GPU_EXECUTORS, Executor, Precision


@dataclass(frozen=True)
class Tolerance:
    """Gate for one artifact kind. A comparison passes when every bound holds."""

    name: str
    max_abs_rel: float
    min_cosine: float
    min_top1_agreement: float
    min_top5_agreement: float
    reason: str
    # Reduced precision flips a few close calls by design, so agreement and accuracy
    # are judged over all gate images together ("pooled") rather than per batch,
    # where one flip in a batch of 8 would already cost 12.5 points.
    pooled_agreement: bool = False
    # Largest allowed drop of top-1 accuracy vs the eager FP32 model (fraction, 0.01 = 1 point),
    # checked where the gate images have labels.
    max_accuracy_drop: float | None = None
    # A top-1 flip between two classes whose reference logits are within this fraction of the
    # reference's largest |logit| counts as agreement (a near-tie the precision is expected to
    # break either way). None: the max-abs bound (exact FP32 comparisons).
    tie_rel: float | None = None


FP32 = Tolerance(
    name="fp32",
    # Measured: exported D1..D5 differ from eager by 1e-6..2e-5 relative (float32
    # reassociation in MatMul/Softmax/LayerNorm kernels). 1e-4 leaves headroom
    # for deeper models and other CPUs while catching any real graph bug (those
    # give errors of order 1e-1).
    max_abs_rel=1e-4,
    min_cosine=0.99999,
    # Identical maths: top-1 may only flip where two logits tie within max_abs,
    # and such ties count as agreement (see gate.compare.compare_logits).
    min_top1_agreement=1.0,
    min_top5_agreement=0.95,
    reason="same float32 maths as eager; differences come only from kernel summation order",
)


# FP16 / INT8 gates, judged on held-out images (never calibration images). Measured on
# volo_tiny_digits (trained, 450 held-out digits) and volo_d1_224 (random weights, 13
# held-out scikit-image photos); numbers in docs/PRECISION.md. FP16 reached cosine
# >= 0.99999, INT8 >= 0.997 (both targets, minmax and percentile at every calibration
# size measured, 16-256); the bounds leave a margin for other checkpoints and images.
FP16 = Tolerance(
    name="fp16",
    # float16 has a 2^-11 relative step; LayerNorm/Softmax stay float32, so logits
    # move by ~1e-3 of their scale. 1e-2 is ten times that.
    max_abs_rel=1e-2,
    min_cosine=0.999,
    min_top1_agreement=0.97,
    min_top5_agreement=0.95,
    pooled_agreement=True,
    max_accuracy_drop=0.01,
    # Five times the measured FP16 logit noise (~1e-3 of the scale).
    tie_rel=5e-3,
    reason="float16 rounding (2^-11 relative) through ~40 layers; sensitive ops kept float32",
)

INT8 = Tolerance(
    name="int8",
    # int8 has 255 levels per tensor: per-layer errors of ~1% add up through the
    # network. The gate's real guard is cosine, agreement and accuracy; max-abs
    # only catches a broken graph (errors of the size of the logits themselves).
    max_abs_rel=0.5,
    min_cosine=0.98,
    min_top1_agreement=0.90,
    min_top5_agreement=0.80,
    pooled_agreement=True,
    max_accuracy_drop=0.01,
    # INT8 moves logits by ~1 % of their scale (measured mean abs error / scale: 0.6-1.2 % on
    # D1 and the tiny model); flips between classes closer than 2 % are near-ties it may break.
    # Random-weight models have such ties all the time (D1: median top-2 margin 12 % of the
    # scale); a trained model's confident predictions are far outside the band, and accuracy
    # vs FP32 (where labels exist) bounds what the band lets through.
    tie_rel=0.02,
    reason="8-bit activations and per-channel 8-bit weights; the issue's bar is accuracy within 1 point of FP32",
)

# float8 E4M3 keeps 3 mantissa bits: every quantised value is rounded by up to 2^-4 (6 %) of itself, where int8
# rounds by up to amax/254 whatever the value. Per-layer errors of a few percent average out over the GEMMs' sums
# like INT8's, so FP8 shares INT8's bounds. Measured (docs/PRECISION.md, min cosine vs eager): volo_tiny_digits
# FP8 0.9962-0.9977 (accuracy 98.44-98.67 % vs FP32 98.44 %), INT8 0.9998; random-weight D1 FP8 0.9970, INT8
# 0.9998 (13 photos; FP8 with the one-row GEMMs quantised too: 0.9956 and one top-1 flip on a near-tie).
FP8 = dataclasses.replace(
    INT8, name="fp8",
    reason="8-bit floating point (E4M3: 3-bit mantissa) activations and per-channel weights; the issue's bar is "
           "accuracy within 1 point of FP32")

BF16 = Tolerance(
    name="bf16",
    # bfloat16 keeps 8 mantissa bits (2^-9 relative step), 16x coarser than float16. Measured with
    # OpenVINO's bf16 inference (the FP32 graph with INFERENCE_PRECISION_HINT bf16) and with eager
    # torch.autocast(bfloat16): VOLO-D1 (random weights, 52 held-out photo views) min cosine
    # 0.99993, max abs 1.3e-2 of the logit scale, 3 top-1 flips between classes 0.04-0.6 % of the
    # scale apart; volo_tiny_digits (450 test digits) cosine 0.99990, max abs 7e-3, accuracy
    # 98.44 % = FP32. The bounds are ~5x the measured worst case.
    max_abs_rel=0.05,
    min_cosine=0.9995,
    min_top1_agreement=0.97,
    min_top5_agreement=0.95,
    pooled_agreement=True,
    max_accuracy_drop=0.01,
    # The flips measured were all within 0.6 % of the scale: bf16 breaks ties up to ~1 %.
    tie_rel=0.01,
    reason="bfloat16 products (8-bit mantissa) with float32 accumulation, the FP32 graph run with a bf16 "
           "inference hint",
)

# Calibration sets smaller than this draw a warning: ranges of rare large activations
# (the ones that decide the scales) are then estimated from too few images. TensorRT
# and ONNX Runtime guides use 100-1000. Measured on volo_tiny_digits: minmax ranges from
# 16-32 images were already as good as from 256, but entropy (histogram) ranges from 32
# images cost 2.5 points of cosine (0.974 vs 0.993 at 256) and failed the gate.
MIN_CALIBRATION_SAMPLES = 32

# FP16 overflow scan: a tensor whose largest |value| on the scanned images exceeds
# this stays float32. float16's largest finite value is 65504; the margin of 8
# covers images larger than the scanned ones by that factor.
FP16_SAFE_ABS = 65504.0 / 8

# Automatic INT8/FP8 fallback leaves at most this fraction of the quantisable layers
# unquantised. A graph that needs more than half of its layers in float to pass is not
# an INT8 model any more; the command then fails and says so.
MAX_FALLBACK_FRACTION = 0.5

# The layer-mix bar of an INT8/FP8 TensorRT engine (issue 17; `trt.layers.LayerReport`): at most this share of
# its layers read a float32 input (NVIDIA ModelOpt's INT8 D1 engine: 10.6 %; ours 3.3 %), and it moves at most
# FP16's activation bytes per image plus this share (ours INT8 63.9, FP8 62.8 vs FP16 69.0 MB on D1; ModelOpt's
# 103): a quantised engine that moves more than the FP16 one throws its faster GEMMs away. Measured with
# TensorRT-RTX 1.7.1 for sm89, docs/PRECISION.md.
MAX_FLOAT32_INPUT_FRACTION = 0.10
MAX_TRAFFIC_OVER_FP16 = 0.10

GPU_FP32 = Tolerance(
    name="fp32-tf32",
    # An FP32 engine still runs MatMul/Conv on TF32 tensor cores by default (TensorRT's
    # TF32 builder flag is on): operands keep a 10-bit mantissa (~5e-4 relative rounding
    # each), and VOLO's 20+ residual blocks accumulate that to ~1e-3 of the logit scale.
    # 1e-2 leaves headroom while a real graph bug (errors ~1e-1) still fails. Not yet
    # measured here (no GPU on the development machines): revisit with a D1 engine.
    max_abs_rel=1e-2,
    min_cosine=0.9995,
    # Near-ties beyond the tolerance's own tie band may flip under TF32 rounding.
    min_top1_agreement=0.99,
    min_top5_agreement=0.95,
    reason="FP32 graph on TF32 tensor cores: 10-bit mantissa products, FP32 accumulation",
)


@dataclass(frozen=True)
class GateOverrides:
    """Command-line overrides of single gate bounds (None: the documented default)."""

    min_cosine: float | None = None
    min_top1_agreement: float | None = None
    max_accuracy_drop: float | None = None

    def __post_init__(self):
        for name in ("min_cosine", "min_top1_agreement", "max_accuracy_drop"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UsageError(f"--{name.replace('_', '-')} must be within 0..1, got {value}")


# The gate for (artifact precision, runtime). The runtime is `Runner.runtime`
# (volo_export.runtime.base): what really executes the graph decides the arithmetic.
# FP32 graphs on NVIDIA GPUs (TensorRT, ONNX Runtime's TensorRT and CUDA providers) run
# MatMul/Conv on TF32 tensor cores by default (TensorRT-RTX 1.7 too: a new builder config has
# BuilderFlag.TF32 set, measured); FP16/INT8 graphs already carry their
# precision, so their gates do not depend on the runtime. OpenVINO on the CPU (`Executor.OPENVINO_CPU`)
# compiles FP32/FP16/INT8 artifacts with an explicit f32 hint and was measured as exact as ONNX
# Runtime CPU (VOLO-D1: FP32 max abs 1.1e-6 of the scale, cosine 1.000000; FP16 graph 0.999999;
# INT8 tensorrt Q/DQ 0.99896, the same as ONNX Runtime), so it shares their gates (no entry here: the
# precision's own gate in _BY_PRECISION applies); a bf16 artifact
# is judged by BF16 on every runtime (ONNX Runtime computes it in float32, which passes it too).
_BY_PRECISION = {Precision.FP32: FP32, Precision.FP16: FP16, Precision.INT8: INT8, Precision.FP8: FP8,
                 Precision.BF16: BF16}
_BY_RUNTIME = {(Precision.FP32, runtime): GPU_FP32 for runtime in GPU_EXECUTORS}


def tolerance_for(precision: str, runtime: str = Executor.ONNXRUNTIME_CPU,
                  overrides: GateOverrides = GateOverrides()) -> Tolerance:
    """The gate for an artifact of `precision` run by `runtime`, with the user's overrides applied."""
    base = _BY_RUNTIME.get((precision, runtime)) or _BY_PRECISION.get(precision)
    if base is None:
        raise UsageError(f"no gate for precision {precision!r}; known: {', '.join(_BY_PRECISION)}")
    changes = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    return dataclasses.replace(base, **changes, name=f"{base.name}{' (overridden)' if changes else ''}")


# `volo-export loadtest`: a served answer vs local inference of the same artifact, relative to the local
# answer's largest |logit| (at least 1). Both run the same graph; what differs is the batch the server
# grouped a request into, which may change float32 summation order (measured on ONNX Runtime CPU: 0, i.e.
# bit-identical, for volo_tiny_digits at concurrency 1-16; at most 1e-5 for D1, asserted by
# tests/test_serve.py). A lost or swapped answer (another input's logits) is off
# by order 1. A server on a GPU judged against a CPU client computes in TF32 (`GPU_FP32`: up to 1e-2):
# give it `loadtest --tolerance 1e-2`.
SERVED_ANSWER_REL = 1e-3
