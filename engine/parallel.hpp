// The one parallel policy of xgrad: a TBB thread count shared by every kernel.
#pragma once

namespace xg {

/// Limits every xgrad kernel (and BLAS, which runs single-threaded inside TBB tasks) to n threads.
void set_num_threads(int n);
/// The current thread limit (defaults to the number of cores).
int get_num_threads();

}  // namespace xg
