// An ONNX artifact in OpenVINO on the CPU, compiled as volo_export/runtime/openvino_runner.py does:
// explicit precision hint (f32; bf16 only for a bf16 artifact), latency mode, one stream, no CPU
// pinning, and a static batch per compiled model (a dynamic-batch ONNX is compiled once per batch size
// it is called with).
#include <map>
#include <openvino/frontend/manager.hpp>
#include <openvino/openvino.hpp>

#include "volo_backend.h"

namespace volo {
namespace {

//! The telling line of an OpenVINO exception, whose what() is a trace of lines such as "Exception from
//! src/...cpp:84:", "Check '...' failed at src/...:", "FrontEnd API failed with GeneralFailure:",
//! "Model can't be parsed": the last line that is not a source location.
std::string firstLine(const std::string& text) {
    std::string best = "unknown error";
    size_t start = 0;
    while (start < text.size()) {
        const size_t end = std::min(text.find('\n', start), text.size());
        std::string line = text.substr(start, end - start);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == ':')) line.pop_back();
        if (!line.empty() && line.rfind("Exception from ", 0) != 0 && line.rfind("Check '", 0) != 0) best = line;
        start = end + 1;
    }
    return best;
}

std::string baseName(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

class OpenVinoBackend : public Backend {
public:
    OpenVinoBackend(const std::string& path, const BackendOptions& options) : label_(baseName(path)) {
        try {  // the ONNX frontend by name: read_model(path) would also try every other frontend on a bad file
            ov::frontend::FrontEndManager frontends;
            const ov::frontend::FrontEnd::Ptr onnx = frontends.load_by_framework("onnx");
            if (!onnx->supported(path)) throw Error(path + " is not an ONNX model");
            model_ = onnx->convert(onnx->load(path));
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error("OpenVINO cannot read " + path + ": " + firstLine(e.what()));
        }
        std::map<std::string, std::string> props;
        if (model_->has_rt_info("framework")) {
            for (const auto& [key, value] : model_->get_rt_info<ov::AnyMap>("framework"))
                if (value.is<std::string>()) props[key] = value.as<std::string>();
        }
        metadata_ = parseArtifactMetadata(props, path);
        if (model_->inputs().size() != 1)
            throw Error(path + " has " + std::to_string(model_->inputs().size()) + " inputs; a volo-export model has one");
        const ov::PartialShape shape = model_->input().get_partial_shape();
        if (shape.rank().is_dynamic() || shape.rank().get_length() != 4 || shape[1] != 3)
            throw Error(path + " takes input " + shape.to_string() + ", not images (batch, 3, H, W)");
        fixedBatch_ = shape[0].is_static() ? shape[0].get_length() : 0;
        const std::string outputName = "logits";
        for (size_t i = 0; i < model_->outputs().size(); ++i)
            if (model_->output(i).get_names().count(outputName)) output_ = i;
        const std::string hint = metadata_.precision == "bf16" ? "bf16" : "f32";
        config_ = {ov::hint::inference_precision(hint == "bf16" ? ov::element::bf16 : ov::element::f32),
                   ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY), ov::num_streams(1),
                   ov::inference_num_threads(options.threads), ov::hint::enable_cpu_pinning(false)};
        const ov::Version version = ov::get_openvino_version();
        const std::string build = version.buildNumber;
        version_ = build.substr(0, build.find('-'));
        hint_ = hint;
    }

    const ArtifactMetadata& metadata() const override { return metadata_; }
    std::string describe() const override { return "OpenVINO " + version_ + " CPU (" + hint_ + ")"; }
    int64_t minBatch() const override { return fixedBatch_ > 0 ? fixedBatch_ : 1; }
    int64_t maxBatch() const override { return fixedBatch_; }

    void prepare(int64_t batch) override { requestFor(batch); }

    Tensor infer(const Tensor& input) override {
        const int64_t batch = input.dims.at(0);
        ov::InferRequest& request = requestFor(batch);
        ov::Tensor in(ov::element::f32, ov::Shape(input.dims.begin(), input.dims.end()),
                      const_cast<float*>(input.data.data()));  // read only: OpenVINO takes a non-const pointer
        try {
            request.set_input_tensor(in);
            request.infer();
        } catch (const std::exception& e) {
            throw Error("OpenVINO failed to run " + label_ + " on " + shapeString(input.dims) + ": " + firstLine(e.what()));
        }
        const ov::Tensor out = request.get_output_tensor(output_);
        const ov::Shape shape = out.get_shape();
        Tensor logits;
        logits.dims.assign(shape.begin(), shape.end());
        if (out.get_element_type() != ov::element::f32 || logits.dims.size() != 2 || logits.dims[0] != batch)
            throw Error(label_ + " gives output " + out.get_element_type().to_string() + " " + shapeString(logits.dims) +
                        "; expected float32 (" + std::to_string(batch) + ", classes)");
        const float* data = out.data<const float>();
        logits.data.assign(data, data + out.get_size());
        return logits;
    }

private:
    //! The infer request of the model compiled for `batch` (compiled on first use).
    ov::InferRequest& requestFor(int64_t batch) {
        auto it = compiled_.find(batch);
        if (it != compiled_.end()) return it->second.second;
        try {
            ov::PartialShape shape = model_->input().get_partial_shape();
            shape[0] = batch;
            model_->reshape({{model_->input().get_any_name(), shape}});
            ov::CompiledModel compiled = core_.compile_model(model_, "CPU", config_);
            ov::InferRequest request = compiled.create_infer_request();
            it = compiled_.emplace(batch, std::make_pair(std::move(compiled), std::move(request))).first;
        } catch (const std::exception& e) {
            throw Error("OpenVINO cannot compile " + label_ + " for batch " + std::to_string(batch) + ": " +
                        firstLine(e.what()));
        }
        return it->second.second;
    }

    std::string label_;
    ov::Core core_;
    std::shared_ptr<ov::Model> model_;
    ArtifactMetadata metadata_;
    ov::AnyMap config_;
    size_t output_ = 0;
    int64_t fixedBatch_ = 0;
    std::string version_, hint_;
    std::map<int64_t, std::pair<ov::CompiledModel, ov::InferRequest>> compiled_;
};

}  // namespace

std::unique_ptr<Backend> openOpenVino(const std::string& path, const BackendOptions& options) {
    return std::make_unique<OpenVinoBackend>(path, options);
}

}  // namespace volo
