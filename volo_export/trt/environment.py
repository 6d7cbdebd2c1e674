"""What the running machine has: TensorRT and TensorRT-RTX versions, CUDA runtime, driver, GPU name
and compute capability. Every probe is optional and answers None when its library or tool is absent, so
this works (and says "nothing") on a CPU-only machine. Parsing lives in `provenance`.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

from volo_export.trt.products import RTX, TENSORRT, find_library
from volo_export.trt.provenance import Environment, cuda_version_from_int, parse_nvidia_smi, visible_gpu_index

_CC_MAJOR, _CC_MINOR = 75, 76  # cudaDevAttrComputeCapabilityMajor / Minor


def installed_version(product: str) -> str | None:
    """The version of products.TENSORRT or RTX importable here, or None."""
    library = find_library("rtx" if product == RTX else "tensorrt")
    return library.version if library else None


def _nvidia_smi() -> tuple[str | None, str | None, str | None]:
    """(name, compute capability, driver) of the GPU CUDA calls device 0."""
    exe, index = shutil.which("nvidia-smi"), visible_gpu_index(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if exe is None or index is None:
        return None, None, None
    try:
        done = subprocess.run([exe, "-i", index, "--query-gpu=name,compute_cap,driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None, None, None
    return parse_nvidia_smi(done.stdout)


def _cudart() -> ctypes.CDLL | None:
    """The CUDA runtime library, found the way Polygraphy finds it (wheels, CUDA_HOME, loader path)."""
    try:
        from polygraphy import cuda
        from polygraphy.exception import PolygraphyException
    except ImportError:
        return None
    try:
        return cuda.wrapper().handle
    except PolygraphyException:
        return None


def _cudart_facts(lib: ctypes.CDLL) -> tuple[str | None, str | None]:
    """(CUDA runtime version, compute capability of device 0) from the runtime library."""
    version, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    runtime = cuda_version_from_int(version.value) if lib.cudaRuntimeGetVersion(ctypes.byref(version)) == 0 else None
    ok = (lib.cudaDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, 0) == 0
          and lib.cudaDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, 0) == 0)
    return runtime, f"{major.value}.{minor.value}" if ok else None


def running_environment() -> Environment:
    """The stack this process would load an engine with."""
    name, cc, driver = _nvidia_smi()
    runtime = None
    lib = _cudart()
    if lib is not None:
        runtime, cudart_cc = _cudart_facts(lib)
        cc = cc or cudart_cc
    return Environment(tensorrt=installed_version(TENSORRT), cuda_runtime=runtime, driver=driver, gpu_name=name,
                       compute_capability=cc, tensorrt_rtx=installed_version(RTX))
