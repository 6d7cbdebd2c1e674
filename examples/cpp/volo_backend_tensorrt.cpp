// A volo-export TensorRT engine on a GPU (TensorRT 10.x and 11.x): the TensorRT backend of volo_infer.
//
// Written for TensorRT 10.x and 11.x: only APIs present in both (named I/O tensors,
// setInputShape/setTensorAddress/enqueueV3; no bindings, no enqueueV2, no kEXPLICIT_BATCH).
// Before deserializing, the engine's sidecar (X.engine.json) is compared with the running
// TensorRT and GPU so a mismatch is one clear line instead of an opaque deserialization error.
//
// TensorRT objects are owned by std::unique_ptr, every CUDA call is checked, and nothing
// throws across the TensorRT boundary (the logger callback is noexcept and catches).
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "volo_backend.h"
#include "volo_io.h"

namespace {

// ---------------------------------------------------------------- CUDA helpers

void throwOnCudaError(cudaError_t status, const char* call, const char* file, int line) {
    if (status != cudaSuccess)
        throw volo::Error(std::string("CUDA error ") + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) +
                          ") in " + call + " at " + file + ":" + std::to_string(line));
}

#define CUDA_CHECK(call) throwOnCudaError((call), #call, __FILE__, __LINE__)

//! For destructors, which must not throw: report and carry on.
void warnOnCudaError(cudaError_t status, const char* what) noexcept {
    if (status != cudaSuccess) std::fprintf(stderr, "warning: %s failed: %s\n", what, cudaGetErrorString(status));
}

struct DeviceFree {
    void operator()(void* p) const noexcept { warnOnCudaError(cudaFree(p), "cudaFree"); }
};
using DeviceBuffer = std::unique_ptr<void, DeviceFree>;

DeviceBuffer deviceAlloc(size_t bytes) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 1)));
    return DeviceBuffer(p);
}

struct StreamDestroy {
    void operator()(cudaStream_t s) const noexcept { warnOnCudaError(cudaStreamDestroy(s), "cudaStreamDestroy"); }
};
using CudaStream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;

// ---------------------------------------------------------------- TensorRT helpers

//! Prints TensorRT messages at or above `threshold` and remembers the last error, so a
//! failed call can be explained in one line. Never throws into TensorRT.
class Logger : public nvinfer1::ILogger {
public:
    explicit Logger(Severity threshold) : threshold_(threshold) {}

    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override {
        if (severity <= Severity::kERROR) {
            try {
                std::lock_guard<std::mutex> lock(mutex_);
                lastError_ = msg;
            } catch (...) {  // bad_alloc / system_error: losing the message is better than terminating
            }
        }
        if (severity <= threshold_) std::fprintf(stderr, "[TensorRT %s] %s\n", name(severity), msg);
    }

    //! The last error TensorRT reported, or `fallback` when it reported none.
    std::string lastError(const std::string& fallback) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return lastError_.empty() ? fallback : lastError_;
    }

private:
    static const char* name(Severity s) noexcept {
        switch (s) {
            case Severity::kINTERNAL_ERROR: return "internal error";
            case Severity::kERROR: return "error";
            case Severity::kWARNING: return "warning";
            case Severity::kINFO: return "info";
            case Severity::kVERBOSE: return "verbose";
        }
        return "?";
    }

    Severity threshold_;
    mutable std::mutex mutex_;
    std::string lastError_;
};

//! Plugin libraries registered with TensorRT's global registry; deregistered on destruction
//! (declare it before the runtime so every engine that uses the plugins is gone first).
class PluginLibraries {
public:
    PluginLibraries() = default;
    PluginLibraries(const PluginLibraries&) = delete;
    PluginLibraries& operator=(const PluginLibraries&) = delete;

    void load(const std::string& path, const Logger& logger) {
        if (!std::ifstream(path)) throw volo::Error("plugin library not found: " + path);
        nvinfer1::IPluginRegistry* registry = getPluginRegistry();
        if (registry == nullptr) throw volo::Error("TensorRT has no plugin registry");
        nvinfer1::IPluginRegistry::PluginLibraryHandle handle = registry->loadLibrary(path.c_str());
        if (handle == nullptr)
            throw volo::Error("cannot load plugin library " + path + ": " +
                              logger.lastError("not a TensorRT plugin library for this TensorRT version, or its "
                                               "plugins are already registered"));
        handles_.push_back(handle);
    }

    ~PluginLibraries() {
        nvinfer1::IPluginRegistry* registry = handles_.empty() ? nullptr : getPluginRegistry();
        for (auto it = handles_.rbegin(); registry != nullptr && it != handles_.rend(); ++it)
            registry->deregisterLibrary(*it);
    }

private:
    std::vector<nvinfer1::IPluginRegistry::PluginLibraryHandle> handles_;
};

std::vector<int64_t> toVector(const nvinfer1::Dims& dims) {
    if (dims.nbDims < 0) return {};
    return std::vector<int64_t>(dims.d, dims.d + dims.nbDims);
}

nvinfer1::Dims toDims(const std::vector<int64_t>& shape) {
    if (shape.size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS))
        throw volo::Error("shape " + volo::shapeString(shape) + " has more dims than TensorRT allows");
    nvinfer1::Dims dims{};
    dims.nbDims = static_cast<int32_t>(shape.size());
    std::copy(shape.begin(), shape.end(), dims.d);
    return dims;
}

//! Bytes per element of the data types an I/O tensor of this app may have (enumerators of TensorRT 10.0+).
size_t elementSize(nvinfer1::DataType type, const std::string& tensor) {
    switch (type) {
        case nvinfer1::DataType::kFLOAT: return 4;
        case nvinfer1::DataType::kHALF: return 2;
        case nvinfer1::DataType::kBF16: return 2;
        case nvinfer1::DataType::kINT8: return 1;
        case nvinfer1::DataType::kUINT8: return 1;
        case nvinfer1::DataType::kBOOL: return 1;
        case nvinfer1::DataType::kFP8: return 1;
        case nvinfer1::DataType::kINT32: return 4;
        case nvinfer1::DataType::kINT64: return 8;
        default:
            throw volo::Error("I/O tensor '" + tensor + "' has data type code " +
                              std::to_string(static_cast<int>(type)) + ", which volo_infer does not handle");
    }
}

//! The input's shapes in optimization profile 0; an engine built with a static shape
//! (no profile) accepts exactly its tensor shape.
volo::Profile engineProfile(const nvinfer1::ICudaEngine& engine, const char* input) {
    using nvinfer1::OptProfileSelector;
    volo::Profile profile{toVector(engine.getProfileShape(input, 0, OptProfileSelector::kMIN)),
                          toVector(engine.getProfileShape(input, 0, OptProfileSelector::kOPT)),
                          toVector(engine.getProfileShape(input, 0, OptProfileSelector::kMAX))};
    if (profile.min.empty()) {
        const std::vector<int64_t> fixed = toVector(engine.getTensorShape(input));
        profile = volo::Profile{fixed, fixed, fixed};
    }
    if (profile.min.empty())
        throw volo::Error(std::string("the engine reports no shape for its input '") + input + "'");
    return profile;
}

// ---------------------------------------------------------------- the app

class TensorRtBackend : public volo::Backend {
public:
    TensorRtBackend(const std::string& enginePath, const volo::BackendOptions& options)
        : enginePath_(enginePath),
          options_(options),
          logger_(options_.verbose ? nvinfer1::ILogger::Severity::kINFO : nvinfer1::ILogger::Severity::kWARNING) {
        checkEnvironment();
        load();
    }

    const volo::ArtifactMetadata& metadata() const override { return sidecar_ ? sidecar_->artifact : noMetadata_; }

    std::string describe() const override {
        return "TensorRT " + env_.tensorrt.text + " on " + env_.gpuName + " (compute capability " +
               volo::toString(env_.computeCapability) + ")";
    }

    int64_t minBatch() const override { return profile_.min.at(0); }
    int64_t maxBatch() const override { return profile_.max.at(0); }

    //! Select the GPU and compare the sidecar (when present) with the running TensorRT and GPU.
    void checkEnvironment() {
        int count = 0;
        CUDA_CHECK(cudaGetDeviceCount(&count));
        if (options_.device < 0 || options_.device >= count)
            throw volo::Error("--device " + std::to_string(options_.device) + " does not exist (" +
                              std::to_string(count) + " CUDA device(s))");
        CUDA_CHECK(cudaSetDevice(options_.device));
        cudaDeviceProp prop{};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, options_.device));
        env_.tensorrt = volo::versionFromTensorRtInt(getInferLibVersion());
        env_.computeCapability = volo::ComputeCapability{prop.major, prop.minor};
        env_.gpuName = prop.name;
        int cudaRuntime = 0;
        CUDA_CHECK(cudaRuntimeGetVersion(&cudaRuntime));
        env_.cudaRuntime = volo::versionFromCudaInt(cudaRuntime).text;
        if (getInferLibVersion() != NV_TENSORRT_VERSION)
            warn("compiled against TensorRT headers " + std::to_string(NV_TENSORRT_MAJOR) + "." +
                 std::to_string(NV_TENSORRT_MINOR) + "." + std::to_string(NV_TENSORRT_PATCH) +
                 " but running libnvinfer " + env_.tensorrt.text);

        const std::string sidecarPath =
            options_.sidecarPath.empty() ? volo::sidecarPathFor(enginePath_) : options_.sidecarPath;
        if (!std::ifstream(sidecarPath)) {
            if (!options_.sidecarPath.empty()) throw volo::Error("sidecar not found: " + sidecarPath);
            warn("no sidecar " + sidecarPath + ": cannot check the engine against TensorRT " + env_.tensorrt.text +
                 " on " + env_.gpuName + " before loading it");
            return;
        }
        sidecar_ = std::make_unique<volo::EngineSidecar>(volo::readSidecar(sidecarPath));
        const volo::Compatibility c = volo::checkCompatibility(*sidecar_, env_);
        for (const auto& w : c.warnings) warn(w);
        for (const auto& e : c.errors) {
            if (!options_.skipChecks) throw volo::Error(e + " (--skip-checks tries anyway)");
            warn(e);
        }
        if (!sidecar_->plugins.empty() && options_.plugins.empty())
            warn("the engine was built with plugin libraries (" + sidecar_->plugins.front() +
                 (sidecar_->plugins.size() > 1 ? ", ..." : "") + "); pass them with --plugins");
    }

    //! Load plugin libraries, deserialize the engine and create its execution context.
    void load() {
        for (const auto& path : options_.plugins) plugins_.load(path, logger_);
        const std::string plan = volo::readFile(enginePath_);
        const std::string badSize = volo::checkPlanSize(sidecar_ ? *sidecar_ : volo::EngineSidecar{},
                                                        static_cast<int64_t>(plan.size()), enginePath_);
        if (!badSize.empty()) throw volo::Error(badSize);
        runtime_.reset(nvinfer1::createInferRuntime(logger_));
        if (!runtime_) throw volo::Error("cannot create the TensorRT runtime: " + logger_.lastError("unknown error"));
        engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
        if (!engine_)
            throw volo::Error("cannot deserialize " + enginePath_ + " with TensorRT " + env_.tensorrt.text +
                              ": " + logger_.lastError("not a TensorRT plan") +
                              (sidecar_ ? "" : " (no sidecar: was it built by this TensorRT version on this GPU?)"));
        findIoTensors();
        cudaStream_t stream = nullptr;
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        stream_.reset(stream);
        context_.reset(engine_->createExecutionContext());
        if (!context_)
            throw volo::Error("cannot create an execution context: " + logger_.lastError("out of GPU memory?"));
    }

    //! Run the engine on `input` (N, 3, H, W) with N inside the profile; returns the logits (N, classes).
    volo::Tensor infer(const volo::Tensor& input) override {
        const std::string why = volo::checkInputShape(profile_, input.dims, inputName_);
        if (!why.empty()) throw volo::Error(why);
        if (!context_->setInputShape(inputName_.c_str(), toDims(input.dims)))
            throw volo::Error("TensorRT refused input shape " + volo::shapeString(input.dims) + ": " +
                              logger_.lastError("outside the profile"));

        buffers_.clear();
        volo::Tensor logits;
        for (const std::string& name : ioNames_) {
            const bool isInput = name == inputName_;
            const std::vector<int64_t> shape =
                isInput ? input.dims : toVector(context_->getTensorShape(name.c_str()));
            if (shape.empty() || std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; }))
                throw volo::Error("TensorRT could not infer the shape of '" + name + "' for input " +
                                  volo::shapeString(input.dims));
            const size_t bytes =
                static_cast<size_t>(volo::elementCount(shape)) * elementSize(engine_->getTensorDataType(name.c_str()), name);
            buffers_.push_back(deviceAlloc(bytes));
            if (!context_->setTensorAddress(name.c_str(), buffers_.back().get()))
                throw volo::Error("setTensorAddress failed for '" + name + "': " + logger_.lastError("unknown error"));
            if (isInput) {
                CUDA_CHECK(cudaMemcpyAsync(buffers_.back().get(), input.data.data(), bytes, cudaMemcpyHostToDevice,
                                           stream_.get()));
            } else if (name == outputName_) {
                logits.dims = shape;
                logits.data.resize(bytes / sizeof(float));
                logitsDevice_ = buffers_.back().get();
            }
        }
        enqueue();
        CUDA_CHECK(cudaMemcpyAsync(logits.data.data(), logitsDevice_, logits.data.size() * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream_.get()));
        CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        if (logits.dims.size() != 2 || logits.dims[0] != input.dims[0])
            throw volo::Error("output '" + outputName_ + "' has shape " + volo::shapeString(logits.dims) +
                              "; expected (" + std::to_string(input.dims[0]) + ", classes)");
        if (sidecar_ && sidecar_->artifact.numClasses > 0 && logits.dims[1] != sidecar_->artifact.numClasses)
            warn("engine gives " + std::to_string(logits.dims[1]) + " classes, sidecar says " +
                 std::to_string(sidecar_->artifact.numClasses));
        return logits;
    }


    static void warn(const std::string& message) { std::fprintf(stderr, "warning: %s\n", message.c_str()); }

private:
    //! Every I/O tensor by name; the input and logits are taken from the sidecar when there is one.
    void findIoTensors() {
        std::vector<std::string> inputs, outputs;
        for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
            const std::string name = engine_->getIOTensorName(i);
            const nvinfer1::TensorIOMode mode = engine_->getTensorIOMode(name.c_str());
            if (mode == nvinfer1::TensorIOMode::kINPUT) inputs.push_back(name);
            else if (mode == nvinfer1::TensorIOMode::kOUTPUT) outputs.push_back(name);
            ioNames_.push_back(name);
        }
        if (inputs.size() != 1)
            throw volo::Error("engine has " + std::to_string(inputs.size()) + " inputs; volo_infer feeds exactly one");
        if (outputs.empty()) throw volo::Error("engine has no outputs");
        inputName_ = inputs.front();
        const std::string wanted = sidecar_ ? sidecar_->outputName : "logits";
        outputName_ = std::find(outputs.begin(), outputs.end(), wanted) != outputs.end() ? wanted : outputs.front();
        if (sidecar_ && (inputName_ != sidecar_->inputName || outputName_ != sidecar_->outputName))
            warn("sidecar names I/O '" + sidecar_->inputName + "' -> '" + sidecar_->outputName + "' but the engine has '" +
                 inputName_ + "' -> '" + outputName_ + "': is the sidecar from another engine?");
        for (const std::string& name : {inputName_, outputName_}) {
            if (engine_->getTensorDataType(name.c_str()) != nvinfer1::DataType::kFLOAT)
                throw volo::Error("'" + name + "' is not float32 in this engine; volo-export engines keep float32 I/O");
        }
        profile_ = engineProfile(*engine_, inputName_.c_str());
        if (sidecar_ && (profile_.min != sidecar_->profile.min || profile_.max != sidecar_->profile.max))
            warn("engine profile " + volo::shapeString(profile_.min) + ".." + volo::shapeString(profile_.max) +
                 " differs from the sidecar's; is the sidecar from another engine?");
    }

    void enqueue() {
        if (!context_->enqueueV3(stream_.get()))
            throw volo::Error("enqueueV3 failed: " + logger_.lastError("unknown error"));
    }

    // Declaration order is destruction order reversed: the context goes first, plugins and logger last.
    std::string enginePath_;
    volo::BackendOptions options_;
    volo::ArtifactMetadata noMetadata_;
    Logger logger_;
    volo::RuntimeEnvironment env_;
    std::unique_ptr<volo::EngineSidecar> sidecar_;
    PluginLibraries plugins_;
    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    CudaStream stream_;
    std::vector<DeviceBuffer> buffers_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
    std::vector<std::string> ioNames_;
    std::string inputName_, outputName_;
    volo::Profile profile_;
    void* logitsDevice_ = nullptr;
};

}  // namespace

namespace volo {

std::unique_ptr<Backend> openTensorRt(const std::string& path, const BackendOptions& options) {
    return std::make_unique<TensorRtBackend>(path, options);
}

}  // namespace volo
