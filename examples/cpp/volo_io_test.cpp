// Unit tests of volo_io (no TensorRT, no CUDA, no test framework): run by ctest.
// Each CHECK prints the failing expression; the exit code is the number of failures.
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "volo_io.h"

namespace {

int failures = 0;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            ++failures;                                                                  \
            std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond "\n";   \
        }                                                                                \
    } while (0)

//! `fn` must throw volo::Error whose message contains `needle`.
void expectError(const std::function<void()>& fn, const std::string& needle, int line) {
    try {
        fn();
    } catch (const volo::Error& e) {
        if (std::string(e.what()).find(needle) == std::string::npos) {
            ++failures;
            std::cerr << "line " << line << ": error '" << e.what() << "' lacks '" << needle << "'\n";
        }
        if (std::string(e.what()).find('\n') != std::string::npos) {
            ++failures;
            std::cerr << "line " << line << ": error message spans lines\n";
        }
        return;
    }
    ++failures;
    std::cerr << "line " << line << ": expected an error containing '" << needle << "'\n";
}
#define EXPECT_ERROR(stmt, needle) expectError([&] { stmt; }, needle, __LINE__)

// Shaped like volo_export/trt/provenance.py EngineProvenance.to_dict().
const char* kSidecar = R"({
  "format": "volo-export.engine/1",
  "engine": {"file": "m.engine", "sha256": "ab", "bytes": 4096},
  "onnx": {"file": "m.onnx", "sha256": "cd"},
  "environment": {"tensorrt": "10.13.0.35", "cuda_runtime": "12.8", "driver": "570.1",
                  "gpu_name": "NVIDIA L4", "compute_capability": "8.9"},
  "build": {"min_batch": 1, "opt_batch": 4, "max_batch": 8, "hardware_compat": "none",
            "version_compatible": false, "plugins": ["libvolo_plugins.so"], "strongly_typed": true},
  "profile": {"input": "input", "min": [1, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [8, 3, 64, 64]},
  "io": {"input": "input", "output": "logits"},
  "trtexec": "trtexec --onnx=m.onnx",
  "calibration": {},
  "metadata": {"volo_export.model": "volo_tiny_digits", "volo_export.num_classes": "10",
               "volo_export.labels": "digits", "volo_export.precision": "fp16",
               "volo_export.image_size": "64", "volo_export.crop_pct": "1.0",
               "volo_export.interpolation": "bicubic", "volo_export.mean": "[0.485, 0.456, 0.406]",
               "volo_export.std": "[0.229, 0.224, 0.225]"},
  "volo_export_version": "0.1.0",
  "unknown_future_key": {"nested": [1, 2, {"x": null}]}
})";

//! kSidecar with the text `from` replaced by `to` (which must occur).
std::string sidecarWith(const std::string& from, const std::string& to) {
    std::string text = kSidecar;
    const size_t at = text.find(from);
    if (at == std::string::npos) throw std::logic_error("test bug: '" + from + "' not in kSidecar");
    return text.replace(at, from.size(), to);
}

void testTensorRoundTrip() {
    volo::Tensor t{{2, 3}, {1.5f, -2.0f, 0.0f, 3.25e-8f, -1e30f, 7.0f}};
    const std::string bytes = volo::encodeTensor(t);
    CHECK(bytes.size() == 24 + 2 * 8 + 6 * 4);
    CHECK(bytes.compare(0, 8, "VOLOTNSR") == 0);
    const volo::Tensor back = volo::decodeTensor(bytes, "mem");
    CHECK(back.dims == t.dims);
    CHECK(back.data == t.data);

    volo::Tensor empty{{0, 3}, {}};
    CHECK(volo::decodeTensor(volo::encodeTensor(empty), "mem").dims == empty.dims);

    EXPECT_ERROR(volo::decodeTensor("short", "f.bin"), "only 5 bytes");
    EXPECT_ERROR(volo::decodeTensor(std::string(40, 'x'), "f.bin"), "not a volo-export tensor file");
    std::string truncated = bytes.substr(0, bytes.size() - 4);
    EXPECT_ERROR(volo::decodeTensor(truncated, "f.bin"), "needs");
    EXPECT_ERROR(volo::decodeTensor(bytes + "x", "f.bin"), "needs");
    std::string badVersion = bytes;
    badVersion[8] = 2;
    EXPECT_ERROR(volo::decodeTensor(badVersion, "f.bin"), "version 2");
    std::string badType = bytes;
    badType[12] = 7;
    EXPECT_ERROR(volo::decodeTensor(badType, "f.bin"), "dtype code 7");
    std::string negative = bytes;
    negative[24 + 7] = static_cast<char>(0x80);  // first dim's sign bit
    EXPECT_ERROR(volo::decodeTensor(negative, "f.bin"), "negative dim");
    std::string huge = bytes;
    for (int i = 0; i < 7; ++i) huge[24 + i] = static_cast<char>(0xFF), huge[32 + i] = static_cast<char>(0xFF);
    EXPECT_ERROR(volo::decodeTensor(huge, "f.bin"), "too large");
    EXPECT_ERROR(volo::encodeTensor(volo::Tensor{{2, 2}, {1.0f}}), "needs 4");
    EXPECT_ERROR(volo::readTensorFile("/nonexistent/dir/x.bin"), "cannot open /nonexistent/dir/x.bin");
}

void testJsonErrors() {
    // nlohmann/json parses; volo_io turns its errors into one line that names the file.
    EXPECT_ERROR(volo::parseSidecar("{\"x\": 1,}", "side.json"), "side.json is not valid JSON: ");
    EXPECT_ERROR(volo::parseSidecar("{\n\"x\": tru}", "j"), "line 2");
    EXPECT_ERROR(volo::parseSidecar("[1, 2", "j"), "is not valid JSON");
    EXPECT_ERROR(volo::parseSidecar("[1, 2]", "j"), "j must be an object, got an array");
    EXPECT_ERROR(volo::parseSidecar(sidecarWith("\"bytes\": 4096", "\"bytes\": 4096.5"), "j"),
                 "j engine.bytes must be an integer, got 4096.5");
    CHECK(volo::parseSidecar(sidecarWith("\"bytes\": 4096", "\"bytes\": 4.096e3"), "j").engineBytes == 4096);
}

void testArtifactMetadata() {
    const std::map<std::string, std::string> props{
        {"volo_export.model", "volo_d1_224"}, {"volo_export.image_size", "224"}, {"volo_export.crop_pct", "0.96"},
        {"volo_export.interpolation", "bicubic"}, {"volo_export.mean", "[0.485, 0.456, 0.406]"},
        {"volo_export.std", "[0.229, 0.224, 0.225]"}, {"volo_export.num_classes", "1000"},
        {"volo_export.labels", "imagenet-1k"}, {"volo_export.precision", "int8"}, {"volo_export.random_weights", "true"},
        {"other", "ignored"}};
    const volo::ArtifactMetadata m = volo::parseArtifactMetadata(props, "d1.onnx");
    CHECK(m.present && m.model == "volo_d1_224" && m.precision == "int8" && m.numClasses == 1000 && m.randomWeights);
    CHECK(m.preprocessing.size == 224 && m.preprocessing.cropPct == 0.96 && m.preprocessing.std[1] == 0.224);
    CHECK(volo::resizeTarget(m.preprocessing) == 233);  // int(224 / 0.96) = int(233.33)
    volo::checkPreprocessing(m, "d1.onnx");
    CHECK(!volo::parseArtifactMetadata({{"other", "x"}}, "m").present);
    EXPECT_ERROR(volo::checkPreprocessing(volo::parseArtifactMetadata({}, "m.onnx"), "m.onnx"),
                 "m.onnx carries no volo-export metadata");
    auto with = [&](const std::string& key, const std::string& value) {
        std::map<std::string, std::string> p = props;
        p[key] = value;
        return volo::parseArtifactMetadata(p, "d1.onnx");
    };
    EXPECT_ERROR(volo::checkPreprocessing(with("volo_export.crop_pct", "0"), "d1.onnx"), "crop_pct");
    EXPECT_ERROR(volo::checkPreprocessing(with("volo_export.std", "[0.2, 0, 0.2]"), "d1.onnx"), "zero");
    EXPECT_ERROR(volo::checkPreprocessing(with("volo_export.mean", "[0.5]"), "d1.onnx"), "3 values");
    EXPECT_ERROR(volo::checkPreprocessing(with("volo_export.interpolation", "area"), "d1.onnx"), "'area'");
    EXPECT_ERROR(with("volo_export.image_size", "\"224\""), "d1.onnx.volo_export.image_size must be an integer, got a string");
    EXPECT_ERROR(with("volo_export.mean", "[0.5,"), "d1.onnx.volo_export.mean is not valid JSON");
}

void testVersions() {
    const volo::Version v = volo::parseVersion("10.13.0.35");
    CHECK(v.major == 10 && v.minor == 13 && v.patch == 0 && v.text == "10.13.0.35");
    CHECK(volo::parseVersion("11.1").minor == 1);
    const volo::Version fromInt = volo::versionFromTensorRtInt(101302);
    CHECK(fromInt.major == 10 && fromInt.minor == 13 && fromInt.patch == 2 && fromInt.text == "10.13.2");
    CHECK(volo::versionFromTensorRtInt(110100).text == "11.1.0");
    CHECK(volo::versionFromCudaInt(12080).text == "12.8" && volo::versionFromCudaInt(13000).text == "13.0");
    EXPECT_ERROR(volo::parseVersion("ten"), "must look like 10.13.0");
    EXPECT_ERROR(volo::parseVersion("10"), "must look like");
    EXPECT_ERROR(volo::parseVersion("10.13.0-rc"), "must look like");
    const volo::ComputeCapability cc = volo::parseComputeCapability("12.0");
    CHECK(cc.major == 12 && cc.minor == 0 && volo::toString(cc) == "12.0");
    EXPECT_ERROR(volo::parseComputeCapability("8.9.1"), "must look like 8.9");
}

void testSidecar() {
    const volo::EngineSidecar s = volo::parseSidecar(kSidecar, "m.engine.json");
    CHECK(s.engineFile == "m.engine" && s.engineBytes == 4096);
    CHECK(s.hasTensorrtVersion && s.tensorrtVersion.major == 10 && s.tensorrtVersion.minor == 13);
    CHECK(s.hasComputeCapability && s.computeCapability.major == 8 && s.computeCapability.minor == 9);
    CHECK(s.gpuName == "NVIDIA L4" && s.cudaRuntime == "12.8" && s.inputName == "input" && s.outputName == "logits");
    CHECK((s.profile.min == std::vector<int64_t>{1, 3, 64, 64}));
    CHECK((s.profile.max == std::vector<int64_t>{8, 3, 64, 64}));
    CHECK(!s.versionCompatible && s.hardwareCompat == "none");
    CHECK(s.plugins.size() == 1 && s.plugins[0] == "libvolo_plugins.so");
    CHECK(s.artifact.present && s.artifact.model == "volo_tiny_digits" && s.artifact.precision == "fp16" && s.artifact.labels == "digits");
    CHECK(s.artifact.numClasses == 10 && s.artifact.preprocessing.size == 64 && s.artifact.preprocessing.cropPct == 1.0);
    CHECK(s.artifact.preprocessing.interpolation == "bicubic");
    CHECK(s.artifact.preprocessing.mean.size() == 3 && std::fabs(s.artifact.preprocessing.std[2] - 0.225) < 1e-15);

    // Unknown GPU / TensorRT (null), enum spelling of hardware_compat, no metadata.
    const volo::EngineSidecar b = volo::parseSidecar(
        R"({"format": "volo-export.engine/1", "environment": {"tensorrt": null, "compute_capability": null},
            "profile": {"input": "x", "min": [1, 3, 8, 8], "opt": [1, 3, 8, 8], "max": [2, 3, 8, 8]},
            "build": {"hardware_compat": "AMPERE_PLUS", "version_compatible": true}})",
        "b.json");
    CHECK(!b.hasTensorrtVersion && !b.hasComputeCapability && !b.artifact.present && b.engineBytes == -1);
    CHECK(b.versionCompatible && b.hardwareCompat == "ampere-plus" && b.artifact.numClasses == 0);

    EXPECT_ERROR(volo::parseSidecar("{}", "x.json"),
                 "x.json is not a volo-export engine sidecar (format 'none', expected 'volo-export.engine/1')");
    EXPECT_ERROR(volo::parseSidecar(sidecarWith("engine/1", "engine/2"), "x.json"), "format 'volo-export.engine/2'");
    EXPECT_ERROR(volo::parseSidecar(sidecarWith("\"tensorrt\": \"10.13.0.35\"", "\"tensorrt\": 10"), "x.json"),
                 "x.json environment.tensorrt must be a string, got a number");
    EXPECT_ERROR(volo::parseSidecar(sidecarWith("\"opt\": [4,", "\"opt\": [9,"), "x.json"), "min <= opt <= max");
    EXPECT_ERROR(volo::parseSidecar(sidecarWith("\"max\": [8, 3, 64, 64]", "\"max\": [8, 3, 64]"), "x.json"),
                 "same, non-zero rank");
    EXPECT_ERROR(volo::parseSidecar(sidecarWith("\"volo_export.num_classes\": \"10\"",
                                                "\"volo_export.num_classes\": \"ten\""), "x.json"),
                 "x.json metadata.volo_export.num_classes is not valid JSON");
    EXPECT_ERROR(volo::parseSidecar(sidecarWith("\"environment\"", "\"environ\""), "x.json"), "has no 'environment'");
    CHECK(volo::sidecarPathFor("dir/m.engine") == "dir/m.engine.json");
}

volo::RuntimeEnvironment env(const char* trt, const char* cc, const char* gpu = "NVIDIA L4", const char* cuda = "12.8") {
    return volo::RuntimeEnvironment{volo::parseVersion(trt), cuda, volo::parseComputeCapability(cc), gpu};
}

bool mentions(const std::vector<std::string>& lines, const std::string& needle) {
    for (const auto& l : lines)
        if (l.find(needle) != std::string::npos) return true;
    return false;
}

void testCompatibility() {
    volo::EngineSidecar s = volo::parseSidecar(kSidecar, "m.engine.json");
    auto c = volo::checkCompatibility(s, env("10.13.0", "8.9"));
    CHECK(c.ok() && c.warnings.empty());

    c = volo::checkCompatibility(s, env("10.14.1", "8.9"));
    CHECK(!c.ok() && mentions(c.errors, "m.engine was built with TensorRT 10.13.0.35 but this program runs TensorRT "
                                        "10.14.1: a plan loads only on the TensorRT version that built it"));
    CHECK(!volo::checkCompatibility(s, env("11.1.0", "8.9")).ok());
    c = volo::checkCompatibility(s, env("10.13.2", "8.9"));
    CHECK(c.ok() && mentions(c.warnings, "(same minor): usually loads"));
    c = volo::checkCompatibility(s, env("10.13.0", "9.0", "NVIDIA H100"));
    CHECK(!c.ok() && mentions(c.errors, "m.engine was built on NVIDIA L4 (compute capability 8.9) but this is NVIDIA "
                                        "H100 (compute capability 9.0): plans are specific to the GPU architecture; "
                                        "rebuild here or build with --hardware-compat ampere-plus"));
    c = volo::checkCompatibility(s, env("10.13.0", "8.9", "NVIDIA RTX 4090"));
    CHECK(c.ok() && mentions(c.warnings, "kernels were timed on the other GPU"));
    c = volo::checkCompatibility(s, env("10.13.0", "8.9", "NVIDIA L4", "13.0"));
    CHECK(c.ok() && mentions(c.warnings, "built against CUDA 12.8, this program runs CUDA 13.0"));

    s.versionCompatible = true;
    CHECK(volo::checkCompatibility(s, env("10.16.0", "8.9")).ok());
    CHECK(!volo::checkCompatibility(s, env("10.12.0", "8.9")).ok());
    CHECK(mentions(volo::checkCompatibility(s, env("11.0.0", "8.9")).errors, "within TensorRT 10.x"));

    s.hardwareCompat = "ampere-plus";
    CHECK(volo::checkCompatibility(s, env("10.13.0", "9.0", "NVIDIA H100")).ok());
    c = volo::checkCompatibility(s, env("10.13.0", "7.5", "Tesla T4"));
    CHECK(!c.ok() && mentions(c.errors, "hardware-compatible with Ampere and newer"));

    s.hardwareCompat = "same-compute-capability";
    c = volo::checkCompatibility(s, env("10.13.0", "8.6", "NVIDIA A10"));
    CHECK(!c.ok() && !mentions(c.errors, "--hardware-compat"));
    s.hardwareCompat = "something-new";
    CHECK(mentions(volo::checkCompatibility(s, env("10.13.0", "8.9")).warnings, "unknown build.hardware_compat"));

    s.hasTensorrtVersion = s.hasComputeCapability = false;
    c = volo::checkCompatibility(s, env("11.1.0", "7.5"));
    CHECK(c.ok() && mentions(c.warnings, "does not say which TensorRT") && mentions(c.warnings, "which GPU"));

    CHECK(volo::checkPlanSize(s, 4096, "m.engine").empty());
    CHECK(volo::checkPlanSize(s, 100, "m.engine") == "m.engine is 100 bytes: too small to be a TensorRT plan");
    CHECK(volo::checkPlanSize(s, 5000, "m.engine").find("does not match its sidecar (5000 bytes, sidecar says 4096)") !=
          std::string::npos);
    const volo::EngineSidecar unknown;  // no sidecar: any size passes
    CHECK(volo::checkPlanSize(unknown, 5000, "m.engine").empty());
}

void testInputShape() {
    const volo::Profile p{{1, 3, 64, 64}, {4, 3, 64, 64}, {8, 3, 64, 64}};
    CHECK(volo::checkInputShape(p, {1, 3, 64, 64}).empty());
    CHECK(volo::checkInputShape(p, {8, 3, 64, 64}).empty());
    CHECK(volo::checkInputShape(p, {9, 3, 64, 64}).find("batch 9 is outside the engine's profile for 'input' "
                                                        "(batch 1..8)") == 0);
    CHECK(volo::checkInputShape(p, {0, 3, 64, 64}).find("batch 0 is outside") == 0);
    CHECK(volo::checkInputShape(p, {2, 3, 224, 224}).find("preprocessed for another model") != std::string::npos);
    CHECK(volo::checkInputShape(p, {3, 64, 64}).find("rank 4") != std::string::npos);
}

void testPredictions() {
    const std::vector<float> logits{1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
    const auto probs = volo::softmax(logits.data(), logits.size());
    double sum = 0.0;
    for (float p : probs) sum += p;
    CHECK(std::fabs(sum - 1.0) < 1e-6);
    const double expected = std::exp(3.0) / (std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0) + std::exp(-1.0));
    CHECK(std::fabs(probs[1] - expected) < 1e-7);
    // Large logits must not overflow.
    const std::vector<float> big{1000.0f, 999.0f};
    CHECK(std::fabs(volo::softmax(big.data(), 2)[0] - 1.0 / (1.0 + std::exp(-1.0))) < 1e-6);

    const auto top = volo::topK(logits.data(), logits.size(), 3);
    CHECK(top.size() == 3 && top[0].index == 1 && top[1].index == 3 && top[2].index == 2);  // tie -> lower index
    CHECK(top[0].logit == 3.0f && std::fabs(top[0].probability - expected) < 1e-7);
    CHECK(volo::topK(logits.data(), logits.size(), 99).size() == 5);

    const std::vector<float> withNan{0.5f, std::nanf(""), 2.0f, INFINITY};
    const auto nanTop = volo::topK(withNan.data(), withNan.size(), 4);
    CHECK(nanTop[0].index == 3 && nanTop[1].index == 2 && nanTop[2].index == 0 && nanTop[3].index == 1);
    CHECK(volo::countNonFinite(withNan.data(), withNan.size()) == 2);
}

void testLabels() {
    const std::string path = "volo_io_test_labels.txt";
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        CHECK(f != nullptr);
        std::fputs("tench\r\ngoldfish  \n\ngreat white shark\n", f);
        std::fclose(f);
    }
    const auto labels = volo::readLabels(path);
    CHECK(labels.size() == 4 && labels[0] == "tench" && labels[1] == "goldfish" && labels[3] == "great white shark");
    CHECK(volo::labelFor(labels, 2) == "class 2");  // empty line
    CHECK(volo::labelFor(labels, 7) == "class 7");
    std::remove(path.c_str());
    EXPECT_ERROR(volo::readLabels(path), "cannot open");
    CHECK(volo::jsonQuote("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
}

void testFileRoundTrip() {
    const std::string path = "volo_io_test_tensor.bin";
    const volo::Tensor t{{1, 2, 2}, {0.25f, -0.5f, 1e-3f, 42.0f}};
    volo::writeTensorFile(path, t);
    const volo::Tensor back = volo::readTensorFile(path);
    CHECK(back.dims == t.dims && back.data == t.data);
    std::remove(path.c_str());
}

}  // namespace

int main() {
    testTensorRoundTrip();
    testJsonErrors();
    testArtifactMetadata();
    testVersions();
    testSidecar();
    testCompatibility();
    testInputShape();
    testPredictions();
    testLabels();
    testFileRoundTrip();
    if (failures == 0) std::cout << "volo_io_test: all checks passed\n";
    else std::cerr << "volo_io_test: " << failures << " check(s) failed\n";
    return failures == 0 ? 0 : 1;
}
