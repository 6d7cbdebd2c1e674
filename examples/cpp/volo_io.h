// volo_io: everything volo_infer needs that does not touch TensorRT or CUDA.
//
//   * tensor files (the format `volo-export preprocess` writes; see README.md)
//   * the artifact's own metadata (`volo_export.*` props of an ONNX, `metadata` of a sidecar)
//   * the engine sidecar (`X.engine.json`, parsed with nlohmann/json)
//   * the compatibility decisions made before an engine is deserialized
//     (TensorRT version, GPU compute capability, batch inside the profile)
//   * softmax, top-k and class-name files
//
// It builds and is tested without TensorRT (cmake -DVOLO_WITH_TENSORRT=OFF).
// Every function reports bad input by throwing volo::Error whose what() is a
// complete one-line explanation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace volo {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------- tensor files

//! A float32 tensor in C order (images: N, 3, H, W; logits: N, classes).
struct Tensor {
    std::vector<int64_t> dims;
    std::vector<float> data;
};

//! Number of elements of `dims`; throws on negative dims or int64 overflow.
int64_t elementCount(const std::vector<int64_t>& dims);

//! "(2, 3, 224, 224)"
std::string shapeString(const std::vector<int64_t>& dims);

//! The bytes of a tensor file (header + little-endian float32 data).
std::string encodeTensor(const Tensor& tensor);

//! Parse the bytes of a tensor file; `source` names it in error messages.
Tensor decodeTensor(const std::string& bytes, const std::string& source);

Tensor readTensorFile(const std::string& path);

//! Writes `path` via a temporary file and a rename, so a failure leaves no partial file.
void writeTensorFile(const std::string& path, const Tensor& tensor);

//! Read a whole file; throws volo::Error naming the path when it cannot be read.
std::string readFile(const std::string& path);

// ---------------------------------------------------------------- engine sidecar

struct Version {
    int major = 0, minor = 0, patch = 0;
    std::string text;  // as written, e.g. "10.13.0.35"
};

//! "10.13.0" or "10.13.0.35" (build number ignored by the checks); throws on anything else.
Version parseVersion(const std::string& text, const std::string& what = "version");

//! The integer getInferLibVersion() returns in TensorRT >= 10: major*10000 + minor*100 + patch.
Version versionFromTensorRtInt(int32_t value);

//! The integer cudaRuntimeGetVersion() returns: major*1000 + minor*10 (12080 -> "12.8").
Version versionFromCudaInt(int32_t value);

struct ComputeCapability {
    int major = 0, minor = 0;
};

//! "8.9" -> {8, 9}
ComputeCapability parseComputeCapability(const std::string& text);
std::string toString(const ComputeCapability& cc);

//! The input's optimization profile: full shapes (batch first), as TensorRT's setShape takes them.
struct Profile {
    std::vector<int64_t> min, opt, max;
};

//! How an RGB image becomes the model's (3, size, size) input (volo_export.models.variants.Preprocessing).
struct Preprocessing {
    int64_t size = 0;
    double cropPct = 0.0;
    std::string interpolation;
    std::vector<double> mean, std;
};

//! The shorter side's length before the centre crop: int(size / crop_pct), as Python computes it (0: invalid).
int64_t resizeTarget(const Preprocessing& p);

//! Prefix of the metadata_props volo-export writes (volo_export/export/metadata.py PREFIX).
constexpr const char* kMetadataPrefix = "volo_export.";

//! What an artifact says about itself: the ONNX's `volo_export.*` metadata_props (ArtifactInfo.to_props),
//! which an engine sidecar carries as `metadata`. Values that are not text are JSON-encoded
//! (num_classes "1000", mean "[0.485, 0.456, 0.406]"). Absent keys stay empty / zero.
struct ArtifactMetadata {
    bool present = false;  // has volo_export.model, as Python's ArtifactInfo.from_props requires
    std::string model, precision, labels;
    int64_t numClasses = 0;
    bool randomWeights = false;  // exported without a checkpoint: predictions are meaningless
    Preprocessing preprocessing;
};

//! Parse the flat props (full keys, e.g. "volo_export.crop_pct"; other keys are ignored).
ArtifactMetadata parseArtifactMetadata(const std::map<std::string, std::string>& props, const std::string& source);

//! Throws volo::Error naming `source` unless `m` is present and its preprocessing and class count
//! are usable (what decoding images for the model needs).
void checkPreprocessing(const ArtifactMetadata& m, const std::string& source);

//! The sidecar format this code reads (volo_export/trt/provenance.py SIDECAR_FORMAT).
constexpr const char* kSidecarFormat = "volo-export.engine/1";
//! No TensorRT plan is smaller than this (provenance.py MIN_PLAN_BYTES).
constexpr int64_t kMinPlanBytes = 1024;

//! The fields of `X.engine.json` that the C++ app uses (README.md lists the keys).
//! Optional fields that the sidecar leaves out or sets to null stay empty.
struct EngineSidecar {
    std::string engineFile;                   // engine.file
    int64_t engineBytes = -1;                 // engine.bytes (-1: unknown)
    bool hasTensorrtVersion = false;
    Version tensorrtVersion;                  // environment.tensorrt
    std::string cudaRuntime;                  // environment.cuda_runtime, e.g. "12.8"
    bool hasComputeCapability = false;
    ComputeCapability computeCapability;      // environment.compute_capability
    std::string gpuName;                      // environment.gpu_name
    std::string inputName = "input";          // io.input
    std::string outputName = "logits";        // io.output
    Profile profile;                          // profile.{min,opt,max}
    bool versionCompatible = false;           // build.version_compatible
    std::string hardwareCompat = "none";      // build.hardware_compat: none | ampere-plus | same-compute-capability
    std::vector<std::string> plugins;         // build.plugins
    ArtifactMetadata artifact;                // metadata: the ONNX's volo_export.* props
};

EngineSidecar parseSidecar(const std::string& jsonText, const std::string& source);
EngineSidecar readSidecar(const std::string& path);

//! "X.engine" -> "X.engine.json"
std::string sidecarPathFor(const std::string& enginePath);

// ---------------------------------------------------------------- compatibility

//! What the running process has: TensorRT library version, CUDA runtime and the selected GPU.
struct RuntimeEnvironment {
    Version tensorrt;
    std::string cudaRuntime;  // empty: unknown
    ComputeCapability computeCapability;
    std::string gpuName;
};

//! Findings of comparing a sidecar with the running environment: `errors` mean the
//! engine will not deserialize or run here; `warnings` mean it may, but differently.
struct Compatibility {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    bool ok() const { return errors.empty(); }
};

//! The same policy as volo_export.trt.provenance.compatibility: TensorRT major.minor must match
//! (patch: warning), or for version-compatible engines be the same major and not older; the compute
//! capability must match (ampere-plus: >= 8.0); another GPU model or CUDA major: warning.
Compatibility checkCompatibility(const EngineSidecar& sidecar, const RuntimeEnvironment& env);

//! Empty when a plan file of `bytes` bytes can be the engine the sidecar describes, else the reason.
std::string checkPlanSize(const EngineSidecar& sidecar, int64_t bytes, const std::string& enginePath);

//! Empty when `dims` (the input tensor's shape) fits the profile, else the one-line reason.
//! Rank and every non-batch dim must lie within [min, max]; so must the batch.
std::string checkInputShape(const Profile& profile, const std::vector<int64_t>& dims,
                            const std::string& inputName = "input");

// ---------------------------------------------------------------- predictions

//! Numerically stable softmax of one row of logits (computed in double).
std::vector<float> softmax(const float* logits, size_t n);

struct Prediction {
    int64_t index = 0;
    float logit = 0.0f;
    float probability = 0.0f;
};

//! The k largest logits, highest first; ties go to the lower index; NaN ranks last.
std::vector<Prediction> topK(const float* logits, size_t n, size_t k);

//! Number of NaN/Inf values (a broken engine, e.g. FP16 overflow, shows up here).
size_t countNonFinite(const float* values, size_t n);

//! One class name per line (line i = class i); trailing whitespace and '\r' are dropped.
std::vector<std::string> readLabels(const std::string& path);

//! labels[index], or "class <index>" when there is no such line.
std::string labelFor(const std::vector<std::string>& labels, int64_t index);

//! `text` as a JSON string literal (quotes included).
std::string jsonQuote(const std::string& text);

}  // namespace volo
