#include "volo_image.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <stb/stb_image.h>

namespace volo {
namespace {

// ---------------------------------------------------------------- byte helpers

uint32_t loadBE(const std::string& b, size_t at, size_t bytes) {
    uint32_t v = 0;
    for (size_t i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
    return v;
}

bool startsWith(const std::string& b, size_t at, const char* text, size_t n) {
    return b.size() >= at + n && std::memcmp(b.data() + at, text, n) == 0;
}

//! The orientation tag (0x0112) of IFD0 of a TIFF structure (EXIF payload) at b[at, at + n); 1 if none.
int tiffOrientation(const std::string& b, size_t at, size_t n) {
    if (n < 8 || at + n > b.size()) return 1;
    const bool little = startsWith(b, at, "II", 2);
    if (!little && !startsWith(b, at, "MM", 2)) return 1;
    auto read = [&](size_t off, size_t bytes) -> uint32_t {  // offset relative to the TIFF header
        if (off + bytes > n) return 0;
        uint32_t v = 0;
        for (size_t i = 0; i < bytes; ++i) {
            const uint32_t byte = static_cast<unsigned char>(b[at + off + (little ? bytes - 1 - i : i)]);
            v = (v << 8) | byte;
        }
        return v;
    };
    if (read(2, 2) != 42) return 1;
    const uint32_t ifd = read(4, 4);
    const uint32_t count = read(ifd, 2);
    for (uint32_t i = 0; i < count; ++i) {
        const size_t entry = static_cast<size_t>(ifd) + 2 + 12 * static_cast<size_t>(i);
        if (entry + 12 > n) break;
        if (read(entry, 2) == 0x0112 && read(entry + 2, 2) == 3) {  // SHORT
            const uint32_t value = read(entry + 8, 2);
            return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
        }
    }
    return 1;
}

// ---------------------------------------------------------------- Pillow's resampling (Resample.c)

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubicFilter(double x) {
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

double bilinearFilter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return std::sin(x) / x;
}

double lanczosFilter(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }

struct Filter {
    double (*fn)(double);
    double support;
};

Filter filterFor(const std::string& interpolation) {
    if (interpolation == "bicubic") return {bicubicFilter, 2.0};
    if (interpolation == "bilinear") return {bilinearFilter, 1.0};
    if (interpolation == "lanczos") return {lanczosFilter, 3.0};
    throw Error("unknown interpolation '" + interpolation + "'; one of bicubic, bilinear, nearest, lanczos");
}

//! Fixed-point weights of every output pixel along one axis (precompute_coeffs + normalize_coeffs_8bpc).
struct Coefficients {
    int ksize = 0;
    std::vector<int> first, count;  // source range of output pixel i: [first[i], first[i] + count[i])
    std::vector<int32_t> weights;   // ksize per output pixel
};

Coefficients precompute(int inSize, float in0, float in1, int outSize, const Filter& filter) {
    const double scale = static_cast<double>(in1 - in0) / outSize;
    const double filterscale = std::max(scale, 1.0);
    const double support = filter.support * filterscale;
    Coefficients c;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.first.resize(static_cast<size_t>(outSize));
    c.count.resize(static_cast<size_t>(outSize));
    c.weights.assign(static_cast<size_t>(outSize) * static_cast<size_t>(c.ksize), 0);
    std::vector<double> k(static_cast<size_t>(c.ksize));
    for (int xx = 0; xx < outSize; ++xx) {
        const double center = in0 + (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
        const int xmax = std::min(static_cast<int>(center + support + 0.5), inSize) - xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            k[static_cast<size_t>(x)] = filter.fn((x + xmin - center + 0.5) * ss);
            ww += k[static_cast<size_t>(x)];
        }
        int32_t* out = &c.weights[static_cast<size_t>(xx) * static_cast<size_t>(c.ksize)];
        for (int x = 0; x < xmax; ++x) {
            const double w = ww != 0.0 ? k[static_cast<size_t>(x)] / ww : k[static_cast<size_t>(x)];
            out[x] = static_cast<int32_t>(w < 0 ? -0.5 + w * (1 << kPrecisionBits) : 0.5 + w * (1 << kPrecisionBits));
        }
        c.first[static_cast<size_t>(xx)] = xmin;
        c.count[static_cast<size_t>(xx)] = xmax;
    }
    return c;
}

inline uint8_t clip8(int64_t v) {
    if (v >= (int64_t{1} << kPrecisionBits << 8)) return 255;
    if (v <= 0) return 0;
    return static_cast<uint8_t>(v >> kPrecisionBits);
}

//! Nearest neighbour as Pillow's resize does it (an affine transform sampling pixel centres).
RgbImage nearestWindow(const RgbImage& in, int outW, int outH, int x0, int y0, int cw, int ch) {
    RgbImage out{cw, ch, std::vector<uint8_t>(static_cast<size_t>(cw) * static_cast<size_t>(ch) * 3)};
    const double sx = static_cast<double>(in.width) / outW, sy = static_cast<double>(in.height) / outH;
    for (int y = 0; y < ch; ++y) {
        const int ys = std::min(static_cast<int>((y + y0 + 0.5) * sy), in.height - 1);
        for (int x = 0; x < cw; ++x) {
            const int xs = std::min(static_cast<int>((x + x0 + 0.5) * sx), in.width - 1);
            std::memcpy(&out.pixels[(static_cast<size_t>(y) * static_cast<size_t>(cw) + static_cast<size_t>(x)) * 3],
                        &in.pixels[(static_cast<size_t>(ys) * static_cast<size_t>(in.width) + static_cast<size_t>(xs)) * 3], 3);
        }
    }
    return out;
}

//! Python's floor division.
int floorDiv(int a, int b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0); }

// ---------------------------------------------------------------- decoding

struct StbFree {
    void operator()(void* p) const noexcept { stbi_image_free(p); }
};

//! Pillow's alpha_composite of `rgba` over opaque black (AlphaComposite.c with dst alpha 255), in place to RGB.
void compositeOverBlack(const uint8_t* rgba, size_t pixels, uint8_t* rgb) {
    for (size_t i = 0; i < pixels; ++i) {
        const uint32_t a = rgba[i * 4 + 3];
        for (size_t c = 0; c < 3; ++c) {
            const uint32_t tmp = rgba[i * 4 + c] * a * 128 + (0x80u << 7);
            rgb[i * 3 + c] = static_cast<uint8_t>((((tmp >> 8) + tmp) >> 8) >> 7);
        }
    }
}

}  // namespace

int64_t maxImagePixels() {
    const char* env = std::getenv("VOLO_EXPORT_MAX_IMAGE_PIXELS");
    if (env == nullptr) return 89478485;  // PIL.Image.MAX_IMAGE_PIXELS
    char* end = nullptr;
    const long long value = std::strtoll(env, &end, 10);
    if (end == env || *end != '\0')
        throw Error(std::string("VOLO_EXPORT_MAX_IMAGE_PIXELS='") + env + "' is not a whole number of pixels");
    return value;
}

bool looksLikeImage(const std::string& b) {
    return startsWith(b, 0, "\xFF\xD8\xFF", 3) || startsWith(b, 0, "\x89PNG\r\n\x1a\n", 8) || startsWith(b, 0, "BM", 2);
}

int exifOrientation(const std::string& b) {
    if (startsWith(b, 0, "\xFF\xD8", 2)) {  // JPEG: the APP1 "Exif\0\0" segment before the scan
        size_t p = 2;
        while (p + 4 <= b.size()) {
            if (static_cast<unsigned char>(b[p]) != 0xFF) break;
            const unsigned marker = static_cast<unsigned char>(b[p + 1]);
            if (marker == 0xFF) { ++p; continue; }  // fill byte
            if (marker == 0xD9 || marker == 0xDA) break;  // end of image / start of scan
            if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { p += 2; continue; }
            const size_t length = loadBE(b, p + 2, 2);
            if (length < 2 || p + 2 + length > b.size()) break;
            if (marker == 0xE1 && startsWith(b, p + 4, "Exif\0\0", 6))
                return tiffOrientation(b, p + 10, length - 8);
            p += 2 + length;
        }
        return 1;
    }
    if (startsWith(b, 0, "\x89PNG\r\n\x1a\n", 8)) {  // PNG: an eXIf chunk
        size_t p = 8;
        while (p + 12 <= b.size()) {
            const size_t length = loadBE(b, p, 4);
            if (p + 12 + length > b.size()) break;
            if (startsWith(b, p + 4, "eXIf", 4)) {
                const size_t at = startsWith(b, p + 8, "Exif\0\0", 6) ? p + 14 : p + 8;  // some writers keep the prefix
                return tiffOrientation(b, at, length - (at - p - 8));
            }
            p += 12 + length;
        }
    }
    return 1;
}

RgbImage applyOrientation(const RgbImage& in, int orientation) {
    if (orientation < 2 || orientation > 8) return in;
    const int W = in.width, H = in.height;
    const bool swap = orientation >= 5;  // TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90
    RgbImage out{swap ? H : W, swap ? W : H, std::vector<uint8_t>(in.pixels.size())};
    for (int y = 0; y < out.height; ++y) {
        for (int x = 0; x < out.width; ++x) {
            int sx = x, sy = y;
            switch (orientation) {
                case 2: sx = W - 1 - x; break;                      // FLIP_LEFT_RIGHT
                case 3: sx = W - 1 - x; sy = H - 1 - y; break;      // ROTATE_180
                case 4: sy = H - 1 - y; break;                      // FLIP_TOP_BOTTOM
                case 5: sx = y; sy = x; break;                      // TRANSPOSE
                case 6: sx = y; sy = H - 1 - x; break;              // ROTATE_270 (90 degrees clockwise)
                case 7: sx = W - 1 - y; sy = H - 1 - x; break;      // TRANSVERSE
                default: sx = W - 1 - y; sy = x; break;             // 8: ROTATE_90 (counter-clockwise)
            }
            std::memcpy(&out.pixels[(static_cast<size_t>(y) * static_cast<size_t>(out.width) + static_cast<size_t>(x)) * 3],
                        &in.pixels[(static_cast<size_t>(sy) * static_cast<size_t>(W) + static_cast<size_t>(sx)) * 3], 3);
        }
    }
    return out;
}

RgbImage decodeImage(const std::string& bytes, const std::string& source) {
    if (!looksLikeImage(bytes))
        throw Error("cannot read image " + source + ": not a JPEG, PNG or BMP file");
    if (bytes.size() > static_cast<size_t>(INT32_MAX)) throw Error("cannot read image " + source + ": file too large");
    const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
    const int length = static_cast<int>(bytes.size());
    int w = 0, h = 0, channels = 0;
    if (!stbi_info_from_memory(data, length, &w, &h, &channels))
        throw Error("cannot read image " + source + ": " + stbi_failure_reason());
    const int64_t pixels = int64_t{w} * h, limit = maxImagePixels();
    if (pixels > limit)
        throw Error(source + " is " + std::to_string(w) + "x" + std::to_string(h) + " = " +
                    std::to_string(std::llround(static_cast<double>(pixels) / 1e6)) + " megapixels, above the " +
                    std::to_string(std::llround(static_cast<double>(limit) / 1e6)) +
                    "-megapixel decompression-bomb limit; set VOLO_EXPORT_MAX_IMAGE_PIXELS=" + std::to_string(pixels) +
                    " to allow it");
    RgbImage image{w, h, std::vector<uint8_t>(static_cast<size_t>(pixels) * 3)};
    if (channels == 1 && stbi_is_16_bit_from_memory(data, length)) {  // Pillow's I;16: value / 257, rounded
        std::unique_ptr<stbi_us, StbFree> grey(stbi_load_16_from_memory(data, length, &w, &h, &channels, 1));
        if (!grey) throw Error("cannot read image " + source + ": " + stbi_failure_reason());
        for (size_t i = 0; i < static_cast<size_t>(pixels); ++i)
            std::memset(&image.pixels[i * 3], static_cast<int>(std::lround(grey.get()[i] / 257.0)), 3);
    } else {  // 8-bit (16-bit colour keeps the high byte, as Pillow does); alpha composited over black
        std::unique_ptr<stbi_uc, StbFree> rgba(stbi_load_from_memory(data, length, &w, &h, &channels, 4));
        if (!rgba) throw Error("cannot read image " + source + ": " + stbi_failure_reason());
        compositeOverBlack(rgba.get(), static_cast<size_t>(pixels), image.pixels.data());
    }
    return applyOrientation(image, exifOrientation(bytes));
}

RgbImage resizeBox(const RgbImage& in, int outW, int outH, const float box[4], const std::string& interpolation) {
    if (outW < 1 || outH < 1 || !(0 <= box[0] && box[0] < box[2] && box[2] <= static_cast<float>(in.width)) ||
        !(0 <= box[1] && box[1] < box[3] && box[3] <= static_cast<float>(in.height)))
        throw Error("resize box outside the image");
    const Filter filter = filterFor(interpolation);
    // Which passes Pillow runs (ImagingResampleInner): a pass whose size and box are the identity is skipped.
    const bool horizontal = outW != in.width || box[0] != 0 || box[2] != static_cast<float>(outW);
    const bool vertical = outH != in.height || box[1] != 0 || box[3] != static_cast<float>(outH);
    const size_t inStride = static_cast<size_t>(in.width) * 3;

    // Rows of the source that the output rows read (all of them without a vertical pass).
    Coefficients vert;
    int rowFirst = 0, rowLast = in.height;
    if (vertical) {
        vert = precompute(in.height, box[1], box[3], outH, filter);
        rowFirst = vert.first.front();
        rowLast = vert.first.back() + vert.count.back();
    }
    // Horizontal pass over those rows (8-bit intermediate, as Pillow).
    const int rows = rowLast - rowFirst;
    const int midW = horizontal ? outW : in.width;
    RgbImage mid{midW, rows, std::vector<uint8_t>(static_cast<size_t>(midW) * static_cast<size_t>(rows) * 3)};
    if (horizontal) {
        const Coefficients hor = precompute(in.width, box[0], box[2], outW, filter);
        for (int y = 0; y < rows; ++y) {
            const uint8_t* src = &in.pixels[static_cast<size_t>(y + rowFirst) * inStride];
            uint8_t* dst = &mid.pixels[static_cast<size_t>(y) * static_cast<size_t>(midW) * 3];
            for (size_t xx = 0; xx < static_cast<size_t>(outW); ++xx) {
                const int32_t* k = &hor.weights[xx * static_cast<size_t>(hor.ksize)];
                const uint8_t* p = src + static_cast<size_t>(hor.first[xx]) * 3;
                int64_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
                for (int i = 0; i < hor.count[xx]; ++i, p += 3) {
                    s0 += int64_t{p[0]} * k[i];
                    s1 += int64_t{p[1]} * k[i];
                    s2 += int64_t{p[2]} * k[i];
                }
                dst[xx * 3] = clip8(s0), dst[xx * 3 + 1] = clip8(s1), dst[xx * 3 + 2] = clip8(s2);
            }
        }
    } else {
        std::memcpy(mid.pixels.data(), &in.pixels[static_cast<size_t>(rowFirst) * inStride],
                    static_cast<size_t>(rows) * inStride);
    }
    if (!vertical) return mid;
    RgbImage out{midW, outH, std::vector<uint8_t>(static_cast<size_t>(midW) * static_cast<size_t>(outH) * 3)};
    const size_t midStride = static_cast<size_t>(midW) * 3;
    for (size_t yy = 0; yy < static_cast<size_t>(outH); ++yy) {
        const int32_t* k = &vert.weights[yy * static_cast<size_t>(vert.ksize)];
        const uint8_t* base = &mid.pixels[static_cast<size_t>(vert.first[yy] - rowFirst) * midStride];
        uint8_t* dst = &out.pixels[yy * midStride];
        for (size_t x = 0; x < midStride; ++x) {
            int64_t s = 1 << (kPrecisionBits - 1);
            for (int i = 0; i < vert.count[yy]; ++i) s += int64_t{base[static_cast<size_t>(i) * midStride + x]} * k[i];
            dst[x] = clip8(s);
        }
    }
    return out;
}

RgbImage resize(const RgbImage& image, int outWidth, int outHeight, const std::string& interpolation) {
    if (interpolation == "nearest") return nearestWindow(image, outWidth, outHeight, 0, 0, outWidth, outHeight);
    const float box[4] = {0, 0, static_cast<float>(image.width), static_cast<float>(image.height)};
    return resizeBox(image, outWidth, outHeight, box, interpolation);
}

void preprocessImage(const RgbImage& image, const Preprocessing& prep, float* out, const std::string& name) {
    const int size = static_cast<int>(prep.size);
    const int64_t shortSide = resizeTarget(prep);
    if (size < 1 || shortSide < 1 || prep.mean.size() != 3 || prep.std.size() != 3)
        throw Error("invalid preprocessing (size " + std::to_string(prep.size) + ")");
    // Shorter side to `shortSide`, the other scaled and rounded half-to-even (Python's round).
    const int w = image.width, h = image.height;
    const double scale = static_cast<double>(shortSide) / std::min(w, h);
    const int newW = w <= h ? static_cast<int>(shortSide) : std::max(1, static_cast<int>(std::nearbyint(w * scale)));
    const int newH = w <= h ? std::max(1, static_cast<int>(std::nearbyint(h * scale))) : static_cast<int>(shortSide);
    if (static_cast<int64_t>(newW) * newH > maxImagePixels())
        throw Error(name + " is " + std::to_string(w) + "x" + std::to_string(h) + ": with its shorter side resized to " +
                    std::to_string(shortSide) + " it would be above the pixel limit; crop it to a less extreme shape");
    // Centre crop (Python's floor division; negative offsets pad with zeros).
    const int top = floorDiv(newH - size, 2), left = floorDiv(newW - size, 2);
    const int srcY = std::max(top, 0), srcX = std::max(left, 0);
    const int ch = std::min(size, newH - srcY), cw = std::min(size, newW - srcX);
    const int dstY = std::max(-top, 0), dstX = std::max(-left, 0);
    // As preprocess.py: only the part the crop keeps is resampled, with Pillow's resize and a box: the
    // crop's columns over every row, then its rows (nearest: the window of the full resize).
    RgbImage crop;
    if (newW == w && newH == h) {
        crop = nearestWindow(image, w, h, srcX, srcY, cw, ch);  // a plain copy
    } else if (prep.interpolation == "nearest") {
        crop = nearestWindow(image, newW, newH, srcX, srcY, cw, ch);
    } else {
        const double sx = static_cast<double>(w) / newW, sy = static_cast<double>(h) / newH;
        const float columns[4] = {static_cast<float>(srcX * sx), 0, static_cast<float>((srcX + cw) * sx),
                                  static_cast<float>(h)};
        const RgbImage band = resizeBox(image, cw, h, columns, prep.interpolation);
        const float rowsBox[4] = {0, static_cast<float>(srcY * sy), static_cast<float>(cw),
                                  static_cast<float>((srcY + ch) * sy)};
        crop = resizeBox(band, cw, ch, rowsBox, prep.interpolation);
    }
    // float32 exactly as numpy: (p / 255 - mean) / std, all in float32; one table per channel.
    float table[3][256];
    for (size_t c = 0; c < 3; ++c) {
        const float mean = static_cast<float>(prep.mean[c]), stdev = static_cast<float>(prep.std[c]);
        for (int p = 0; p < 256; ++p) table[c][p] = (static_cast<float>(p) / 255.0f - mean) / stdev;
    }
    const size_t plane = static_cast<size_t>(size) * static_cast<size_t>(size);
    for (size_t c = 0; c < 3; ++c) std::fill(out + c * plane, out + (c + 1) * plane, table[c][0]);
    for (int y = 0; y < ch; ++y) {
        const uint8_t* src = &crop.pixels[static_cast<size_t>(y) * static_cast<size_t>(cw) * 3];
        const size_t row = static_cast<size_t>(y + dstY) * static_cast<size_t>(size) + static_cast<size_t>(dstX);
        for (int x = 0; x < cw; ++x)
            for (size_t c = 0; c < 3; ++c) out[c * plane + row + static_cast<size_t>(x)] = table[c][src[x * 3 + c]];
    }
}

}  // namespace volo
