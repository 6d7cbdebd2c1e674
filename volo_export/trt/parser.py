"""The real ONNX parser of TensorRT or TensorRT-RTX: its verdict on a graph, every error it reports.

`ParserIssue` and `RealVerdict` are plain data (tests build them without TensorRT);
`parse_onnx` and `real_check` import the product lazily (`products.find_library`).

What "every error" means (measured with TensorRT-RTX 1.7.1): the parser's static checker reports
all statically detectable errors at once (two Col2Im nodes and a bad Resize give three); errors
found while importing stop at the first, because import does not start after a static error.
`desc()` is the parser's own message: an assertion expression, several lines, or literally
"false" (Col2Im), which is why the op type is always part of the line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from volo_export.export.metadata import check_onnx_file
from volo_export.trt.products import Library, find_library

# The builder's layer table (profiling verbosity DETAILED) is one VERBOSE message starting so.
LAYER_TABLE_PREFIX = "Layers:"


@dataclass(frozen=True)
class ParserIssue:
    """One error of the ONNX parser. `node` is the index in graph.node (-1: not about one node)."""

    code: str
    desc: str
    node: int = -1
    node_name: str = ""
    op_type: str = ""

    def message(self) -> str:
        """One line: where (node index, name, op type), the error code, what the parser says."""
        lines = [ln.strip() for ln in self.desc.splitlines() if ln.strip()]
        text = "; ".join(lines)
        if text in ("", "false") and self.op_type:
            text = f"{self.op_type} is not supported by TensorRT's ONNX parser"
        where = f"node {self.node} '{self.node_name}' ({self.op_type})" if self.node >= 0 else "graph"
        return f"{where}: {self.code}: {text or 'no message'}"


def parser_issues(parser) -> list[ParserIssue]:
    """Every error an `OnnxParser` holds after a parse, in its order."""
    out = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        code = e.code()
        out.append(ParserIssue(code=getattr(code, "name", str(code)), desc=str(e.desc()), node=int(e.node()),
                               node_name=str(e.node_name()), op_type=str(e.node_operator())))
    return out


@dataclass
class RealVerdict:
    """What the real parser of `product` (e.g. 'TensorRT-RTX 1.7.1.116') said about `model`."""

    model: str
    product: str
    passed: bool
    issues: list[ParserIssue] = field(default_factory=list)
    layers: int = 0  # network layers after a successful parse

    def summary(self) -> str:
        if self.passed:
            return f"{self.model}: {self.product}'s ONNX parser takes it ({self.layers} network layers)"
        more = f" (+{len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        return f"{self.model}: {self.product}'s ONNX parser rejects it: {self.issues[0].message()}{more}"

    def to_dict(self) -> dict:
        return {"model": self.model, "product": self.product, "passed": self.passed, "layers": self.layers,
                "issues": [{**asdict(i), "message": i.message()} for i in self.issues], "summary": self.summary()}


def make_logger(trt):
    """A trt.ILogger that keeps errors (for one-line messages), warnings (shown after a build) and the
    builder's DETAILED layer table; every other message is dropped as it arrives."""

    class CollectingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []
            self.layer_table: str | None = None

        def log(self, severity, msg):
            msg = str(msg)
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(msg)
            elif severity == trt.ILogger.WARNING:
                self.warnings.append(msg)
            elif msg.startswith(LAYER_TABLE_PREFIX):
                self.layer_table = msg

    return CollectingLogger()


def parse_onnx(trt, builder, logger, onnx_path: Path, flag_names: tuple[str, ...] = ()):
    """(network, issues) after parsing `onnx_path` into a new network of `builder` created with the
    NetworkDefinitionCreationFlag members `flag_names`. A rejection with no parser error of its own
    gets one issue built from the first logged error."""
    check_onnx_file(onnx_path)  # the parser follows any location, symlink or pipe: check before it reads
    flags = 0
    for name in flag_names:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx_path)):
        return network, []
    logged = logger.errors[0] if logger.errors else "the parser gave no reason"
    return network, parser_issues(parser) or [ParserIssue("PARSE_FAILED", logged)]


def real_check(path: Path, runtime: str = "auto", library: Library | None = None) -> RealVerdict | None:
    """Parse `path` with the real parser `runtime` allows (None when neither product is installed)."""
    from volo_export.trt.config import network_flags

    library = library or find_library(runtime)
    if library is None:
        return None
    trt = library.module
    logger = make_logger(trt)
    network, issues = parse_onnx(trt, trt.Builder(logger), logger, Path(path), network_flags(library))
    return RealVerdict(Path(path).name, library.label, not issues, issues, 0 if issues else network.num_layers)
