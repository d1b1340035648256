#include "serialize.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <set>

namespace xg::nn {

namespace {

// The safetensors reference implementation refuses headers above 100 MB.
constexpr std::uint64_t kMaxHeader = 100'000'000;
constexpr int kMaxDepth = 32;

[[noreturn]] void fail(const std::string& what) { throw SerializationError("safetensors: " + what); }

// --- a small strict JSON parser (RFC 8259; numbers kept as their text) ------------------------------
// NOTE: written here rather than taking nlohmann_json because the safetensors header grammar is tiny,
// the parser must enforce limits (depth, duplicate keys, trailing bytes) on hostile input anyway, and
// it keeps the installed library free of another dependency.
struct JsonMember;
struct Json {
    enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
    std::string text;  // string value or number lexeme
    std::vector<Json> items;
    // Not std::pair<std::string, Json>: a pair of the incomplete Json is ill-formed (clang rejects it).
    std::vector<JsonMember> members;
};
struct JsonMember {
    std::string name;
    Json value;
};

class JsonParser {
public:
    explicit JsonParser(const std::string& s) : s_(s) {}

    Json parse_document() {
        skip_ws();
        Json v = value(0);
        skip_ws();
        if (i_ != s_.size()) error("unexpected bytes after the JSON value");
        return v;
    }

private:
    [[noreturn]] void error(const std::string& what) const {
        fail("bad header JSON at byte " + std::to_string(i_) + ": " + what);
    }

    void skip_ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }
    bool eat(char c) {
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) error(std::string("expected '") + c + "'");
    }
    void literal(const char* word) {
        const std::size_t n = std::strlen(word);
        if (s_.compare(i_, n, word) != 0) error("invalid literal");
        i_ += n;
    }

    Json value(int depth) {
        if (depth > kMaxDepth) error("nesting deeper than " + std::to_string(kMaxDepth));
        if (i_ >= s_.size()) error("unexpected end");
        Json v;
        const char c = s_[i_];
        if (c == '{') {
            v.kind = Json::Kind::object;
            ++i_;
            skip_ws();
            std::set<std::string> keys;
            if (!eat('}')) {
                do {
                    skip_ws();
                    std::string key = string();
                    if (!keys.insert(key).second) error("duplicate key \"" + key + "\"");
                    skip_ws();
                    expect(':');
                    skip_ws();
                    v.members.push_back({std::move(key), value(depth + 1)});
                    skip_ws();
                } while (eat(','));
                expect('}');
            }
        } else if (c == '[') {
            v.kind = Json::Kind::array;
            ++i_;
            skip_ws();
            if (!eat(']')) {
                do {
                    skip_ws();
                    v.items.push_back(value(depth + 1));
                    skip_ws();
                } while (eat(','));
                expect(']');
            }
        } else if (c == '"') {
            v.kind = Json::Kind::string;
            v.text = string();
        } else if (c == 't') {
            literal("true");
            v.kind = Json::Kind::boolean;
            v.text = "true";
        } else if (c == 'f') {
            literal("false");
            v.kind = Json::Kind::boolean;
            v.text = "false";
        } else if (c == 'n') {
            literal("null");
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            v.kind = Json::Kind::number;
            v.text = number();
        } else {
            error(std::string("unexpected character '") + c + "'");
        }
        return v;
    }

    std::string number() {
        const std::size_t start = i_;
        auto digits = [&] {
            const std::size_t b = i_;
            while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
            if (i_ == b) error("malformed number");
        };
        eat('-');
        if (eat('0')) {
        } else {
            digits();
        }
        if (eat('.')) digits();
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
            ++i_;
            if (!eat('+')) eat('-');
            digits();
        }
        return s_.substr(start, i_ - start);
    }

    unsigned hex4() {
        if (i_ + 4 > s_.size()) error("truncated \\u escape");
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            v <<= 4;
            if (h >= '0' && h <= '9')
                v |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f')
                v |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F')
                v |= static_cast<unsigned>(h - 'A' + 10);
            else
                error("bad hex digit in \\u escape");
        }
        return v;
    }

    static void put_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::string string() {
        expect('"');
        std::string out;
        while (true) {
            if (i_ >= s_.size()) error("unterminated string");
            const unsigned char c = static_cast<unsigned char>(s_[i_++]);
            if (c == '"') break;
            if (c < 0x20) error("control character in string");
            if (c != '\\') {
                out += static_cast<char>(c);
                continue;
            }
            if (i_ >= s_.size()) error("unterminated escape");
            const char e = s_[i_++];
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (!(eat('\\') && eat('u'))) error("unpaired surrogate");
                        const unsigned lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) error("unpaired surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        error("unpaired surrogate");
                    }
                    put_utf8(out, cp);
                    break;
                }
                default:
                    error(std::string("bad escape \\") + e);
            }
        }
        return out;
    }

    const std::string& s_;
    std::size_t i_ = 0;
};

// A non-negative integer that fits in 63 bits, or an error naming `what`.
std::uint64_t as_uint(const Json& v, const std::string& what) {
    if (v.kind != Json::Kind::number || v.text.empty() || v.text[0] == '-' ||
        v.text.find_first_of(".eE") != std::string::npos)
        fail(what + " must be a non-negative integer");
    std::uint64_t r = 0;
    for (char c : v.text) {
        const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (r > (std::numeric_limits<std::uint64_t>::max() >> 1) / 10) fail(what + " is too large");
        r = r * 10 + d;
    }
    if (r > (std::numeric_limits<std::uint64_t>::max() >> 1)) fail(what + " is too large");
    return r;
}

std::string json_escape(const std::string& s) {
    std::string r = "\"";
    for (unsigned char c : s) {
        if (c == '"')
            r += "\\\"";
        else if (c == '\\')
            r += "\\\\";
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            r += buf;
        } else
            r += static_cast<char>(c);
    }
    return r + "\"";
}

const char* dtype_tag(Dtype d) {
    switch (d) {
        case Dtype::f32:
            return "F32";
        case Dtype::f64:
            return "F64";
        default:
            return "I64";
    }
}

Dtype parse_dtype(const std::string& tag, const std::string& name) {
    if (tag == "F32") return Dtype::f32;
    if (tag == "F64") return Dtype::f64;
    if (tag == "I64") return Dtype::i64;
    fail("tensor '" + name + "' has dtype '" + tag + "', which xgrad does not read (F32, F64, I64)");
}

// Byte swap of each element on big-endian hosts (the format is little-endian).
void to_little_endian(char* p, std::size_t n, std::size_t elem) {
    if constexpr (std::endian::native == std::endian::big)
        for (std::size_t i = 0; i + elem <= n; i += elem) std::reverse(p + i, p + i + elem);
    (void)p, (void)n, (void)elem;
}

// Where the bytes come from: a file or a memory image.
class Source {
public:
    virtual ~Source() = default;
    virtual std::uint64_t size() const = 0;
    /// Reads exactly n bytes at offset (the caller has checked the range).
    virtual void read(std::uint64_t offset, std::uint64_t n, char* dst) = 0;
};

class FileSource : public Source {
public:
    explicit FileSource(const std::string& path) : path_(path) {
        f_ = std::fopen(path.c_str(), "rb");
        if (!f_) fail("cannot open '" + path + "': " + std::strerror(errno));
        if (::fseeko(f_, 0, SEEK_END) != 0) fail("cannot seek in '" + path + "'");
        const off_t end = ::ftello(f_);
        if (end < 0) fail("cannot size '" + path + "'");
        size_ = static_cast<std::uint64_t>(end);
    }
    ~FileSource() override { std::fclose(f_); }
    std::uint64_t size() const override { return size_; }
    void read(std::uint64_t offset, std::uint64_t n, char* dst) override {
        if (::fseeko(f_, static_cast<off_t>(offset), SEEK_SET) != 0 || std::fread(dst, 1, n, f_) != n)
            fail("cannot read " + std::to_string(n) + " bytes at offset " + std::to_string(offset) + " of '" + path_ +
                 "' (file changed or truncated?)");
    }

private:
    std::string path_;
    std::FILE* f_ = nullptr;
    std::uint64_t size_ = 0;
};

class MemorySource : public Source {
public:
    explicit MemorySource(const std::string& bytes) : b_(bytes) {}
    std::uint64_t size() const override { return b_.size(); }
    void read(std::uint64_t offset, std::uint64_t n, char* dst) override { std::memcpy(dst, b_.data() + offset, n); }

private:
    const std::string& b_;
};

SafetensorsFile parse(Source& src) {
    const std::uint64_t size = src.size();
    if (size < 8) fail("file of " + std::to_string(size) + " bytes is too short for the 8-byte header length");
    unsigned char len_bytes[8];
    src.read(0, 8, reinterpret_cast<char*>(len_bytes));
    std::uint64_t header_len = 0;
    for (int k = 7; k >= 0; --k) header_len = (header_len << 8) | len_bytes[k];
    if (header_len > size - 8)
        fail("header length " + std::to_string(header_len) + " exceeds the " + std::to_string(size - 8) +
             " bytes after it (truncated file?)");
    if (header_len > kMaxHeader) fail("header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
    if (header_len < 2) fail("header of " + std::to_string(header_len) + " bytes cannot hold a JSON object");
    std::string header(header_len, '\0');
    src.read(8, header_len, header.data());
    const Json doc = JsonParser(header).parse_document();
    if (doc.kind != Json::Kind::object) fail("the header is not a JSON object");

    const std::uint64_t data_start = 8 + header_len, data_size = size - data_start;
    struct Entry {
        std::string name;
        Dtype dtype;
        Shape shape;
        std::uint64_t begin, end;
    };
    std::vector<Entry> entries;
    SafetensorsFile out;
    for (const auto& [name, v] : doc.members) {
        if (name == "__metadata__") {
            if (v.kind != Json::Kind::object) fail("__metadata__ must be an object of strings");
            for (const auto& [k, s] : v.members) {
                if (s.kind != Json::Kind::string) fail("metadata value of '" + k + "' is not a string");
                out.metadata[k] = s.text;
            }
            continue;
        }
        if (v.kind != Json::Kind::object) fail("entry '" + name + "' is not an object");
        const Json *dt = nullptr, *sh = nullptr, *off = nullptr;
        for (const auto& [k, f] : v.members) {
            if (k == "dtype")
                dt = &f;
            else if (k == "shape")
                sh = &f;
            else if (k == "data_offsets")
                off = &f;
            else
                fail("entry '" + name + "' has an unknown field '" + k + "'");
        }
        if (!dt || !sh || !off) fail("entry '" + name + "' needs dtype, shape and data_offsets");
        if (dt->kind != Json::Kind::string) fail("dtype of '" + name + "' is not a string");
        if (sh->kind != Json::Kind::array) fail("shape of '" + name + "' is not an array");
        if (off->kind != Json::Kind::array || off->items.size() != 2)
            fail("data_offsets of '" + name + "' must be an array of two integers");
        Entry e{name, parse_dtype(dt->text, name), {}, 0, 0};
        if (sh->items.size() > 64) fail("shape of '" + name + "' has more than 64 dimensions");
        std::uint64_t numel = 1;
        for (const auto& d : sh->items) {
            const std::uint64_t n = as_uint(d, "a dimension of '" + name + "'");
            if (n != 0 && numel > (std::numeric_limits<std::uint64_t>::max() >> 4) / n)
                fail("shape of '" + name + "' has too many elements");
            numel *= n;
            e.shape.push_back(static_cast<std::int64_t>(n));
        }
        e.begin = as_uint(off->items[0], "data_offsets of '" + name + "'");
        e.end = as_uint(off->items[1], "data_offsets of '" + name + "'");
        const std::uint64_t nbytes = numel * dtype_size(e.dtype);
        if (e.begin > e.end || e.end > data_size)
            fail("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] of '" + name +
                 "' are outside the " + std::to_string(data_size) + " data bytes");
        if (e.end - e.begin != nbytes)
            fail("'" + name + "' of shape " + shape_str(e.shape) + " and dtype " + dt->text + " needs " +
                 std::to_string(nbytes) + " bytes, data_offsets give " + std::to_string(e.end - e.begin));
        entries.push_back(std::move(e));
    }
    // The data buffer is covered exactly: no overlaps, no holes.
    std::vector<const Entry*> order;
    for (const auto& e : entries) order.push_back(&e);
    std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    std::uint64_t pos = 0;
    for (const Entry* e : order) {
        if (e->begin != pos)
            fail("'" + e->name + "' starts at data byte " + std::to_string(e->begin) +
                 " but the previous tensor ends at " + std::to_string(pos) +
                 (e->begin < pos ? " (overlap)" : " (hole)"));
        pos = e->end;
    }
    if (pos != data_size)
        fail("tensors cover " + std::to_string(pos) + " of the " + std::to_string(data_size) + " data bytes");
    for (const auto& e : entries) {
        Array a(e.shape, e.dtype);
        if (e.end > e.begin) {
            src.read(data_start + e.begin, e.end - e.begin, static_cast<char*>(a.raw()));
            to_little_endian(static_cast<char*>(a.raw()), e.end - e.begin, dtype_size(e.dtype));
        }
        out.tensors.emplace_back(e.name, Tensor(std::move(a)));
    }
    return out;
}

std::string build(const StateDict& tensors, const std::map<std::string, std::string>& metadata,
                  std::vector<const Tensor*>& order) {
    std::string h = "{";
    if (!metadata.empty()) {
        h += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : metadata) {
            h += (first ? "" : ",") + json_escape(k) + ":" + json_escape(v);
            first = false;
        }
        h += "}";
    }
    std::set<std::string> names;
    std::uint64_t off = 0;
    for (const auto& [name, t] : tensors) {
        if (name.empty() || name == "__metadata__") fail("invalid tensor name '" + name + "'");
        if (!names.insert(name).second) fail("duplicate tensor name '" + name + "'");
        if (!t.defined()) fail("tensor '" + name + "' is undefined");
        const std::uint64_t n = static_cast<std::uint64_t>(t.numel()) * dtype_size(t.dtype());
        if (h.size() > 1) h += ',';
        h += json_escape(name);
        h += ":{\"dtype\":\"";
        h += dtype_tag(t.dtype());
        h += "\",\"shape\":[";
        for (std::size_t d = 0; d < t.ndim(); ++d) {
            if (d) h += ',';
            h += std::to_string(t.shape()[d]);
        }
        h += "],\"data_offsets\":[";
        h += std::to_string(off);
        h += ',';
        h += std::to_string(off + n);
        h += "]}";
        off += n;
        order.push_back(&t);
    }
    h += "}";
    while (h.size() % 8) h += ' ';  // the reference writer pads to 8 bytes so the data is aligned
    return h;
}

std::atomic<std::uint64_t> g_tmp_counter{0};

}  // namespace

void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata) {
    std::vector<const Tensor*> order;
    const std::string header = build(tensors, metadata, order);
    const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_tmp_counter++);
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail("cannot create '" + tmp + "': " + std::strerror(errno));
    bool ok = true;
    unsigned char len[8];
    std::uint64_t n = header.size();
    for (int k = 0; k < 8; ++k) len[k] = static_cast<unsigned char>(n >> (8 * k));
    ok = ok && std::fwrite(len, 1, 8, f) == 8;
    ok = ok && std::fwrite(header.data(), 1, header.size(), f) == header.size();
    for (const Tensor* t : order) {
        const std::size_t bytes = static_cast<std::size_t>(t->numel()) * dtype_size(t->dtype());
        if (!ok || bytes == 0) continue;
        if constexpr (std::endian::native == std::endian::little) {
            ok = std::fwrite(t->array().raw(), 1, bytes, f) == bytes;
        } else {
            std::string copy(static_cast<const char*>(t->array().raw()), bytes);
            to_little_endian(copy.data(), bytes, dtype_size(t->dtype()));
            ok = std::fwrite(copy.data(), 1, bytes, f) == bytes;
        }
    }
    ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(tmp.c_str());
        fail("cannot write '" + path + "': " + why);
    }
}

SafetensorsFile load_safetensors(const std::string& path) {
    FileSource src(path);
    try {
        return parse(src);
    } catch (const SerializationError& e) {
        throw SerializationError(std::string(e.what()) + " [file '" + path + "']");
    }
}

SafetensorsFile parse_safetensors(const std::string& bytes) {
    MemorySource src(bytes);
    return parse(src);
}

void save_model(const std::string& path, const Module& model, const std::map<std::string, std::string>& metadata) {
    save_safetensors(path, model.state_dict(), metadata);
}

std::map<std::string, std::string> load_model(const std::string& path, Module& model) {
    SafetensorsFile f = load_safetensors(path);
    model.load_state_dict(f.tensors, true);
    return f.metadata;
}

void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer,
                     const std::map<std::string, std::string>& metadata) {
    StateDict all;
    for (const auto& [n, t] : model.state_dict()) all.emplace_back("model." + n, t);
    const OptimizerState os = optimizer.state_dict();
    for (const auto& [n, t] : os.tensors) all.emplace_back("optimizer." + n, t);
    std::map<std::string, std::string> meta;
    for (const auto& [k, v] : metadata) {
        if (k.rfind("optimizer.", 0) == 0) fail("metadata key '" + k + "' is reserved");
        meta[k] = v;
    }
    for (const auto& [k, v] : os.metadata) meta["optimizer." + k] = v;
    save_safetensors(path, all, meta);
}

std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer) {
    SafetensorsFile f = load_safetensors(path);
    StateDict model_state;
    OptimizerState opt_state;
    for (auto& [n, t] : f.tensors) {
        if (n.rfind("model.", 0) == 0)
            model_state.emplace_back(n.substr(6), t);
        else if (n.rfind("optimizer.", 0) == 0)
            opt_state.tensors.emplace_back(n.substr(10), t);
        else
            fail("checkpoint '" + path + "' has a tensor '" + n + "' outside model. and optimizer.");
    }
    std::map<std::string, std::string> user;
    for (auto& [k, v] : f.metadata) {
        if (k.rfind("optimizer.", 0) == 0)
            opt_state.metadata[k.substr(10)] = v;
        else
            user[k] = v;
    }
    model.load_state_dict(model_state, true);
    optimizer.load_state_dict(opt_state);
    return user;
}

}  // namespace xg::nn
