#include "outlookAggregateKernel.h"

#include <algorithm>

namespace volo_plugins {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535L * 32;  // grid-stride loop covers the rest

__device__ inline void store(float* out, int64_t i, float value) { out[i] = value; }
__device__ inline void store(__half* out, int64_t i, float value) { out[i] = __float2half(value); }

// One thread per output element; channels are innermost, so neighbouring threads read
// neighbouring channels of the same v pixel and attention weight (coalesced / broadcast).
template <typename T>
__global__ void outlookAggregateKernel(T const* __restrict__ v, T const* __restrict__ attn, T* __restrict__ out,
                                       OutlookGeometry g, int64_t total) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
        store(out, i, outlookAggregateAt(v, attn, g, i));
}

}  // namespace

cudaError_t launchOutlookAggregate(void const* v, void const* attn, void* out, OutlookGeometry const& g,
                                   ElementType type, cudaStream_t stream) noexcept {
    const int64_t total = g.batch * g.height * g.width * g.channels;
    if (total == 0) return cudaSuccess;
    const auto blocks = static_cast<unsigned>(std::min<int64_t>((total + kThreads - 1) / kThreads, kMaxBlocks));
    if (type == ElementType::kFloat16) {
        outlookAggregateKernel<__half><<<blocks, kThreads, 0, stream>>>(
            static_cast<__half const*>(v), static_cast<__half const*>(attn), static_cast<__half*>(out), g, total);
    } else {
        outlookAggregateKernel<float><<<blocks, kThreads, 0, stream>>>(
            static_cast<float const*>(v), static_cast<float const*>(attn), static_cast<float*>(out), g, total);
    }
    return cudaGetLastError();
}

}  // namespace volo_plugins
