// The outlook-attention aggregation (VOLO's unfold -> weighted sum -> fold) for ONE output
// element, shared by the CUDA kernel (outlookAggregateKernel.cu) and the host reference
// (outlook_aggregate_reference.cpp) that the tests compare with PyTorch. No TensorRT here.
//
//   v    (B, H, W, C)                       channels-last values
//   attn (B, gh * gw, heads, k*k, k*k)      softmaxed weights per window, gh/gw = windows()
//   out  (B, H, W, C)
//
//   out[b, y, x, c] = sum over windows (wy, wx) whose kernel position (ny, nx) lands on (y, x),
//                     i.e. wy*s - p + ny == y and wx*s - p + nx == x, of
//                     sum_{my, mx} attn[b, wy*gw + wx, head(c), ny*k + nx, my*k + mx]
//                                  * v[b, wy*s - p + my, wx*s - p + mx, c]        (0 outside the image)
//
// Gathering per output element (instead of scattering like fold) needs no atomics and is
// deterministic: with k = 3, s = 2 each element sums at most 4 windows x 9 taps.
#pragma once

#include <cstdint>
#include <string>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define VOLO_HOST_DEVICE __host__ __device__
#else
#define VOLO_HOST_DEVICE
#endif

namespace volo_plugins {

struct OutlookAttributes {
    int32_t kernelSize = 3;
    int32_t padding = 1;
    int32_t stride = 2;
    int32_t numHeads = 0;
};

//! Everything the kernel needs to index v, attn and out.
struct OutlookGeometry {
    int64_t batch = 0, height = 0, width = 0, channels = 0;
    int64_t gridH = 0, gridW = 0;
    int32_t heads = 0, kernel = 0, padding = 0, stride = 0;
};

//! Number of windows along a side of `size` (torch's unfold/fold output length).
VOLO_HOST_DEVICE inline int64_t outlookWindows(int64_t size, int32_t kernel, int32_t stride, int32_t padding) {
    return (size + 2 * padding - kernel) / stride + 1;
}

VOLO_HOST_DEVICE inline float toFloat(float x) { return x; }
#if defined(__CUDACC__)
__device__ inline float toFloat(__half x) { return __half2float(x); }
#endif

//! out[index] for index = ((b * H + y) * W + x) * C + c, accumulated in float.
template <typename T>
VOLO_HOST_DEVICE float outlookAggregateAt(const T* v, const T* attn, const OutlookGeometry& g, int64_t index) {
    const int64_t c = index % g.channels;
    int64_t rest = index / g.channels;
    const int64_t x = rest % g.width;
    rest /= g.width;
    const int64_t y = rest % g.height;
    const int64_t b = rest / g.height;
    const int64_t head = c / (g.channels / g.heads);
    const int32_t k = g.kernel;
    const int32_t kk = k * k;
    float acc = 0.0f;
    for (int32_t ny = 0; ny < k; ++ny) {
        const int64_t ty = y + g.padding - ny;  // = wy * stride for a window that covers y at row ny
        if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= g.gridH) continue;
        const int64_t wy = ty / g.stride;
        for (int32_t nx = 0; nx < k; ++nx) {
            const int64_t tx = x + g.padding - nx;
            if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= g.gridW) continue;
            const int64_t wx = tx / g.stride;
            const T* weights =
                attn + (((b * g.gridH * g.gridW + wy * g.gridW + wx) * g.heads + head) * kk + (ny * k + nx)) * kk;
            for (int32_t my = 0; my < k; ++my) {
                const int64_t sy = wy * g.stride - g.padding + my;
                if (sy < 0 || sy >= g.height) continue;
                for (int32_t mx = 0; mx < k; ++mx) {
                    const int64_t sx = wx * g.stride - g.padding + mx;
                    if (sx < 0 || sx >= g.width) continue;
                    acc += toFloat(weights[my * k + mx]) * toFloat(v[((b * g.height + sy) * g.width + sx) * g.channels + c]);
                }
            }
        }
    }
    return acc;
}

//! Why these attributes are invalid, or "" (checked when the plugin is created).
inline std::string outlookAttributeError(const OutlookAttributes& a) {
    if (a.kernelSize < 1) return "kernel_size must be >= 1";
    if (a.stride < 1) return "stride must be >= 1";
    if (a.padding < 0 || a.padding >= a.kernelSize) return "padding must be in [0, kernel_size)";
    if (a.numHeads < 1) return "num_heads must be >= 1";
    return {};
}

//! The geometry of concrete shapes v (B, H, W, C) and attn (B, gh*gw, heads, k*k, k*k), or the
//! reason they do not fit the attributes in `error` (geometry left zero).
inline OutlookGeometry outlookGeometry(const int64_t* v, int32_t vRank, const int64_t* attn, int32_t attnRank,
                                       const OutlookAttributes& a, std::string& error) {
    OutlookGeometry g;
    error.clear();
    if (vRank != 4 || attnRank != 5) {
        error = "expects v (B, H, W, C) and attn (B, windows, heads, k*k, k*k)";
        return g;
    }
    const int64_t kk = int64_t(a.kernelSize) * a.kernelSize;
    const int64_t gh = outlookWindows(v[1], a.kernelSize, a.stride, a.padding);
    const int64_t gw = outlookWindows(v[2], a.kernelSize, a.stride, a.padding);
    if (v[0] < 0 || v[1] < 1 || v[2] < 1 || v[3] < 1 || gh < 1 || gw < 1)
        error = "v has an empty or too small image for the kernel";
    else if (v[3] % a.numHeads != 0)
        error = "channels (" + std::to_string(v[3]) + ") must be divisible by num_heads (" + std::to_string(a.numHeads) + ")";
    else if (attn[0] != v[0] || attn[1] != gh * gw || attn[2] != a.numHeads || attn[3] != kk || attn[4] != kk)
        error = "attn must be (" + std::to_string(v[0]) + ", " + std::to_string(gh * gw) + ", " +
                std::to_string(a.numHeads) + ", " + std::to_string(kk) + ", " + std::to_string(kk) + ") for v (" +
                std::to_string(v[0]) + ", " + std::to_string(v[1]) + ", " + std::to_string(v[2]) + ", " +
                std::to_string(v[3]) + ")";
    if (!error.empty()) return g;
    g.batch = v[0];
    g.height = v[1];
    g.width = v[2];
    g.channels = v[3];
    g.gridH = gh;
    g.gridW = gw;
    g.heads = a.numHeads;
    g.kernel = a.kernelSize;
    g.padding = a.padding;
    g.stride = a.stride;
    return g;
}

}  // namespace volo_plugins
