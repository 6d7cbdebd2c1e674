"""Compare an artifact's logits with its reference's on the same inputs and judge them -> Report.

Per batch: max/mean abs error, minimum cosine, top-1/top-5 agreement (a top-1 flip
between two reference logits closer than the tolerance admits counts as agreement),
accuracy where the inputs are labelled. `judge` lists every bound a comparison misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from volo_export.errors import InputDataError
from volo_export.gate.inputs import InputSet
from volo_export.gate.reference import Predictor, Reference
from volo_export.gate.report import Comparison, Report
from volo_export.progress import SILENT, Progress
from volo_export.tolerances import Tolerance


def _topk(logits: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def compare_logits(label: str, ref: np.ndarray, out: np.ndarray, allowed_abs: float = 0.0,
                   targets: np.ndarray | None = None) -> Comparison:
    """Numbers for one batch. A top-1 disagreement counts as agreement when the reference's two
    candidates are within `allowed_abs` of each other (a tie the tolerance already admits)."""
    ref, out = ref.astype(np.float64), out.astype(np.float64)
    diff = np.abs(ref - out)
    cos = (ref * out).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1), 1e-30)
    r1, o1 = ref.argmax(1), out.argmax(1)
    rows = np.arange(len(ref))
    tie = np.abs(ref[rows, r1] - ref[rows, o1]) <= allowed_abs
    k = min(5, ref.shape[1])
    r5, o5 = _topk(ref, k), _topk(out, k)
    overlap = [len(set(a) & set(b)) / k for a, b in zip(r5, o5)]
    acc = ref_acc = None
    if targets is not None:
        acc, ref_acc = float((o1 == targets).mean()), float((r1 == targets).mean())
    return Comparison(inputs=label, batch_size=len(ref), max_abs=float(diff.max()), mean_abs=float(diff.mean()),
                      min_cosine=float(cos.min()), top1_agreement=float(((r1 == o1) | tie).mean()),
                      top5_agreement=float(np.mean(overlap)), reference_scale=float(np.abs(ref).max()),
                      accuracy=acc, reference_accuracy=ref_acc)


def judge(comparisons: Sequence[Comparison], tol: Tolerance) -> list[str]:
    """Every bound of `tol` that some comparison misses, one line each.

    Max-abs and cosine hold per batch. Agreement and accuracy hold per batch, or,
    with `tol.pooled_agreement`, only on the row that pools every input.
    """
    failures = []
    for c in comparisons:
        allowed = tol.max_abs_rel * max(1.0, c.reference_scale)
        judged = not tol.pooled_agreement or c.scope == "all"
        checks = [
            (c.max_abs <= allowed, f"max abs error {c.max_abs:.3g} > {allowed:.3g}"),
            (c.min_cosine >= tol.min_cosine, f"cosine {c.min_cosine:.6f} < {tol.min_cosine}"),
            (not judged or c.top1_agreement >= tol.min_top1_agreement,
             f"top-1 agreement {c.top1_agreement:.2%} < {tol.min_top1_agreement:.2%}"),
            (not judged or c.top5_agreement >= tol.min_top5_agreement,
             f"top-5 agreement {c.top5_agreement:.2%} < {tol.min_top5_agreement:.2%}"),
        ]
        if judged and tol.max_accuracy_drop is not None and c.accuracy is not None:
            drop = c.reference_accuracy - c.accuracy
            checks.append((drop <= tol.max_accuracy_drop + 1e-12,
                           f"accuracy {c.accuracy:.2%} is {drop:.2%} below FP32's {c.reference_accuracy:.2%} "
                           f"(allowed {tol.max_accuracy_drop:.2%})"))
        failures += [f"{c.inputs} (batch {c.batch_size}): {msg}" for ok, msg in checks if not ok]
    return failures


def run_gate(reference: Reference, candidate: Predictor, inputs: Sequence[InputSet], tol: Tolerance, *,
             artifact: str, model: str, precision: str, notes: Sequence[str] = (),
             progress: Progress = SILENT) -> Report:
    """Run both on every input set and judge the results with `tol`. With `tol.pooled_agreement` a
    last row (scope "all") compares every input together."""
    comparisons, refs, outs, targets = [], [], [], []
    for i, s in enumerate(inputs):
        ref, out = reference.predict(s.array), candidate(s.array)
        if out.shape != ref.shape:
            raise InputDataError(f"{artifact} returned shape {out.shape}, {reference.name} {ref.shape}")
        real = slice(0, s.rows)  # rows repeated to fill a static batch are not counted twice
        ref, out, labels = ref[real], out[real], None if s.targets is None else s.targets[real]
        comparisons.append(replace(compare_logits(s.label, ref, out, _tie(tol, ref), labels), batch_size=len(s.array)))
        refs.append(ref), outs.append(out), targets.append(labels)
        progress.advance(i + 1, len(inputs))
    if tol.pooled_agreement and refs:
        ref, out = np.concatenate(refs), np.concatenate(outs)
        labels = None if any(t is None for t in targets) else np.concatenate(targets)
        pooled = compare_logits(f"all {len(ref)} inputs", ref, out, _tie(tol, ref), labels)
        comparisons.append(replace(pooled, scope="all"))
    return Report(artifact=artifact, model=model, precision=precision, tolerance=tol.name,
                  tolerance_reason=tol.reason, comparisons=comparisons, failures=judge(comparisons, tol),
                  notes=list(notes), reference=reference.name)


def _tie(tol: Tolerance, ref: np.ndarray) -> float:
    """How close two reference logits must be for a top-1 flip between them to be excused:
    `tol.tie_rel` of the reference scale, else (exact FP32 gates) what the max-abs bound admits."""
    rel = tol.tie_rel if tol.tie_rel is not None else tol.max_abs_rel
    return rel * max(1.0, float(np.abs(ref).max()))
