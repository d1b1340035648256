// engine/: Array, shapes, the caching allocator, thread control, determinism at 1 and 2 threads,
// BLAS threading, and reading/printing tensors.
#include <sstream>
#include <thread>
#include <vector>
#include <xgrad/engine/allocator.hpp>

#include "ops_test_util.hpp"

extern "C" int openblas_get_num_threads(void);

using namespace xgt;
using xg::Array;
using xg::Tensor;

BOOST_AUTO_TEST_SUITE(engine)

BOOST_AUTO_TEST_CASE(array_basics) {
    Array a({2, 3}, xg::f64);
    BOOST_TEST(a.defined());
    BOOST_TEST(a.numel() == 6);
    BOOST_TEST(a.ndim() == 2u);
    BOOST_TEST(a.size(-1) == 3);
    for (int i = 0; i < 6; ++i) a.data<double>()[i] = i;
    const Array r = a.reshape({3, 2});
    BOOST_TEST(r.shares_storage(a));
    const Array c = a.clone();
    BOOST_TEST(!c.shares_storage(a));
    a.data<double>()[0] = 42;
    BOOST_TEST(r.data<double>()[0] == 42.0);
    BOOST_TEST(c.data<double>()[0] == 0.0);
    const Array f = a.to(xg::f32);
    BOOST_TEST(f.data<float>()[5] == 5.0f);
    BOOST_TEST(a.to(xg::f64).shares_storage(a));
    BOOST_TEST(!Array().defined());
    BOOST_TEST(Array({0, 4}, xg::f32).numel() == 0);
    BOOST_TEST(Array({}, xg::i64).numel() == 1);
    // Version counter (bumped by in-place writes).
    const auto v0 = a.version();
    a.bump_version();
    BOOST_TEST(a.version() == v0 + 1);
    BOOST_TEST(r.version() == v0 + 1);  // shared buffer, shared version
    BOOST_CHECK_EXCEPTION(a.data<float>(), xg::DtypeError, msg_has({"data", "float64", "float32"}));
    BOOST_CHECK_EXCEPTION(Array({2, -1}, xg::f32), xg::ValueError, msg_has({"negative", "[2,-1]"}));
    BOOST_CHECK_EXCEPTION(a.reshape({4}), xg::ShapeError, msg_has({"reshape", "[2,3]", "[4]"}));
    BOOST_CHECK_EXCEPTION(a.size(2), xg::IndexError, msg_has({"size", "axis 2"}));
    BOOST_CHECK_EXCEPTION(Array({}, xg::f32).size(0), xg::IndexError, msg_has({"size", "0-d"}));
    std::ostringstream os;
    os << xg::f32 << " " << xg::f64 << " " << xg::i64;
    BOOST_TEST(os.str() == "float32 float64 int64");
}

BOOST_AUTO_TEST_CASE(shape_helpers) {
    BOOST_TEST(xg::shape_numel({}) == 1);
    BOOST_TEST(xg::shape_numel({2, 0, 3}) == 0);
    BOOST_TEST(xg::shape_str({2, 3}) == "[2,3]");
    BOOST_TEST(xg::shape_str({}) == "[]");
    BOOST_TEST((xg::contiguous_strides({2, 3, 4}) == xg::Shape{12, 4, 1}));
    BOOST_TEST((xg::broadcast_shape({2, 1, 3}, {4, 1}, "t") == xg::Shape{2, 4, 3}));
    BOOST_TEST((xg::broadcast_shape({}, {0, 2}, "t") == xg::Shape{0, 2}));
    BOOST_TEST((xg::broadcast_shape({1}, {0}, "t") == xg::Shape{0}));
    BOOST_CHECK_EXCEPTION(xg::broadcast_shape({2, 3}, {3, 3}, "myop"), xg::ShapeError,
                          msg_has({"myop", "[2,3]", "[3,3]", "2 vs 3"}));
    BOOST_TEST(xg::normalize_axis(-1, 3, "t") == 2);
    BOOST_TEST(xg::normalize_axis(-1, 0, "t") == 0);  // a 0-d tensor accepts 0 and -1
    BOOST_CHECK_EXCEPTION(xg::normalize_axis(3, 3, "myop"), xg::IndexError, msg_has({"myop", "axis 3", "3-d"}));
    BOOST_CHECK_EXCEPTION(xg::normalize_axis(1, 0, "myop"), xg::IndexError, msg_has({"myop", "axis 1", "0-d"}));
    BOOST_TEST((xg::normalize_axes({-1, 0}, 3, "t") == std::vector<int>{0, 2}));
    BOOST_TEST((xg::normalize_axes({}, 2, "t") == std::vector<int>{0, 1}));
    BOOST_CHECK_EXCEPTION(xg::normalize_axes({0, -3}, 3, "myop"), xg::IndexError, msg_has({"myop", "repeated"}));
}

BOOST_AUTO_TEST_CASE(caching_allocator_reuses_buffers) {
    const std::size_t bytes = std::size_t(1) << 22;  // 4 MiB
    { Array warm({static_cast<std::int64_t>(bytes / 4)}, xg::f32); }
    const auto before = xg::allocator_stats();
    BOOST_TEST(before.bytes_cached >= bytes);
    {
        Array again({static_cast<std::int64_t>(bytes / 4)}, xg::f32);  // served from the cache
        const auto during = xg::allocator_stats();
        BOOST_TEST(during.bytes_cached == before.bytes_cached - bytes);
        BOOST_TEST(during.bytes_in_use >= before.bytes_in_use + bytes);
        BOOST_TEST(during.peak_bytes_in_use >= during.bytes_in_use);
    }
    BOOST_TEST(xg::allocator_stats().bytes_cached == before.bytes_cached);
    xg::empty_cache();
    BOOST_TEST(xg::allocator_stats().bytes_cached == 0u);
    // Buffers are 64-byte aligned (SIMD loads), except one of at most 8 bytes (a scalar), which
    // lives inside its storage object and is aligned for its element type.
    for (std::int64_t n : {2, 3, 17, 1000, 12345}) {
        Array a({n}, xg::f64);
        BOOST_TEST(reinterpret_cast<std::uintptr_t>(a.raw()) % 64 == 0u);
    }
    const Array scalar({1}, xg::f64);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(scalar.raw()) % alignof(double) == 0u);
}

BOOST_AUTO_TEST_CASE(thread_control) {
    xg::set_num_threads(1);
    BOOST_TEST(xg::get_num_threads() == 1);
    xg::set_num_threads(2);
    BOOST_TEST(xg::get_num_threads() == 2);
    BOOST_CHECK_EXCEPTION(xg::set_num_threads(0), xg::ValueError, msg_has({"set_num_threads", "0"}));
    // GEMMs are split across TBB tasks; OpenBLAS itself must stay single-threaded.
    (void)xg::matmul(xg::ones({300, 300}), xg::ones({300, 300}));
    BOOST_TEST(openblas_get_num_threads() == 1);
}

BOOST_AUTO_TEST_CASE(reductions_are_bit_identical_at_one_and_two_threads) {
    xg::manual_seed(51);
    const Tensor v = xg::randn({1000000});
    const Tensor m = xg::randn({1000, 1000});
    const Tensor m64 = xg::randn({700, 900}, xg::f64);
    const std::vector<std::function<Tensor()>> fns = {
        [&] { return xg::sum(v); },
        [&] { return xg::sum(m, {0}); },
        [&] { return xg::sum(m, {1}); },
        [&] { return xg::mean(m64, {0}); },
        [&] { return xg::sum(m64, {1}); },
        [&] { return xg::var(v); },
        [&] { return xg::max(m, {0}); },
        [&] { return xg::logsumexp(m, {1}); },
        [&] {
            return xg::prod(xg::reshape(v, {1000, 1000}), {0});
        },
    };
    for (std::size_t i = 0; i < fns.size(); ++i) {
        BOOST_TEST_CONTEXT("reduction " << i) {
            const auto [one, two] = at_1_and_2_threads(fns[i]);
            BOOST_TEST((bits(one) == bits(two)));
        }
    }
    // The sum of 1M floats is also accurate (pairwise-enough): compare with a double loop.
    double ref = 0;
    for (float x : v.to_vector<float>()) ref += x;
    BOOST_TEST(std::fabs(xg::sum(v).item<double>() - ref) < 1e-2);
}

BOOST_AUTO_TEST_CASE(matmul_is_bit_identical_at_one_and_two_threads) {
    xg::manual_seed(52);
    const Tensor a = xg::randn({512, 512}), b = xg::randn({512, 512});
    const Tensor ba = xg::randn({8, 128, 96}, xg::f64), bb = xg::randn({96, 130}, xg::f64);
    const Tensor wide = xg::randn({64, 300}), wide_b = xg::randn({300, 1024});
    const std::vector<std::function<Tensor()>> fns = {
        [&] { return xg::matmul(a, b); },
        [&] { return xg::matmul(ba, bb); },
        [&] { return xg::matmul_t(a, b, true, false); },
        [&] { return xg::matmul_t(a, b, false, true); },
        [&] { return xg::matmul(wide, wide_b); },
    };
    for (std::size_t i = 0; i < fns.size(); ++i) {
        BOOST_TEST_CONTEXT("matmul " << i) {
            const auto [one, two] = at_1_and_2_threads(fns[i]);
            BOOST_TEST((bits(one) == bits(two)));
        }
    }
}

BOOST_AUTO_TEST_CASE(elementwise_and_gradients_are_bit_identical_at_one_and_two_threads) {
    xg::manual_seed(53);
    const Tensor x = xg::uniform({1000, 1000}, 0.1, 2.0);
    const Tensor y = xg::randn({1000});
    const std::vector<std::function<Tensor()>> fns = {
        [&] { return xg::exp(x); },
        [&] { return xg::log(x) * y; },
        [&] { return xg::sin(x) / (x + y); },
        [&] { return xg::pow(x, 1.5) - xg::sqrt(x); },
        [&] {
            return xg::permute(xg::reshape(x, {100, 100, 100}), {2, 0, 1});
        },
        [&] { return xg::where(xg::gt(x, xg::scalar(1.0)), x, y); },
        [&] {
            // A gradient: backward through broadcast, matmul and reductions.
            xg::manual_seed(54);
            Tensor w2 = xg::randn({1000, 64}).requires_grad_();
            xg::sum(xg::exp(xg::matmul(x, w2) * 0.01) * xg::reshape(y, {1000, 1})).backward();
            return w2.grad();
        },
    };
    for (std::size_t i = 0; i < fns.size(); ++i) {
        BOOST_TEST_CONTEXT("op " << i) {
            const auto [one, two] = at_1_and_2_threads(fns[i]);
            BOOST_TEST((bits(one) == bits(two)));
        }
    }
}

BOOST_AUTO_TEST_CASE(aliases_share_elements_and_version_but_not_the_count) {
    Array a({4}, xg::f32);
    for (int i = 0; i < 4; ++i) a.data<float>()[i] = static_cast<float>(i);
    Array b = a.alias();
    BOOST_TEST(b.shares_storage(a));
    BOOST_TEST(a.shares_storage(b));
    BOOST_TEST(b.raw() == a.raw());
    BOOST_TEST(!a.unique());  // each holds the buffer
    BOOST_TEST(!b.unique());
    BOOST_TEST(b.alias().shares_storage(a));
    const auto v = a.version();
    b.bump_version();
    BOOST_TEST(a.version() == v + 1);
    a.bump_version();
    BOOST_TEST(b.version() == v + 2);
    BOOST_TEST(!b.shares_storage(a.clone()));
    // The alias keeps the buffer alive after the original is gone.
    a = Array();
    BOOST_TEST(b.unique());
    BOOST_TEST(b.data<float>()[3] == 3.0f);
    // A lazily filled constant is materialised by its alias.
    Array lazy = Array::filled({1 << 16}, xg::f32, 2.5);
    Array lazy_alias = lazy.alias();
    BOOST_TEST(lazy_alias.data<float>()[12345] == 2.5f);
}

BOOST_AUTO_TEST_CASE(small_buffers_freed_on_other_threads_are_counted_and_released) {
    xg::empty_cache();
    const auto before = xg::allocator_stats();
    constexpr int kCount = 1000;  // 1000 x 4 KiB: under the thread cache's size and byte limits
    std::vector<Array> made;
    std::thread maker([&] {
        const xg::Shape shape{1024};
        for (int i = 0; i < kCount; ++i) made.emplace_back(shape, xg::f32);
    });
    maker.join();
    const auto during = xg::allocator_stats();
    BOOST_TEST(during.bytes_in_use == before.bytes_in_use + kCount * 4096u);
    BOOST_TEST(during.peak_bytes_in_use >= during.bytes_in_use);
    made.clear();  // freed on this thread: they join this thread's cache
    const auto after = xg::allocator_stats();
    BOOST_TEST(after.bytes_in_use == before.bytes_in_use);
    BOOST_TEST(after.bytes_cached == before.bytes_cached + kCount * 4096u);
    { Array again({1024}, xg::f32); }  // served from this thread's cache
    BOOST_TEST(xg::allocator_stats().bytes_cached == after.bytes_cached);
    xg::empty_cache();
    BOOST_TEST(xg::allocator_stats().bytes_cached == 0u);
}

BOOST_AUTO_TEST_CASE(node_blocks_freed_on_another_thread_are_reused_not_hoarded) {
    // A producer thread makes arrays (their storages are pool blocks) and this thread frees them,
    // round after round. The freeing thread keeps at most 1 MiB per size class; the rest goes to
    // the shared list, which the producer refills from: the free blocks stay at about one round's
    // worth instead of growing by a round each time.
    constexpr int kRounds = 8, kCount = 20000;
    std::size_t after_first = 0;
    for (int round = 0; round < kRounds; ++round) {
        std::vector<Array> made;
        std::thread producer([&] {
            const xg::Shape one{1};
            made.reserve(kCount);
            for (int i = 0; i < kCount; ++i) made.emplace_back(one, xg::f32);
        });
        producer.join();
        made.clear();
        const std::size_t free_blocks = xg::detail::pool_local_bytes() + xg::detail::pool_shared_bytes();
        if (round == 0) after_first = free_blocks;
        BOOST_TEST(xg::detail::pool_local_bytes() <= 16u << 20);
        BOOST_TEST(free_blocks <= after_first + (1u << 20));
    }
}

BOOST_AUTO_TEST_CASE(short_lived_threads_leave_no_pool_chunks_behind) {
    // Each thread carves new blocks from a 2 MiB chunk of its own; at thread exit the rest of the
    // chunk goes to the next thread. 64 threads whose results outlive them (so that their blocks
    // cannot be reused) must not map 64 chunks.
    const std::size_t before = xg::detail::pool_mapped_bytes();
    std::vector<Tensor> results;
    for (int t = 0; t < 64; ++t) {
        std::thread worker([&results] {
            const Tensor w = xg::ones({4}).requires_grad_();
            results.push_back(xg::tanh(w * 2.0f));
        });
        worker.join();
    }
    BOOST_TEST(results.back().requires_grad());
    BOOST_TEST(xg::detail::pool_mapped_bytes() <= before + (std::size_t(4) << 20));
}

BOOST_AUTO_TEST_CASE(gemm_tiles_on_two_threads_give_the_one_thread_result_every_time) {
    // Row tiles of one GEMM run as concurrent BLAS calls. With a BLAS whose buffers are not
    // thread-safe (Debian's serial OpenBLAS), about 1 run in 120 gave wrong rows.
    xg::manual_seed(11);
    const Tensor a = xg::randn({1000, 784}), b = xg::randn({784, 256});
    const int threads_before = xg::get_num_threads();
    xg::set_num_threads(1);
    const auto reference = xg::matmul(a, b).to_vector<float>();
    xg::set_num_threads(2);
    int wrong = 0;
    for (int run = 0; run < 400; ++run) wrong += xg::matmul(a, b).to_vector<float>() != reference;
    xg::set_num_threads(threads_before);
    BOOST_TEST(wrong == 0);
}

// OpenBLAS's pthread build sets this to 1 while its thread pool runs (weak: absent in other builds).
extern "C" int blas_server_avail __attribute__((weak));

BOOST_AUTO_TEST_CASE(blas_runs_no_thread_pool_of_its_own) {
    // The pool starts when the library is loaded; xgrad stops it before any work (TBB owns the
    // cores), and GEMMs at any thread count must not start it again.
    BOOST_TEST_REQUIRE(&blas_server_avail != nullptr, "not linked with OpenBLAS's pthread build");
    BOOST_TEST(blas_server_avail == 0);
    const int threads_before = xg::get_num_threads();
    for (const int threads : {2, 1}) {
        xg::set_num_threads(threads);
        BOOST_TEST(xg::sum(xg::matmul(xg::ones({300, 300}), xg::ones({300, 300}))).item<float>() == 300.0f * 300 * 300);
    }
    xg::set_num_threads(threads_before);
    BOOST_TEST(blas_server_avail == 0);
}

BOOST_AUTO_TEST_CASE(reading_values) {
    const Tensor s = xg::scalar(2.75, xg::f64);
    BOOST_TEST(s.item<double>() == 2.75);
    BOOST_TEST(s.item<float>() == 2.75f);
    BOOST_TEST(s.item<std::int64_t>() == 2);
    BOOST_TEST(xg::tensor({5}, {1, 1}).item<int>() == 5);
    BOOST_TEST(xg::tensor_i64({-7}).item<double>() == -7.0);
    BOOST_CHECK_EXCEPTION(xg::ones({2}).item<float>(), xg::ValueError, msg_has({"item", "2 elements", "[2]"}));
    BOOST_CHECK_EXCEPTION(xg::ones({0}).item<float>(), xg::ValueError, msg_has({"item", "0 elements"}));
    const Tensor t = xg::tensor({1, 2, 3, 4, 5, 6}, {2, 3});
    BOOST_TEST(t.to_vector<float>() == (std::vector<float>{1, 2, 3, 4, 5, 6}));  // row-major
    BOOST_TEST(xg::transpose(t, 0, 1).to_vector<int>() == (std::vector<int>{1, 4, 2, 5, 3, 6}));
    BOOST_TEST(t.to_vector<std::int64_t>().size() == 6u);
    BOOST_TEST((t.shape() == xg::Shape{2, 3}));
    BOOST_TEST(t.numel() == 6);
    BOOST_TEST(t.ndim() == 2u);
    BOOST_TEST(t.size(0) == 2);
    BOOST_TEST(t.dtype() == xg::f32);
    BOOST_TEST(xg::zeros({0}).to_vector<double>().empty());
}

BOOST_AUTO_TEST_CASE(printing) {
    auto str = [](const Tensor& t) {
        std::ostringstream os;
        os << t;
        return os.str();
    };
    BOOST_TEST(str(xg::tensor({1, 2, 3, 4}, {2, 2})) ==
               "tensor([[1, 2],\n        [3, 4]], shape=[2,2], dtype=float32)");
    BOOST_TEST(str(xg::scalar(3.25, xg::f64)) == "tensor(3.25, shape=[], dtype=float64)");
    BOOST_TEST(str(xg::tensor_i64({1, -2})) == "tensor([1, -2], shape=[2], dtype=int64)");
    BOOST_TEST(str(xg::zeros({0, 3})) == "tensor([], shape=[0,3], dtype=float32)");
    Tensor x = xg::tensor({1, 2}).requires_grad_();
    BOOST_TEST(str(x) == "tensor([1, 2], shape=[2], dtype=float32, requires_grad=true)");
    BOOST_TEST(str(x * 2.0) == "tensor([2, 4], shape=[2], dtype=float32, grad_fn=<mul>)");
    BOOST_TEST(str(xg::matmul(x, x)).find("grad_fn=<") != std::string::npos);
    BOOST_TEST(str(Tensor()) == "tensor(undefined)");
    // Large tensors are elided: first and last three of each dimension.
    const std::string big = str(xg::arange(0, 2000));
    BOOST_TEST(big == "tensor([0, 1, 2, ..., 1997, 1998, 1999], shape=[2000], dtype=float32)");
    const std::string mat = str(xg::reshape(xg::arange(0, 2000), {40, 50}));
    BOOST_TEST(mat.find("[0, 1, 2, ..., 47, 48, 49],") != std::string::npos);
    BOOST_TEST(mat.find("...,\n") != std::string::npos);
    BOOST_TEST(mat.find("1950, 1951, 1952, ..., 1997, 1998, 1999]]") != std::string::npos);
    BOOST_TEST(mat.find("1000") == std::string::npos);  // a middle row is elided
    BOOST_TEST(mat.size() < 700u);
}

BOOST_AUTO_TEST_CASE(filled_arrays_are_lazy_uniform_constants) {
    const std::int64_t n = 100000;  // 400 KB: above the lazy-fill threshold
    const Array big = Array::filled({n}, xg::f32, 2.5);
    BOOST_TEST(big.is_uniform());
    BOOST_TEST(*static_cast<const float*>(big.uniform_value()) == 2.5f);
    const float* p = big.data<float>();  // reading materialises and keeps it uniform
    BOOST_TEST(p[0] == 2.5f);
    BOOST_TEST(p[n - 1] == 2.5f);
    BOOST_TEST(big.is_uniform());
    Array w = big;
    w.data<float>()[7] = 1.0f;  // a write through the non-const pointer ends uniformity
    BOOST_TEST(!big.is_uniform());
    BOOST_TEST(big.data<float>()[7] == 1.0f);
    const Array small = Array::filled({3}, xg::f64, -1.0);  // small ones are filled at once
    BOOST_TEST(!small.is_uniform());
    BOOST_TEST(small.data<double>()[2] == -1.0);
    // clone and dtype conversion of a uniform array stay uniform and lazy.
    const Array u = Array::filled({n}, xg::f64, 0.25);
    BOOST_TEST(u.clone().is_uniform());
    BOOST_TEST(!u.clone().shares_storage(u));
    const Array uf = u.to(xg::f32);
    BOOST_TEST(uf.is_uniform());
    BOOST_TEST(uf.data<float>()[n - 1] == 0.25f);
    BOOST_CHECK_EXCEPTION(Array::filled({-1}, xg::f32, 0.0), xg::ValueError, msg_has({"negative"}));
}

BOOST_AUTO_TEST_CASE(uniform_operands_give_the_same_values_as_materialised_ones) {
    // The gradient of a sum is a lazily filled constant; every kernel must read it correctly,
    // alone, against a full operand, and against a broadcast one (where it is materialised).
    const std::int64_t rows = 300, cols = 200;
    const Tensor one = xg::tensor({3.0}, {}, xg::f64);
    const Tensor u = xg::broadcast_to(one, {rows, cols});
    BOOST_TEST(u.array().is_uniform());
    const Tensor full = xg::reshape(xg::arange(0, rows * cols, 1, xg::f64), {rows, cols});
    const Tensor row = xg::arange(0, cols, 1, xg::f64);
    const auto prod = (u * full).to_vector<double>();
    const auto sum2 = (u + u).to_vector<double>();
    const auto brow = (u - row).to_vector<double>();
    const auto sig = xg::sigmoid_backward(u, full / (rows * cols)).to_vector<double>();
    for (std::int64_t i = 0; i < rows * cols; i += 997) {
        BOOST_TEST(prod[i] == 3.0 * i);
        BOOST_TEST(sum2[i] == 6.0);
        BOOST_TEST(brow[i] == 3.0 - static_cast<double>(i % cols));
        const double y = static_cast<double>(i) / (rows * cols);
        BOOST_TEST(std::abs(sig[i] - 3.0 * y * (1 - y)) < 1e-15);
    }
    BOOST_TEST(u.array().is_uniform());  // read as one value, never written
}

BOOST_AUTO_TEST_CASE(gradients_of_large_sums_are_right_and_not_aliased) {
    const std::int64_t n = 50000;
    Tensor a = xg::randn({n}, xg::f32).requires_grad_();
    Tensor b = xg::randn({n}, xg::f32).requires_grad_();
    xg::sum(a + b).backward();  // add's rule hands the same gradient to both inputs
    BOOST_TEST(!a.grad().array().shares_storage(b.grad().array()));
    Array ga = a.grad().array();
    ga.data<float>()[0] = 5.0f;
    BOOST_TEST(b.grad().to_vector<float>()[0] == 1.0f);
    BOOST_TEST(a.grad().to_vector<float>()[n - 1] == 1.0f);
    Tensor x = xg::randn({n}, xg::f32).requires_grad_();
    xg::sum(xg::sigmoid(x)).backward();
    xg::sum(xg::sigmoid(x)).backward();  // accumulates: twice sigmoid'
    const auto xv = x.to_vector<float>(), gv = x.grad().to_vector<float>();
    for (std::int64_t i = 0; i < n; i += 4999) {
        const double s = 1 / (1 + std::exp(-static_cast<double>(xv[i])));
        BOOST_TEST(std::abs(gv[i] - 2 * s * (1 - s)) < 1e-6);
    }
}

BOOST_AUTO_TEST_SUITE_END()
