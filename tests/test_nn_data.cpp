// Data: the IDX reader on files the test writes (raw and gzip, several element types, truncated and
// damaged ones), TensorDataset, DataLoader (batching, seeded shuffling, drop_last), normalisation.
#include <zlib.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <xgrad/xgrad.hpp>

namespace nn = xg::nn;
namespace fs = std::filesystem;
using xg::Tensor;

namespace {
struct TempDir {
    fs::path path;
    TempDir() {
        static int counter = 0;
        path =
            fs::temp_directory_path() / ("xgrad_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_gz(const std::string& path, const std::string& bytes) {
    gzFile g = gzopen(path.c_str(), "wb");
    gzwrite(g, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(g);
}

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

void expect_error(const std::string& path, const std::string& fragment) {
    try {
        nn::read_idx(path);
        BOOST_ERROR("read_idx accepted " << path);
    } catch (const xg::Error& e) {
        BOOST_TEST(std::string(e.what()).find(fragment) != std::string::npos, "message: " << e.what());
    }
}
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_data)

BOOST_AUTO_TEST_CASE(idx_u8_round_trip_raw_and_gzip) {
    TempDir dir;
    auto images = xg::tensor({0, 1, 2, 255, 128, 7, 9, 10, 11, 12, 13, 14}, {2, 2, 3});
    nn::write_idx_u8(dir.file("raw-idx3-ubyte"), images, false);
    nn::write_idx_u8(dir.file("z-idx3-ubyte.gz"), images, true);
    const std::string raw = read_bytes(dir.file("raw-idx3-ubyte"));
    BOOST_TEST(raw.size() == 4u + 12u + 12u);
    BOOST_TEST(raw.substr(0, 4) == std::string("\0\0\x08\x03", 4));
    BOOST_TEST(raw.substr(4, 4) == be32(2));
    BOOST_TEST(read_bytes(dir.file("z-idx3-ubyte.gz")).substr(0, 2) == "\x1f\x8b");  // gzip magic
    for (const char* name : {"raw-idx3-ubyte", "z-idx3-ubyte.gz"}) {
        auto t = nn::read_idx(dir.file(name));
        BOOST_TEST((t.dtype() == xg::f32));
        BOOST_TEST((t.shape() == xg::Shape{2, 2, 3}));
        BOOST_TEST(t.to_vector<double>() == images.to_vector<double>(), boost::test_tools::per_element());
        auto l = nn::read_idx(dir.file(name), xg::i64);
        BOOST_TEST((l.dtype() == xg::i64));
        BOOST_TEST(l.to_vector<std::int64_t>()[3] == 255);
    }
}

BOOST_AUTO_TEST_CASE(idx_other_element_types_are_big_endian) {
    TempDir dir;
    // int16 (0x0B): -2, 300; int32 (0x0C): -70000; float32 (0x0D): 1.5; float64 (0x0E): -0.25; int8 (0x09): -5.
    write_bytes(dir.file("i16"), std::string("\0\0\x0b\x01", 4) + be32(2) + std::string("\xff\xfe\x01\x2c", 4));
    write_bytes(dir.file("i32"), std::string("\0\0\x0c\x01", 4) + be32(1) + std::string("\xff\xfe\xee\x90", 4));
    write_bytes(dir.file("f32"), std::string("\0\0\x0d\x01", 4) + be32(1) + std::string("\x3f\xc0\x00\x00", 4));
    write_gz(dir.file("f64.gz"), std::string("\0\0\x0e\x01", 4) + be32(1) + std::string("\xbf\xd0\0\0\0\0\0\0", 8));
    write_bytes(dir.file("i8"), std::string("\0\0\x09\x01", 4) + be32(1) + "\xfb");
    BOOST_TEST(nn::read_idx(dir.file("i16"), xg::i64).to_vector<std::int64_t>() == (std::vector<std::int64_t>{-2, 300}),
               boost::test_tools::per_element());
    BOOST_TEST(nn::read_idx(dir.file("i32"), xg::i64).item<std::int64_t>() == -70000);
    BOOST_TEST(nn::read_idx(dir.file("f32")).item<double>() == 1.5);
    BOOST_TEST(nn::read_idx(dir.file("f64.gz"), xg::f64).item<double>() == -0.25);
    BOOST_TEST(nn::read_idx(dir.file("i8")).item<double>() == -5.0);
}

BOOST_AUTO_TEST_CASE(idx_truncated_and_damaged_files_throw) {
    TempDir dir;
    const std::string good = std::string("\0\0\x08\x02", 4) + be32(3) + be32(4) + std::string(12, '\x05');
    write_bytes(dir.file("good"), good);
    BOOST_CHECK_NO_THROW(nn::read_idx(dir.file("good")));
    // Truncated in the data, in the dimensions, in the magic; raw and gzip.
    write_bytes(dir.file("cut_data"), good.substr(0, good.size() - 1));
    expect_error(dir.file("cut_data"), "truncated");
    write_gz(dir.file("cut_data.gz"), good.substr(0, good.size() - 5));
    expect_error(dir.file("cut_data.gz"), "truncated");
    write_bytes(dir.file("cut_dims"), good.substr(0, 9));
    expect_error(dir.file("cut_dims"), "truncated");
    write_bytes(dir.file("cut_magic"), good.substr(0, 2));
    expect_error(dir.file("cut_magic"), "truncated");
    write_bytes(dir.file("empty"), "");
    expect_error(dir.file("empty"), "truncated");
    // A gzip stream cut short (the compressed file itself truncated), or with a damaged body.
    write_gz(dir.file("whole.gz"), good + std::string(5000, '\x07'));
    const std::string gz = read_bytes(dir.file("whole.gz"));
    write_bytes(dir.file("cut_stream.gz"), gz.substr(0, gz.size() / 2));
    BOOST_CHECK_THROW(nn::read_idx(dir.file("cut_stream.gz")), xg::Error);
    std::string damaged = gz;
    for (std::size_t i = 12; i < 20 && i < damaged.size(); ++i) damaged[i] = static_cast<char>(~damaged[i]);
    write_bytes(dir.file("damaged.gz"), damaged);
    BOOST_CHECK_THROW(nn::read_idx(dir.file("damaged.gz")), xg::Error);
    // Trailing bytes, bad magic, a header that claims far more data than there is.
    write_bytes(dir.file("trailing"), good + "x");
    expect_error(dir.file("trailing"), "bytes after");
    write_bytes(dir.file("magic"), std::string("\x01\0\x08\x01", 4) + be32(1) + "a");
    expect_error(dir.file("magic"), "not an IDX file");
    write_bytes(dir.file("type"), std::string("\0\0\x07\x01", 4) + be32(1) + "a");
    expect_error(dir.file("type"), "not an IDX file");
    write_bytes(dir.file("liar"), std::string("\0\0\x08\x03", 4) + be32(0xffffffffu) + be32(0xffffffffu) + be32(1000) +
                                      std::string(100, '\x01'));
    expect_error(dir.file("liar"), "too many elements");
    write_bytes(dir.file("liar2"),
                std::string("\0\0\x08\x02", 4) + be32(60000) + be32(60000) + std::string(100, '\x01'));
    expect_error(dir.file("liar2"), "truncated");
    expect_error(dir.file("does_not_exist"), "cannot open");
}

BOOST_AUTO_TEST_CASE(dataloader_batches_every_sample_once) {
    auto x = xg::reshape(xg::arange(0, 20, 1), {10, 2});
    auto y = xg::arange(0, 10, 1, xg::i64);
    auto ds = std::make_shared<nn::TensorDataset>(x, y);
    BOOST_TEST(ds->size() == 10);
    nn::DataLoader plain(ds, {.batch_size = 4});
    BOOST_TEST(plain.num_batches() == 3);
    std::vector<std::int64_t> sizes, seen;
    for (const auto& b : plain) {
        sizes.push_back(b.data.size(0));
        BOOST_TEST((b.data.shape() == xg::Shape{b.target.size(0), 2}));
        for (auto v : b.target.to_vector<std::int64_t>()) seen.push_back(v);
        // Rows stay paired with their targets.
        const auto d = b.data.to_vector<double>(), t = b.target.to_vector<double>();
        for (std::size_t i = 0; i < t.size(); ++i) BOOST_TEST(d[2 * i] == 2 * t[i]);
    }
    BOOST_TEST(sizes == (std::vector<std::int64_t>{4, 4, 2}), boost::test_tools::per_element());
    BOOST_TEST(seen == y.to_vector<std::int64_t>(), boost::test_tools::per_element());  // no shuffle: in order

    nn::DataLoader dropping(ds, {.batch_size = 4, .drop_last = true});
    BOOST_TEST(dropping.num_batches() == 2);
    int n = 0;
    for (const auto& b : dropping) n += static_cast<int>(b.data.size(0));
    BOOST_TEST(n == 8);
    BOOST_CHECK_THROW(nn::DataLoader(ds, {.batch_size = 0}), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(seeded_shuffling_is_reproducible_per_epoch) {
    auto ds = std::make_shared<nn::TensorDataset>(xg::zeros({100, 1}), xg::arange(0, 100, 1, xg::i64));
    nn::DataLoader a(ds, {.batch_size = 32, .shuffle = true, .seed = 7});
    nn::DataLoader b(ds, {.batch_size = 32, .shuffle = true, .seed = 7});
    nn::DataLoader c(ds, {.batch_size = 32, .shuffle = true, .seed = 8});
    auto epoch = [](nn::DataLoader& l) {
        std::vector<std::int64_t> r;
        for (const auto& batch : l)
            for (auto v : batch.target.to_vector<std::int64_t>()) r.push_back(v);
        return r;
    };
    const auto a0 = epoch(a), a1 = epoch(a), b0 = epoch(b), c0 = epoch(c);
    BOOST_TEST(a0 == b0, boost::test_tools::per_element());
    BOOST_TEST((a0 != a1));  // a new order each epoch
    BOOST_TEST((a0 != c0));  // another seed, another order
    BOOST_TEST((std::set<std::int64_t>(a0.begin(), a0.end()).size() == 100u));
    std::vector<std::int64_t> identity(100);
    std::iota(identity.begin(), identity.end(), 0);
    BOOST_TEST((a0 != identity));
    // Resuming at epoch 1 gives epoch 1's order; the global generator is not consumed.
    xg::manual_seed(5);
    const double r1 = xg::rand({1}).item<double>();
    xg::manual_seed(5);
    b.set_epoch(1);
    BOOST_TEST(epoch(b) == a1, boost::test_tools::per_element());
    BOOST_TEST(xg::rand({1}).item<double>() == r1);
}

BOOST_AUTO_TEST_CASE(normalisation) {
    auto x = xg::tensor({1, 2, 3, 4}, {4}, xg::f64);
    const auto [m, s] = nn::mean_std(x);
    BOOST_TEST(m == 2.5);
    BOOST_TEST(std::abs(s - std::sqrt(1.25)) < 1e-15);
    auto z = nn::normalize(x, m, s);
    const auto [zm, zs] = nn::mean_std(z);
    BOOST_TEST(std::abs(zm) < 1e-15);
    BOOST_TEST(std::abs(zs - 1.0) < 1e-15);
    auto img = xg::reshape(xg::arange(0, 8, 1, xg::f64), {1, 2, 2, 2});
    auto per = nn::normalize(img, {1.0, 5.0}, {2.0, 0.5});
    BOOST_TEST(per.to_vector<double>() == (std::vector<double>{-0.5, 0, 0.5, 1, -2, 0, 2, 4}),
               boost::test_tools::per_element());
    BOOST_CHECK_THROW(nn::normalize(x, 0.0, 0.0), xg::ValueError);
    BOOST_CHECK_THROW(nn::normalize(img, std::vector<double>{1.0}, std::vector<double>{1.0}), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(mnist_directory_loader) {
    TempDir dir;
    xg::manual_seed(1);
    auto images = xg::randint(0, 256, {5, 28, 28});
    auto labels = xg::randint(0, 10, {5});
    nn::write_idx_u8(dir.file("train-images-idx3-ubyte.gz"), images, true);
    nn::write_idx_u8(dir.file("train-labels-idx1-ubyte"), labels, false);  // plain files are found too
    auto ds = nn::load_mnist(dir.path.string(), true);
    BOOST_TEST((ds->data().shape() == xg::Shape{5, 1, 28, 28}));
    BOOST_TEST((ds->data().dtype() == xg::f32));
    BOOST_TEST(ds->targets().to_vector<std::int64_t>() == labels.to_vector<std::int64_t>(),
               boost::test_tools::per_element());
    const auto px = ds->data().to_vector<double>(), raw = images.to_vector<double>();
    for (std::size_t i = 0; i < px.size(); i += 97) BOOST_TEST(std::abs(px[i] - raw[i] / 255.0) < 1e-7);
    try {
        nn::load_mnist(dir.path.string(), false);
        BOOST_ERROR("missing test files accepted");
    } catch (const xg::ValueError& e) {
        BOOST_TEST(std::string(e.what()).find("t10k-images-idx3-ubyte") != std::string::npos, e.what());
    }
    nn::write_idx_u8(dir.file("train-labels-idx1-ubyte"), xg::randint(0, 10, {4}), false);
    BOOST_CHECK_THROW(nn::load_mnist(dir.path.string(), true), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(fashion_mnist_test_set_when_installed) {
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    if (!fs::exists(dir + "/t10k-labels-idx1-ubyte.gz")) {
        BOOST_TEST_MESSAGE("Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist): skipped");
        return;
    }
    auto ds = nn::load_mnist(dir, false);
    BOOST_TEST((ds->data().shape() == xg::Shape{10000, 1, 28, 28}));
    std::vector<int> per_class(10, 0);
    for (auto v : ds->targets().to_vector<std::int64_t>()) ++per_class.at(static_cast<std::size_t>(v));
    for (int c : per_class) BOOST_TEST(c == 1000);  // the test set is balanced
    BOOST_TEST(xg::max(ds->data()).item<double>() == 1.0);
    BOOST_TEST(xg::min(ds->data()).item<double>() == 0.0);
}

BOOST_AUTO_TEST_SUITE_END()
