#include "lab_train.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace xg::examples {

const std::vector<std::string> kFashionClasses{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

namespace {
double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

bool fashion_files_present(const std::string& dir) {
    std::vector<std::string> missing;
    for (const char* f :
         {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
        const std::string p = dir + "/" + f;
        if (!std::filesystem::exists(p + ".gz") && !std::filesystem::exists(p)) missing.push_back(p + ".gz");
    }
    if (missing.empty()) return true;
    std::cerr << "Fashion-MNIST is missing:";
    for (const auto& m : missing) std::cerr << "\n  " << m;
    std::cerr << "\nInstall it with:\n  sudo apt-get install dataset-fashion-mnist\n"
              << "(or pass --data DIR with the four files from https://github.com/zalandoresearch/fashion-mnist)\n";
    return false;
}

FashionData load_fashion(const std::string& dir) {
    FashionData d;
    auto train = nn::load_mnist(dir, true);
    auto test = nn::load_mnist(dir, false);
    std::tie(d.mean, d.std) = nn::mean_std(train->data());
    Tensor xtrain = train->data(), xtest = test->data();  // fresh tensors owned by the loader: normalise in place
    nn::normalize_(xtrain, d.mean, d.std);
    nn::normalize_(xtest, d.mean, d.std);
    d.train = train;
    d.test = test;
    return d;
}

namespace {
// Kaiming-uniform weights with the gain of the activation that follows, zero biases.
void init_layer(nn::Module& layer, const std::string& act) {
    if (auto* l = dynamic_cast<nn::Linear*>(&layer)) {
        nn::init::kaiming_uniform_(l->weight, 0.0, nn::init::FanMode::fan_in, act);
        if (l->bias.defined()) nn::init::zeros_(l->bias);
    } else if (auto* c = dynamic_cast<nn::Conv2d*>(&layer)) {
        nn::init::kaiming_uniform_(c->weight, 0.0, nn::init::FanMode::fan_in, act);
        if (c->bias.defined()) nn::init::zeros_(c->bias);
    }
}
}  // namespace

std::shared_ptr<nn::Sequential> make_mlp(const std::string& act, const std::vector<std::int64_t>& hidden) {
    auto m = std::make_shared<nn::Sequential>();
    m->push_back(std::make_shared<nn::Flatten>());
    std::int64_t in = 784;
    for (auto h : hidden) {
        auto lin = std::make_shared<nn::Linear>(in, h);
        init_layer(*lin, act);
        m->push_back(lin);
        m->push_back(std::make_shared<nn::Activation>(act));
        in = h;
    }
    auto out = std::make_shared<nn::Linear>(in, 10);
    init_layer(*out, "linear");
    m->push_back(out);
    return m;
}

std::shared_ptr<nn::Sequential> make_cnn(const std::string& act) {
    auto m = std::make_shared<nn::Sequential>();
    auto add = [&](std::shared_ptr<nn::Module> layer, const std::string& gain) {
        init_layer(*layer, gain);
        m->push_back(std::move(layer));
    };
    add(std::make_shared<nn::Conv2d>(1, 32, Size2{3, 3}, nn::Conv2dOptions{.padding = {1, 1}}), act);
    m->push_back(std::make_shared<nn::Activation>(act));
    m->push_back(std::make_shared<nn::MaxPool2d>(Size2{2, 2}));
    add(std::make_shared<nn::Conv2d>(32, 64, Size2{3, 3}, nn::Conv2dOptions{.padding = {1, 1}}), act);
    m->push_back(std::make_shared<nn::Activation>(act));
    m->push_back(std::make_shared<nn::MaxPool2d>(Size2{2, 2}));
    m->push_back(std::make_shared<nn::Flatten>());
    add(std::make_shared<nn::Linear>(64 * 7 * 7, 128), act);
    m->push_back(std::make_shared<nn::Activation>(act));
    add(std::make_shared<nn::Linear>(128, 10), "linear");
    return m;
}

Progress::Progress(std::string label, std::int64_t total)
    : label_(std::move(label)), total_(total), tty_(::isatty(STDERR_FILENO) != 0) {}

void Progress::update(std::int64_t done, double loss, double sps) {
    const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    char line[256];
    const int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '=');
    if (filled < width) bar += '>', bar += std::string(static_cast<std::size_t>(width - filled - 1), ' ');
    std::snprintf(line, sizeof line, "%s [%s] %5lld/%lld  loss %.4f  %8.0f samples/s", label_.c_str(), bar.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), loss, sps);
    if (tty_) {
        const double t = now_seconds();
        if (done < total_ && t - last_draw_ < 0.1) return;
        last_draw_ = t;
        std::fprintf(stderr, "\r%s", line);
    } else if (frac >= 0.25 * next_quarter_ && next_quarter_ <= 3) {
        while (frac >= 0.25 * next_quarter_) ++next_quarter_;
        std::fprintf(stderr, "%s\n", line);
    }
}

void Progress::finish() {
    if (tty_) std::fprintf(stderr, "\n");
}

EpochStats train_epoch(nn::Module& model, nn::Optimizer& opt, nn::DataLoader& loader, Progress* progress,
                       const std::function<void(std::int64_t)>& before_batch) {
    EpochStats s;
    model.train();
    const double t0 = now_seconds();
    std::int64_t seen = 0, correct = 0, i = 0;
    double loss_sum = 0;
    for (const auto& batch : loader) {
        if (before_batch) before_batch(i);
        opt.zero_grad();
        const Tensor logits = model(batch.data);
        const Tensor loss = nn::cross_entropy(logits, batch.target);
        loss.backward();
        opt.step();
        const std::int64_t n = batch.target.size(0);
        const double l = loss.item<double>();
        s.batch_losses.push_back(l);
        loss_sum += l * static_cast<double>(n);
        correct += nn::count_correct(logits.detach(), batch.target);
        seen += n;
        ++i;
        if (progress)
            progress->update(i, loss_sum / static_cast<double>(seen), static_cast<double>(seen) / (now_seconds() - t0));
    }
    if (progress) progress->finish();
    s.seconds = now_seconds() - t0;
    s.loss = seen ? loss_sum / static_cast<double>(seen) : std::nan("");
    s.accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : std::nan("");
    return s;
}

EvalStats evaluate(nn::Module& model, const nn::TensorDataset& data, std::int64_t batch_size) {
    EvalStats r;
    const bool was_training = model.is_training();
    model.eval();
    NoGradGuard ng;
    nn::DataLoader loader(std::shared_ptr<const nn::Dataset>(&data, [](const nn::Dataset*) {}),
                          {.batch_size = batch_size});
    std::vector<Tensor> preds;
    double loss_sum = 0;
    std::int64_t correct = 0;
    for (const auto& b : loader) {
        const Tensor logits = model(b.data);
        loss_sum += nn::cross_entropy(logits, b.target, nn::Reduction::sum).item<double>();
        const Tensor p = argmax(logits, 1);
        correct += nn::count_correct(logits, b.target);
        preds.push_back(p);
    }
    const auto n = static_cast<double>(data.size());
    r.loss = loss_sum / n;
    r.accuracy = static_cast<double>(correct) / n;
    r.predictions = concat(preds, 0);
    model.train(was_training);
    return r;
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> r;
    std::size_t start = 0;
    while (start <= s.size()) {
        const auto comma = s.find(',', start);
        const std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!part.empty()) r.push_back(part);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return r;
}

}  // namespace xg::examples

namespace {
void lab_train_usage() {
    std::cout << "usage: xgrad-lab train [--act a,b,c] [--epochs N] [--batch-size N] [--optimizer NAME] [--lr X]\n"
                 "                       [--hidden W1,W2] [--threads N] [--seed N] [--out DIR] [--data DIR]\n"
                 "Trains the same MLP on Fashion-MNIST once per activation (built-in or registered) and prints\n"
                 "test accuracy, epoch time and the dead / saturated fractions of its units; the loss curves go\n"
                 "to DIR/lab_loss.svg. Defaults: --act relu,tanh,sigmoid --epochs 2 --batch-size 128 --optimizer\n"
                 "adam --lr 1e-3 --hidden 128 --seed 0 --out lab_out.\n";
}
}  // namespace

int lab_train(int argc, char** argv) {
    namespace ex = xg::examples;
    namespace nn = xg::nn;
    std::vector<std::string> acts{"relu", "tanh", "sigmoid"};
    std::vector<std::int64_t> hidden{128};
    int epochs = 2, threads = 0;
    std::int64_t batch = 128;
    std::uint64_t seed = 0;
    double lr = 1e-3;
    std::string optimizer = "adam", out = "lab_out", data_dir = ex::kFashionDir;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) throw xg::ValueError("option " + a + " needs a value");
                return argv[++i];
            };
            if (a == "--act")
                acts = ex::split_list(value());
            else if (a == "--epochs")
                epochs = std::stoi(value());
            else if (a == "--batch-size")
                batch = std::stoll(value());
            else if (a == "--optimizer")
                optimizer = value();
            else if (a == "--lr")
                lr = std::stod(value());
            else if (a == "--threads")
                threads = std::stoi(value());
            else if (a == "--seed")
                seed = std::stoull(value());
            else if (a == "--out")
                out = value();
            else if (a == "--data")
                data_dir = value();
            else if (a == "--hidden") {
                hidden.clear();
                for (const auto& h : ex::split_list(value())) hidden.push_back(std::stoll(h));
            } else if (a == "--help" || a == "-h") {
                lab_train_usage();
                return 0;
            } else if (a != "train") {
                throw xg::ValueError("unknown option '" + a + "'");
            }
        }
        if (epochs < 1 || batch < 1 || acts.empty())
            throw xg::ValueError("need epochs >= 1, batch-size >= 1, some --act");
        for (const auto& act : acts) xg::get_activation(act);  // unknown names fail before any training
    } catch (const std::exception& e) {
        std::cerr << "xgrad-lab train: " << e.what() << "\n";
        lab_train_usage();
        return 2;
    }
    if (!ex::fashion_files_present(data_dir)) return 1;
    if (threads > 0) xg::set_num_threads(threads);
    std::filesystem::create_directories(out);
    const auto data = ex::load_fashion(data_dir);
    std::printf("xgrad-lab train: MLP 784-");
    for (auto h : hidden) std::printf("%lld-", static_cast<long long>(h));
    std::printf("10, %s lr %g, batch %lld, %d epoch(s), %d thread(s), seed %llu\n", optimizer.c_str(), lr,
                static_cast<long long>(batch), epochs, xg::get_num_threads(), static_cast<unsigned long long>(seed));

    struct Row {
        std::string act;
        double acc, epoch_s, dead, saturated, loss;
    };
    std::vector<Row> rows;
    std::vector<nn::Series> curves;
    for (const auto& act : acts) {
        xg::manual_seed(seed);
        auto model = ex::make_mlp(act, hidden);
        auto opt = nn::make_optimizer(optimizer, model->parameters(), lr);
        nn::DataLoader loader(data.train, {.batch_size = batch, .shuffle = true, .seed = seed});
        nn::ActivationMonitor mon;
        mon.attach_all(*model);
        nn::Series curve{act, {}, {}};
        double seconds = 0, last_loss = 0;
        ex::EvalStats ev;
        for (int e = 0; e < epochs; ++e) {
            mon.reset();
            ex::Progress bar(act + " epoch " + std::to_string(e + 1), loader.num_batches());
            auto st = ex::train_epoch(*model, *opt, loader, &bar, [&](std::int64_t i) { mon.enable(i % 10 == 0); });
            seconds += st.seconds;
            last_loss = st.loss;
            // Loss curve: mean of every 20 batches, against epochs.
            const std::size_t k = 20;
            for (std::size_t b = 0; b + k <= st.batch_losses.size(); b += k) {
                double m = 0;
                for (std::size_t j = b; j < b + k; ++j) m += st.batch_losses[j];
                curve.x.push_back(e + static_cast<double>(b + k) / static_cast<double>(st.batch_losses.size()));
                curve.y.push_back(m / static_cast<double>(k));
            }
        }
        mon.enable(false);
        ev = ex::evaluate(*model, *data.test);
        double count = 0, zeros = 0, sat = 0;
        for (const auto& l : mon.stats()) {
            count += static_cast<double>(l.count);
            zeros += static_cast<double>(l.zeros);
            sat += static_cast<double>(l.saturated);
        }
        rows.push_back(
            {act, ev.accuracy, seconds / epochs, count ? zeros / count : NAN, count ? sat / count : NAN, last_loss});
        curves.push_back(std::move(curve));
        std::printf("  %-12s test accuracy %.4f  (%.1f s per epoch)\n", act.c_str(), ev.accuracy, seconds / epochs);
        std::fflush(stdout);
    }
    std::printf("\n%-14s %10s %12s %10s %11s %11s\n", "activation", "test acc", "epoch time", "dead", "saturated",
                "train loss");
    for (const auto& r : rows)
        std::printf("%-14s %10.4f %11.2fs %9.2f%% %10.2f%% %11.4f\n", r.act.c_str(), r.acc, r.epoch_s, 100 * r.dead,
                    100 * r.saturated, r.loss);
    std::printf(
        "(dead: outputs exactly 0; saturated: |f'(x)| < 1e-3, which for relu-like functions are the dead units;\n"
        " both over the hidden units in the last epoch, every 10th batch)\n");
    const std::string chart = out + "/lab_loss.svg";
    nn::write_svg_line_chart(chart, "Training loss on Fashion-MNIST by activation", "epoch",
                             "cross-entropy (mean of 20 batches)", curves);
    std::printf("loss curves: %s\n", chart.c_str());
    return 0;
}
