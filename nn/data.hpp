// nn/: data. IDX (MNIST-format) files, plain or gzip-compressed (zlib); datasets; a DataLoader with
// batching, seeded shuffling and drop_last; normalisation.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg::nn {

/// Reads an IDX file (magic 0 0 type ndim, big-endian u32 dims, big-endian data of type u8, i8, i16,
/// i32, f32 or f64), gzip-compressed or not, into a tensor of `dtype` with the file's shape. Throws
/// xg::ValueError on a bad header, a truncated file or trailing bytes, naming the file; memory grows
/// only with the bytes actually read.
Tensor read_idx(const std::string& path, Dtype dtype = Dtype::f32);

/// Writes `values` (converted to unsigned bytes 0..255) as an IDX u8 file, gzip-compressed when
/// `gzip` (for tests and tools).
void write_idx_u8(const std::string& path, const Tensor& values, bool gzip);

/// Inputs and targets of one batch.
struct Batch {
    Tensor data;
    Tensor target;
};

/// A collection of samples addressable by index.
class Dataset {
public:
    virtual ~Dataset() = default;
    /// Number of samples.
    virtual std::int64_t size() const = 0;
    /// The samples at `indices`, stacked along a new first axis.
    virtual Batch get_batch(const std::vector<std::int64_t>& indices) const = 0;
};

/// Samples are the rows (first axis) of a data tensor and a target tensor.
class TensorDataset : public Dataset {
public:
    TensorDataset(Tensor data, Tensor targets);
    std::int64_t size() const override { return data_.size(0); }
    Batch get_batch(const std::vector<std::int64_t>& indices) const override;
    const Tensor& data() const { return data_; }
    const Tensor& targets() const { return targets_; }

private:
    Tensor data_, targets_;
};

/// Options of DataLoader.
struct DataLoaderOptions {
    std::int64_t batch_size = 64;
    bool shuffle = false;
    std::uint64_t seed = 0;  ///< shuffling seed: epoch e uses a permutation drawn from (seed, e)
    bool drop_last = false;  ///< drop the last batch when it is smaller than batch_size
};

/// Iterates a dataset in batches. Each range-for (each begin()) is one epoch; with shuffle the
/// order of epoch e depends only on (seed, e), so runs are reproducible and resumable (set_epoch).
/// The loader has its own generator: it does not consume xg::manual_seed's numbers.
class DataLoader {
public:
    DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);

    class Iterator {
    public:
        const Batch& operator*() const { return batch_; }
        const Batch* operator->() const { return &batch_; }
        Iterator& operator++();
        bool operator!=(const Iterator& o) const { return index_ != o.index_; }
        bool operator==(const Iterator& o) const { return index_ == o.index_; }

    private:
        friend class DataLoader;
        Iterator(const DataLoader* loader, std::shared_ptr<const std::vector<std::int64_t>> order, std::int64_t index);
        void load();
        const DataLoader* loader_ = nullptr;
        std::shared_ptr<const std::vector<std::int64_t>> order_;
        std::int64_t index_ = 0;
        Batch batch_;
    };

    /// Starts the next epoch.
    Iterator begin();
    Iterator end() const;
    /// Batches per epoch.
    std::int64_t num_batches() const;
    /// The epoch the next begin() starts (0 at construction).
    void set_epoch(std::uint64_t epoch) { epoch_ = epoch; }
    std::uint64_t epoch() const { return epoch_; }
    /// Sample order of an epoch.
    std::vector<std::int64_t> order(std::uint64_t epoch) const;
    const Dataset& dataset() const { return *dataset_; }
    const DataLoaderOptions& options() const { return options_; }

private:
    std::shared_ptr<const Dataset> dataset_;
    DataLoaderOptions options_;
    std::uint64_t epoch_ = 0;
};

/// (x - mean) / std.
Tensor normalize(const Tensor& x, double mean, double std);
/// Per channel (axis 1): (x[:, c] - mean[c]) / std[c].
Tensor normalize(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& std);
/// In place: x = (x - mean) / std (no new buffer; for whole datasets). Returns x.
Tensor& normalize_(Tensor& x, double mean, double std);
/// Mean and (population) standard deviation of all values of x (computed in float64).
std::pair<double, double> mean_std(const Tensor& x);

/// An MNIST-format directory (MNIST, Fashion-MNIST): images [N, 1, 28, 28] float32 scaled to [0, 1] and
/// labels [N] int64, from train-* (train) or t10k-* files, each "<name>-idx?-ubyte" with or without ".gz".
/// Throws ValueError naming the missing files.
std::shared_ptr<TensorDataset> load_mnist(const std::string& dir, bool train);

}  // namespace xg::nn
