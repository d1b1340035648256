#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "../engine/error.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/reduction.hpp"

namespace xg::nn {

std::vector<std::vector<std::int64_t>> confusion_matrix(const Tensor& pred, const Tensor& target, std::int64_t c) {
    if (!pred.defined() || !target.defined() || pred.dtype() != Dtype::i64 || target.dtype() != Dtype::i64 ||
        pred.shape() != target.shape())
        throw ValueError("confusion_matrix: predictions and targets must be int64 tensors of one shape");
    if (c <= 0) throw ValueError("confusion_matrix: num_classes must be positive");
    std::vector<std::vector<std::int64_t>> m(static_cast<std::size_t>(c),
                                             std::vector<std::int64_t>(static_cast<std::size_t>(c), 0));
    const auto p = pred.to_vector<std::int64_t>(), t = target.to_vector<std::int64_t>();
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] < 0 || p[i] >= c || t[i] < 0 || t[i] >= c)
            throw IndexError("confusion_matrix: class out of range [0, " + std::to_string(c) + ")");
        ++m[static_cast<std::size_t>(t[i])][static_cast<std::size_t>(p[i])];
    }
    return m;
}

std::string format_confusion_matrix(const std::vector<std::vector<std::int64_t>>& m,
                                    const std::vector<std::string>& labels) {
    const std::size_t c = m.size();
    auto label = [&](std::size_t i) { return i < labels.size() ? labels[i] : std::to_string(i); };
    std::size_t w = 6, lw = 5;
    for (std::size_t i = 0; i < c; ++i) lw = std::max(lw, label(i).size());
    std::string r = std::string(lw + 2, ' ');
    char buf[64];
    for (std::size_t j = 0; j < c; ++j) {
        std::snprintf(buf, sizeof buf, "%*s", static_cast<int>(w), std::to_string(j).c_str());
        r += buf;
    }
    r += "   recall\n";
    for (std::size_t i = 0; i < c; ++i) {
        std::snprintf(buf, sizeof buf, "%-*s  ", static_cast<int>(lw), label(i).c_str());
        r += buf;
        std::int64_t total = 0;
        for (std::size_t j = 0; j < c; ++j) {
            std::snprintf(buf, sizeof buf, "%*lld", static_cast<int>(w), static_cast<long long>(m[i][j]));
            r += buf;
            total += m[i][j];
        }
        std::snprintf(buf, sizeof buf, "   %.3f\n",
                      total ? static_cast<double>(m[i][i]) / static_cast<double>(total) : 0.0);
        r += buf;
    }
    r += "(rows: true class, columns: predicted class";
    if (!labels.empty()) {
        r += "; ";
        for (std::size_t i = 0; i < c && i < labels.size(); ++i)
            r += (i ? ", " : "") + std::to_string(i) + "=" + labels[i];
    }
    return r + ")\n";
}

std::int64_t count_correct(const Tensor& logits, const Tensor& targets) {
    NoGradGuard ng;
    const Tensor pred = argmax(logits, 1);
    if (pred.shape() != targets.shape())
        throw ShapeError("count_correct: predictions " + shape_str(pred.shape()) + " and targets " +
                         shape_str(targets.shape()) + " differ");
    const auto p = pred.to_vector<std::int64_t>(), t = targets.to_vector<std::int64_t>();
    std::int64_t n = 0;
    for (std::size_t i = 0; i < p.size(); ++i) n += p[i] == t[i];
    return n;
}

namespace {
std::string xml_escape(const std::string& s) {
    std::string r;
    for (char ch : s) {
        switch (ch) {
            case '<':
                r += "&lt;";
                break;
            case '>':
                r += "&gt;";
                break;
            case '&':
                r += "&amp;";
                break;
            case '"':
                r += "&quot;";
                break;
            default:
                r += ch;
        }
    }
    return r;
}

// About five "nice" tick values (1, 2, 5 x 10^k) covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
    const double span = hi - lo;
    const double raw = span / 5.0, mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double f : {1.0, 2.0, 5.0, 10.0})
        if (raw <= f * mag) {
            step = f * mag;
            break;
        }
    std::vector<double> t;
    for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step)
        t.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
    return t;
}
}  // namespace

std::string svg_line_chart(const std::string& title, const std::string& xl, const std::string& yl,
                           const std::vector<Series>& series) {
    const double W = 760, H = 460, L = 70, R = 170, T = 40, B = 55;
    double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
    for (const auto& s : series)
        for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
            if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
                x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
                y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
            }
    if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) y1 = y0 + 1, y0 -= 1;
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
    auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
    static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    char buf[256];
    std::string s =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"460\" font-family=\"sans-serif\" "
        "font-size=\"12\">\n";
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", (L + W - R) / 2);
    s += buf + xml_escape(title) + "</text>\n";
    for (double t : ticks(x0, x1)) {
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#e0e0e0\"/><text x=\"%.1f\" y=\"%g\" "
                      "text-anchor=\"middle\">%g</text>\n",
                      px(t), T, px(t), H - B, px(t), H - B + 16, t);
        s += buf;
    }
    for (double t : ticks(y0, y1)) {
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#e0e0e0\"/><text x=\"%g\" y=\"%.1f\" "
                      "text-anchor=\"end\">%.4g</text>\n",
                      L, py(t), W - R, py(t), L - 6, py(t) + 4, t);
        s += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n", L, T,
                  W - L - R, H - T - B);
    s += buf;
    std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">", (L + W - R) / 2, H - 14);
    s += buf + xml_escape(xl) + "</text>\n";
    std::snprintf(buf, sizeof buf, "<text transform=\"translate(18,%g) rotate(-90)\" text-anchor=\"middle\">",
                  (T + H - B) / 2);
    s += buf + xml_escape(yl) + "</text>\n";
    for (std::size_t k = 0; k < series.size(); ++k) {
        const auto& se = series[k];
        const char* c = colors[k % 10];
        std::string pts;
        for (std::size_t i = 0; i < std::min(se.x.size(), se.y.size()); ++i)
            if (std::isfinite(se.x[i]) && std::isfinite(se.y[i])) {
                std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(se.x[i]), py(se.y[i]));
                pts += buf;
            }
        s +=
            "<polyline fill=\"none\" stroke=\"" + std::string(c) + "\" stroke-width=\"1.8\" points=\"" + pts + "\"/>\n";
        const double ly = T + 14 + 18 * static_cast<double>(k);
        std::snprintf(
            buf, sizeof buf,
            "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"/><text x=\"%g\" y=\"%g\">",
            W - R + 12, ly, W - R + 36, ly, c, W - R + 42, ly + 4);
        s += buf + xml_escape(se.name) + "</text>\n";
    }
    return s + "</svg>\n";
}

void write_svg_line_chart(const std::string& path, const std::string& title, const std::string& xl,
                          const std::string& yl, const std::vector<Series>& series) {
    std::ofstream f(path);
    f << svg_line_chart(title, xl, yl, series);
    if (!f) throw ValueError("write_svg_line_chart: cannot write '" + path + "'");
}

}  // namespace xg::nn
