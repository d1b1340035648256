#include "data.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "../engine/error.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/math.hpp"
#include "../ops/reduction.hpp"
#include "../ops/shape_ops.hpp"

namespace xg::nn {

namespace {

struct GzFile {
    gzFile f = nullptr;
    explicit GzFile(const std::string& path, const char* mode) : f(gzopen(path.c_str(), mode)) {}
    ~GzFile() {
        if (f) gzclose(f);
    }
};

// Reads up to n bytes; returns the count. A zlib stream error throws.
std::size_t gz_read(GzFile& g, char* dst, std::size_t n, const std::string& path) {
    std::size_t got = 0;
    while (got < n) {
        const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
        const int r = gzread(g.f, dst + got, chunk);
        if (r < 0) {
            int err = 0;
            const char* msg = gzerror(g.f, &err);
            throw ValueError("read_idx: '" + path + "' is corrupted (" + msg + ")");
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    if (got < n) {
        int err = 0;
        const char* msg = gzerror(g.f, &err);
        if (err != Z_OK && err != Z_STREAM_END)
            throw ValueError("read_idx: '" + path + "' is corrupted or truncated (" + msg + ")");
    }
    return got;
}

std::uint32_t be32(const unsigned char* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

template <class T>
void convert(const unsigned char* src, std::int64_t n, int type, T* dst) {
    auto be = [](const unsigned char* p, int bytes) {
        std::uint64_t v = 0;
        for (int k = 0; k < bytes; ++k) v = (v << 8) | p[k];
        return v;
    };
    switch (type) {
        case 0x08:
            for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
            break;
        case 0x09:
            for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(static_cast<std::int8_t>(src[i]));
            break;
        case 0x0B:
            for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(static_cast<std::int16_t>(be(src + 2 * i, 2)));
            break;
        case 0x0C:
            for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(static_cast<std::int32_t>(be(src + 4 * i, 4)));
            break;
        case 0x0D:
            for (std::int64_t i = 0; i < n; ++i) {
                const auto u = static_cast<std::uint32_t>(be(src + 4 * i, 4));
                float f;
                std::memcpy(&f, &u, 4);
                dst[i] = static_cast<T>(f);
            }
            break;
        default:
            for (std::int64_t i = 0; i < n; ++i) {
                const std::uint64_t u = be(src + 8 * i, 8);
                double d;
                std::memcpy(&d, &u, 8);
                dst[i] = static_cast<T>(d);
            }
    }
}

inline std::uint64_t splitmix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

}  // namespace

Tensor read_idx(const std::string& path, Dtype dtype) {
    GzFile g(path, "rb");
    if (!g.f) throw ValueError("read_idx: cannot open '" + path + "'");
    unsigned char magic[4];
    if (gz_read(g, reinterpret_cast<char*>(magic), 4, path) != 4)
        throw ValueError("read_idx: '" + path + "' is truncated (no 4-byte magic number)");
    const int type = magic[2], ndim = magic[3];
    int elem = 0;
    switch (type) {
        case 0x08:
        case 0x09:
            elem = 1;
            break;
        case 0x0B:
            elem = 2;
            break;
        case 0x0C:
        case 0x0D:
            elem = 4;
            break;
        case 0x0E:
            elem = 8;
            break;
        default:
            elem = 0;
    }
    if (magic[0] != 0 || magic[1] != 0 || elem == 0 || ndim == 0)
        throw ValueError("read_idx: '" + path + "' is not an IDX file (magic bytes " + std::to_string(magic[0]) + " " +
                         std::to_string(magic[1]) + " " + std::to_string(type) + " " + std::to_string(ndim) + ")");
    std::vector<unsigned char> dims_raw(static_cast<std::size_t>(4 * ndim));
    if (gz_read(g, reinterpret_cast<char*>(dims_raw.data()), dims_raw.size(), path) != dims_raw.size())
        throw ValueError("read_idx: '" + path + "' is truncated in its dimensions");
    Shape shape;
    std::uint64_t numel = 1;
    for (int d = 0; d < ndim; ++d) {
        const std::uint64_t n = be32(dims_raw.data() + 4 * d);
        if (n != 0 && numel > (std::uint64_t(1) << 50) / n)
            throw ValueError("read_idx: '" + path + "' declares too many elements");
        numel *= n;
        shape.push_back(static_cast<std::int64_t>(n));
    }
    const std::uint64_t want = numel * static_cast<std::uint64_t>(elem);
    // Grow the buffer with the data actually present: a header claiming terabytes allocates nothing extra.
    // The first chunk (up to 64 MiB) covers MNIST-sized files in one read; beyond it the buffer doubles.
    std::vector<unsigned char> bytes;
    std::uint64_t have = 0;
    while (have < want) {
        const std::uint64_t chunk = std::min<std::uint64_t>(want - have, std::max<std::uint64_t>(have, 64u << 20));
        bytes.resize(static_cast<std::size_t>(have + chunk));
        const std::size_t got =
            gz_read(g, reinterpret_cast<char*>(bytes.data() + have), static_cast<std::size_t>(chunk), path);
        have += got;
        if (got < chunk) break;
    }
    if (have < want)
        throw ValueError("read_idx: '" + path + "' is truncated: shape " + shape_str(shape) + " needs " +
                         std::to_string(want) + " data bytes, the file has " + std::to_string(have));
    char extra;
    if (gz_read(g, &extra, 1, path) != 0)
        throw ValueError("read_idx: '" + path + "' has bytes after the " + std::to_string(want) +
                         " its header declares");
    Array a(shape, dtype);
    const auto n = static_cast<std::int64_t>(numel);
    switch (dtype) {
        case Dtype::f32:
            convert(bytes.data(), n, type, a.data<float>());
            break;
        case Dtype::f64:
            convert(bytes.data(), n, type, a.data<double>());
            break;
        default:
            convert(bytes.data(), n, type, a.data<std::int64_t>());
            break;
    }
    return Tensor(std::move(a));
}

void write_idx_u8(const std::string& path, const Tensor& values, bool gzip) {
    if (!values.defined() || values.ndim() == 0 || values.ndim() > 255)
        throw ValueError("write_idx_u8: need a tensor with 1 to 255 dimensions");
    std::vector<unsigned char> out{0, 0, 0x08, static_cast<unsigned char>(values.ndim())};
    for (auto d : values.shape())
        for (int k = 3; k >= 0; --k)
            out.push_back(static_cast<unsigned char>(static_cast<std::uint64_t>(d) >> (8 * k)));
    for (double v : values.to_vector<double>())
        out.push_back(static_cast<unsigned char>(std::clamp(std::lround(v), 0L, 255L)));
    GzFile g(path, gzip ? "wb6" : "wbT");  // "T": write without compression
    if (!g.f || gzwrite(g.f, out.data(), static_cast<unsigned>(out.size())) != static_cast<int>(out.size()))
        throw ValueError("write_idx_u8: cannot write '" + path + "'");
}

// --- datasets -------------------------------------------------------------------------------------
TensorDataset::TensorDataset(Tensor data, Tensor targets) : data_(std::move(data)), targets_(std::move(targets)) {
    if (!data_.defined() || !targets_.defined() || data_.ndim() == 0 || targets_.ndim() == 0)
        throw ShapeError("TensorDataset: data and targets need a first (sample) axis");
    if (data_.size(0) != targets_.size(0))
        throw ShapeError("TensorDataset: data " + shape_str(data_.shape()) + " and targets " +
                         shape_str(targets_.shape()) + " have different sample counts");
}

Batch TensorDataset::get_batch(const std::vector<std::int64_t>& indices) const {
    NoGradGuard ng;
    const Tensor idx = tensor_i64(indices, {static_cast<std::int64_t>(indices.size())});
    return {index_select(data_, 0, idx), index_select(targets_, 0, idx)};
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
    if (!dataset_) throw ValueError("DataLoader: the dataset is null");
    if (options_.batch_size <= 0)
        throw ValueError("DataLoader: batch_size must be positive, got " + std::to_string(options_.batch_size));
}

std::int64_t DataLoader::num_batches() const {
    const std::int64_t n = dataset_->size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<std::int64_t> DataLoader::order(std::uint64_t epoch) const {
    std::vector<std::int64_t> p(static_cast<std::size_t>(dataset_->size()));
    std::iota(p.begin(), p.end(), 0);
    if (!options_.shuffle) return p;
    const std::uint64_t key = splitmix64(options_.seed ^ splitmix64(epoch + 0x5eed));
    for (std::int64_t i = static_cast<std::int64_t>(p.size()) - 1; i > 0; --i) {  // Fisher-Yates
        const auto j = static_cast<std::int64_t>(splitmix64(key + static_cast<std::uint64_t>(i)) %
                                                 static_cast<std::uint64_t>(i + 1));
        std::swap(p[i], p[j]);
    }
    return p;
}

DataLoader::Iterator DataLoader::begin() {
    auto ord = std::make_shared<const std::vector<std::int64_t>>(order(epoch_++));
    return Iterator(this, std::move(ord), 0);
}

DataLoader::Iterator DataLoader::end() const { return Iterator(this, nullptr, num_batches()); }

DataLoader::Iterator::Iterator(const DataLoader* loader, std::shared_ptr<const std::vector<std::int64_t>> order,
                               std::int64_t index)
    : loader_(loader), order_(std::move(order)), index_(index) {
    if (order_) load();
}

void DataLoader::Iterator::load() {
    if (index_ >= loader_->num_batches()) {
        batch_ = {};
        return;
    }
    const std::int64_t b = loader_->options_.batch_size, n = static_cast<std::int64_t>(order_->size());
    const std::int64_t start = index_ * b, stop = std::min(n, start + b);
    batch_ = loader_->dataset_->get_batch(std::vector<std::int64_t>(order_->begin() + start, order_->begin() + stop));
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
    ++index_;
    load();
    return *this;
}

// --- normalisation --------------------------------------------------------------------------------
Tensor normalize(const Tensor& x, double mean, double std) {
    if (!(std > 0)) throw ValueError("normalize: std must be positive, got " + std::to_string(std));
    return (x - mean) * (1.0 / std);
}

Tensor normalize(const Tensor& x, const std::vector<double>& m, const std::vector<double>& s) {
    if (!x.defined() || x.ndim() < 2) throw ShapeError("normalize: expected a tensor [N, C, ...]");
    const auto c = static_cast<std::size_t>(x.size(1));
    if (m.size() != c || s.size() != c)
        throw ShapeError("normalize: " + std::to_string(m.size()) + " means and " + std::to_string(s.size()) +
                         " stds for " + std::to_string(c) + " channels");
    std::vector<double> inv;
    for (double v : s) {
        if (!(v > 0)) throw ValueError("normalize: every std must be positive");
        inv.push_back(1.0 / v);
    }
    Shape bshape(x.ndim(), 1);
    bshape[1] = static_cast<std::int64_t>(c);
    return (x - tensor(m, bshape, x.dtype())) * tensor(inv, bshape, x.dtype());
}

Tensor& normalize_(Tensor& x, double mean, double std) {
    if (!(std > 0)) throw ValueError("normalize_: std must be positive, got " + std::to_string(std));
    NoGradGuard ng;
    x.sub_(scalar(mean, x.dtype())).mul_(1.0 / std);
    return x;
}

std::pair<double, double> mean_std(const Tensor& x) {
    if (!x.defined()) throw ValueError("mean_std: the tensor is undefined");
    NoGradGuard ng;
    // Two passes in float64 over slices of the first axis: no full-size temporaries.
    const Tensor flat = reshape(x, {x.numel()});
    const std::int64_t chunk = 1 << 20, n = x.numel();
    double s = 0, sq = 0;
    for (std::int64_t b = 0; b < n; b += chunk) s += sum(slice(flat, 0, b, b + chunk).to(Dtype::f64)).item<double>();
    const double m = s / static_cast<double>(n);
    for (std::int64_t b = 0; b < n; b += chunk)
        sq += sum(square(slice(flat, 0, b, b + chunk).to(Dtype::f64) - m)).item<double>();
    return {m, std::sqrt(sq / static_cast<double>(n))};
}

std::shared_ptr<TensorDataset> load_mnist(const std::string& dir, bool train) {
    const std::string prefix = train ? "train" : "t10k";
    auto find = [&](const std::string& name) {
        for (const std::string& candidate : {dir + "/" + name + ".gz", dir + "/" + name})
            if (std::filesystem::exists(candidate)) return candidate;
        throw ValueError("load_mnist: neither " + dir + "/" + name + ".gz nor " + dir + "/" + name + " exists");
    };
    const std::string images = find(prefix + "-images-idx3-ubyte"), labels = find(prefix + "-labels-idx1-ubyte");
    Tensor x = read_idx(images, Dtype::f32);
    Tensor y = read_idx(labels, Dtype::i64);
    if (x.ndim() != 3 || y.ndim() != 1 || x.size(0) != y.size(0))
        throw ShapeError("load_mnist: images " + shape_str(x.shape()) + " and labels " + shape_str(y.shape()) +
                         " do not form an MNIST-format dataset");
    {
        NoGradGuard ng;
        x.mul_(1.0 / 255.0);  // in place: no second 188 MB buffer for the training images
        x = reshape(x, {x.size(0), 1, x.size(1), x.size(2)});
    }
    return std::make_shared<TensorDataset>(x, y);
}

}  // namespace xg::nn
