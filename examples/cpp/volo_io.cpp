#include "volo_io.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace volo {
namespace {

// ---------------------------------------------------------------- tensor file layout
// Little-endian: magic[8] "VOLOTNSR", u32 version, u32 dtype, u32 ndim, u32 reserved,
// i64 dims[ndim], float32 data. Twin of volo_export/tensorfile.py.
constexpr char kMagic[8] = {'V', 'O', 'L', 'O', 'T', 'N', 'S', 'R'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kFloat32 = 1;
constexpr uint32_t kMaxDims = 8;
constexpr size_t kFixedHeader = 24;

bool hostIsLittleEndian() {
    const uint16_t probe = 1;
    unsigned char first = 0;
    std::memcpy(&first, &probe, 1);
    return first == 1;
}

uint64_t loadLE(const char* p, size_t bytes) {
    uint64_t value = 0;
    for (size_t i = 0; i < bytes; ++i) value |= uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
    return value;
}

void storeLE(std::string& out, uint64_t value, size_t bytes) {
    for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

// ---------------------------------------------------------------- JSON parser

class Parser {
public:
    Parser(const std::string& text, const std::string& source) : s_(text), source_(source) {}

    Json document() {
        skipSpace();
        Json value = parseValue(0);
        skipSpace();
        if (pos_ != s_.size()) fail("unexpected text after the JSON value");
        return value;
    }

private:
    static constexpr int kMaxDepth = 64;
    const std::string& s_;
    const std::string& source_;
    size_t pos_ = 0;

    [[noreturn]] void fail(const std::string& why) const {
        size_t line = 1, column = 1;
        for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
            if (s_[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        throw Error(source_ + " is not valid JSON: " + why + " at line " + std::to_string(line) + " column " +
                    std::to_string(column));
    }

    void skipSpace() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
            ++pos_;
    }

    bool consume(const char* literal) {
        const size_t n = std::strlen(literal);
        if (s_.compare(pos_, n, literal) != 0) return false;
        pos_ += n;
        return true;
    }

    Json parseValue(int depth) {
        if (depth > kMaxDepth) fail("nesting deeper than 64");
        if (pos_ >= s_.size()) fail("unexpected end of input");
        const char c = s_[pos_];
        if (c == '{') return parseObject(depth);
        if (c == '[') return parseArray(depth);
        if (c == '"') return Json::string(parseString());
        if (c == '-' || (c >= '0' && c <= '9')) return parseNumber();
        if (consume("true")) return Json::boolean(true);
        if (consume("false")) return Json::boolean(false);
        if (consume("null")) return Json();
        fail(std::string("unexpected character '") + c + "'");
    }

    Json parseObject(int depth) {
        ++pos_;  // '{'
        std::map<std::string, Json> members;
        skipSpace();
        if (pos_ < s_.size() && s_[pos_] == '}') {
            ++pos_;
            return Json::object(std::move(members));
        }
        for (;;) {
            skipSpace();
            if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a string key");
            std::string key = parseString();
            skipSpace();
            if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':'");
            ++pos_;
            skipSpace();
            members[key] = parseValue(depth + 1);  // a repeated key keeps its last value, like Python's json
            skipSpace();
            if (pos_ < s_.size() && s_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < s_.size() && s_[pos_] == '}') {
                ++pos_;
                return Json::object(std::move(members));
            }
            fail("expected ',' or '}'");
        }
    }

    Json parseArray(int depth) {
        ++pos_;  // '['
        std::vector<Json> items;
        skipSpace();
        if (pos_ < s_.size() && s_[pos_] == ']') {
            ++pos_;
            return Json::array(std::move(items));
        }
        for (;;) {
            skipSpace();
            items.push_back(parseValue(depth + 1));
            skipSpace();
            if (pos_ < s_.size() && s_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < s_.size() && s_[pos_] == ']') {
                ++pos_;
                return Json::array(std::move(items));
            }
            fail("expected ',' or ']'");
        }
    }

    Json parseNumber() {
        const size_t start = pos_;
        auto digits = [&] {
            const size_t from = pos_;
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
            return pos_ - from;
        };
        if (s_[pos_] == '-') ++pos_;
        if (pos_ < s_.size() && s_[pos_] == '0') {
            ++pos_;
        } else if (digits() == 0) {
            fail("malformed number");
        }
        if (pos_ < s_.size() && s_[pos_] == '.') {
            ++pos_;
            if (digits() == 0) fail("malformed number");
        }
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            ++pos_;
            if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
            if (digits() == 0) fail("malformed number");
        }
        return Json::number(s_.substr(start, pos_ - start));
    }

    unsigned hex4() {
        if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
        unsigned value = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = s_[pos_++];
            value <<= 4;
            if (c >= '0' && c <= '9') value |= unsigned(c - '0');
            else if (c >= 'a' && c <= 'f') value |= unsigned(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') value |= unsigned(c - 'A' + 10);
            else fail("bad hex digit in \\u escape");
        }
        return value;
    }

    static void appendUtf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }

    std::string parseString() {
        ++pos_;  // opening quote
        std::string out;
        for (;;) {
            if (pos_ >= s_.size()) fail("unterminated string");
            const char c = s_[pos_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                out.push_back(c);
                continue;
            }
            if (pos_ >= s_.size()) fail("unterminated escape");
            const char e = s_[pos_++];
            switch (e) {
                case '"': out.push_back('"'); break;
                case '\\': out.push_back('\\'); break;
                case '/': out.push_back('/'); break;
                case 'b': out.push_back('\b'); break;
                case 'f': out.push_back('\f'); break;
                case 'n': out.push_back('\n'); break;
                case 'r': out.push_back('\r'); break;
                case 't': out.push_back('\t'); break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00) {  // high surrogate: a low one must follow
                        if (!consume("\\u")) fail("lone high surrogate");
                        const unsigned low = hex4();
                        if (low < 0xDC00 || low > 0xDFFF) fail("bad low surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        fail("lone low surrogate");
                    }
                    appendUtf8(out, cp);
                    break;
                }
                default: fail(std::string("bad escape '\\") + e + "'");
            }
        }
    }
};

const char* typeName(Json::Type type) {
    switch (type) {
        case Json::Type::Null: return "null";
        case Json::Type::Bool: return "a boolean";
        case Json::Type::Number: return "a number";
        case Json::Type::String: return "a string";
        case Json::Type::Array: return "an array";
        case Json::Type::Object: return "an object";
    }
    return "?";
}

[[noreturn]] void typeError(const std::string& what, const char* expected, Json::Type got) {
    throw Error(what + " must be " + expected + ", got " + typeName(got));
}

// ---------------------------------------------------------------- sidecar helpers

//! Member `key` of `object`, or nullptr when absent or null.
const Json* member(const Json& object, const std::string& key) {
    const Json* value = object.find(key);
    return value == nullptr || value->isNull() ? nullptr : value;
}

const Json& require(const Json& object, const std::string& key, const std::string& what) {
    const Json* value = member(object, key);
    if (value == nullptr) throw Error(what + " has no '" + key + "'");
    return *value;
}

std::vector<int64_t> intList(const Json& value, const std::string& what) {
    std::vector<int64_t> out;
    for (const Json& item : value.asArray(what)) out.push_back(item.asInt(what + " item"));
    return out;
}

std::vector<double> doubleList(const Json& value, const std::string& what) {
    std::vector<double> out;
    for (const Json& item : value.asArray(what)) out.push_back(item.asDouble(what + " item"));
    return out;
}

//! "ampere-plus", "AMPERE_PLUS", "HardwareCompatibilityLevel.AMPERE_PLUS" -> "ampere-plus"
std::string normalizeHardwareCompat(std::string level) {
    const size_t dot = level.rfind('.');
    if (dot != std::string::npos) level = level.substr(dot + 1);
    for (char& c : level) c = (c == '_') ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return level;
}

//! profile.{min,opt,max}: full input shapes [N, C, H, W].
Profile parseProfile(const Json& value, const std::string& what) {
    value.asObject(what);
    Profile profile{intList(require(value, "min", what), what + ".min"), intList(require(value, "opt", what), what + ".opt"),
                    intList(require(value, "max", what), what + ".max")};
    if (profile.min.empty() || profile.min.size() != profile.opt.size() || profile.min.size() != profile.max.size())
        throw Error(what + " shapes must have the same, non-zero rank");
    for (size_t i = 0; i < profile.min.size(); ++i) {
        if (profile.min[i] < 0 || profile.min[i] > profile.opt[i] || profile.opt[i] > profile.max[i])
            throw Error(what + " needs 0 <= min <= opt <= max in every dim, got min " + shapeString(profile.min) +
                        " opt " + shapeString(profile.opt) + " max " + shapeString(profile.max));
    }
    return profile;
}

//! The sidecar's `metadata`: the ONNX's flat `volo_export.*` string props (ArtifactInfo.to_props),
//! whose non-string values are JSON-encoded (num_classes "1000", mean "[0.485, 0.456, 0.406]").
void parseMetadata(const Json& metadata, const std::string& what, EngineSidecar& s) {
    metadata.asObject(what);
    auto text = [&](const char* key) -> std::string {
        const std::string full = std::string("volo_export.") + key;
        const Json* v = member(metadata, full);
        return v == nullptr ? std::string() : v->asString(what + "." + full);
    };
    auto encoded = [&](const char* key) -> Json {
        const std::string value = text(key);
        return value.empty() ? Json() : parseJson(value, what + ".volo_export." + key);
    };
    s.hasMetadata = true;
    s.model = text("model");
    s.precision = text("precision");
    s.labels = text("labels");
    s.preprocessing.interpolation = text("interpolation");
    if (const Json n = encoded("num_classes"); !n.isNull()) s.numClasses = n.asInt(what + ".volo_export.num_classes");
    if (const Json n = encoded("image_size"); !n.isNull()) s.preprocessing.size = n.asInt(what + ".volo_export.image_size");
    if (const Json c = encoded("crop_pct"); !c.isNull()) s.preprocessing.cropPct = c.asDouble(what + ".volo_export.crop_pct");
    if (const Json m = encoded("mean"); !m.isNull()) s.preprocessing.mean = doubleList(m, what + ".volo_export.mean");
    if (const Json d = encoded("std"); !d.isNull()) s.preprocessing.std = doubleList(d, what + ".volo_export.std");
}

std::string shortVersion(const Version& v) {
    return std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
}

}  // namespace

// ---------------------------------------------------------------- tensor files

int64_t elementCount(const std::vector<int64_t>& dims) {
    int64_t count = 1;
    for (int64_t d : dims) {
        if (d < 0) throw Error("negative dim in shape " + shapeString(dims));
        if (d != 0 && count > std::numeric_limits<int64_t>::max() / d)
            throw Error("shape " + shapeString(dims) + " is too large");
        count *= d;
    }
    return count;
}

std::string shapeString(const std::vector<int64_t>& dims) {
    std::string out = "(";
    for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
    return out + ")";
}

std::string encodeTensor(const Tensor& tensor) {
    if (tensor.dims.empty() || tensor.dims.size() > kMaxDims)
        throw Error("tensor files hold 1..8 dims, got " + std::to_string(tensor.dims.size()));
    if (elementCount(tensor.dims) != static_cast<int64_t>(tensor.data.size()))
        throw Error("tensor data holds " + std::to_string(tensor.data.size()) + " values but shape " +
                    shapeString(tensor.dims) + " needs " + std::to_string(elementCount(tensor.dims)));
    std::string out(kMagic, sizeof(kMagic));
    storeLE(out, kVersion, 4);
    storeLE(out, kFloat32, 4);
    storeLE(out, tensor.dims.size(), 4);
    storeLE(out, 0, 4);
    for (int64_t d : tensor.dims) storeLE(out, static_cast<uint64_t>(d), 8);
    if (hostIsLittleEndian()) {
        out.append(reinterpret_cast<const char*>(tensor.data.data()), tensor.data.size() * sizeof(float));
    } else {
        for (float f : tensor.data) {
            uint32_t bits = 0;
            std::memcpy(&bits, &f, 4);
            storeLE(out, bits, 4);
        }
    }
    return out;
}

Tensor decodeTensor(const std::string& bytes, const std::string& source) {
    if (bytes.size() < kFixedHeader)
        throw Error(source + " is not a volo-export tensor file: only " + std::to_string(bytes.size()) + " bytes");
    if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
        throw Error(source + " is not a volo-export tensor file (no VOLOTNSR magic; write one with "
                             "`volo-export preprocess IMAGE --out FILE`)");
    const uint64_t version = loadLE(bytes.data() + 8, 4);
    const uint64_t dtype = loadLE(bytes.data() + 12, 4);
    const uint64_t ndim = loadLE(bytes.data() + 16, 4);
    if (version != kVersion)
        throw Error(source + " has tensor file version " + std::to_string(version) + "; this program reads 1");
    if (dtype != kFloat32) throw Error(source + " has dtype code " + std::to_string(dtype) + "; only 1 (float32) exists");
    if (ndim < 1 || ndim > kMaxDims) throw Error(source + " has " + std::to_string(ndim) + " dims; 1..8 allowed");
    const size_t offset = kFixedHeader + 8 * ndim;
    if (bytes.size() < offset) throw Error(source + " is truncated inside its header");
    Tensor tensor;
    for (size_t i = 0; i < ndim; ++i) {
        const auto d = static_cast<int64_t>(loadLE(bytes.data() + kFixedHeader + 8 * i, 8));
        tensor.dims.push_back(d);
    }
    const int64_t count = elementCount(tensor.dims);
    const auto available = static_cast<uint64_t>(bytes.size() - offset);
    if (static_cast<uint64_t>(count) > available / 4 || available != static_cast<uint64_t>(count) * 4)
        throw Error(source + " holds " + std::to_string(bytes.size()) + " bytes but shape " + shapeString(tensor.dims) +
                    " needs " + std::to_string(offset) + " + 4 * " + std::to_string(count));
    tensor.data.resize(static_cast<size_t>(count));
    if (hostIsLittleEndian()) {
        std::memcpy(tensor.data.data(), bytes.data() + offset, static_cast<size_t>(count) * 4);
    } else {
        for (size_t i = 0; i < tensor.data.size(); ++i) {
            const auto bits = static_cast<uint32_t>(loadLE(bytes.data() + offset + 4 * i, 4));
            std::memcpy(&tensor.data[i], &bits, 4);
        }
    }
    return tensor;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open " + path + ": " + std::strerror(errno));
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) throw Error("cannot read " + path);
    return buffer.str();
}

Tensor readTensorFile(const std::string& path) { return decodeTensor(readFile(path), path); }

void writeTensorFile(const std::string& path, const Tensor& tensor) {
    const std::string bytes = encodeTensor(tensor);
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw Error("cannot write " + tmp + ": " + std::strerror(errno));
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        out.close();
        if (!out) {
            std::remove(tmp.c_str());
            throw Error("cannot write " + tmp);
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(tmp.c_str());
        throw Error("cannot move " + tmp + " to " + path + ": " + why);
    }
}

// ---------------------------------------------------------------- JSON

Json Json::boolean(bool value) {
    Json j;
    j.type_ = Type::Bool;
    j.bool_ = value;
    return j;
}

Json Json::number(std::string text) {
    Json j;
    j.type_ = Type::Number;
    j.text_ = std::move(text);
    return j;
}

Json Json::string(std::string value) {
    Json j;
    j.type_ = Type::String;
    j.text_ = std::move(value);
    return j;
}

Json Json::array(std::vector<Json> items) {
    Json j;
    j.type_ = Type::Array;
    j.items_ = std::move(items);
    return j;
}

Json Json::object(std::map<std::string, Json> members) {
    Json j;
    j.type_ = Type::Object;
    j.members_ = std::move(members);
    return j;
}

const Json* Json::find(const std::string& key) const {
    if (type_ != Type::Object) return nullptr;
    const auto it = members_.find(key);
    return it == members_.end() ? nullptr : &it->second;
}

bool Json::asBool(const std::string& what) const {
    if (type_ != Type::Bool) typeError(what, "true or false", type_);
    return bool_;
}

double Json::asDouble(const std::string& what) const {
    if (type_ != Type::Number) typeError(what, "a number", type_);
    // The grammar was checked by the parser; strtod reads it (C locale: '.' decimal point).
    return std::strtod(text_.c_str(), nullptr);
}

int64_t Json::asInt(const std::string& what) const {
    if (type_ != Type::Number) typeError(what, "an integer", type_);
    if (text_.find_first_of(".eE") != std::string::npos) {
        const double d = asDouble(what);
        if (std::floor(d) != d || std::fabs(d) > 9.007199254740992e15) throw Error(what + " must be an integer, got " + text_);
        return static_cast<int64_t>(d);
    }
    errno = 0;
    const long long value = std::strtoll(text_.c_str(), nullptr, 10);
    if (errno == ERANGE) throw Error(what + " is out of range: " + text_);
    return static_cast<int64_t>(value);
}

const std::string& Json::asString(const std::string& what) const {
    if (type_ != Type::String) typeError(what, "a string", type_);
    return text_;
}

const std::vector<Json>& Json::asArray(const std::string& what) const {
    if (type_ != Type::Array) typeError(what, "an array", type_);
    return items_;
}

const std::map<std::string, Json>& Json::asObject(const std::string& what) const {
    if (type_ != Type::Object) typeError(what, "an object", type_);
    return members_;
}

Json parseJson(const std::string& text, const std::string& source) { return Parser(text, source).document(); }

// ---------------------------------------------------------------- versions

Version parseVersion(const std::string& text, const std::string& what) {
    Version v;
    v.text = text;
    int parts[4] = {0, 0, 0, 0};
    int count = 0;
    size_t i = 0;
    while (i < text.size() && count < 4) {
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) break;
        long value = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && value < 1000000)
            value = value * 10 + (text[i++] - '0');
        parts[count++] = static_cast<int>(value);
        if (i < text.size() && text[i] == '.') ++i;
        else break;
    }
    if (count < 2 || i != text.size()) throw Error(what + " must look like 10.13.0, got '" + text + "'");
    v.major = parts[0];
    v.minor = parts[1];
    v.patch = parts[2];
    return v;
}

Version versionFromTensorRtInt(int32_t value) {
    Version v;
    v.major = value / 10000;
    v.minor = (value / 100) % 100;
    v.patch = value % 100;
    v.text = shortVersion(v);
    return v;
}

Version versionFromCudaInt(int32_t value) {
    Version v;
    v.major = value / 1000;
    v.minor = (value % 1000) / 10;
    v.text = std::to_string(v.major) + "." + std::to_string(v.minor);
    return v;
}

ComputeCapability parseComputeCapability(const std::string& text) {
    const Version v = parseVersion(text, "compute capability");
    if (std::count(text.begin(), text.end(), '.') != 1)
        throw Error("compute capability must look like 8.9, got '" + text + "'");
    return ComputeCapability{v.major, v.minor};
}

std::string toString(const ComputeCapability& cc) { return std::to_string(cc.major) + "." + std::to_string(cc.minor); }

// ---------------------------------------------------------------- sidecar

EngineSidecar parseSidecar(const std::string& jsonText, const std::string& source) {
    const Json root = parseJson(jsonText, source);
    root.asObject(source);
    const Json* format = member(root, "format");
    const std::string found = format == nullptr ? "none" : format->asString(source + " 'format'");
    if (found != kSidecarFormat)
        throw Error(source + " is not a volo-export engine sidecar (format '" + found + "', expected '" +
                    kSidecarFormat + "')");
    EngineSidecar s;
    if (const Json* engine = member(root, "engine")) {
        if (const Json* v = member(*engine, "file")) s.engineFile = v->asString(source + " engine.file");
        if (const Json* v = member(*engine, "bytes")) s.engineBytes = v->asInt(source + " engine.bytes");
    }
    const Json& env = require(root, "environment", source);
    if (const Json* v = member(env, "tensorrt")) {
        s.tensorrtVersion = parseVersion(v->asString(source + " environment.tensorrt"), source + " environment.tensorrt");
        s.hasTensorrtVersion = true;
    }
    if (const Json* v = member(env, "compute_capability")) {
        s.computeCapability = parseComputeCapability(v->asString(source + " environment.compute_capability"));
        s.hasComputeCapability = true;
    }
    if (const Json* v = member(env, "cuda_runtime")) s.cudaRuntime = v->asString(source + " environment.cuda_runtime");
    if (const Json* v = member(env, "gpu_name")) s.gpuName = v->asString(source + " environment.gpu_name");
    if (const Json* io = member(root, "io")) {
        if (const Json* v = member(*io, "input")) s.inputName = v->asString(source + " io.input");
        if (const Json* v = member(*io, "output")) s.outputName = v->asString(source + " io.output");
    }
    s.profile = parseProfile(require(root, "profile", source), source + " profile");
    if (const Json* build = member(root, "build")) {
        if (const Json* v = member(*build, "version_compatible"))
            s.versionCompatible = v->asBool(source + " build.version_compatible");
        if (const Json* v = member(*build, "hardware_compat"))
            s.hardwareCompat = normalizeHardwareCompat(v->asString(source + " build.hardware_compat"));
        if (const Json* v = member(*build, "plugins"))
            for (const Json& item : v->asArray(source + " build.plugins"))
                s.plugins.push_back(item.asString(source + " build.plugins item"));
    }
    if (const Json* metadata = member(root, "metadata")) parseMetadata(*metadata, source + " metadata", s);
    return s;
}

EngineSidecar readSidecar(const std::string& path) { return parseSidecar(readFile(path), path); }

std::string sidecarPathFor(const std::string& enginePath) { return enginePath + ".json"; }

// ---------------------------------------------------------------- compatibility

Compatibility checkCompatibility(const EngineSidecar& sidecar, const RuntimeEnvironment& env) {
    Compatibility out;
    const std::string name = sidecar.engineFile.empty() ? std::string("the engine") : sidecar.engineFile;

    const Version& built = sidecar.tensorrtVersion;
    const Version& running = env.tensorrt;
    const bool sameMinor = running.major == built.major && running.minor == built.minor;
    if (!sidecar.hasTensorrtVersion) {
        out.warnings.push_back("the sidecar of " + name + " does not say which TensorRT built it");
    } else if (sidecar.versionCompatible) {
        if (running.major != built.major || running.minor < built.minor)
            out.errors.push_back(name + " is version-compatible from TensorRT " + built.text + " on, within TensorRT " +
                                 std::to_string(built.major) + ".x; this program runs TensorRT " + running.text +
                                 ": rebuild here");
    } else if (!sameMinor) {
        out.errors.push_back(name + " was built with TensorRT " + built.text + " but this program runs TensorRT " +
                             running.text + ": a plan loads only on the TensorRT version that built it; rebuild here "
                             "(volo-export engine) or build with --version-compatible");
    } else if (running.patch != built.patch) {
        out.warnings.push_back(name + " was built with TensorRT " + built.text + ", this program runs " + running.text +
                               " (same minor): usually loads; rebuild if it does not");
    }

    const ComputeCapability& cc = sidecar.computeCapability;
    const ComputeCapability& here = env.computeCapability;
    const std::string where = (sidecar.gpuName.empty() ? std::string("a GPU") : sidecar.gpuName) +
                              " (compute capability " + toString(cc) + ")";
    const std::string gpuHere = (env.gpuName.empty() ? std::string("this GPU") : env.gpuName) +
                                " (compute capability " + toString(here) + ")";
    const std::string& level = sidecar.hardwareCompat;
    if (level != "none" && level != "ampere-plus" && level != "same-compute-capability")
        out.warnings.push_back("unknown build.hardware_compat '" + level + "'; checking the exact compute capability");
    if (!sidecar.hasComputeCapability) {
        out.warnings.push_back("the sidecar of " + name + " does not say which GPU built it");
    } else if (level == "ampere-plus") {
        if (here.major < 8)
            out.errors.push_back(name + " is hardware-compatible with Ampere and newer (compute capability >= 8.0) "
                                 "but this GPU is " + gpuHere);
    } else if (cc.major != here.major || cc.minor != here.minor) {
        out.errors.push_back(name + " was built on " + where + " but this is " + gpuHere +
                             ": plans are specific to the GPU architecture; rebuild here" +
                             (level == "same-compute-capability" ? "" : " or build with --hardware-compat ampere-plus"));
    } else if (!sidecar.gpuName.empty() && !env.gpuName.empty() && sidecar.gpuName != env.gpuName) {
        out.warnings.push_back(name + " was built on " + sidecar.gpuName + ", running on " + env.gpuName +
                               " (same compute capability): it loads, but kernels were timed on the other GPU");
    }

    if (!sidecar.cudaRuntime.empty() && !env.cudaRuntime.empty()) {
        const Version b = parseVersion(sidecar.cudaRuntime, "environment.cuda_runtime");
        const Version r = parseVersion(env.cudaRuntime, "CUDA runtime");
        if (b.major != r.major)
            out.warnings.push_back(name + " was built against CUDA " + sidecar.cudaRuntime + ", this program runs CUDA " +
                                   env.cudaRuntime + ": TensorRT builds for different CUDA majors are different "
                                   "libraries; rebuild if loading fails");
    }
    return out;
}

std::string checkPlanSize(const EngineSidecar& sidecar, int64_t bytes, const std::string& enginePath) {
    if (bytes < kMinPlanBytes)
        return enginePath + " is " + std::to_string(bytes) + " bytes: too small to be a TensorRT plan";
    if (sidecar.engineBytes >= 0 && bytes != sidecar.engineBytes)
        return enginePath + " does not match its sidecar (" + std::to_string(bytes) + " bytes, sidecar says " +
               std::to_string(sidecar.engineBytes) + "): the file was replaced or damaged; rebuild it with "
               "volo-export engine";
    return {};
}

std::string checkInputShape(const Profile& profile, const std::vector<int64_t>& dims, const std::string& inputName) {
    if (dims.size() != profile.min.size())
        return "input tensor has shape " + shapeString(dims) + " but the engine's '" + inputName + "' has rank " +
               std::to_string(profile.min.size()) + " (profile min " + shapeString(profile.min) + ")";
    if (!dims.empty() && (dims[0] < profile.min[0] || dims[0] > profile.max[0]))
        return "batch " + std::to_string(dims[0]) + " is outside the engine's profile for '" + inputName + "' (batch " +
               std::to_string(profile.min[0]) + ".." + std::to_string(profile.max[0]) +
               "); split the input or rebuild with a larger --max-batch";
    for (size_t i = 1; i < dims.size(); ++i) {
        if (dims[i] < profile.min[i] || dims[i] > profile.max[i])
            return "input tensor has shape " + shapeString(dims) + " but the engine's '" + inputName +
                   "' accepts " + shapeString(profile.min) + " .. " + shapeString(profile.max) +
                   " (was it preprocessed for another model?)";
    }
    return {};
}

// ---------------------------------------------------------------- predictions

std::vector<float> softmax(const float* logits, size_t n) {
    std::vector<float> out(n);
    if (n == 0) return out;
    double maxValue = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < n; ++i) maxValue = std::max(maxValue, static_cast<double>(logits[i]));
    double sum = 0.0;
    std::vector<double> e(n);
    for (size_t i = 0; i < n; ++i) sum += (e[i] = std::exp(static_cast<double>(logits[i]) - maxValue));
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(e[i] / sum);
    return out;
}

std::vector<Prediction> topK(const float* logits, size_t n, size_t k) {
    const std::vector<float> probs = softmax(logits, n);
    std::vector<int64_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<int64_t>(i);
    auto better = [&](int64_t a, int64_t b) {  // strict weak order: larger logit, then lower index
        const float x = logits[a], y = logits[b];
        const bool xNan = std::isnan(x), yNan = std::isnan(y);
        if (xNan != yNan) return yNan;  // any number ranks above NaN
        if (!xNan && x != y) return x > y;
        return a < b;
    };
    k = std::min(k, n);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), better);
    std::vector<Prediction> out;
    for (size_t i = 0; i < k; ++i) out.push_back({order[i], logits[order[i]], probs[static_cast<size_t>(order[i])]});
    return out;
}

size_t countNonFinite(const float* values, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; ++i) count += std::isfinite(values[i]) ? 0 : 1;
    return count;
}

std::vector<std::string> readLabels(const std::string& path) {
    std::istringstream in(readFile(path));
    std::vector<std::string> labels;
    std::string line;
    while (std::getline(in, line)) {
        while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
        labels.push_back(line);
    }
    if (labels.empty()) throw Error("labels file " + path + " is empty (expected one class name per line)");
    return labels;
}

std::string labelFor(const std::vector<std::string>& labels, int64_t index) {
    if (index >= 0 && static_cast<size_t>(index) < labels.size() && !labels[static_cast<size_t>(index)].empty())
        return labels[static_cast<size_t>(index)];
    return "class " + std::to_string(index);
}

std::string jsonQuote(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out.push_back(c);
                }
        }
    }
    return out + "\"";
}

}  // namespace volo
