// volo::OutlookAggregate: VOLO's outlook-attention aggregation as a TensorRT IPluginV3
// (TensorRT >= 10.0; the same interface in 11.x). Inputs, outputs and attributes: ../README.md.
#pragma once

#include <NvInfer.h>

#include <string>
#include <vector>

#include "outlookAggregateMath.h"

namespace volo_plugins {

constexpr char const* kOutlookPluginName = "OutlookAggregate";
constexpr char const* kOutlookPluginVersion = "1";
constexpr char const* kPluginNamespace = "volo";  // = the ONNX node's domain, which the parser tries as namespace

class OutlookAggregatePlugin : public nvinfer1::IPluginV3,
                               public nvinfer1::IPluginV3OneCore,
                               public nvinfer1::IPluginV3OneBuild,
                               public nvinfer1::IPluginV3OneRuntime {
public:
    explicit OutlookAggregatePlugin(OutlookAttributes attributes);
    OutlookAggregatePlugin(OutlookAggregatePlugin const& other);
    OutlookAggregatePlugin& operator=(OutlookAggregatePlugin const&) = delete;
    ~OutlookAggregatePlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return kOutlookPluginName; }
    char const* getPluginVersion() const noexcept override { return kOutlookPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    void exposeFields();

    OutlookAttributes attributes_;
    OutlookGeometry geometry_;  // set by onShapeChange
    std::vector<nvinfer1::PluginField> fields_;
    nvinfer1::PluginFieldCollection fieldCollection_{};
};

class OutlookAggregateCreator : public nvinfer1::IPluginCreatorV3One {
public:
    OutlookAggregateCreator();

    char const* getPluginName() const noexcept override { return kOutlookPluginName; }
    char const* getPluginVersion() const noexcept override { return kOutlookPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &fieldCollection_; }
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> fields_;
    nvinfer1::PluginFieldCollection fieldCollection_{};
};

//! Report an error through the logger TensorRT gave the library (setLoggerFinder), if any.
void logPluginError(std::string const& message) noexcept;

}  // namespace volo_plugins
