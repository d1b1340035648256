// xgrad error hierarchy: every failure is a C++ exception derived from xg::Error whose message
// names the op and the offending shapes or values.
#pragma once
#include <stdexcept>
#include <string>

namespace xg {

/// Base of every xgrad exception.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
/// Shapes that do not fit the op (broadcasting, matmul, reshape ...).
class ShapeError : public Error { public: using Error::Error; };
/// A dtype the op does not accept (integer tensor into exp, requires_grad on i64 ...).
class DtypeError : public Error { public: using Error::Error; };
/// Misuse of the autograd graph (backward twice, non-scalar root, in-place change of a saved tensor).
class GraphError : public Error { public: using Error::Error; };
/// An axis or index outside its range.
class IndexError : public Error { public: using Error::Error; };
/// A bad argument value (negative size, zero step, NaN produced under anomaly mode ...).
class ValueError : public Error { public: using Error::Error; };

}  // namespace xg
