// nn/: classification metrics and a dependency-free SVG line chart for training curves.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg::nn {

/// counts[t][p]: samples of true class t predicted as p; predictions and targets are int64 [N].
std::vector<std::vector<std::int64_t>> confusion_matrix(const Tensor& predictions, const Tensor& targets,
                                                        std::int64_t num_classes);
/// The matrix as a text table with row (true) and column (predicted) labels and per-class recall.
std::string format_confusion_matrix(const std::vector<std::vector<std::int64_t>>& counts,
                                    const std::vector<std::string>& labels = {});
/// Number of rows of logits [N, C] whose argmax equals the int64 target.
std::int64_t count_correct(const Tensor& logits, const Tensor& targets);

/// One line of a chart.
struct Series {
    std::string name;
    std::vector<double> x, y;
};
/// An SVG line chart (axes with ticks, a legend, one colour per series); non-finite points are skipped.
std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<Series>& series);
/// Writes svg_line_chart(...) to path (throws ValueError when the file cannot be written).
void write_svg_line_chart(const std::string& path, const std::string& title, const std::string& x_label,
                          const std::string& y_label, const std::vector<Series>& series);

}  // namespace xg::nn
