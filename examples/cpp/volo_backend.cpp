#include "volo_backend.h"

#include <filesystem>

namespace volo {
namespace {

bool endsWith(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

#ifndef VOLO_WITH_OPENVINO
std::unique_ptr<Backend> openOpenVino(const std::string& path, const BackendOptions&) {
    throw Error(path + " is an ONNX model, but this volo_infer was built without OpenVINO (configure with "
                "-DVOLO_WITH_OPENVINO=ON -DOpenVINO_DIR=...)");
}
#endif

#ifndef VOLO_WITH_TENSORRT
std::unique_ptr<Backend> openTensorRt(const std::string& path, const BackendOptions& options) {
    // The sidecar is read all the same, so a broken one is reported as such (as the GPU build would).
    const std::string sidecar = options.sidecarPath.empty() ? sidecarPathFor(path) : options.sidecarPath;
    if (std::filesystem::exists(sidecar)) readSidecar(sidecar);
    throw Error(path + " is a TensorRT engine, but this volo_infer was built without TensorRT (configure with "
                "-DVOLO_WITH_TENSORRT=ON on a machine with CUDA and TensorRT; on a CPU run the .onnx instead)");
}
#endif

std::unique_ptr<Backend> openBackend(const std::string& path, const BackendOptions& options) {
    if (std::filesystem::is_directory(path)) throw Error(path + " is a folder, not a model");
    if (!std::filesystem::exists(path)) throw Error("model not found: " + path);
    if (endsWith(path, ".onnx")) return openOpenVino(path, options);
    if (endsWith(path, ".engine") || endsWith(path, ".plan")) return openTensorRt(path, options);
    throw Error(path + " is not a model volo_infer runs: give an .onnx (OpenVINO, CPU) or an .engine "
                "(TensorRT, GPU) written by volo-export");
}

}  // namespace volo
