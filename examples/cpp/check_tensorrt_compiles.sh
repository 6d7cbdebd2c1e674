#!/usr/bin/env bash
# Compile-check volo_infer's TensorRT backend with -Werror against TensorRT headers, without a TensorRT
# library or GPU: configures with -DVOLO_WITH_TENSORRT=ON against a stub libnvinfer.so and builds the
# object files of the app (no link). Needs the CUDA toolkit's headers (find_package(CUDAToolkit)).
#
#   examples/cpp/check_tensorrt_compiles.sh /path/to/TensorRT/include [BUILD_DIR]
#
# e.g. the public headers of github.com/NVIDIA/TensorRT (include/ of release/10.0, release/10.13, main).
set -euo pipefail
include=$(realpath "${1:?usage: check_tensorrt_compiles.sh TENSORRT_INCLUDE_DIR [BUILD_DIR]}")
build=${2:-$(mktemp -d)}
source_dir=$(cd "$(dirname "$0")" && pwd)
root="$build/tensorrt-root"
mkdir -p "$root/lib"
ln -sfn "$include" "$root/include"
echo "" | cc -shared -x c - -o "$root/lib/libnvinfer.so"  # only for find_library: nothing is linked
cmake -S "$source_dir" -B "$build/build" -DVOLO_WITH_OPENVINO=OFF -DVOLO_WITH_TENSORRT=ON \
  -DTENSORRT_ROOT="$root" -DVOLO_WERROR=ON | grep "TensorRT [0-9]"
make -C "$build/build" --no-print-directory volo_backend_tensorrt.o volo_backend.o volo_infer.o
echo "volo_infer's TensorRT backend compiles with -Werror against $include"
