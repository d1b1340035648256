// The main job: train a model written in C++ on Fashion-MNIST.
//
//   fashion_mnist [--model mlp|cnn] [--act NAME] [--epochs N] [--batch-size N] [--optimizer NAME] [--lr X]
//                 [--schedule cosine|none] [--threads N] [--seed N] [--resume FILE] [--stop-after N]
//                 [--out DIR] [--data DIR]
//
// Shows a progress bar (loss, samples/s), evaluates on the 10,000 test images after every epoch, and at
// the end prints the confusion matrix and per-layer activation statistics, saves the model
// (DIR/model.safetensors) and a resumable checkpoint (DIR/checkpoint.safetensors, written after every
// epoch), and draws the loss and accuracy curves (DIR/loss.svg, DIR/accuracy.svg). A fixed seed gives
// the same run bit for bit at any thread count.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "lab_train.hpp"

namespace nn = xg::nn;
namespace ex = xg::examples;

namespace {

struct Options {
    std::string model = "mlp", act = "relu", optimizer = "adam", schedule = "cosine";
    int epochs = 12, threads = 0, stop_after = 0;
    std::int64_t batch = 128;
    double lr = -1;  // per-optimizer default
    std::uint64_t seed = 0;
    std::string resume, out = "fashion_out", data = ex::kFashionDir;
};

void usage() {
    std::cout << "usage: fashion_mnist [options]\n"
                 "  --model mlp|cnn        MLP 784-256-128-10 (default) or a CNN with two conv + pooling layers\n"
                 "  --act NAME             hidden activation, any registered one (default relu)\n"
                 "  --epochs N             default 12\n"
                 "  --batch-size N         default 128\n"
                 "  --optimizer NAME       sgd (momentum 0.9), adam (default), adamw, rmsprop, adagrad\n"
                 "  --lr X                 default 1e-3 (adam, adamw, rmsprop), 0.05 (sgd), 0.01 (adagrad)\n"
                 "  --schedule cosine|none learning-rate schedule over the epochs (default cosine)\n"
                 "  --threads N            worker threads (default: all cores)\n"
                 "  --seed N               seed of the weights and of the shuffling (default 0)\n"
                 "  --resume FILE          continue from a checkpoint written by a previous run\n"
                 "  --stop-after N         stop after epoch N of the --epochs planned (resume later with --resume)\n"
                 "  --out DIR              output directory (default fashion_out)\n"
                 "  --data DIR             dataset directory (default /usr/share/datasets/fashion-mnist)\n";
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw xg::ValueError("option " + a + " needs a value");
            return argv[++i];
        };
        if (a == "--model")
            o.model = value();
        else if (a == "--act")
            o.act = value();
        else if (a == "--epochs")
            o.epochs = std::stoi(value());
        else if (a == "--batch-size")
            o.batch = std::stoll(value());
        else if (a == "--optimizer")
            o.optimizer = value();
        else if (a == "--lr")
            o.lr = std::stod(value());
        else if (a == "--schedule")
            o.schedule = value();
        else if (a == "--threads")
            o.threads = std::stoi(value());
        else if (a == "--seed")
            o.seed = std::stoull(value());
        else if (a == "--resume")
            o.resume = value();
        else if (a == "--stop-after")
            o.stop_after = std::stoi(value());
        else if (a == "--out")
            o.out = value();
        else if (a == "--data")
            o.data = value();
        else if (a == "--help" || a == "-h") {
            usage();
            std::exit(0);
        } else
            throw xg::ValueError("unknown option '" + a + "'");
    }
    if (o.model != "mlp" && o.model != "cnn") throw xg::ValueError("--model must be mlp or cnn");
    if (o.schedule != "cosine" && o.schedule != "none") throw xg::ValueError("--schedule must be cosine or none");
    if (o.epochs < 1 || o.batch < 1) throw xg::ValueError("--epochs and --batch-size must be positive");
    if (o.threads < 0) throw xg::ValueError("--threads must be positive");
    xg::get_activation(o.act);  // throws listing the known names
    if (o.lr < 0) o.lr = o.optimizer == "sgd" ? 0.05 : o.optimizer == "adagrad" ? 0.01 : 1e-3;
    return o;
}

std::string join(const std::vector<double>& v) {
    std::ostringstream os;
    os.precision(17);
    for (std::size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
    return os.str();
}

std::vector<double> split_numbers(const std::string& s) {
    std::vector<double> r;
    for (const auto& part : ex::split_list(s)) r.push_back(std::stod(part));
    return r;
}

struct History {
    std::vector<double> train_loss, train_acc, test_loss, test_acc, seconds;
};

std::map<std::string, std::string> metadata(const Options& o, const History& h, int epochs_done) {
    return {{"model", o.model},
            {"act", o.act},
            {"optimizer", o.optimizer},
            {"lr", std::to_string(o.lr)},
            {"batch_size", std::to_string(o.batch)},
            {"schedule", o.schedule},
            {"epochs_planned", std::to_string(o.epochs)},
            {"seed", std::to_string(o.seed)},
            {"epoch", std::to_string(epochs_done)},
            {"history.train_loss", join(h.train_loss)},
            {"history.train_acc", join(h.train_acc)},
            {"history.test_loss", join(h.test_loss)},
            {"history.test_acc", join(h.test_acc)},
            {"history.seconds", join(h.seconds)}};
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "fashion_mnist: " << e.what() << "\n";
        usage();
        return 2;
    }
    if (!ex::fashion_files_present(o.data)) return 1;
    try {
        if (o.threads > 0) xg::set_num_threads(o.threads);
        std::filesystem::create_directories(o.out);
        const auto t_start = std::chrono::steady_clock::now();
        const auto data = ex::load_fashion(o.data);
        std::printf("Fashion-MNIST: %lld training and %lld test images (normalised with mean %.4f, std %.4f)\n",
                    static_cast<long long>(data.train->size()), static_cast<long long>(data.test->size()), data.mean,
                    data.std);

        xg::manual_seed(o.seed);
        auto model = o.model == "mlp" ? ex::make_mlp(o.act, {256, 128}) : ex::make_cnn(o.act);
        auto opt = nn::make_optimizer(o.optimizer, model->parameters(), o.lr);
        std::unique_ptr<nn::LRScheduler> sched;
        if (o.schedule == "cosine") sched = std::make_unique<nn::CosineAnnealingLR>(*opt, o.epochs);
        nn::DataLoader loader(data.train, {.batch_size = o.batch, .shuffle = true, .seed = o.seed});

        History h;
        int start = 0;
        if (!o.resume.empty()) {
            auto meta = nn::load_checkpoint(o.resume, *model, *opt);
            for (const char* k : {"model", "act"})
                if (meta[k] != (std::string(k) == "model" ? o.model : o.act))
                    throw xg::ValueError("checkpoint " + o.resume + " was trained with --" + k + " " + meta[k]);
            start = std::stoi(meta.at("epoch"));
            h = {split_numbers(meta["history.train_loss"]), split_numbers(meta["history.train_acc"]),
                 split_numbers(meta["history.test_loss"]), split_numbers(meta["history.test_acc"]),
                 split_numbers(meta["history.seconds"])};
            loader.set_epoch(static_cast<std::uint64_t>(start));
            // The generator state of dropout is not saved: resume with a seed derived from the epoch.
            xg::manual_seed(o.seed + 1000003ull * static_cast<std::uint64_t>(start));
            std::printf("resumed from %s after epoch %d\n", o.resume.c_str(), start);
        }
        if (sched) sched->set_step(start);

        std::cout << *model << "\n";
        std::printf("optimizer %s, lr %g (%s schedule), batch %lld, %d epochs, %d thread(s), seed %llu\n",
                    o.optimizer.c_str(), o.lr, o.schedule.c_str(), static_cast<long long>(o.batch), o.epochs,
                    xg::get_num_threads(), static_cast<unsigned long long>(o.seed));

        nn::ActivationMonitor monitor;
        monitor.attach_all(*model, {"Activation", "Linear", "Conv2d", "MaxPool2d"});
        nn::Series batch_curve{"train (20-batch mean)", {}, {}};
        ex::EvalStats ev;
        const int last = o.stop_after > 0 ? std::min(o.stop_after, o.epochs) : o.epochs;
        for (int e = start; e < last; ++e) {
            monitor.reset();
            ex::Progress bar("epoch " + std::to_string(e + 1) + "/" + std::to_string(o.epochs), loader.num_batches());
            // Statistics on every 10th batch: enough to estimate, cheap enough not to show in the timing.
            auto st = ex::train_epoch(*model, *opt, loader, &bar, [&](std::int64_t i) { monitor.enable(i % 10 == 0); });
            monitor.enable(false);
            ev = ex::evaluate(*model, *data.test);
            if (sched) sched->step();
            h.train_loss.push_back(st.loss);
            h.train_acc.push_back(st.accuracy);
            h.test_loss.push_back(ev.loss);
            h.test_acc.push_back(ev.accuracy);
            h.seconds.push_back(st.seconds);
            for (std::size_t b = 0; b + 20 <= st.batch_losses.size(); b += 20) {
                double m = 0;
                for (std::size_t j = b; j < b + 20; ++j) m += st.batch_losses[j];
                batch_curve.x.push_back(e + static_cast<double>(b + 20) / static_cast<double>(st.batch_losses.size()));
                batch_curve.y.push_back(m / 20);
            }
            std::printf("epoch %2d  train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1f s, %.0f samples/s\n",
                        e + 1, st.loss, st.accuracy, ev.loss, ev.accuracy, st.seconds,
                        static_cast<double>(data.train->size()) / st.seconds);
            std::fflush(stdout);
            nn::save_checkpoint(o.out + "/checkpoint.safetensors", *model, *opt, metadata(o, h, e + 1));
        }
        if (start >= last) {
            ev = ex::evaluate(*model, *data.test);
            std::printf("nothing to train (checkpoint at epoch %d of %d); test accuracy %.4f\n", start, o.epochs,
                        ev.accuracy);
        }

        std::printf("\nConfusion matrix on the %lld test images:\n", static_cast<long long>(data.test->size()));
        std::cout << nn::format_confusion_matrix(nn::confusion_matrix(ev.predictions, data.test->targets(), 10),
                                                 ex::kFashionClasses);
        if (start < last)
            std::printf("\nActivation statistics (last epoch, every 10th batch):\n%s", monitor.report().c_str());

        auto meta = metadata(o, h, std::max(start, last));
        meta["test_accuracy"] = std::to_string(ev.accuracy);
        meta.erase("history.seconds");  // timings differ between runs; the model file of a fixed seed does not
        nn::save_model(o.out + "/model.safetensors", *model, meta);
        std::vector<double> ep;
        for (std::size_t i = 0; i < h.test_acc.size(); ++i) ep.push_back(static_cast<double>(i + 1));
        nn::write_svg_line_chart(o.out + "/loss.svg", "Fashion-MNIST " + o.model + " (" + o.act + "): loss", "epoch",
                                 "cross-entropy",
                                 {{"train (epoch mean)", ep, h.train_loss}, {"test", ep, h.test_loss}, batch_curve});
        nn::write_svg_line_chart(o.out + "/accuracy.svg", "Fashion-MNIST " + o.model + " (" + o.act + "): accuracy",
                                 "epoch", "accuracy", {{"train", ep, h.train_acc}, {"test", ep, h.test_acc}});
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
        double train_s = 0;
        for (double s : h.seconds) train_s += s;
        std::printf("\nfinal test accuracy %.4f; training %.1f s over %zu epochs; wall time of this run %.1f s\n",
                    ev.accuracy, train_s, h.seconds.size(), wall);
        std::printf("wrote %s/model.safetensors, %s/checkpoint.safetensors, %s/loss.svg, %s/accuracy.svg\n",
                    o.out.c_str(), o.out.c_str(), o.out.c_str(), o.out.c_str());
    } catch (const std::exception& e) {
        std::cerr << "fashion_mnist: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
