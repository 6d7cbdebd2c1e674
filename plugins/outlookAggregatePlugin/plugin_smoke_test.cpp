// Exercises libvolo_plugins through its TensorRT entry points the way TensorRT does, but
// without TensorRT or a GPU: dlopen, getCreators, createPlugin from fields, type/format/shape
// negotiation, serialization fields, clone, bad attributes. (The kernel itself needs a GPU;
// its maths is checked against PyTorch by outlook_aggregate_reference.)
//
//   plugin_smoke_test path/to/libvolo_plugins.so
#include <NvInfer.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

int failures = 0;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            ++failures;                                                            \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                          \
    } while (0)

using GetCreators = nvinfer1::IPluginCreatorInterface* const* (*)(int32_t&);

nvinfer1::PluginField intField(char const* name, int32_t const& value) {
    return nvinfer1::PluginField(name, &value, nvinfer1::PluginFieldType::kINT32, 1);
}

nvinfer1::DynamicPluginTensorDesc desc(std::vector<int64_t> const& dims, nvinfer1::DataType type,
                                       nvinfer1::TensorFormat format = nvinfer1::TensorFormat::kLINEAR) {
    nvinfer1::DynamicPluginTensorDesc d{};
    d.desc.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) d.desc.dims.d[i] = dims[i];
    d.desc.type = type;
    d.desc.format = format;
    return d;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: plugin_smoke_test libvolo_plugins.so\n");
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        std::fprintf(stderr, "error: %s\n", dlerror());
        return 1;
    }
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    CHECK(getCreators != nullptr && dlsym(lib, "setLoggerFinder") != nullptr);
    if (getCreators == nullptr) return 1;

    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = getCreators(count);
    CHECK(count == 1);
    auto* creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[0]);
    CHECK(std::strcmp(creator->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
    CHECK(std::string(creator->getPluginName()) == "OutlookAggregate" && std::string(creator->getPluginVersion()) == "1");
    CHECK(std::string(creator->getPluginNamespace()) == "volo");
    CHECK(creator->getFieldNames()->nbFields == 4);

    const int32_t kernel = 3, padding = 1, stride = 2, heads = 6;
    std::vector<nvinfer1::PluginField> fields{intField("kernel_size", kernel), intField("padding", padding),
                                              intField("stride", stride), intField("num_heads", heads)};
    nvinfer1::PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    std::unique_ptr<nvinfer1::IPluginV3> plugin(creator->createPlugin("outlook", &fc, nvinfer1::TensorRTPhase::kBUILD));
    CHECK(plugin != nullptr);
    if (plugin == nullptr) return 1;
    auto* build = static_cast<nvinfer1::IPluginV3OneBuild*>(plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
    auto* runtime =
        static_cast<nvinfer1::IPluginV3OneRuntime*>(plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    auto* core = static_cast<nvinfer1::IPluginV3OneCore*>(plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kCORE));
    CHECK(build != nullptr && runtime != nullptr && core != nullptr && build->getNbOutputs() == 1);
    CHECK(std::string(core->getPluginName()) == "OutlookAggregate");

    using nvinfer1::DataType;
    DataType out{};
    const DataType halfs[2] = {DataType::kHALF, DataType::kHALF}, mixed[2] = {DataType::kFLOAT, DataType::kHALF};
    CHECK(build->getOutputDataTypes(&out, 1, halfs, 2) == 0 && out == DataType::kHALF);
    CHECK(build->getOutputDataTypes(&out, 1, mixed, 2) != 0);

    // v (2, 28, 28, 192), attn (2, 14*14, 6, 9, 9): VOLO-D1's first stage.
    std::vector<nvinfer1::DynamicPluginTensorDesc> io{desc({2, 28, 28, 192}, DataType::kFLOAT),
                                                      desc({2, 196, 6, 9, 9}, DataType::kFLOAT),
                                                      desc({2, 28, 28, 192}, DataType::kFLOAT)};
    CHECK(build->supportsFormatCombination(0, io.data(), 2, 1) && build->supportsFormatCombination(2, io.data(), 2, 1));
    io[1].desc.type = DataType::kHALF;
    CHECK(!build->supportsFormatCombination(1, io.data(), 2, 1));
    io[1].desc.type = DataType::kFLOAT;
    io[0].desc.type = DataType::kINT8;
    CHECK(!build->supportsFormatCombination(0, io.data(), 2, 1));
    io[0].desc.type = DataType::kFLOAT;
    CHECK(build->configurePlugin(io.data(), 2, io.data() + 2, 1) == 0);
    io[0].desc.dims.d[0] = io[1].desc.dims.d[0] = -1;  // dynamic batch
    CHECK(build->configurePlugin(io.data(), 2, io.data() + 2, 1) == 0);
    io[1].desc.dims.d[2] = 4;  // wrong head count
    CHECK(build->configurePlugin(io.data(), 2, io.data() + 2, 1) != 0);

    nvinfer1::PluginTensorDesc in[2] = {desc({3, 28, 28, 192}, DataType::kFLOAT).desc,
                                        desc({3, 196, 6, 9, 9}, DataType::kFLOAT).desc};
    nvinfer1::PluginTensorDesc outDesc = desc({3, 28, 28, 192}, DataType::kFLOAT).desc;
    CHECK(runtime->onShapeChange(in, 2, &outDesc, 1) == 0);
    in[1].dims.d[1] = 195;  // windows do not fit the image
    CHECK(runtime->onShapeChange(in, 2, &outDesc, 1) != 0);

    nvinfer1::PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
    CHECK(saved != nullptr && saved->nbFields == 4);
    std::unique_ptr<nvinfer1::IPluginV3> restored(creator->createPlugin("outlook", saved, nvinfer1::TensorRTPhase::kRUNTIME));
    CHECK(restored != nullptr);
    std::unique_ptr<nvinfer1::IPluginV3> copy(plugin->clone());
    CHECK(copy != nullptr && copy.get() != plugin.get());
    plugin.reset();  // the clone must not point into the original
    auto* copyRuntime =
        static_cast<nvinfer1::IPluginV3OneRuntime*>(copy->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    CHECK(*static_cast<int32_t const*>(copyRuntime->getFieldsToSerialize()->fields[3].data) == heads);

    const int32_t badPadding = 3;
    std::vector<nvinfer1::PluginField> bad{intField("kernel_size", kernel), intField("padding", badPadding),
                                           intField("num_heads", heads)};
    nvinfer1::PluginFieldCollection badFc{static_cast<int32_t>(bad.size()), bad.data()};
    CHECK(creator->createPlugin("outlook", &badFc, nvinfer1::TensorRTPhase::kBUILD) == nullptr);
    std::vector<nvinfer1::PluginField> unknown{intField("num_heads", heads), intField("dilation", kernel)};
    nvinfer1::PluginFieldCollection unknownFc{static_cast<int32_t>(unknown.size()), unknown.data()};
    CHECK(creator->createPlugin("outlook", &unknownFc, nvinfer1::TensorRTPhase::kBUILD) == nullptr);

    std::printf(failures == 0 ? "plugin_smoke_test: all checks passed\n" : "plugin_smoke_test: %d check(s) failed\n",
                failures);
    return failures == 0 ? 0 : 1;
}
