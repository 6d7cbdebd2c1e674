"""torch -> ONNX: the eager VOLO, with the outlook-attention rewrite, to a
self-contained ONNX graph with dynamic batch and volo-export metadata.

I/O contract: input `input` float32 (N, 3, S, S), output `logits` float32
(N, num_classes); N is dynamic unless a static batch is asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from volo_export.errors import ExportError, UsageError, first_line
from volo_export.export.gemm import bias_in_gemm
from volo_export.export.metadata import ArtifactInfo, write_info
from volo_export.export.rewrite import export_friendly
from volo_export.models.checkpoint import LoadedModel
from volo_export.models.volo import VOLO

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# Opset 20: the dynamo exporter's native opset in torch 2.13/2.14; has
# LayerNormalization (17) and Gelu (20) as single ops, which TensorRT 10/11 parse
# and fuse. TensorRT's parser accepts opsets 9-24.
DEFAULT_OPSET = 20
MIN_OPSET, MAX_OPSET = 18, 24
# protobuf cannot serialise a single message of 2 GiB or more.
_PROTOBUF_LIMIT = 2**31 - 1


MAX_BATCH = 4096  # the largest batch an export takes: a static --batch, the top of a dynamic one


@dataclass(frozen=True)
class ExportOptions:
    """How to export: opset, static batch (None = dynamic), and whether to apply the rewrite."""

    opset: int = DEFAULT_OPSET
    batch: int | None = None
    rewrite: bool = True

    def __post_init__(self):
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise UsageError(f"--opset {self.opset} unsupported; use {MIN_OPSET}..{MAX_OPSET} "
                             f"(Col2Im-free VOLO needs LayerNormalization; TensorRT parses up to {MAX_OPSET})")
        if self.batch is not None and self.batch < 1:
            raise UsageError(f"--batch must be >= 1, got {self.batch}")
        if self.batch is not None and self.batch > MAX_BATCH:  # refused before the trace runs it through the model
            raise UsageError(f"--batch {self.batch} is above {MAX_BATCH}, the largest batch an export takes "
                             "(the top of the dynamic-batch range)")


# Stamped (metadata `export`) on graphs exported without the rewrite, so they are never mistaken for ours.
NAIVE_EXPORT = "naive (stock exporter, Col2Im)"


def export_model(loaded: LoadedModel, options: ExportOptions = ExportOptions()) -> tuple[object, ArtifactInfo]:
    """The one way from a loaded eager model to a finished ONNX ModelProto: trace (`torch_to_onnx`), attach
    the metadata and run the checker (`finalize`). Returns (proto, its ArtifactInfo); nothing is written."""
    info = ArtifactInfo.for_model(loaded.config, loaded.checkpoint_sha256, options.opset)
    if not options.rewrite:
        info = dataclasses.replace(info, extra={**info.extra, "export": NAIVE_EXPORT})
    return finalize(torch_to_onnx(loaded.model, options), info), info


def torch_to_onnx(model: VOLO, options: ExportOptions):
    """Trace `model` with the dynamo exporter and return the ONNX ModelProto (no metadata yet).

    With `options.rewrite` (default) the outlook attention is exported without unfold/fold
    (`rewrite.export_friendly`) and biased Linear layers as Gemm (`gemm.bias_in_gemm`).
    With it False this is the naive export (Col2Im), kept for benchmarks and the
    TensorRT checker's negative tests.
    """
    from torch.export import Dim

    size = model.config.img_size
    # torch.export specialises a dimension of size 1, so trace dynamic batch with 2.
    example = torch.randn(options.batch or 2, model.config.in_chans, size, size)
    dynamic = None if options.batch else ({0: Dim("batch", min=1, max=MAX_BATCH)},)
    try:
        with contextlib.ExitStack() as rewrites, torch.no_grad(), _quiet_exporter():
            if options.rewrite:  # exact export-time formulations; the naive export gets none
                rewrites.enter_context(export_friendly(model))
                rewrites.enter_context(bias_in_gemm(model))
            program = torch.onnx.export(
                model, (example,), dynamo=True, opset_version=options.opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=dynamic,
                external_data=False, optimize=True, verbose=False,
            )
    except Exception as e:  # the exporter raises many unrelated types; report one line
        raise ExportError(f"torch.onnx.export failed for {model.config.name}: {first_line(e)}") from e
    return program.model_proto


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress and warnings to stdout; keep the CLI's output ours."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "onnxscript", "torch.export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def op_histogram(model_proto) -> Counter:
    """Op types in the main graph and its functions, with counts."""
    ops = Counter(n.op_type for n in model_proto.graph.node)
    for f in model_proto.functions:
        ops.update(n.op_type for n in f.node)
    return ops


def prune_value_info(graph) -> int:
    """Drop `value_info` entries that no longer describe the graph: names that are initializers (their
    stored type is the truth; graph rewrites such as the float16 conversion leave declarations behind that
    contradict it) or that no node produces any more. Returns how many went."""
    produced = {o for n in graph.node for o in n.output}
    initializers = {t.name for t in graph.initializer}
    kept = [v for v in graph.value_info if v.name in produced and v.name not in initializers]
    dropped = len(graph.value_info) - len(kept)
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return dropped


def finalize(model_proto, info: ArtifactInfo):
    """Attach metadata, drop stale value_info and run the ONNX checker with strict shape inference
    (`full_check`, below protobuf's 2 GB limit); returns the same proto."""
    import onnx

    write_info(model_proto, info)
    model_proto.producer_name = "volo-export"
    model_proto.doc_string = f"{info.model} exported by volo-export"
    prune_value_info(model_proto.graph)
    try:
        onnx.checker.check_model(model_proto, full_check=True) if model_proto.ByteSize() < _PROTOBUF_LIMIT else None
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"exported graph fails onnx.checker: {first_line(e)}") from None
    return model_proto


def save_onnx(model_proto, path: Path) -> None:
    """One self-contained file below 2 GB; above it, weights go to `<name>.data` beside it
    (then `model_proto`'s tensors are turned into external references in place)."""
    import onnx

    path = Path(path)
    if model_proto.ByteSize() < _PROTOBUF_LIMIT:
        onnx.save_model(model_proto, str(path))
    else:
        onnx.save_model(model_proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
