// volo_inspect: the TensorRT-free half of volo_infer as a command line tool.
//
//   volo_inspect tensor FILE                 shape, count, sum, min/max, first values (JSON)
//   volo_inspect copy IN OUT                 read a tensor file and write it back
//   volo_inspect top LOGITS [--k 5] [--labels FILE]
//                                            top-k classes of every row of an (N, classes) tensor
//   volo_inspect sidecar X.engine.json [--tensorrt 10.13.0 --compute-capability 8.9 [--gpu-name NAME] [--cuda 12.8]]
//                [--engine X.engine] [--input input.bin]
//                                            parse a sidecar; check it against a TensorRT/GPU, the plan file
//                                            and an input, as volo_infer does before loading
//
// Output is JSON on stdout; errors are one line on stderr with exit code 1 (2 for usage).
// Lets a deployment script check an engine/input pair on a machine without a GPU,
// and lets the Python tests check that both sides read the same numbers.
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "volo_io.h"

namespace {

struct Args {
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;
};

class UsageError : public volo::Error {
public:
    using volo::Error::Error;
};

Args parseArgs(int argc, char** argv, const std::vector<std::string>& known) {
    Args args;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--", 0) == 0) {
            bool ok = false;
            for (const auto& k : known) ok = ok || k == a;
            if (!ok) throw UsageError("unknown option " + a);
            if (i + 1 >= argc) throw UsageError(a + " needs a value");
            args.options[a] = argv[++i];
        } else {
            args.positional.push_back(a);
        }
    }
    return args;
}

std::string fmt(double value) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.17g", value);
    const std::string text = buf;
    if (text == "nan" || text == "-nan") return "NaN";  // Python's json reads NaN/Infinity
    if (text == "inf") return "Infinity";
    if (text == "-inf") return "-Infinity";
    return text;
}

std::string fmtFloat(float value) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(value));  // 9 digits round-trip a float
    const std::string text = buf;
    if (text.find("nan") != std::string::npos) return "NaN";
    if (text == "inf") return "Infinity";
    if (text == "-inf") return "-Infinity";
    return text;
}

std::string intArray(const std::vector<int64_t>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
    return out + "]";
}

std::string stringArray(const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + volo::jsonQuote(v[i]);
    return out + "]";
}

int tensorCommand(const Args& args) {
    if (args.positional.size() != 1) throw UsageError("usage: volo_inspect tensor FILE");
    const volo::Tensor t = volo::readTensorFile(args.positional[0]);
    double sum = 0.0, sumAbs = 0.0;
    float lo = 0.0f, hi = 0.0f;
    for (size_t i = 0; i < t.data.size(); ++i) {
        const float v = t.data[i];
        sum += v;
        sumAbs += v < 0 ? -v : v;
        lo = i == 0 || v < lo ? v : lo;
        hi = i == 0 || v > hi ? v : hi;
    }
    std::string first = "[";
    for (size_t i = 0; i < t.data.size() && i < 8; ++i) first += (i ? ", " : "") + fmtFloat(t.data[i]);
    std::cout << "{\"path\": " << volo::jsonQuote(args.positional[0]) << ", \"dims\": " << intArray(t.dims)
              << ", \"count\": " << t.data.size() << ", \"sum\": " << fmt(sum) << ", \"sum_abs\": " << fmt(sumAbs)
              << ", \"min\": " << fmtFloat(lo) << ", \"max\": " << fmtFloat(hi) << ", \"first\": " << first << "]"
              << ", \"non_finite\": " << volo::countNonFinite(t.data.data(), t.data.size()) << "}\n";
    return 0;
}

int copyCommand(const Args& args) {
    if (args.positional.size() != 2) throw UsageError("usage: volo_inspect copy IN OUT");
    volo::writeTensorFile(args.positional[1], volo::readTensorFile(args.positional[0]));
    return 0;
}

int topCommand(const Args& args) {
    if (args.positional.size() != 1) throw UsageError("usage: volo_inspect top LOGITS [--k 5] [--labels FILE]");
    const volo::Tensor t = volo::readTensorFile(args.positional[0]);
    if (t.dims.size() != 2) throw volo::Error(args.positional[0] + " has shape " + volo::shapeString(t.dims) +
                                              "; top needs (N, classes) logits");
    size_t k = 5;
    if (auto it = args.options.find("--k"); it != args.options.end()) {
        const std::string& text = it->second;
        if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos || text == "0")
            throw UsageError("--k must be a positive integer, got '" + text + "'");
        k = static_cast<size_t>(std::stoul(text));
    }
    std::vector<std::string> labels;
    if (auto it = args.options.find("--labels"); it != args.options.end()) labels = volo::readLabels(it->second);
    const auto classes = static_cast<size_t>(t.dims[1]);
    std::cout << "{\"rows\": [";
    for (int64_t row = 0; row < t.dims[0]; ++row) {
        const float* logits = t.data.data() + static_cast<size_t>(row) * classes;
        std::cout << (row ? ", " : "") << "[";
        const auto preds = volo::topK(logits, classes, k);
        for (size_t i = 0; i < preds.size(); ++i)
            std::cout << (i ? ", " : "") << "{\"index\": " << preds[i].index
                      << ", \"label\": " << volo::jsonQuote(volo::labelFor(labels, preds[i].index))
                      << ", \"logit\": " << fmtFloat(preds[i].logit)
                      << ", \"probability\": " << fmtFloat(preds[i].probability) << "}";
        std::cout << "]";
    }
    std::cout << "], \"non_finite\": " << volo::countNonFinite(t.data.data(), t.data.size()) << "}\n";
    return 0;
}

int sidecarCommand(const Args& args) {
    if (args.positional.size() != 1)
        throw UsageError("usage: volo_inspect sidecar X.engine.json [--tensorrt V --compute-capability M.m] "
                         "[--gpu-name NAME] [--cuda V] [--engine X.engine] [--input F]");
    const volo::EngineSidecar s = volo::readSidecar(args.positional[0]);
    const volo::Preprocessing& p = s.artifact.preprocessing;
    auto optionalText = [](bool has, const std::string& text) { return has ? volo::jsonQuote(text) : "null"; };
    std::cout << "{\"engine_file\": " << volo::jsonQuote(s.engineFile) << ", \"engine_bytes\": " << s.engineBytes
              << ", \"tensorrt\": " << optionalText(s.hasTensorrtVersion, s.tensorrtVersion.text)
              << ", \"cuda_runtime\": " << volo::jsonQuote(s.cudaRuntime)
              << ", \"compute_capability\": "
              << optionalText(s.hasComputeCapability, volo::toString(s.computeCapability))
              << ", \"gpu_name\": " << volo::jsonQuote(s.gpuName) << ", \"input\": " << volo::jsonQuote(s.inputName)
              << ", \"output\": " << volo::jsonQuote(s.outputName) << ", \"profile\": {\"min\": "
              << intArray(s.profile.min) << ", \"opt\": " << intArray(s.profile.opt) << ", \"max\": "
              << intArray(s.profile.max) << "}, \"version_compatible\": " << (s.versionCompatible ? "true" : "false")
              << ", \"hardware_compat\": " << volo::jsonQuote(s.hardwareCompat) << ", \"plugins\": " << stringArray(s.plugins)
              << ", \"has_metadata\": " << (s.artifact.present ? "true" : "false") << ", \"model\": " << volo::jsonQuote(s.artifact.model)
              << ", \"precision\": " << volo::jsonQuote(s.artifact.precision) << ", \"labels\": " << volo::jsonQuote(s.artifact.labels)
              << ", \"num_classes\": " << s.artifact.numClasses << ", \"preprocessing\": {\"size\": " << p.size
              << ", \"crop_pct\": " << fmt(p.cropPct) << ", \"interpolation\": " << volo::jsonQuote(p.interpolation)
              << ", \"mean\": [";
    for (size_t i = 0; i < p.mean.size(); ++i) std::cout << (i ? ", " : "") << fmt(p.mean[i]);
    std::cout << "], \"std\": [";
    for (size_t i = 0; i < p.std.size(); ++i) std::cout << (i ? ", " : "") << fmt(p.std[i]);
    std::cout << "]}";

    std::vector<std::string> errors, warnings;
    const auto trt = args.options.find("--tensorrt");
    const auto cc = args.options.find("--compute-capability");
    if ((trt == args.options.end()) != (cc == args.options.end()))
        throw UsageError("--tensorrt and --compute-capability go together");
    if (trt != args.options.end()) {
        volo::RuntimeEnvironment env;
        env.tensorrt = volo::parseVersion(trt->second, "--tensorrt");
        env.computeCapability = volo::parseComputeCapability(cc->second);
        if (auto it = args.options.find("--gpu-name"); it != args.options.end()) env.gpuName = it->second;
        if (auto it = args.options.find("--cuda"); it != args.options.end()) env.cudaRuntime = it->second;
        const volo::Compatibility c = volo::checkCompatibility(s, env);
        errors = c.errors;
        warnings = c.warnings;
    }
    if (auto it = args.options.find("--engine"); it != args.options.end()) {
        const std::string why =
            volo::checkPlanSize(s, static_cast<int64_t>(volo::readFile(it->second).size()), it->second);
        if (!why.empty()) errors.push_back(why);
    }
    if (auto it = args.options.find("--input"); it != args.options.end()) {
        const std::string why = volo::checkInputShape(s.profile, volo::readTensorFile(it->second).dims, s.inputName);
        if (!why.empty()) errors.push_back(why);
    }
    std::cout << ", \"errors\": " << stringArray(errors) << ", \"warnings\": " << stringArray(warnings) << "}\n";
    for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
    if (!errors.empty()) {
        std::cerr << "error: " << errors.front() << "\n";
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string usage = "usage: volo_inspect tensor|copy|top|sidecar ... (see the header of volo_inspect.cpp)";
    try {
        if (argc < 2) throw UsageError(usage);
        const std::string command = argv[1];
        if (command == "tensor") return tensorCommand(parseArgs(argc, argv, {}));
        if (command == "copy") return copyCommand(parseArgs(argc, argv, {}));
        if (command == "top") return topCommand(parseArgs(argc, argv, {"--k", "--labels"}));
        if (command == "sidecar")
            return sidecarCommand(parseArgs(argc, argv, {"--tensorrt", "--compute-capability", "--gpu-name", "--cuda", "--engine", "--input"}));
        throw UsageError("unknown command '" + command + "'; " + usage);
    } catch (const UsageError& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
