// Launcher of the outlook aggregation kernel (float32 or float16 tensors, float32 accumulation).
#pragma once

#include <cuda_runtime_api.h>

#include "outlookAggregateMath.h"

namespace volo_plugins {

enum class ElementType { kFloat32, kFloat16 };

//! out (B, H, W, C) <- aggregate(v, attn) on `stream`; returns the launch status.
cudaError_t launchOutlookAggregate(void const* v, void const* attn, void* out, OutlookGeometry const& geometry,
                                   ElementType type, cudaStream_t stream) noexcept;

}  // namespace volo_plugins
