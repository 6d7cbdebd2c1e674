// Entry points TensorRT looks for when it loads this library dynamically
// (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, volo_infer --plugins).
#include <NvInfer.h>

#include <cstdio>
#include <mutex>

#include "outlookAggregatePlugin.h"

#if defined(_WIN32)
#define VOLO_PLUGIN_API __declspec(dllexport)
#else
#define VOLO_PLUGIN_API __attribute__((visibility("default")))
#endif

namespace {

std::mutex gLoggerMutex;
nvinfer1::ILoggerFinder* gLoggerFinder = nullptr;

}  // namespace

void volo_plugins::logPluginError(std::string const& message) noexcept {
    nvinfer1::ILogger* logger = nullptr;
    try {
        std::lock_guard<std::mutex> lock(gLoggerMutex);
        logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
    } catch (...) {
    }
    if (logger != nullptr) logger->log(nvinfer1::ILogger::Severity::kERROR, message.c_str());
    else std::fprintf(stderr, "[volo plugins] %s\n", message.c_str());
}

extern "C" VOLO_PLUGIN_API void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    gLoggerFinder = finder;
}

extern "C" VOLO_PLUGIN_API nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static volo_plugins::OutlookAggregateCreator outlookCreator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&outlookCreator};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}
