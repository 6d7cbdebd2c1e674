// volo_image: image files -> the model's input, as volo_export/preprocess.py computes it.
//
//   bytes -> decode (stb_image: JPEG, PNG, BMP; decompression-bomb limit) -> EXIF orientation applied
//   -> 8-bit RGB (16-bit grey / 257, transparent pixels composited over black, as Pillow does)
//   -> resize the shorter side to int(size / crop_pct) with Pillow's own separable resampling
//      (bicubic a = -0.5, support scaled by the downscale factor, 22-bit fixed-point weights, 8-bit
//      intermediate), only the part the centre crop `size` keeps (zero padding) -> [0, 1]
//      -> (x - mean) / std -> float32 (3, S, S).
//
// The resize is bit-exact to Pillow's for the same RGB pixels; JPEG decoders differ (stb vs Pillow's
// libjpeg-turbo), so JPEG inputs differ by the decoders' rounding (README.md has the measured numbers).
// Errors are volo::Error with a one-line message naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "volo_io.h"

namespace volo {

//! 8-bit RGB, rows top to bottom, pixels interleaved (R, G, B).
struct RgbImage {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> pixels;  // width * height * 3
};

//! Pixels above which an image is refused before decoding: $VOLO_EXPORT_MAX_IMAGE_PIXELS, else Pillow's
//! default MAX_IMAGE_PIXELS (89478485), the same limit as volo_export.preprocess.max_image_pixels().
int64_t maxImagePixels();

//! True when `bytes` start like a JPEG, PNG or BMP file (what decodeImage reads).
bool looksLikeImage(const std::string& bytes);

//! Encoded image bytes -> the 8-bit RGB picture they show (EXIF orientation applied); `source` names it.
RgbImage decodeImage(const std::string& bytes, const std::string& source);

//! The EXIF orientation (1..8) of JPEG/PNG bytes; 1 when there is none or it is unreadable.
int exifOrientation(const std::string& bytes);

//! `image` turned upright for EXIF `orientation` (Pillow's ImageOps.exif_transpose).
RgbImage applyOrientation(const RgbImage& image, int orientation);

//! Pillow's `Image.resize((outWidth, outHeight), filter, box)`: the source `box` {x0, y0, x1, y1} (floats, as
//! Pillow takes it) resampled with Pillow's separable 8-bit filters (`interpolation`: bicubic, bilinear,
//! lanczos), horizontal pass first, a pass whose size and box are the identity skipped.
RgbImage resizeBox(const RgbImage& image, int outWidth, int outHeight, const float box[4],
                   const std::string& interpolation);

//! Whole-image resize (`interpolation` also nearest).
RgbImage resize(const RgbImage& image, int outWidth, int outHeight, const std::string& interpolation);

//! `image` -> float32 (3, size, size) written to `out` (size * size * 3 floats), as preprocess_image does;
//! an image whose resize target is above the pixel limit is an Error naming `name`.
void preprocessImage(const RgbImage& image, const Preprocessing& prep, float* out, const std::string& name = "image");

}  // namespace volo
