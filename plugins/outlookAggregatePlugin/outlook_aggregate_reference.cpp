// Host run of the kernel's per-element maths (outlookAggregateMath.h) on tensor files, so the
// tests can compare it with PyTorch's unfold/fold on a machine without a GPU or TensorRT:
//
//   outlook_aggregate_reference V.bin ATTN.bin OUT.bin --num-heads N [--kernel-size 3 --padding 1 --stride 2]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "outlookAggregateMath.h"
#include "volo_io.h"

int main(int argc, char** argv) {
    try {
        if (argc < 4) throw volo::Error("usage: outlook_aggregate_reference V.bin ATTN.bin OUT.bin --num-heads N "
                                        "[--kernel-size K] [--padding P] [--stride S]");
        volo_plugins::OutlookAttributes a;
        for (int i = 4; i < argc; i += 2) {
            if (i + 1 >= argc) throw volo::Error(std::string("missing value after ") + argv[i]);
            const std::string option = argv[i];
            const int value = std::atoi(argv[i + 1]);
            if (option == "--num-heads") a.numHeads = value;
            else if (option == "--kernel-size") a.kernelSize = value;
            else if (option == "--padding") a.padding = value;
            else if (option == "--stride") a.stride = value;
            else throw volo::Error("unknown option " + option);
        }
        if (const std::string why = volo_plugins::outlookAttributeError(a); !why.empty()) throw volo::Error(why);
        const volo::Tensor v = volo::readTensorFile(argv[1]);
        const volo::Tensor attn = volo::readTensorFile(argv[2]);
        std::string error;
        const volo_plugins::OutlookGeometry g = volo_plugins::outlookGeometry(
            v.dims.data(), static_cast<int32_t>(v.dims.size()), attn.dims.data(), static_cast<int32_t>(attn.dims.size()),
            a, error);
        if (!error.empty()) throw volo::Error(error);
        volo::Tensor out{v.dims, std::vector<float>(v.data.size())};
        for (size_t i = 0; i < out.data.size(); ++i)
            out.data[i] = volo_plugins::outlookAggregateAt(v.data.data(), attn.data.data(), g, static_cast<int64_t>(i));
        volo::writeTensorFile(argv[3], out);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
