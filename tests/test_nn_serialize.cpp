// safetensors: round trips, bit-identical models after save/load, checkpoints, atomic writes, and
// every kind of damaged file (truncated at every length, lying headers, bad JSON, byte flips) throwing
// xg::Error without over-allocating or reading out of bounds.
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <xgrad/xgrad.hpp>

namespace nn = xg::nn;
namespace fs = std::filesystem;
using xg::Tensor;

namespace {
struct TempDir {
    fs::path path;
    TempDir() {
        path =
            fs::temp_directory_path() / ("xgrad_ser_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string file(const std::string& name) const { return (path / name).string(); }
    static int& counter() {
        static int c = 0;
        return c;
    }
};

std::string read_all(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// A safetensors image from a header string and n data bytes.
std::string image(const std::string& header, std::size_t data_bytes) {
    std::string s(8, '\0');
    for (int k = 0; k < 8; ++k) s[k] = static_cast<char>((header.size() >> (8 * k)) & 0xff);
    return s + header + std::string(data_bytes, '\x01');
}

void expect_error(const std::string& bytes, const std::string& fragment) {
    try {
        nn::parse_safetensors(bytes);
        BOOST_ERROR("accepted a bad file; expected an error about: " << fragment);
    } catch (const xg::Error& e) {
        BOOST_TEST(std::string(e.what()).find(fragment) != std::string::npos, "message: " << e.what());
    }
}

std::shared_ptr<nn::Sequential> mlp() {
    return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(6, 5), std::make_shared<nn::Activation>("relu"),
        std::make_shared<nn::BatchNorm1d>(5), std::make_shared<nn::Linear>(5, 3)});
}
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_serialize)

BOOST_AUTO_TEST_CASE(round_trip_of_dtypes_shapes_and_metadata) {
    TempDir dir;
    xg::manual_seed(1);
    nn::StateDict in{{"a.weight", xg::randn({3, 4})},
                     {"b \"quoted\" \\ name", xg::randn({2}, xg::f64)},
                     {"labels", xg::tensor_i64({-3, 0, 1ll << 40})},
                     {"scalar", xg::scalar(2.5)},
                     {"empty", xg::zeros({0, 3})}};
    std::map<std::string, std::string> meta{{"epoch", "7"}, {"note", "tab\there, \"quotes\", unicode \xc3\xa9"}};
    nn::save_safetensors(dir.file("t.safetensors"), in, meta);
    auto out = nn::load_safetensors(dir.file("t.safetensors"));
    BOOST_TEST(out.metadata == meta);
    BOOST_REQUIRE_EQUAL(out.tensors.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        BOOST_TEST(out.tensors[i].first == in[i].first);
        BOOST_TEST((out.tensors[i].second.dtype() == in[i].second.dtype()));
        BOOST_TEST(out.tensors[i].second.shape() == in[i].second.shape());
        BOOST_TEST(out.tensors[i].second.to_vector<double>() == in[i].second.to_vector<double>(),
                   boost::test_tools::per_element());
    }
    // Layout: u64 little-endian header length, JSON header padded to 8 bytes, then the data.
    const std::string raw = read_all(dir.file("t.safetensors"));
    std::uint64_t n = 0;
    for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(raw[k]);
    BOOST_TEST(n % 8 == 0u);
    BOOST_TEST(raw[8] == '{');
    BOOST_TEST(raw.find("\"a.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}") !=
               std::string::npos);
    BOOST_TEST(raw.size() == 8 + n + 48 + 16 + 24 + 4);
    // No temporary file is left behind.
    int files = 0;
    for (auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
    BOOST_TEST(files == 1);
}

BOOST_AUTO_TEST_CASE(reads_a_file_written_by_another_tool) {
    // As written by Python's safetensors: no metadata, tensors sorted by name, spaces padding the header.
    const std::string header =
        R"({"b":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  )";
    std::string bytes = image(header, 0);
    const float a[2] = {1.5f, -2.0f};
    const double b = 3.25;
    bytes.append(reinterpret_cast<const char*>(a), 8);
    bytes.append(reinterpret_cast<const char*>(&b), 8);
    auto f = nn::parse_safetensors(bytes);
    BOOST_REQUIRE_EQUAL(f.tensors.size(), 2u);
    BOOST_TEST(f.tensors[0].first == "b");
    BOOST_TEST(f.tensors[0].second.item<double>() == 3.25);
    BOOST_TEST(f.tensors[1].second.to_vector<double>() == (std::vector<double>{1.5, -2.0}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(save_then_load_gives_bit_identical_outputs) {
    TempDir dir;
    xg::manual_seed(2);
    auto a = mlp();
    auto x = xg::randn({8, 6});
    (*a)(x);  // moves the BatchNorm running statistics away from their initial values
    a->eval();
    nn::save_model(dir.file("m.safetensors"), *a, {{"arch", "mlp"}});
    xg::manual_seed(99);
    auto b = mlp();
    b->eval();
    BOOST_TEST((*a)(x).to_vector<float>() != (*b)(x).to_vector<float>());
    auto meta = nn::load_model(dir.file("m.safetensors"), *b);
    BOOST_TEST(meta.at("arch") == "mlp");
    const auto ya = (*a)(x).to_vector<float>(), yb = (*b)(x).to_vector<float>();
    BOOST_TEST(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)) == 0);

    // A CNN in float64 too.
    auto conv = [] {
        return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Conv2d>(1, 3, xg::Size2{3, 3}, nn::Conv2dOptions{}, xg::f64),
            std::make_shared<nn::MaxPool2d>(xg::Size2{2, 2}), std::make_shared<nn::Flatten>(),
            std::make_shared<nn::Linear>(12, 2, true, xg::f64)});
    };
    auto c1 = conv(), c2 = conv();
    nn::save_model(dir.file("c.safetensors"), *c1);
    nn::load_model(dir.file("c.safetensors"), *c2);
    auto xi = xg::randn({2, 1, 6, 6}, xg::f64);
    BOOST_TEST((*c1)(xi).to_vector<double>() == (*c2)(xi).to_vector<double>(), boost::test_tools::per_element());
    // Loading into another architecture names the problem.
    auto other = std::make_shared<nn::Linear>(6, 5);
    try {
        nn::load_model(dir.file("m.safetensors"), *other);
        BOOST_ERROR("loaded into the wrong architecture");
    } catch (const xg::ValueError& e) {
        BOOST_TEST(std::string(e.what()).find("unexpected entries") != std::string::npos, e.what());
    }
}

BOOST_AUTO_TEST_CASE(checkpoint_resumes_model_and_optimizer) {
    TempDir dir;
    xg::manual_seed(3);
    auto x = xg::randn({16, 6});
    auto y = xg::randint(0, 3, {16});
    auto train_steps = [&](nn::Module& m, nn::Optimizer& opt, int n) {
        for (int i = 0; i < n; ++i) {
            opt.zero_grad();
            nn::cross_entropy(m(x), y).backward();
            opt.step();
        }
    };
    auto a = mlp();
    nn::Adam oa(a->parameters(), {.lr = 0.01});
    train_steps(*a, oa, 3);
    nn::save_checkpoint(dir.file("ck.safetensors"), *a, oa, {{"epoch", "3"}});
    xg::manual_seed(4);
    auto b = mlp();
    nn::Adam ob(b->parameters(), {.lr = 0.5});
    auto meta = nn::load_checkpoint(dir.file("ck.safetensors"), *b, ob);
    BOOST_TEST(meta.size() == 1u);
    BOOST_TEST(meta.at("epoch") == "3");
    train_steps(*a, oa, 2);
    train_steps(*b, ob, 2);
    const auto pa = a->state_dict(), pb = b->state_dict();
    for (std::size_t i = 0; i < pa.size(); ++i)
        BOOST_TEST(pa[i].second.to_vector<double>() == pb[i].second.to_vector<double>(),
                   boost::test_tools::per_element());
    // A plain model file is not a checkpoint, and an SGD cannot take Adam's state.
    nn::SGD sgd(b->parameters());
    BOOST_CHECK_THROW(nn::load_checkpoint(dir.file("ck.safetensors"), *b, sgd), xg::Error);
    nn::save_model(dir.file("plain.safetensors"), *a);
    BOOST_CHECK_THROW(nn::load_checkpoint(dir.file("plain.safetensors"), *b, ob), xg::Error);
}

BOOST_AUTO_TEST_CASE(writes_are_atomic) {
    TempDir dir;
    const std::string p = dir.file("w.safetensors");
    nn::save_safetensors(p, {{"x", xg::ones({2})}});
    nn::save_safetensors(p, {{"y", xg::zeros({3})}});  // replaces the old file
    auto f = nn::load_safetensors(p);
    BOOST_TEST(f.tensors.at(0).first == "y");
    // A failing write throws and leaves nothing (and the old file, when there is one, untouched).
    BOOST_CHECK_THROW(nn::save_safetensors(dir.file("missing/dir/w.safetensors"), {{"x", xg::ones({2})}}),
                      nn::SerializationError);
    BOOST_CHECK_THROW(nn::save_safetensors(p, {{"x", xg::ones({2})}, {"x", xg::ones({2})}}), nn::SerializationError);
    BOOST_TEST(nn::load_safetensors(p).tensors.at(0).first == "y");
    int files = 0;
    for (auto& e : fs::recursive_directory_iterator(dir.path)) files += e.is_regular_file();
    BOOST_TEST(files == 1);
    BOOST_CHECK_THROW(nn::load_safetensors(dir.file("nope.safetensors")), nn::SerializationError);
}

BOOST_AUTO_TEST_CASE(truncated_at_every_length_throws) {
    TempDir dir;
    nn::save_safetensors(dir.file("t.safetensors"), {{"w", xg::randn({3, 5})}, {"b", xg::randn({5}, xg::f64)}},
                         {{"k", "v"}});
    const std::string full = read_all(dir.file("t.safetensors"));
    BOOST_CHECK_NO_THROW(nn::parse_safetensors(full));
    for (std::size_t n = 0; n < full.size(); ++n) {
        try {
            nn::parse_safetensors(full.substr(0, n));
            BOOST_ERROR("a file truncated to " << n << " bytes was accepted");
        } catch (const xg::Error&) {
        }
    }
    // The same through a file on disk.
    std::ofstream(dir.file("cut.safetensors"), std::ios::binary) << full.substr(0, full.size() - 3);
    BOOST_CHECK_THROW(nn::load_safetensors(dir.file("cut.safetensors")), nn::SerializationError);
    // Extra bytes after the data are not silently ignored.
    expect_error(full + "x", "data bytes");
}

BOOST_AUTO_TEST_CASE(headers_that_lie_throw_without_allocating) {
    const std::string t = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    BOOST_CHECK_NO_THROW(nn::parse_safetensors(image(t, 8)));
    expect_error(std::string(5, '\0'), "too short");
    // Header length beyond the file, and absurd (2^63).
    std::string huge = image(t, 8);
    huge[7] = '\x7f';
    expect_error(huge, "header length");
    std::string longer = image(t, 8);
    longer[0] = static_cast<char>(longer[0] + 20);
    expect_error(longer, "");
    // Offsets past the data, sizes that disagree with the shape, overlaps, holes.
    expect_error(image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4000000000000]}})", 8), "outside");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12 bytes");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,8]}})", 8), "needs");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8),
                 "too many elements");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "outside");
    expect_error(
        image(
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            8),
        "overlap");
    expect_error(
        image(
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
            12),
        "hole");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "non-negative integer");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8), "non-negative integer");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[99999999999999999999999],"data_offsets":[0,8]}})", 8),
                 "too large");
    expect_error(image(R"({"t":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}})", 8), "BF16");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", 8), "unknown field");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[2]}})", 8), "needs dtype, shape and data_offsets");
    expect_error(image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "two integers");
    expect_error(image(R"({"__metadata__":{"k":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
                 "not a string");
}

BOOST_AUTO_TEST_CASE(malformed_json_throws) {
    for (const char* bad : {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},})",  // trailing comma
                            R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})",    // unclosed
                            R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}x)",  // trailing bytes
                            R"({"t":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})",  // duplicate key
                            R"({"t" {"dtype":"F32"}})", R"([1,2,3])", R"({"t":{"dtype":"F32\u12"}})", R"({"a\q":1})",
                            "{\"t\":\"a\x01b\"}", R"({"t":tru})", R"({"t":"\ud800"})", R"(   )"})
        expect_error(image(bad, 8), "");
    // Deep nesting is refused before the stack suffers.
    expect_error(image(std::string("{\"__metadata__\":") + std::string(5000, '[') + std::string(5000, ']') + "}", 0),
                 "nesting");
    // Duplicate tensor names through the top-level object.
    expect_error(
        image(
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            8),
        "duplicate key");
}

BOOST_AUTO_TEST_CASE(byte_flips_throw_or_load_never_crash) {
    TempDir dir;
    nn::save_safetensors(dir.file("f.safetensors"), {{"w", xg::randn({2, 3})}, {"i", xg::tensor_i64({1, 2})}},
                         {{"m", "x"}});
    const std::string full = read_all(dir.file("f.safetensors"));
    std::uint64_t header = 0;
    for (int k = 7; k >= 0; --k) header = (header << 8) | static_cast<unsigned char>(full[k]);
    int accepted = 0, rejected = 0;
    for (std::size_t pos = 0; pos < 8 + header; ++pos)
        for (unsigned char v : {0x00, 0x22, 0x2c, 0x30, 0x39, 0x5b, 0x7d, 0xff}) {
            std::string bad = full;
            if (static_cast<unsigned char>(bad[pos]) == v) continue;
            bad[pos] = static_cast<char>(v);
            try {
                auto f = nn::parse_safetensors(bad);
                for (auto& [n, t] : f.tensors) (void)t.to_vector<double>();
                ++accepted;
            } catch (const xg::Error&) {
                ++rejected;
            }
        }
    BOOST_TEST(rejected > 0);
    BOOST_TEST_MESSAGE("byte flips: " << rejected << " rejected, " << accepted << " still valid");
}

BOOST_AUTO_TEST_SUITE_END()
