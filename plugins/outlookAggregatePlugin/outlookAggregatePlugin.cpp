#include "outlookAggregatePlugin.h"

#include <cstring>
#include <exception>

#include "outlookAggregateKernel.h"

namespace volo_plugins {
namespace {

using nvinfer1::DataType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;
using nvinfer1::TensorFormat;

constexpr int32_t kNbInputs = 2;  // v, attn

bool supportedType(DataType t) { return t == DataType::kFLOAT || t == DataType::kHALF; }

//! Runs `body`; any exception becomes a logged error and `failure` (nothing crosses into TensorRT).
template <typename R, typename F>
R guarded(char const* where, R failure, F&& body) noexcept {
    try {
        return body();
    } catch (std::exception const& e) {
        logPluginError(std::string(kOutlookPluginName) + "::" + where + ": " + e.what());
    } catch (...) {
        logPluginError(std::string(kOutlookPluginName) + "::" + where + ": unknown exception");
    }
    return failure;
}

std::vector<int64_t> dimsOf(nvinfer1::Dims const& d) {
    return d.nbDims < 0 ? std::vector<int64_t>{} : std::vector<int64_t>(d.d, d.d + d.nbDims);
}

}  // namespace

// ---------------------------------------------------------------- plugin

OutlookAggregatePlugin::OutlookAggregatePlugin(OutlookAttributes attributes) : attributes_(attributes) {
    exposeFields();
}

OutlookAggregatePlugin::OutlookAggregatePlugin(OutlookAggregatePlugin const& other)
    : attributes_(other.attributes_), geometry_(other.geometry_) {
    exposeFields();  // the field pointers must point into this copy
}

void OutlookAggregatePlugin::exposeFields() {
    fields_ = {PluginField("kernel_size", &attributes_.kernelSize, PluginFieldType::kINT32, 1),
               PluginField("padding", &attributes_.padding, PluginFieldType::kINT32, 1),
               PluginField("stride", &attributes_.stride, PluginFieldType::kINT32, 1),
               PluginField("num_heads", &attributes_.numHeads, PluginFieldType::kINT32, 1)};
    fieldCollection_.nbFields = static_cast<int32_t>(fields_.size());
    fieldCollection_.fields = fields_.data();
}

nvinfer1::IPluginCapability* OutlookAggregatePlugin::getCapabilityInterface(
    nvinfer1::PluginCapabilityType type) noexcept {
    switch (type) {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* OutlookAggregatePlugin::clone() noexcept {
    return guarded<nvinfer1::IPluginV3*>("clone", nullptr, [&] { return new OutlookAggregatePlugin(*this); });
}

int32_t OutlookAggregatePlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                                nvinfer1::DynamicPluginTensorDesc const* out,
                                                int32_t nbOutputs) noexcept {
    return guarded<int32_t>("configurePlugin", -1, [&] {
        if (nbInputs != kNbInputs || nbOutputs != 1 || in == nullptr || out == nullptr) {
            logPluginError("OutlookAggregate takes 2 inputs (v, attn) and gives 1 output");
            return -1;
        }
        if (in[0].desc.dims.nbDims != 4 || in[1].desc.dims.nbDims != 5) {
            logPluginError("OutlookAggregate expects v (B, H, W, C) and attn (B, windows, heads, k*k, k*k)");
            return -1;
        }
        // Static dims (those != -1) are checked here; the rest in onShapeChange.
        const int64_t channels = in[0].desc.dims.d[3];
        const int64_t kk = int64_t(attributes_.kernelSize) * attributes_.kernelSize;
        auto attnDimIs = [&](int32_t axis, int64_t expected) {
            return in[1].desc.dims.d[axis] == -1 || in[1].desc.dims.d[axis] == expected;
        };
        if ((channels != -1 && channels % attributes_.numHeads != 0) || !attnDimIs(2, attributes_.numHeads) ||
            !attnDimIs(3, kk) || !attnDimIs(4, kk)) {
            logPluginError("OutlookAggregate: v/attn dims do not fit num_heads=" + std::to_string(attributes_.numHeads) +
                           ", kernel_size=" + std::to_string(attributes_.kernelSize));
            return -1;
        }
        return 0;
    });
}

bool OutlookAggregatePlugin::supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                                       int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (inOut == nullptr || nbInputs != kNbInputs || nbOutputs != 1 || pos < 0 || pos > 2) return false;
    const nvinfer1::PluginTensorDesc& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR) return false;
    // v decides the type; attn and the output must match it (strongly typed networks bring their own types).
    return pos == 0 ? supportedType(desc.type) : desc.type == inOut[0].desc.type;
}

int32_t OutlookAggregatePlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                   DataType const* inputTypes, int32_t nbInputs) const noexcept {
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != 1 || nbInputs != kNbInputs) return -1;
    if (!supportedType(inputTypes[0]) || inputTypes[1] != inputTypes[0]) {
        logPluginError("OutlookAggregate: v and attn must both be float32 or both float16");
        return -1;
    }
    outputTypes[0] = inputTypes[0];
    return 0;
}

int32_t OutlookAggregatePlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                                                nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                                nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                                                nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept {
    if (inputs == nullptr || outputs == nullptr || nbInputs != kNbInputs || nbOutputs != 1 || inputs[0].nbDims != 4)
        return -1;
    outputs[0] = inputs[0];  // same (B, H, W, C) as v
    return 0;
}

int32_t OutlookAggregatePlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                                              nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    return guarded<int32_t>("onShapeChange", -1, [&] {
        if (in == nullptr || nbInputs != kNbInputs || nbOutputs != 1) return -1;
        const std::vector<int64_t> v = dimsOf(in[0].dims), attn = dimsOf(in[1].dims);
        std::string error;
        geometry_ = outlookGeometry(v.data(), static_cast<int32_t>(v.size()), attn.data(),
                                    static_cast<int32_t>(attn.size()), attributes_, error);
        if (!error.empty()) {
            logPluginError("OutlookAggregate: " + error);
            return -1;
        }
        return 0;
    });
}

int32_t OutlookAggregatePlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
                                        nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
                                        void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept {
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr || geometry_.channels == 0) return -1;
    const ElementType type = inputDesc[0].type == DataType::kHALF ? ElementType::kFloat16 : ElementType::kFloat32;
    const cudaError_t status = launchOutlookAggregate(inputs[0], inputs[1], outputs[0], geometry_, type, stream);
    if (status != cudaSuccess) {
        logPluginError(std::string("OutlookAggregate kernel launch failed: ") + cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

nvinfer1::IPluginV3* OutlookAggregatePlugin::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept {
    return clone();  // no per-context resources
}

nvinfer1::PluginFieldCollection const* OutlookAggregatePlugin::getFieldsToSerialize() noexcept {
    return &fieldCollection_;
}

// ---------------------------------------------------------------- creator

OutlookAggregateCreator::OutlookAggregateCreator() {
    fields_ = {PluginField("kernel_size", nullptr, PluginFieldType::kINT32, 1),
               PluginField("padding", nullptr, PluginFieldType::kINT32, 1),
               PluginField("stride", nullptr, PluginFieldType::kINT32, 1),
               PluginField("num_heads", nullptr, PluginFieldType::kINT32, 1)};
    fieldCollection_.nbFields = static_cast<int32_t>(fields_.size());
    fieldCollection_.fields = fields_.data();
}

nvinfer1::IPluginV3* OutlookAggregateCreator::createPlugin(char const* /*name*/,
                                                           nvinfer1::PluginFieldCollection const* fc,
                                                           nvinfer1::TensorRTPhase /*phase*/) noexcept {
    return guarded<nvinfer1::IPluginV3*>("createPlugin", nullptr, [&]() -> nvinfer1::IPluginV3* {
        OutlookAttributes a;
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i) {
            PluginField const& f = fc->fields[i];
            int32_t* target = !std::strcmp(f.name, "kernel_size") ? &a.kernelSize
                              : !std::strcmp(f.name, "padding")   ? &a.padding
                              : !std::strcmp(f.name, "stride")    ? &a.stride
                              : !std::strcmp(f.name, "num_heads") ? &a.numHeads
                                                                  : nullptr;
            if (target == nullptr) {
                logPluginError(std::string("OutlookAggregate: unknown attribute '") + f.name + "'");
                return nullptr;
            }
            if (f.type != PluginFieldType::kINT32 || f.length != 1 || f.data == nullptr) {
                logPluginError(std::string("OutlookAggregate: attribute '") + f.name + "' must be one int32");
                return nullptr;
            }
            *target = *static_cast<int32_t const*>(f.data);
        }
        const std::string error = outlookAttributeError(a);
        if (!error.empty()) {
            logPluginError("OutlookAggregate: " + error);
            return nullptr;
        }
        return new OutlookAggregatePlugin(a);
    });
}

}  // namespace volo_plugins
