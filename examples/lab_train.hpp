// The activation lab's `train` subcommand, and the Fashion-MNIST training pieces it shares with
// examples/fashion_mnist.cpp (data, models, one epoch, evaluation, progress bar).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>

/// `xgrad-lab train --act a,b,c [options]`: trains the same small MLP on Fashion-MNIST once per
/// activation and prints accuracy, epoch time and dead/saturated fractions; writes the loss curves.
int lab_train(int argc, char** argv);

namespace xg::examples {

/// Where Debian's dataset-fashion-mnist package installs the data.
inline const char* kFashionDir = "/usr/share/datasets/fashion-mnist";
/// The ten Fashion-MNIST classes.
extern const std::vector<std::string> kFashionClasses;

/// Training and test sets, normalised with the training set's mean and standard deviation.
struct FashionData {
    std::shared_ptr<nn::TensorDataset> train, test;
    double mean = 0, std = 1;
};
/// True when the four files are in dir; otherwise prints how to install them to stderr.
bool fashion_files_present(const std::string& dir);
/// Loads and normalises both sets.
FashionData load_fashion(const std::string& dir);

/// Flatten -> [Linear -> act] per hidden width -> Linear(10); weights kaiming-uniform with act's gain.
std::shared_ptr<nn::Sequential> make_mlp(const std::string& act, const std::vector<std::int64_t>& hidden);
/// Two conv(3x3, pad 1) + act + maxpool(2) blocks (32, 64 channels), then Linear(3136, 128) + act + Linear(10).
std::shared_ptr<nn::Sequential> make_cnn(const std::string& act);

/// A one-line progress bar on stderr (redrawn in place on a terminal, a few lines otherwise).
class Progress {
public:
    Progress(std::string label, std::int64_t total);
    /// Shows done/total with the running loss and throughput.
    void update(std::int64_t done, double loss, double samples_per_second);
    /// Ends the line.
    void finish();

private:
    std::string label_;
    std::int64_t total_;
    bool tty_;
    int next_quarter_ = 1;
    double last_draw_ = -1;
};

/// Result of one training epoch.
struct EpochStats {
    double loss = 0;                   ///< mean training loss
    double accuracy = 0;               ///< training accuracy (on the fly, during the epoch)
    double seconds = 0;                ///< wall time of the epoch
    std::vector<double> batch_losses;  ///< every batch's loss
};
/// One epoch: zero_grad, forward, cross-entropy, backward, step per batch. `before_batch(i)` runs before
/// each batch (e.g. to switch activation statistics on for some batches).
EpochStats train_epoch(nn::Module& model, nn::Optimizer& opt, nn::DataLoader& loader, Progress* progress = nullptr,
                       const std::function<void(std::int64_t)>& before_batch = nullptr);

/// Test loss, accuracy and the predicted classes.
struct EvalStats {
    double loss = 0, accuracy = 0;
    Tensor predictions;
};
/// Evaluates in eval mode without recording a graph, in batches of batch_size.
EvalStats evaluate(nn::Module& model, const nn::TensorDataset& data, std::int64_t batch_size = 1000);

/// Splits "a,b,c" at commas.
std::vector<std::string> split_list(const std::string& s);

}  // namespace xg::examples
