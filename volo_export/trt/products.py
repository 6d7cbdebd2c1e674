"""Which NVIDIA product builds (and later runs) an engine: full TensorRT or TensorRT for RTX.

- TensorRT 10/11 (`import tensorrt`): data-centre and desktop GPUs; builds on the GPU it will
  run on (or `--hardware-compat`, `--version-compatible` for some portability).
- TensorRT-RTX 1.x (`import tensorrt_rtx`, pip `tensorrt-rtx-cu13`): NVIDIA's TensorRT for RTX
  PCs and workstations. Builds ahead of time on a machine without a GPU, for a list of compute
  capabilities (default: portable across Ampere, Ada and Blackwell RTX GPUs); kernels are
  compiled just in time on the user's GPU and kept in a runtime cache.

Their version numbers are separate product lines (TensorRT-RTX 1.7 is built on the TensorRT
10/11 code base; it is not "TensorRT 1.7"), so every version gate is per product. Everything
here is pure except `find_library`, which imports the chosen module (lazily, by name).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from volo_export.errors import EngineError, UsageError

TENSORRT, RTX = "tensorrt", "tensorrt-rtx"
# `--runtime` values: auto prefers full TensorRT (a GPU machine that has it builds for its own GPU).
RUNTIME_CHOICES = ("auto", "tensorrt", "rtx")
_CHOICE_PRODUCTS = {"auto": (TENSORRT, RTX), "tensorrt": (TENSORRT,), "rtx": (RTX,)}


@dataclass(frozen=True)
class Product:
    """One NVIDIA TensorRT product: its key (sidecar `runtime`, `Runner.runtime`), module, name, the
    oldest version volo-export builds with, and how to install it."""

    key: str
    module: str
    label: str
    minimum: tuple[int, ...]
    install: str


PRODUCTS = {
    # Strongly typed networks (precision from the graph) need TensorRT >= 10.
    TENSORRT: Product(TENSORRT, "tensorrt", "TensorRT", (10,),
                      "pip install tensorrt polygraphy (needs an NVIDIA GPU and driver)"),
    # 1.7 is the release measured here (tensorrt-rtx-cu13 1.7.1.116); 1.1 added get_engine_validity.
    RTX: Product(RTX, "tensorrt_rtx", "TensorRT-RTX", (1, 7),
                 'pip install -e ".[rtx]" (tensorrt-rtx-cu13; builds engines without a GPU)'),
}


def version_numbers(version: str | None) -> tuple[int, ...]:
    """'10.13.0.35' -> (10, 13, 0, 35); stops at the first part that is not a number."""
    numbers = []
    for part in str(version or "").split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


@dataclass(frozen=True)
class Library:
    """An installed product at a version; `module` is the imported module (None in pure code and tests)."""

    product: Product
    version: str
    module: object = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, key: str, version: str, module: object = None) -> "Library":
        return cls(PRODUCTS[key], str(version), module)

    @property
    def rtx(self) -> bool:
        return self.product.key == RTX

    @property
    def numbers(self) -> tuple[int, ...]:
        return version_numbers(self.version)

    @property
    def major(self) -> int:
        return (self.numbers or (0,))[0]

    @property
    def label(self) -> str:
        return f"{self.product.label} {self.version}"

    def require_supported(self) -> None:
        """UsageError when this version is older than volo-export builds with (per product)."""
        if not self.numbers:
            raise UsageError(f"cannot read {self.product.label} version {self.version!r}")
        if self.numbers < self.product.minimum:
            need = ".".join(map(str, self.product.minimum))
            raise UsageError(f"{self.label} is too old: volo-export builds strongly typed engines with "
                             f"{self.product.label} >= {need}")


def product_of(module) -> Product:
    """The product a TensorRT-like module is: by its name (`tensorrt_rtx`), backed by the API only
    TensorRT-RTX has (`ComputeCapability`)."""
    name = getattr(module, "__name__", "").split(".")[0]
    if name == PRODUCTS[RTX].module or (name != PRODUCTS[TENSORRT].module and hasattr(module, "ComputeCapability")):
        return PRODUCTS[RTX]
    return PRODUCTS[TENSORRT]


def find_library(runtime: str = "auto",
                 importer: Callable[[str], object] = importlib.import_module) -> Library | None:
    """The first importable product `runtime` allows (auto: TensorRT, then TensorRT-RTX), or None."""
    if runtime not in _CHOICE_PRODUCTS:
        raise UsageError(f"--runtime {runtime!r}: choose {', '.join(RUNTIME_CHOICES)}")
    for key in _CHOICE_PRODUCTS[runtime]:
        try:
            module = importer(PRODUCTS[key].module)
        except ImportError:
            continue
        product = product_of(module)
        return Library(product, str(getattr(module, "__version__", "unknown")), module)
    return None


def require_library(runtime: str = "auto",
                    importer: Callable[[str], object] = importlib.import_module) -> Library:
    """`find_library`, or a one-line EngineError saying what to install."""
    library = find_library(runtime, importer)
    if library is None:
        text = missing(runtime)
        raise EngineError(text[0].upper() + text[1:])
    return library


def missing(runtime: str) -> str:
    """The one line that says nothing `runtime` allows is installed, and how to get it."""
    keys = _CHOICE_PRODUCTS[runtime]
    names = " nor ".join(PRODUCTS[k].label for k in keys)
    how = "; ".join(f"{PRODUCTS[k].label}: {PRODUCTS[k].install}" for k in keys)
    return f"{'neither ' if len(keys) > 1 else ''}{names} is {'' if len(keys) > 1 else 'not '}installed here ({how})"


def choice_note(runtime: str, library: Library) -> str | None:
    """What `--runtime auto` picked and why (None when the user named the runtime)."""
    if runtime != "auto":
        return None
    why = "" if library.product.key == TENSORRT else f" ({PRODUCTS[TENSORRT].label} is not installed)"
    return f"--runtime auto: building with {library.label}{why}"


# ------------------------------------------------------------ compute capabilities (TensorRT-RTX)

# trt.ComputeCapability members of TensorRT-RTX 1.7 that name a GPU architecture (NONE is no target;
# CURRENT means "the GPU of this machine" and needs one), with the compute capability they stand for.
COMPUTE_CAPABILITIES = {"sm75": "7.5", "sm80": "8.0", "sm86": "8.6", "sm89": "8.9", "sm120": "12.0", "sm121": "12.1"}
# docs.nvidia.com/deeplearning/tensorrt-rtx (CPU-only AOT): "By default, an engine built by TensorRT-RTX can be
# run on GPU devices with compute capability 8.0, 8.6, 8.9, 12.0, and later. To build engines for Turing
# devices, a compute capability of 7.5 needs to be specified."
RTX_DEFAULT_TARGETS = ("8.0", "8.6", "8.9", "12.0")
RTX_DEFAULT_DESCRIPTION = "TensorRT-RTX's portable default: compute capability 8.0, 8.6, 8.9, 12.0 and later"
# Turing in TensorRT-RTX has no FP32 GEMM and no INT8 ("Cannot compile operation ... for Turing (SM75):
# FP32 GEMM is not supported", measured with 1.7.1 on the tiny and D1 FP32 and INT8 graphs).
TURING = "sm75"
TURING_PRECISIONS = ("fp16",)


def parse_compute_capabilities(values: Sequence[str]) -> tuple[str, ...]:
    """'sm86', 'SM_86', '8.6' or '86' (comma-separated or repeated) -> canonical names ('sm86', ...),
    in the order given, without repeats; anything else is a one-line UsageError."""
    by_version = {v: k for k, v in COMPUTE_CAPABILITIES.items()}
    out: list[str] = []
    for value in values:
        for item in (v.strip() for v in str(value).split(",")):
            if not item:
                continue
            key = item.lower().replace("_", "")
            key = by_version.get(item, key if key.startswith("sm") else f"sm{key}")
            if key not in COMPUTE_CAPABILITIES:
                raise UsageError(f"--compute-capability {item!r}: TensorRT-RTX builds for "
                                 f"{', '.join(COMPUTE_CAPABILITIES)}")
            if key not in out:
                out.append(key)
    if values and not out:  # `--compute-capability ''` is a mistake, not a request for the default
        raise UsageError(f"--compute-capability {' '.join(map(repr, values))} names no GPU; give e.g. sm86, or leave "
                         "the option out for TensorRT-RTX's portable default")
    return tuple(out)


def cc_versions(names: Sequence[str]) -> list[str]:
    """('sm86', 'sm89') -> ['8.6', '8.9']."""
    return [COMPUTE_CAPABILITIES[n] for n in names]


# FP8 (E4M3) needs compute capability >= 8.9: Ada, Hopper, Blackwell. TensorRT-RTX 1.7.1 refuses an FP8 graph for
# sm75, sm80 and sm86 ("Cannot compile for target(s) sm80, because the model contains HW-specific datatypes:
# fp8_e4m3"), but builds its portable default without a word, and that plan's header still names 8.0 and 8.6.
FP8_SINCE = (8, 9)
FP8_GPUS = "compute capability >= 8.9 (Ada, Hopper, Blackwell)"


def fp8_capable(cc: str) -> bool:
    """Does a GPU of compute capability `cc` ('8.6', '12.0') run FP8 layers?"""
    return version_numbers(cc)[:2] >= FP8_SINCE


def fp8_targets() -> tuple[str, ...]:
    """The TensorRT-RTX targets that run FP8, as names: ('sm89', 'sm120', 'sm121')."""
    return tuple(n for n, cc in COMPUTE_CAPABILITIES.items() if fp8_capable(cc))


def refuse_turing(names: Sequence[str], precision: str) -> None:
    """sm75 with a graph TensorRT-RTX cannot compile for Turing: one line, before minutes of work."""
    if TURING in names and precision not in TURING_PRECISIONS:
        raise UsageError(f"--compute-capability sm75 (Turing) cannot build a {precision} graph: TensorRT-RTX has "
                         "no FP32 GEMM and no INT8 on Turing; build an fp16 graph for sm75, or drop sm75")


def refuse_unfit_targets(names: Sequence[str], precision: str, fp8: bool) -> None:
    """The one rule for `--compute-capability` against the graph, before minutes of work: an FP8 graph (`fp8`: its
    metadata says fp8 or it holds float8 Q/DQ) only for targets that run FP8, and Turing only for fp16 graphs."""
    old = [n for n in names if not fp8_capable(COMPUTE_CAPABILITIES[n])]
    if fp8 and old:
        raise UsageError(f"--compute-capability {', '.join(old)} cannot run an FP8 graph: FP8 needs {FP8_GPUS}; build "
                         f"for {', '.join(fp8_targets())}, or export an int8 or fp16 graph for those GPUs")
    refuse_turing(names, precision)


def rtx_targets(names: Sequence[str], fp8: bool) -> tuple[tuple[str, ...], str | None]:
    """The TensorRT-RTX targets to build for and why, when they differ from what was asked: an FP8 graph with no
    `--compute-capability` builds for the FP8 targets rather than the portable default, whose Ampere targets could
    not run it (and which TensorRT-RTX builds without a word)."""
    if names or not fp8:
        return tuple(names), None
    chosen = fp8_targets()
    return chosen, (f"FP8 graph: building for {', '.join(chosen)} ({FP8_GPUS}) instead of TensorRT-RTX's portable "
                    "default, whose 8.0 and 8.6 cannot run FP8 (later GPUs need a rebuild; --compute-capability "
                    "chooses)")


def fp8_gpu_problem(gpu_cc: str | None, gpu_name: str | None, subject: str, fix: str) -> str | None:
    """One line when a GPU of compute capability `gpu_cc` cannot run FP8 (None: it can, or no GPU is known), e.g.
    subject 'x.engine has FP8 layers', fix 'use an int8 or fp16 engine on this GPU'. Full TensorRT builds on (and
    for) the GPU it runs on, so the same rule refuses the build and the run."""
    if gpu_cc is None or fp8_capable(gpu_cc):
        return None
    return (f"{subject}, which need {FP8_GPUS}, but this GPU is {gpu_name or 'a GPU'} (compute capability "
            f"{gpu_cc}): {fix}")


def gpu_in_targets(gpu_cc: str, targets: Sequence[str] | None) -> bool:
    """Does a GPU of compute capability `gpu_cc` ('8.9') run an engine built for `targets` (versions;
    None: the portable default, which also covers later architectures from 12.0 on)?"""
    cc = version_numbers(gpu_cc)[:2]
    if targets:
        return any(cc == version_numbers(t)[:2] for t in targets)
    return any(cc == version_numbers(t)[:2] for t in RTX_DEFAULT_TARGETS) or cc >= (12, 0)
