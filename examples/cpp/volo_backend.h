// volo_backend: the one interface volo_infer runs a model through.
//
//   .onnx   -> OpenVINO on the CPU   (volo_backend_openvino.cpp, -DVOLO_WITH_OPENVINO=ON)
//   .engine -> TensorRT on a GPU     (volo_backend_tensorrt.cpp, -DVOLO_WITH_TENSORRT=ON)
//
// Everything else (images, tensor files, batching, softmax/top-k, output) is shared in volo_infer.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "volo_io.h"

namespace volo {

//! How a backend is opened; the TensorRT-only fields are ignored by OpenVINO and vice versa.
struct BackendOptions {
    int threads = 0;                   // OpenVINO: inference threads, 0 = every core
    std::string sidecarPath;           // TensorRT: default ENGINE.json
    std::vector<std::string> plugins;  // TensorRT: plugin libraries to load first
    int device = 0;                    // TensorRT: CUDA device
    bool skipChecks = false;           // TensorRT: sidecar mismatches become warnings
    bool verbose = false;
};

class Backend {
public:
    virtual ~Backend() = default;

    //! The artifact's own description (ONNX metadata_props or the engine sidecar's `metadata`).
    virtual const ArtifactMetadata& metadata() const = 0;

    //! "OpenVINO 2026.4.1 CPU (f32)", "TensorRT 10.13.0 on NVIDIA L4"
    virtual std::string describe() const = 0;

    //! Batch sizes a single infer() call accepts: [minBatch, maxBatch], maxBatch 0 = no limit.
    virtual int64_t minBatch() const = 0;
    virtual int64_t maxBatch() const = 0;

    //! Get ready to run batches of `batch` (OpenVINO compiles for it) so the first infer() is not slower.
    virtual void prepare(int64_t batch) { (void)batch; }

    //! float32 (N, 3, S, S) -> logits (N, classes). Throws volo::Error with a one-line reason.
    virtual Tensor infer(const Tensor& input) = 0;
};

//! Throws volo::Error when the backend was not compiled in (the message says which CMake option).
std::unique_ptr<Backend> openOpenVino(const std::string& path, const BackendOptions& options);
std::unique_ptr<Backend> openTensorRt(const std::string& path, const BackendOptions& options);

//! The backend for `path` by its suffix (.onnx or .engine); anything else is refused in one line.
std::unique_ptr<Backend> openBackend(const std::string& path, const BackendOptions& options);

}  // namespace volo
