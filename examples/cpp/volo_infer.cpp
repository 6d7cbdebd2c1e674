// volo_infer: classify images (or preprocessed tensor files) with a volo-export artifact and print
// the top-k classes of every image.
//
//   ./build/volo_infer model.onnx cat.jpg photos/ [--top-k 5] [--labels classes.txt] [--json]   # OpenVINO, CPU
//   ./build/volo_infer model.engine cat.jpg --labels imagenet_classes.txt                       # TensorRT, GPU
//   ./build/volo_infer model.onnx input.bin                      # a tensor file from `volo-export preprocess`
//
// The preprocessing (resize, crop_pct centre crop, interpolation, mean/std) comes from the artifact:
// the ONNX's volo_export.* metadata or the engine sidecar's `metadata` (see volo_image.h). Images are
// processed in batches; any bad input (missing file, not an image, wrong model, corrupt sidecar or
// metadata) ends the run with one `error:` line on stderr, exit code 1 (2: bad usage), nothing on stdout.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "volo_backend.h"
#include "volo_image.h"
#include "volo_io.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class UsageError : public volo::Error {
public:
    using volo::Error::Error;
};

struct Options {
    std::string model;
    std::vector<std::string> inputs;
    std::string labelsPath;
    std::string outputPath;     // logits (N, classes) as a tensor file
    std::string dumpInputPath;  // the preprocessed input (N, 3, S, S) as a tensor file
    size_t topK = 5;
    int64_t batch = 0;          // 0: min(images, 32) within the model's batch range
    bool json = false;
    bool timing = false;
    volo::BackendOptions backend;
};

const char* kUsage =
    "usage: volo_infer MODEL INPUT... [--top-k K] [--labels FILE] [--json] [--batch N] [--threads N]\n"
    "                  [--output LOGITS.bin] [--dump-input INPUT.bin] [--timing]\n"
    "                  [--plugins LIB.so]... [--sidecar FILE.json] [--device N] [--skip-checks] [--verbose]\n"
    "\n"
    "  MODEL         .onnx (OpenVINO, CPU) or .engine (TensorRT, GPU; its sidecar ENGINE.json is checked)\n"
    "  INPUT         image files (JPEG, PNG, BMP), folders of them (recursive, sorted), or tensor files\n"
    "                from `volo-export preprocess` (float32 (N, 3, S, S))\n"
    "  --top-k       classes per image (default 5)\n"
    "  --labels      class names, one per line (line i = class i)\n"
    "  --json        one JSON document on stdout (as `volo-export predict --json`)\n"
    "  --batch       images per inference (default: up to 32, within the model's batch range)\n"
    "  --threads     OpenVINO inference threads (default 0: every core)\n"
    "  --output      also write the logits (N, classes) as a tensor file\n"
    "  --dump-input  also write the preprocessed input (N, 3, S, S) as a tensor file\n"
    "  --timing      report load / decode+preprocess / inference times (stderr; in --json too)\n"
    "  --plugins, --sidecar, --device, --skip-checks: TensorRT only (see README.md)\n";

int64_t parseInt(const std::string& text, const std::string& option, int64_t minimum) {
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos ||
        std::stoll(text) < minimum)
        throw UsageError(option + " needs an integer >= " + std::to_string(minimum) + ", got '" + text + "'");
    return std::stoll(text);
}

Options parseOptions(int argc, char** argv) {
    Options o;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw UsageError(a + " needs a value");
            return argv[++i];
        };
        if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        }
        if (a == "--labels") o.labelsPath = value();
        else if (a == "--top-k" || a == "--top") o.topK = static_cast<size_t>(parseInt(value(), a, 1));
        else if (a == "--json") o.json = true;
        else if (a == "--batch") o.batch = parseInt(value(), a, 1);
        else if (a == "--threads") o.backend.threads = static_cast<int>(parseInt(value(), a, 0));
        else if (a == "--output") o.outputPath = value();
        else if (a == "--dump-input") o.dumpInputPath = value();
        else if (a == "--timing") o.timing = true;
        else if (a == "--plugins") o.backend.plugins.push_back(value());
        else if (a == "--sidecar") o.backend.sidecarPath = value();
        else if (a == "--device") o.backend.device = static_cast<int>(parseInt(value(), a, 0));
        else if (a == "--skip-checks") o.backend.skipChecks = true;
        else if (a == "--verbose") o.backend.verbose = true;
        else if (a.rfind("--", 0) == 0) throw UsageError("unknown option " + a + " (volo_infer --help)");
        else positional.push_back(a);
    }
    if (positional.size() < 2) throw UsageError("expected MODEL and at least one INPUT (volo_infer --help)");
    o.model = positional[0];
    o.inputs.assign(positional.begin() + 1, positional.end());
    return o;
}

// ---------------------------------------------------------------- inputs

//! One image to classify: a file to decode, or row `row` of a tensor file already preprocessed.
struct Item {
    std::string name;
    std::string path;
    const volo::Tensor* tensor = nullptr;
    int64_t row = 0;
};

bool isImageName(const fs::path& p) {
    std::string ext = p.extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

bool isTensorFile(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return false;
    char magic[8] = {};
    const bool yes = std::fread(magic, 1, 8, f) == 8 && std::string(magic, 8) == "VOLOTNSR";
    std::fclose(f);
    return yes;
}

//! The command line's inputs, in order: a folder gives its images (recursive, sorted), a tensor file
//! its rows, an image file itself. Every path is checked before the (slow) model load.
std::vector<Item> expandInputs(const std::vector<std::string>& inputs, std::vector<volo::Tensor>& tensors) {
    std::vector<Item> items;
    std::vector<std::string> tensorPaths;
    for (const std::string& input : inputs)
        if (fs::is_regular_file(input) && isTensorFile(input)) tensorPaths.push_back(input);
    tensors.reserve(tensorPaths.size());  // items point into it
    for (const std::string& input : inputs) {
        if (fs::is_directory(input)) {
            std::vector<fs::path> found;
            for (const auto& entry : fs::recursive_directory_iterator(input))
                if (entry.is_regular_file() && isImageName(entry.path())) found.push_back(entry.path());
            if (found.empty()) throw volo::Error("no images (jpg/jpeg/png/bmp) under " + input);
            std::sort(found.begin(), found.end());
            for (const auto& p : found) items.push_back(Item{p.string(), p.string(), nullptr, 0});
        } else if (!fs::exists(input)) {
            throw volo::Error("image not found: " + input);
        } else if (isTensorFile(input)) {
            tensors.push_back(volo::readTensorFile(input));
            const volo::Tensor& t = tensors.back();
            if (t.dims.size() != 4 || t.dims[1] != 3)
                throw volo::Error(input + " holds " + volo::shapeString(t.dims) + ", not images (N, 3, S, S)");
            for (int64_t r = 0; r < t.dims[0]; ++r)
                items.push_back(Item{input + "[" + std::to_string(r) + "]", input, &t, r});
        } else {
            items.push_back(Item{input, input, nullptr, 0});
        }
    }
    return items;
}

//! Default class names as `volo-export predict` shows them: digits '0'..'9', else the index.
std::vector<std::string> defaultLabels(const volo::ArtifactMetadata& m) {
    std::vector<std::string> names;
    for (int64_t i = 0; i < m.numClasses; ++i) names.push_back(std::to_string(i));
    return names;
}

double seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

// ---------------------------------------------------------------- the app

int run(const Options& options) {
    std::vector<volo::Tensor> tensors;
    const std::vector<Item> items = expandInputs(options.inputs, tensors);
    if (items.empty()) throw volo::Error("no images: the tensor files given hold 0 rows");
    std::vector<std::string> labels =
        options.labelsPath.empty() ? std::vector<std::string>{} : volo::readLabels(options.labelsPath);

    const Clock::time_point t0 = Clock::now();
    std::unique_ptr<volo::Backend> backend = volo::openBackend(options.model, options.backend);
    const volo::ArtifactMetadata& meta = backend->metadata();
    const bool hasImages = std::any_of(items.begin(), items.end(), [](const Item& i) { return i.tensor == nullptr; });
    if (hasImages) volo::checkPreprocessing(meta, options.model);
    const int64_t size = meta.present ? meta.preprocessing.size : (tensors.empty() ? 0 : tensors.front().dims[2]);
    for (const volo::Tensor& t : tensors)
        if (t.dims[2] != size || t.dims[3] != size)
            throw volo::Error("a tensor file holds " + volo::shapeString(t.dims) + " but " + options.model + " takes " +
                              std::to_string(size) + "x" + std::to_string(size) +
                              " images: preprocessed for another model?");
    if (labels.empty()) labels = defaultLabels(meta);
    if (meta.randomWeights)
        std::fprintf(stderr, "warning: %s was exported with RANDOM weights: these predictions are meaningless\n",
                     options.model.c_str());

    const auto total = static_cast<int64_t>(items.size());
    int64_t batch = options.batch > 0 ? options.batch : std::min<int64_t>(total, 32);
    if (backend->maxBatch() > 0) batch = std::min(batch, backend->maxBatch());
    batch = std::max(batch, backend->minBatch());
    const size_t imageFloats = static_cast<size_t>(3 * size * size);
    backend->prepare(std::max(std::min(batch, total), backend->minBatch()));

    volo::Tensor allLogits, allInput;
    double decodeSeconds = 0.0, inferSeconds = 0.0;
    const double loadSeconds = seconds(t0, Clock::now());
    for (int64_t start = 0; start < total; start += batch) {
        const int64_t n = std::min(batch, total - start);
        const int64_t run = std::max(n, backend->minBatch());  // a fixed-batch model gets zero rows appended
        volo::Tensor input{{run, 3, size, size}, std::vector<float>(static_cast<size_t>(run) * imageFloats, 0.0f)};
        const Clock::time_point d0 = Clock::now();
        for (int64_t i = 0; i < n; ++i) {
            const Item& item = items[static_cast<size_t>(start + i)];
            float* dst = input.data.data() + static_cast<size_t>(i) * imageFloats;
            if (item.tensor != nullptr) {
                const float* src = item.tensor->data.data() + static_cast<size_t>(item.row) * imageFloats;
                std::copy(src, src + imageFloats, dst);
            } else {
                volo::preprocessImage(volo::decodeImage(volo::readFile(item.path), item.path), meta.preprocessing, dst,
                                      item.path);
            }
        }
        const Clock::time_point d1 = Clock::now();
        volo::Tensor logits = backend->infer(input);
        inferSeconds += seconds(d1, Clock::now());
        decodeSeconds += seconds(d0, d1);
        const auto classes = static_cast<size_t>(logits.dims[1]);
        if (allLogits.dims.empty()) allLogits.dims = {0, logits.dims[1]};
        allLogits.dims[0] += n;
        allLogits.data.insert(allLogits.data.end(), logits.data.begin(),
                              logits.data.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(n) * classes));
        if (!options.dumpInputPath.empty()) {
            if (allInput.dims.empty()) allInput.dims = {0, 3, size, size};
            allInput.dims[0] += n;
            allInput.data.insert(allInput.data.end(), input.data.begin(),
                                 input.data.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(n) * imageFloats));
        }
    }

    const auto classes = static_cast<size_t>(allLogits.dims.at(1));
    if (meta.numClasses > 0 && static_cast<int64_t>(classes) != meta.numClasses)
        std::fprintf(stderr, "warning: %s gives %zu classes, its metadata says %lld\n", options.model.c_str(), classes,
                     static_cast<long long>(meta.numClasses));
    if (!options.labelsPath.empty() && labels.size() != classes)
        std::fprintf(stderr, "warning: %s has %zu lines for %zu classes\n", options.labelsPath.c_str(), labels.size(),
                     classes);
    if (const size_t bad = volo::countNonFinite(allLogits.data.data(), allLogits.data.size()))
        std::fprintf(stderr, "warning: %zu logits are NaN or Inf: the model's numerics broke\n", bad);
    if (!options.outputPath.empty()) volo::writeTensorFile(options.outputPath, allLogits);
    if (!options.dumpInputPath.empty()) volo::writeTensorFile(options.dumpInputPath, allInput);

    const double work = decodeSeconds + inferSeconds;
    const nlohmann::json timing = {{"images", total}, {"batch", batch}, {"load_s", loadSeconds},
                                   {"decode_preprocess_s", decodeSeconds}, {"infer_s", inferSeconds},
                                   {"images_per_s", work > 0 ? static_cast<double>(total) / work : 0.0}};
    if (options.timing)
        std::fprintf(stderr, "timing: load %.3f s; %lld images: decode+preprocess %.3f s, inference %.3f s, "
                     "%.1f images/s (batch %lld)\n", loadSeconds, static_cast<long long>(total), decodeSeconds,
                     inferSeconds, timing["images_per_s"].get<double>(), static_cast<long long>(batch));
    if (options.json) {
        nlohmann::json predictions = nlohmann::json::array();
        for (size_t r = 0; r < items.size(); ++r) {
            const float* row = allLogits.data.data() + r * classes;
            nlohmann::json top = nlohmann::json::array();
            for (const volo::Prediction& p : volo::topK(row, classes, options.topK))
                top.push_back({{"index", p.index}, {"label", volo::labelFor(labels, p.index)},
                               {"probability", static_cast<double>(p.probability)}, {"logit", static_cast<double>(p.logit)}});
            predictions.push_back({{"file", items[r].name}, {"top", top}});
        }
        nlohmann::json out = {{"model", options.model}, {"runtime", backend->describe()}, {"predictions", predictions}};
        if (options.timing) out["timing"] = timing;
        std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("%s (%s, %s) on %s\n", options.model.c_str(), meta.present ? meta.model.c_str() : "no metadata",
                meta.present ? meta.precision.c_str() : "?", backend->describe().c_str());
    for (size_t r = 0; r < items.size(); ++r) {
        std::printf("%s\n", items[r].name.c_str());
        const auto preds = volo::topK(allLogits.data.data() + r * classes, classes, options.topK);
        for (size_t i = 0; i < preds.size(); ++i)
            std::printf("  %zu. %-32s p=%.4f  logit=%.4f  (class %lld)\n", i + 1,
                        volo::labelFor(labels, preds[i].index).c_str(), static_cast<double>(preds[i].probability),
                        static_cast<double>(preds[i].logit), static_cast<long long>(preds[i].index));
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parseOptions(argc, argv));
    } catch (const UsageError& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
