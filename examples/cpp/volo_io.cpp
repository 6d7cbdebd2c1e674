#include "volo_io.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

namespace volo {
namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------- tensor file layout
// Little-endian: magic[8] "VOLOTNSR", u32 version, u32 dtype, u32 ndim, u32 reserved,
// i64 dims[ndim], float32 data. Twin of volo_export/tensorfile.py.
constexpr char kMagic[8] = {'V', 'O', 'L', 'O', 'T', 'N', 'S', 'R'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kFloat32 = 1;
constexpr uint32_t kMaxDims = 8;
constexpr size_t kFixedHeader = 24;

bool hostIsLittleEndian() {
    const uint16_t probe = 1;
    unsigned char first = 0;
    std::memcpy(&first, &probe, 1);
    return first == 1;
}

uint64_t loadLE(const char* p, size_t bytes) {
    uint64_t value = 0;
    for (size_t i = 0; i < bytes; ++i) value |= uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
    return value;
}

void storeLE(std::string& out, uint64_t value, size_t bytes) {
    for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

// ---------------------------------------------------------------- JSON (nlohmann/json)

const char* typeName(const Json& value) {
    if (value.is_null()) return "null";
    if (value.is_boolean()) return "a boolean";
    if (value.is_number()) return "a number";
    if (value.is_string()) return "a string";
    if (value.is_array()) return "an array";
    return "an object";
}

[[noreturn]] void typeError(const std::string& what, const char* expected, const Json& got) {
    throw Error(what + " must be " + expected + ", got " + typeName(got));
}

const std::string& asString(const Json& value, const std::string& what) {
    if (!value.is_string()) typeError(what, "a string", value);
    return value.get_ref<const std::string&>();
}

bool asBool(const Json& value, const std::string& what) {
    if (!value.is_boolean()) typeError(what, "a boolean", value);
    return value.get<bool>();
}

double asDouble(const Json& value, const std::string& what) {
    if (!value.is_number()) typeError(what, "a number", value);
    return value.get<double>();
}

int64_t asInt(const Json& value, const std::string& what) {
    if (value.is_number_integer()) return value.get<int64_t>();
    if (value.is_number_float()) {
        const double d = value.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
        throw Error(what + " must be an integer, got " + value.dump());
    }
    typeError(what, "an integer", value);
}

const Json& asArray(const Json& value, const std::string& what) {
    if (!value.is_array()) typeError(what, "an array", value);
    return value;
}

const Json& asObject(const Json& value, const std::string& what) {
    if (!value.is_object()) typeError(what, "an object", value);
    return value;
}


//! `text` parsed as one JSON document; a syntax error names `source`, the line and column.
Json parseDocument(const std::string& text, const std::string& source) {
    try {
        return Json::parse(text);
    } catch (const Json::parse_error& e) {
        std::string why = e.what();  // "[json.exception.parse_error.101] parse error at line 2, column 30: ..."
        const size_t bracket = why.find("] ");
        if (bracket != std::string::npos) why = why.substr(bracket + 2);
        throw Error(source + " is not valid JSON: " + why);
    }
}

// ---------------------------------------------------------------- sidecar helpers

//! Member `key` of `object`, or nullptr when absent or null.
const Json* member(const Json& object, const std::string& key) {
    if (!object.is_object()) return nullptr;
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
}

const Json& require(const Json& object, const std::string& key, const std::string& what) {
    const Json* value = member(object, key);
    if (value == nullptr) throw Error(what + " has no '" + key + "'");
    return *value;
}

std::vector<int64_t> intList(const Json& value, const std::string& what) {
    std::vector<int64_t> out;
    for (const Json& item : asArray(value, what)) out.push_back(asInt(item, what + " item"));
    return out;
}

std::vector<double> doubleList(const Json& value, const std::string& what) {
    std::vector<double> out;
    for (const Json& item : asArray(value, what)) out.push_back(asDouble(item, what + " item"));
    return out;
}

//! "ampere-plus", "AMPERE_PLUS", "HardwareCompatibilityLevel.AMPERE_PLUS" -> "ampere-plus"
std::string normalizeHardwareCompat(std::string level) {
    const size_t dot = level.rfind('.');
    if (dot != std::string::npos) level = level.substr(dot + 1);
    for (char& c : level) c = (c == '_') ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return level;
}

//! profile.{min,opt,max}: full input shapes [N, C, H, W].
Profile parseProfile(const Json& value, const std::string& what) {
    asObject(value, what);
    Profile profile{intList(require(value, "min", what), what + ".min"), intList(require(value, "opt", what), what + ".opt"),
                    intList(require(value, "max", what), what + ".max")};
    if (profile.min.empty() || profile.min.size() != profile.opt.size() || profile.min.size() != profile.max.size())
        throw Error(what + " shapes must have the same, non-zero rank");
    for (size_t i = 0; i < profile.min.size(); ++i) {
        if (profile.min[i] < 0 || profile.min[i] > profile.opt[i] || profile.opt[i] > profile.max[i])
            throw Error(what + " needs 0 <= min <= opt <= max in every dim, got min " + shapeString(profile.min) +
                        " opt " + shapeString(profile.opt) + " max " + shapeString(profile.max));
    }
    return profile;
}

std::string shortVersion(const Version& v) {
    return std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
}

}  // namespace

// ---------------------------------------------------------------- tensor files

int64_t elementCount(const std::vector<int64_t>& dims) {
    int64_t count = 1;
    for (int64_t d : dims) {
        if (d < 0) throw Error("negative dim in shape " + shapeString(dims));
        if (d != 0 && count > std::numeric_limits<int64_t>::max() / d)
            throw Error("shape " + shapeString(dims) + " is too large");
        count *= d;
    }
    return count;
}

std::string shapeString(const std::vector<int64_t>& dims) {
    std::string out = "(";
    for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
    return out + ")";
}

std::string encodeTensor(const Tensor& tensor) {
    if (tensor.dims.empty() || tensor.dims.size() > kMaxDims)
        throw Error("tensor files hold 1..8 dims, got " + std::to_string(tensor.dims.size()));
    if (elementCount(tensor.dims) != static_cast<int64_t>(tensor.data.size()))
        throw Error("tensor data holds " + std::to_string(tensor.data.size()) + " values but shape " +
                    shapeString(tensor.dims) + " needs " + std::to_string(elementCount(tensor.dims)));
    std::string out(kMagic, sizeof(kMagic));
    storeLE(out, kVersion, 4);
    storeLE(out, kFloat32, 4);
    storeLE(out, tensor.dims.size(), 4);
    storeLE(out, 0, 4);
    for (int64_t d : tensor.dims) storeLE(out, static_cast<uint64_t>(d), 8);
    if (hostIsLittleEndian()) {
        out.append(reinterpret_cast<const char*>(tensor.data.data()), tensor.data.size() * sizeof(float));
    } else {
        for (float f : tensor.data) {
            uint32_t bits = 0;
            std::memcpy(&bits, &f, 4);
            storeLE(out, bits, 4);
        }
    }
    return out;
}

Tensor decodeTensor(const std::string& bytes, const std::string& source) {
    if (bytes.size() < kFixedHeader)
        throw Error(source + " is not a volo-export tensor file: only " + std::to_string(bytes.size()) + " bytes");
    if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
        throw Error(source + " is not a volo-export tensor file (no VOLOTNSR magic; write one with "
                             "`volo-export preprocess IMAGE --out FILE`)");
    const uint64_t version = loadLE(bytes.data() + 8, 4);
    const uint64_t dtype = loadLE(bytes.data() + 12, 4);
    const uint64_t ndim = loadLE(bytes.data() + 16, 4);
    if (version != kVersion)
        throw Error(source + " has tensor file version " + std::to_string(version) + "; this program reads 1");
    if (dtype != kFloat32) throw Error(source + " has dtype code " + std::to_string(dtype) + "; only 1 (float32) exists");
    if (ndim < 1 || ndim > kMaxDims) throw Error(source + " has " + std::to_string(ndim) + " dims; 1..8 allowed");
    const size_t offset = kFixedHeader + 8 * ndim;
    if (bytes.size() < offset) throw Error(source + " is truncated inside its header");
    Tensor tensor;
    for (size_t i = 0; i < ndim; ++i) {
        const auto d = static_cast<int64_t>(loadLE(bytes.data() + kFixedHeader + 8 * i, 8));
        tensor.dims.push_back(d);
    }
    const int64_t count = elementCount(tensor.dims);
    const auto available = static_cast<uint64_t>(bytes.size() - offset);
    if (static_cast<uint64_t>(count) > available / 4 || available != static_cast<uint64_t>(count) * 4)
        throw Error(source + " holds " + std::to_string(bytes.size()) + " bytes but shape " + shapeString(tensor.dims) +
                    " needs " + std::to_string(offset) + " + 4 * " + std::to_string(count));
    tensor.data.resize(static_cast<size_t>(count));
    if (hostIsLittleEndian()) {
        std::memcpy(tensor.data.data(), bytes.data() + offset, static_cast<size_t>(count) * 4);
    } else {
        for (size_t i = 0; i < tensor.data.size(); ++i) {
            const auto bits = static_cast<uint32_t>(loadLE(bytes.data() + offset + 4 * i, 4));
            std::memcpy(&tensor.data[i], &bits, 4);
        }
    }
    return tensor;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open " + path + ": " + std::strerror(errno));
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) throw Error("cannot read " + path);
    return buffer.str();
}

Tensor readTensorFile(const std::string& path) { return decodeTensor(readFile(path), path); }

void writeTensorFile(const std::string& path, const Tensor& tensor) {
    const std::string bytes = encodeTensor(tensor);
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw Error("cannot write " + tmp + ": " + std::strerror(errno));
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        out.close();
        if (!out) {
            std::remove(tmp.c_str());
            throw Error("cannot write " + tmp);
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(tmp.c_str());
        throw Error("cannot move " + tmp + " to " + path + ": " + why);
    }
}

// ---------------------------------------------------------------- versions

Version parseVersion(const std::string& text, const std::string& what) {
    Version v;
    v.text = text;
    int parts[4] = {0, 0, 0, 0};
    int count = 0;
    size_t i = 0;
    while (i < text.size() && count < 4) {
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) break;
        long value = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && value < 1000000)
            value = value * 10 + (text[i++] - '0');
        parts[count++] = static_cast<int>(value);
        if (i < text.size() && text[i] == '.') ++i;
        else break;
    }
    if (count < 2 || i != text.size()) throw Error(what + " must look like 10.13.0, got '" + text + "'");
    v.major = parts[0];
    v.minor = parts[1];
    v.patch = parts[2];
    return v;
}

Version versionFromTensorRtInt(int32_t value) {
    Version v;
    v.major = value / 10000;
    v.minor = (value / 100) % 100;
    v.patch = value % 100;
    v.text = shortVersion(v);
    return v;
}

Version versionFromCudaInt(int32_t value) {
    Version v;
    v.major = value / 1000;
    v.minor = (value % 1000) / 10;
    v.text = std::to_string(v.major) + "." + std::to_string(v.minor);
    return v;
}

ComputeCapability parseComputeCapability(const std::string& text) {
    const Version v = parseVersion(text, "compute capability");
    if (std::count(text.begin(), text.end(), '.') != 1)
        throw Error("compute capability must look like 8.9, got '" + text + "'");
    return ComputeCapability{v.major, v.minor};
}

std::string toString(const ComputeCapability& cc) { return std::to_string(cc.major) + "." + std::to_string(cc.minor); }

// ---------------------------------------------------------------- artifact metadata

ArtifactMetadata parseArtifactMetadata(const std::map<std::string, std::string>& props, const std::string& source) {
    auto text = [&](const char* key) -> std::string {
        const auto it = props.find(std::string(kMetadataPrefix) + key);
        return it == props.end() ? std::string() : it->second;
    };
    auto encoded = [&](const char* key) -> Json {
        const std::string value = text(key);
        return value.empty() ? Json() : parseDocument(value, source + "." + kMetadataPrefix + key);
    };
    auto name = [&](const char* key) { return source + "." + kMetadataPrefix + key; };
    ArtifactMetadata m;
    m.present = props.count(std::string(kMetadataPrefix) + "model") > 0;
    m.model = text("model");
    m.precision = text("precision");
    m.labels = text("labels");
    m.preprocessing.interpolation = text("interpolation");
    if (const Json n = encoded("num_classes"); !n.is_null()) m.numClasses = asInt(n, name("num_classes"));
    if (const Json r = encoded("random_weights"); !r.is_null()) m.randomWeights = asBool(r, name("random_weights"));
    if (const Json n = encoded("image_size"); !n.is_null()) m.preprocessing.size = asInt(n, name("image_size"));
    if (const Json c = encoded("crop_pct"); !c.is_null()) m.preprocessing.cropPct = asDouble(c, name("crop_pct"));
    if (const Json v = encoded("mean"); !v.is_null()) m.preprocessing.mean = doubleList(v, name("mean"));
    if (const Json v = encoded("std"); !v.is_null()) m.preprocessing.std = doubleList(v, name("std"));
    return m;
}

void checkPreprocessing(const ArtifactMetadata& m, const std::string& source) {
    if (!m.present) throw Error(source + " carries no volo-export metadata (was it exported by volo-export?)");
    const Preprocessing& p = m.preprocessing;
    auto bad = [&](const std::string& why) {
        throw Error(source + " has incomplete volo-export metadata (" + why + ")");
    };
    if (p.size <= 0 || p.size > 65536) bad("image_size " + std::to_string(p.size));
    if (!(p.cropPct > 0.0) || !std::isfinite(p.cropPct) || resizeTarget(p) < 1)
        bad("crop_pct " + std::to_string(p.cropPct));
    if (p.interpolation != "bicubic" && p.interpolation != "bilinear" && p.interpolation != "nearest" &&
        p.interpolation != "lanczos")
        bad("interpolation '" + p.interpolation + "'");
    if (p.mean.size() != 3 || p.std.size() != 3) bad("mean and std need 3 values each");
    for (const double s : p.std)
        if (!(s != 0.0) || !std::isfinite(s)) bad("std has a zero or non-finite value");
    if (m.numClasses <= 0) bad("num_classes " + std::to_string(m.numClasses));
}

int64_t resizeTarget(const Preprocessing& p) {
    const double target = static_cast<double>(p.size) / p.cropPct;  // Python: int(size / crop_pct)
    return target >= 1.0 && target < 1.0e9 ? static_cast<int64_t>(target) : 0;
}

// ---------------------------------------------------------------- sidecar

EngineSidecar parseSidecar(const std::string& jsonText, const std::string& source) {
    const Json root = parseDocument(jsonText, source);
    asObject(root, source);
    const Json* format = member(root, "format");
    const std::string found = format == nullptr ? "none" : asString(*format, source + " 'format'");
    if (found != kSidecarFormat)
        throw Error(source + " is not a volo-export engine sidecar (format '" + found + "', expected '" +
                    kSidecarFormat + "')");
    EngineSidecar s;
    if (const Json* engine = member(root, "engine")) {
        if (const Json* v = member(*engine, "file")) s.engineFile = asString(*v, source + " engine.file");
        if (const Json* v = member(*engine, "bytes")) s.engineBytes = asInt(*v, source + " engine.bytes");
    }
    const Json& env = require(root, "environment", source);
    if (const Json* v = member(env, "tensorrt")) {
        s.tensorrtVersion = parseVersion(asString(*v, source + " environment.tensorrt"), source + " environment.tensorrt");
        s.hasTensorrtVersion = true;
    }
    if (const Json* v = member(env, "compute_capability")) {
        s.computeCapability = parseComputeCapability(asString(*v, source + " environment.compute_capability"));
        s.hasComputeCapability = true;
    }
    if (const Json* v = member(env, "cuda_runtime")) s.cudaRuntime = asString(*v, source + " environment.cuda_runtime");
    if (const Json* v = member(env, "gpu_name")) s.gpuName = asString(*v, source + " environment.gpu_name");
    if (const Json* io = member(root, "io")) {
        if (const Json* v = member(*io, "input")) s.inputName = asString(*v, source + " io.input");
        if (const Json* v = member(*io, "output")) s.outputName = asString(*v, source + " io.output");
    }
    s.profile = parseProfile(require(root, "profile", source), source + " profile");
    if (const Json* build = member(root, "build")) {
        if (const Json* v = member(*build, "version_compatible"))
            s.versionCompatible = asBool(*v, source + " build.version_compatible");
        if (const Json* v = member(*build, "hardware_compat"))
            s.hardwareCompat = normalizeHardwareCompat(asString(*v, source + " build.hardware_compat"));
        if (const Json* v = member(*build, "plugins"))
            for (const Json& item : asArray(*v, source + " build.plugins"))
                s.plugins.push_back(asString(item, source + " build.plugins item"));
    }
    if (const Json* metadata = member(root, "metadata")) {
        const std::string what = source + " metadata";
        std::map<std::string, std::string> props;
        for (const auto& [key, value] : asObject(*metadata, what).items())
            if (!value.is_null()) props[key] = asString(value, what + "." + key);
        s.artifact = parseArtifactMetadata(props, what);
    }
    return s;
}

EngineSidecar readSidecar(const std::string& path) { return parseSidecar(readFile(path), path); }

std::string sidecarPathFor(const std::string& enginePath) { return enginePath + ".json"; }

// ---------------------------------------------------------------- compatibility

Compatibility checkCompatibility(const EngineSidecar& sidecar, const RuntimeEnvironment& env) {
    Compatibility out;
    const std::string name = sidecar.engineFile.empty() ? std::string("the engine") : sidecar.engineFile;

    const Version& built = sidecar.tensorrtVersion;
    const Version& running = env.tensorrt;
    const bool sameMinor = running.major == built.major && running.minor == built.minor;
    if (!sidecar.hasTensorrtVersion) {
        out.warnings.push_back("the sidecar of " + name + " does not say which TensorRT built it");
    } else if (sidecar.versionCompatible) {
        if (running.major != built.major || running.minor < built.minor)
            out.errors.push_back(name + " is version-compatible from TensorRT " + built.text + " on, within TensorRT " +
                                 std::to_string(built.major) + ".x; this program runs TensorRT " + running.text +
                                 ": rebuild here");
    } else if (!sameMinor) {
        out.errors.push_back(name + " was built with TensorRT " + built.text + " but this program runs TensorRT " +
                             running.text + ": a plan loads only on the TensorRT version that built it; rebuild here "
                             "(volo-export engine) or build with --version-compatible");
    } else if (running.patch != built.patch) {
        out.warnings.push_back(name + " was built with TensorRT " + built.text + ", this program runs " + running.text +
                               " (same minor): usually loads; rebuild if it does not");
    }

    const ComputeCapability& cc = sidecar.computeCapability;
    const ComputeCapability& here = env.computeCapability;
    const std::string where = (sidecar.gpuName.empty() ? std::string("a GPU") : sidecar.gpuName) +
                              " (compute capability " + toString(cc) + ")";
    const std::string gpuHere = (env.gpuName.empty() ? std::string("this GPU") : env.gpuName) +
                                " (compute capability " + toString(here) + ")";
    const std::string& level = sidecar.hardwareCompat;
    if (level != "none" && level != "ampere-plus" && level != "same-compute-capability")
        out.warnings.push_back("unknown build.hardware_compat '" + level + "'; checking the exact compute capability");
    if (!sidecar.hasComputeCapability) {
        out.warnings.push_back("the sidecar of " + name + " does not say which GPU built it");
    } else if (level == "ampere-plus") {
        if (here.major < 8)
            out.errors.push_back(name + " is hardware-compatible with Ampere and newer (compute capability >= 8.0) "
                                 "but this GPU is " + gpuHere);
    } else if (cc.major != here.major || cc.minor != here.minor) {
        out.errors.push_back(name + " was built on " + where + " but this is " + gpuHere +
                             ": plans are specific to the GPU architecture; rebuild here" +
                             (level == "same-compute-capability" ? "" : " or build with --hardware-compat ampere-plus"));
    } else if (!sidecar.gpuName.empty() && !env.gpuName.empty() && sidecar.gpuName != env.gpuName) {
        out.warnings.push_back(name + " was built on " + sidecar.gpuName + ", running on " + env.gpuName +
                               " (same compute capability): it loads, but kernels were timed on the other GPU");
    }

    if (!sidecar.cudaRuntime.empty() && !env.cudaRuntime.empty()) {
        const Version b = parseVersion(sidecar.cudaRuntime, "environment.cuda_runtime");
        const Version r = parseVersion(env.cudaRuntime, "CUDA runtime");
        if (b.major != r.major)
            out.warnings.push_back(name + " was built against CUDA " + sidecar.cudaRuntime + ", this program runs CUDA " +
                                   env.cudaRuntime + ": TensorRT builds for different CUDA majors are different "
                                   "libraries; rebuild if loading fails");
    }
    return out;
}

std::string checkPlanSize(const EngineSidecar& sidecar, int64_t bytes, const std::string& enginePath) {
    if (bytes < kMinPlanBytes)
        return enginePath + " is " + std::to_string(bytes) + " bytes: too small to be a TensorRT plan";
    if (sidecar.engineBytes >= 0 && bytes != sidecar.engineBytes)
        return enginePath + " does not match its sidecar (" + std::to_string(bytes) + " bytes, sidecar says " +
               std::to_string(sidecar.engineBytes) + "): the file was replaced or damaged; rebuild it with "
               "volo-export engine";
    return {};
}

std::string checkInputShape(const Profile& profile, const std::vector<int64_t>& dims, const std::string& inputName) {
    if (dims.size() != profile.min.size())
        return "input tensor has shape " + shapeString(dims) + " but the engine's '" + inputName + "' has rank " +
               std::to_string(profile.min.size()) + " (profile min " + shapeString(profile.min) + ")";
    if (!dims.empty() && (dims[0] < profile.min[0] || dims[0] > profile.max[0]))
        return "batch " + std::to_string(dims[0]) + " is outside the engine's profile for '" + inputName + "' (batch " +
               std::to_string(profile.min[0]) + ".." + std::to_string(profile.max[0]) +
               "); split the input or rebuild with a larger --max-batch";
    for (size_t i = 1; i < dims.size(); ++i) {
        if (dims[i] < profile.min[i] || dims[i] > profile.max[i])
            return "input tensor has shape " + shapeString(dims) + " but the engine's '" + inputName +
                   "' accepts " + shapeString(profile.min) + " .. " + shapeString(profile.max) +
                   " (was it preprocessed for another model?)";
    }
    return {};
}

// ---------------------------------------------------------------- predictions

std::vector<float> softmax(const float* logits, size_t n) {
    std::vector<float> out(n);
    if (n == 0) return out;
    double maxValue = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < n; ++i) maxValue = std::max(maxValue, static_cast<double>(logits[i]));
    double sum = 0.0;
    std::vector<double> e(n);
    for (size_t i = 0; i < n; ++i) sum += (e[i] = std::exp(static_cast<double>(logits[i]) - maxValue));
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(e[i] / sum);
    return out;
}

std::vector<Prediction> topK(const float* logits, size_t n, size_t k) {
    const std::vector<float> probs = softmax(logits, n);
    std::vector<int64_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<int64_t>(i);
    auto better = [&](int64_t a, int64_t b) {  // strict weak order: larger logit, then lower index
        const float x = logits[a], y = logits[b];
        const bool xNan = std::isnan(x), yNan = std::isnan(y);
        if (xNan != yNan) return yNan;  // any number ranks above NaN
        if (!xNan && x != y) return x > y;
        return a < b;
    };
    k = std::min(k, n);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), better);
    std::vector<Prediction> out;
    for (size_t i = 0; i < k; ++i) out.push_back({order[i], logits[order[i]], probs[static_cast<size_t>(order[i])]});
    return out;
}

size_t countNonFinite(const float* values, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; ++i) count += std::isfinite(values[i]) ? 0 : 1;
    return count;
}

std::vector<std::string> readLabels(const std::string& path) {
    std::istringstream in(readFile(path));
    std::vector<std::string> labels;
    std::string line;
    while (std::getline(in, line)) {
        while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
        labels.push_back(line);
    }
    if (labels.empty()) throw Error("labels file " + path + " is empty (expected one class name per line)");
    return labels;
}

std::string labelFor(const std::vector<std::string>& labels, int64_t index) {
    if (index >= 0 && static_cast<size_t>(index) < labels.size() && !labels[static_cast<size_t>(index)].empty())
        return labels[static_cast<size_t>(index)];
    return "class " + std::to_string(index);
}

std::string jsonQuote(const std::string& text) {
    return Json(text).dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace volo
