// Unit tests of volo_image (run by ctest). The comparison with Pillow itself is in
// tests/test_cpp_example.py (same photos through `volo-export preprocess` and volo_infer).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "volo_image.h"

namespace {

int failures = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond "\n"; \
            ++failures;                                                          \
        }                                                                        \
    } while (0)

#define EXPECT_ERROR(expr, needle)                                                                   \
    do {                                                                                             \
        try {                                                                                        \
            (void)(expr);                                                                            \
            std::cerr << __FILE__ << ":" << __LINE__ << ": expected an error from " #expr "\n";       \
            ++failures;                                                                              \
        } catch (const volo::Error& e) {                                                             \
            if (std::string(e.what()).find(needle) == std::string::npos) {                           \
                std::cerr << __FILE__ << ":" << __LINE__ << ": error '" << e.what() << "' lacks '" << (needle) << "'\n"; \
                ++failures;                                                                          \
            }                                                                                        \
        }                                                                                            \
    } while (0)

//! A width x height image whose pixel (x, y) is (x, y, 7).
volo::RgbImage ramp(int width, int height) {
    volo::RgbImage img{width, height, {}};
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) img.pixels.insert(img.pixels.end(), {uint8_t(x), uint8_t(y), 7});
    return img;
}

const uint8_t* at(const volo::RgbImage& img, int x, int y) { return &img.pixels[size_t(y * img.width + x) * 3]; }

void testOrientation() {
    const volo::RgbImage img = ramp(3, 2);
    // Where the source's top-left pixel (0, 0) lands for each EXIF orientation (Pillow's exif_transpose).
    const int expectW[9] = {0, 3, 3, 3, 3, 2, 2, 2, 2};
    for (int o = 1; o <= 8; ++o) {
        const volo::RgbImage out = volo::applyOrientation(img, o);
        CHECK(out.width == expectW[o] && out.height == 6 / expectW[o]);
    }
    CHECK(at(volo::applyOrientation(img, 2), 2, 0)[0] == 0);                                   // mirrored
    CHECK(at(volo::applyOrientation(img, 3), 2, 1)[0] == 0 && at(volo::applyOrientation(img, 3), 2, 1)[1] == 0);
    CHECK(at(volo::applyOrientation(img, 6), 1, 0)[0] == 0 && at(volo::applyOrientation(img, 6), 1, 0)[1] == 0);  // cw
    CHECK(at(volo::applyOrientation(img, 8), 0, 2)[0] == 0 && at(volo::applyOrientation(img, 8), 0, 2)[1] == 0);  // ccw
    CHECK(at(volo::applyOrientation(img, 5), 1, 2)[0] == 2 && at(volo::applyOrientation(img, 5), 1, 2)[1] == 1);  // transpose
}

void testExif() {
    // JPEG: SOI, APP1 "Exif\0\0" + big-endian TIFF with IFD0 = {Orientation (0x0112) SHORT 1 = 6}.
    std::string tiff = std::string("MM\0\x2a\0\0\0\x08", 8) + std::string("\0\x01", 2) +
                       std::string("\x01\x12\0\x03\0\0\0\x01\0\x06\0\0", 12) + std::string(4, '\0');
    std::string app1 = std::string("Exif\0\0", 6) + tiff;
    const size_t len = app1.size() + 2;
    std::string jpeg = std::string("\xFF\xD8\xFF\xE1", 4) + char(len >> 8) + char(len & 0xFF) + app1 + "\xFF\xD9";
    CHECK(volo::exifOrientation(jpeg) == 6);
    CHECK(volo::looksLikeImage(jpeg) && !volo::looksLikeImage("VOLOTNSR"));
    std::string little = jpeg;
    little.replace(12, tiff.size(), std::string("II\x2a\0\x08\0\0\0", 8) + std::string("\x01\0", 2) +
                                        std::string("\x12\x01\x03\0\x01\0\0\0\x03\0\0\0", 12) + std::string(4, '\0'));
    CHECK(volo::exifOrientation(little) == 3);
    CHECK(volo::exifOrientation(std::string("\xFF\xD8\xFF\xD9", 4)) == 1);
    CHECK(volo::exifOrientation(jpeg.substr(0, 20)) == 1);  // truncated: no orientation, no crash
}

void testDecodeErrors() {
    EXPECT_ERROR(volo::decodeImage("hello, world", "a.jpg"), "cannot read image a.jpg: not a JPEG, PNG or BMP file");
    EXPECT_ERROR(volo::decodeImage(std::string("\x89PNG\r\n\x1a\n", 8) + std::string(40, '\0'), "b.png"),
                 "cannot read image b.png: ");
}

void testResize() {
    const volo::RgbImage img = ramp(40, 30);
    const volo::RgbImage same = volo::resize(img, 40, 30, "bicubic");
    CHECK(same.pixels == img.pixels);
    // A box at scale 1 on whole pixels is a plain crop (every filter is 1 at 0 and 0 at other integers).
    const float box[4] = {3, 2, 13, 11};
    const volo::RgbImage cropped = volo::resizeBox(img, 10, 9, box, "bicubic");
    bool equal = true;
    for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 10; ++x)
            for (int c = 0; c < 3; ++c) equal = equal && at(cropped, x, y)[c] == at(img, x + 3, y + 2)[c];
    CHECK(equal);
    const float outside[4] = {0, 0, 41, 30};
    EXPECT_ERROR(volo::resizeBox(img, 10, 9, outside, "bicubic"), "resize box outside the image");
    const volo::RgbImage full = volo::resize(img, 17, 13, "bicubic");
    CHECK(at(full, 0, 0)[2] == 7 && at(full, 16, 12)[2] == 7);  // a constant channel stays constant
    CHECK(at(volo::resize(img, 20, 15, "bilinear"), 10, 0)[0] >= 19);
    EXPECT_ERROR(volo::resize(img, 20, 15, "area"), "unknown interpolation 'area'");
}

void testPreprocessPads() {
    // crop_pct > 1: the resized image is smaller than the crop; the border is normalised zeros.
    const volo::Preprocessing prep{16, 2.0, "bicubic", {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
    std::vector<float> out(3 * 16 * 16);
    volo::preprocessImage(ramp(20, 20), prep, out.data());
    CHECK(out[0] == -2.0f);                                // (0 - 0.5) / 0.25
    CHECK(std::fabs(out[2 * 256 + 8 * 16 + 8] - (7.0f / 255.0f - 0.5f) / 0.25f) < 1e-6f);  // blue is 7 inside
}

void testExtremeAspectRatioIsRefused() {
    // 20000x1 at size 224, crop_pct 0.875: the resize target would be 5 120 000 x 256 (1.3 gigapixels).
    const volo::Preprocessing prep{224, 0.875, "bicubic", {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
    std::vector<float> out(3 * 224 * 224);
    EXPECT_ERROR(volo::preprocessImage(ramp(20000, 1), prep, out.data(), "thin.png"),
                 "thin.png is 20000x1: with its shorter side resized to 256 it would be above the pixel limit");
}

}  // namespace

int main() {
    testOrientation();
    testExif();
    testDecodeErrors();
    testResize();
    testPreprocessPads();
    testExtremeAspectRatioIsRefused();
    if (failures == 0) std::cout << "volo_image_test: all checks passed\n";
    else std::cerr << "volo_image_test: " << failures << " check(s) failed\n";
    return failures == 0 ? 0 : 1;
}
