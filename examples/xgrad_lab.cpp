// xgrad-lab: the activation lab.
//   xgrad-lab list
//   xgrad-lab check <act> [--range a,b] [--points n] [--no-gradcheck]
//   xgrad-lab plot <act,...> [--range a,b] [--points n] [--out file] [--format png|svg]
//   xgrad-lab bench <act,...> [--n elements] [--threads 1,2]
// Any built-in or registered activation works by name; register_user_activations() below shows
// how to add your own in a few lines.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <xgrad/ops/activation_lab.hpp>
#include <xgrad/xgrad.hpp>

#include "lab.hpp"
#include "lab_train.hpp"

namespace {

// --- your activations -------------------------------------------------------------------------------
// One generic lambda written with xg's scalar math is a complete activation: a vectorised, parallel
// forward kernel and derivatives of every order (forward-mode duals). Register it and every
// subcommand (and the layers of xg::nn) can use it by name.
void register_user_activations() {
    xg::register_activation(xg::activation("user_swish", [](auto x) { return x * xg::sigmoid(x); }));
    // gelu written the way a paper writes it: x Phi(x), Phi from erfc (accurate in the left tail).
    xg::register_activation(
        xg::activation("user_gelu", [](auto x) { return x * (xg::erfc(x * -0.70710678118654752440) * 0.5); }));

    // With a hand-written derivative df(x, y), y = f(x): `check` compares it with the automatic one.
    xg::register_activation(xg::activation(
        "user_sigmoid", [](auto x) { return 1 / (1 + xg::exp(-x)); }, [](auto, auto y) { return y * (1 - y); }));

    // The textbook formula of swish: `check` shows where e^-x overflows (float32 below -88).
    xg::register_activation(xg::activation("naive_swish", [](auto x) { return x / (1 + xg::exp(-x)); }));

    // Piecewise, with the kink convention chosen by the branch `where` picks at the kink.
    xg::register_activation(
        xg::activation("squareplus_kink", [](auto x) { return xg::where(x > 0, x * x + x, 0.5 * x); }));

    // A parameter (here fixed by bind; a layer would own it as a learnable tensor).
    auto pswish = xg::activation("pswish", [](auto x, auto beta) { return x * xg::sigmoid(beta * x); });
    xg::register_activation(pswish.bind(xg::scalar(1.5, xg::f32)));
}

std::pair<double, double> parse_range(const lab::Args& args, double lo, double hi) {
    const std::string r = lab::option(args, "--range");
    if (r.empty()) return {lo, hi};
    const auto parts = lab::split_list(r);
    if (parts.size() != 2) throw xg::ValueError("--range expects a,b (for example --range -6,6)");
    return {std::stod(parts[0]), std::stod(parts[1])};
}

// `train` lives in lab_train.cpp (shared with the Fashion-MNIST main job); it takes argv-style arguments.
int run_train(const lab::Args& args) {
    std::vector<std::string> words{"train"};
    words.insert(words.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    return lab_train(static_cast<int>(argv.size()), argv.data());
}

// --- the table of subcommands ---------------------------------------------------------------------------
// Add a subcommand by adding a row (and its run function in its own lab_*.cpp).
const std::vector<lab::Subcommand>& subcommands() {
    static const std::vector<lab::Subcommand> table = {
        {"list", "", "the registered activations", lab::run_list},
        {"check", "<act> [--range a,b] [--points n] [--no-gradcheck]",
         "gradcheck + gradgradcheck on a dense sweep and edge points; kinks, saturation, sign changes of f', "
         "inf/NaN, hand-written vs automatic f'",
         lab::run_check},
        {"plot", "<act,...> [--range a,b] [--points n] [--out file] [--format png|svg]",
         "f, f' and f'' side by side (PNG through gnuplot when installed, otherwise SVG)", lab::run_plot},
        {"bench", "<act,...> [--n elements] [--threads 1,2]",
         "forward and forward+backward ns/element on 4M float32, side by side with the built-ins", lab::run_bench},
        {"train", "--act a,b,c [--epochs n] [--hidden 128] [--optimizer adam] [--lr x] [--threads n] [--out dir]",
         "the same small model on Fashion-MNIST with each activation: accuracy, epoch time, dead/saturated "
         "fractions, loss curves on one chart",
         run_train},
    };
    return table;
}

int usage() {
    std::cerr << "usage: xgrad-lab <subcommand> [args]\n\nsubcommands:\n";
    for (const auto& s : subcommands()) std::cerr << "  " << s.name << " " << s.usage << "\n      " << s.help << "\n";
    return 2;
}

bool gnuplot_available() { return std::system("gnuplot --version > /dev/null 2>&1") == 0; }

}  // namespace

namespace lab {

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> r;
    std::string cur;
    for (char c : s) {
        if (c == ',') {
            if (!cur.empty()) r.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) r.push_back(cur);
    return r;
}

std::string option(const Args& args, const std::string& flag, const std::string& fallback) {
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
        if (args[i] == flag) return args[i + 1];
    return fallback;
}

bool has_flag(const Args& args, const std::string& flag) {
    for (const auto& a : args)
        if (a == flag) return true;
    return false;
}

std::vector<std::string> positional(const Args& args) {
    std::vector<std::string> r;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].rfind("--", 0) == 0) {
            if (args[i] != "--no-gradcheck") ++i;  // skip the flag's value
            continue;
        }
        r.push_back(args[i]);
    }
    return r;
}

int run_list(const Args&) {
    for (const auto& name : xg::activation_names()) {
        const auto info = xg::activation_info(name);
        std::cout << name << (info.elementwise ? "" : "  (along an axis)")
                  << (info.notes.empty() ? "" : "  -- " + info.notes) << "\n";
    }
    return 0;
}

int run_check(const Args& args) {
    const auto pos = positional(args);
    if (pos.size() != 1) throw xg::ValueError("check expects one activation name");
    xg::lab::CheckOptions o;
    std::tie(o.lo, o.hi) = parse_range(args, o.lo, o.hi);
    o.points = std::stoll(option(args, "--points", std::to_string(o.points)));
    o.gradchecks = !has_flag(args, "--no-gradcheck");
    const auto report = xg::lab::check(pos[0], o);
    std::cout << report.text();
    return report.ok() ? 0 : 1;
}

int run_plot(const Args& args) {
    const auto pos = positional(args);
    if (pos.size() != 1) throw xg::ValueError("plot expects a comma-separated list of activations");
    const auto names = split_list(pos[0]);
    const auto [lo, hi] = parse_range(args, -6.0, 6.0);
    const std::int64_t n = std::stoll(option(args, "--points", "801"));
    std::vector<xg::lab::Curve> curves;
    for (const auto& name : names) curves.push_back(xg::lab::sample(name, lo, hi, n));
    std::string stem;
    for (const auto& name : names) stem += (stem.empty() ? "" : "_") + name;
    std::string format = option(args, "--format");
    std::string out = option(args, "--out");
    if (format.empty()) {
        if (!out.empty() && std::filesystem::path(out).extension() == ".svg")
            format = "svg";
        else if (!out.empty() && std::filesystem::path(out).extension() == ".png")
            format = "png";
        else
            format = gnuplot_available() ? "png" : "svg";
    }
    if (format == "png" && !gnuplot_available()) {
        std::cerr << "gnuplot is not installed: writing SVG instead\n";
        format = "svg";
        if (!out.empty()) out = std::filesystem::path(out).replace_extension(".svg").string();
    }
    if (out.empty()) out = stem + "." + format;
    if (format == "svg") {
        std::ofstream f(out);
        if (!f) throw xg::ValueError("plot: cannot write " + out);
        f << xg::lab::svg_plot(curves);
    } else if (format == "png") {
        const auto dir = std::filesystem::temp_directory_path();
        const std::string data = (dir / ("xgrad_lab_" + stem + ".dat")).string();
        const std::string script = (dir / ("xgrad_lab_" + stem + ".gp")).string();
        {
            std::ofstream s(script);
            s << xg::lab::gnuplot_script(curves, data, out, true);
        }
        if (std::system(("gnuplot '" + script + "' 2> /dev/null").c_str()) != 0) {
            std::ofstream s(script);  // no cairo: the libgd terminal
            s << xg::lab::gnuplot_script(curves, data, out, false);
            if (std::system(("gnuplot '" + script + "'").c_str()) != 0) throw xg::ValueError("plot: gnuplot failed");
        }
        std::filesystem::remove(script);
        std::filesystem::remove(data);
    } else {
        throw xg::ValueError("plot: --format must be png or svg, got " + format);
    }
    std::cout << "wrote " << out << "\n";
    return 0;
}

}  // namespace lab

int main(int argc, char** argv) {
    register_user_activations();
    if (argc < 2) return usage();
    const std::string cmd = argv[1];
    const lab::Args args(argv + 2, argv + argc);
    for (const auto& s : subcommands()) {
        if (cmd != s.name) continue;
        try {
            return s.run(args);
        } catch (const std::exception& e) {
            std::cerr << "xgrad-lab " << cmd << ": " << e.what() << "\n";
            return 2;
        }
    }
    std::cerr << "xgrad-lab: unknown subcommand '" << cmd << "'\n";
    return usage();
}
