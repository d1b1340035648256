#include <boost/test/unit_test.hpp>
#include <cmath>
#include <xgrad/xgrad.hpp>

namespace {
using namespace xg;

std::shared_ptr<nn::Module> make_mlp() {
    return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(12, 16), std::make_shared<nn::Activation>("tanh"),
        std::make_shared<nn::Linear>(16, 5)});
}

nn::ShardLoss ce = [](const Tensor& out, const Tensor& y) { return nn::cross_entropy(out, y); };

std::vector<std::vector<double>> grads_of(const nn::Module& m) {
    std::vector<std::vector<double>> r;
    for (const auto& p : m.parameters()) r.push_back(p.grad().to_vector<double>());
    return r;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_parallel)

BOOST_AUTO_TEST_CASE(sharded_gradient_equals_single_graph_gradient) {
    manual_seed(3);
    auto model = make_mlp();
    auto x = randn({37, 12});  // 37 samples: shards of unequal size
    auto y = randint(0, 5, {37});
    nn::cross_entropy((*model)(x), y).backward();
    const auto reference = grads_of(*model);
    const double reference_loss = nn::cross_entropy((*model)(x), y).item<double>();
    model->zero_grad();

    nn::DataParallel dp(model, make_mlp, 4);
    const double loss = dp.forward_backward(x, y, ce);
    BOOST_TEST(std::fabs(loss - reference_loss) < 1e-5);
    const auto sharded = grads_of(*model);
    BOOST_REQUIRE_EQUAL(sharded.size(), reference.size());
    for (std::size_t i = 0; i < reference.size(); ++i)
        for (std::size_t j = 0; j < reference[i].size(); ++j)
            BOOST_TEST(std::fabs(sharded[i][j] - reference[i][j]) < 1e-6);
}

BOOST_AUTO_TEST_CASE(bit_identical_at_one_and_two_threads) {
    std::vector<std::vector<double>> at[2];
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        manual_seed(5);
        auto model = make_mlp();
        auto x = randn({64, 12});
        auto y = randint(0, 5, {64});
        nn::DataParallel dp(model, make_mlp, 4);
        nn::SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9});
        for (int step = 0; step < 3; ++step) {  // the optimizer updates the shared buffers in place
            opt.zero_grad();
            dp.forward_backward(x, y, ce);
            opt.step();
        }
        at[threads - 1] = grads_of(*model);
    }
    set_num_threads(2);
    BOOST_TEST(at[0] == at[1]);
}

// 40 shards in 16 groups: a thread runs several groups on one replica in a step (the group's
// gradients are taken out of it after each), and the 16 x 34k element sum runs in parallel tasks.
BOOST_AUTO_TEST_CASE(many_groups_on_few_threads_give_the_single_graph_gradient_bit_identically) {
    auto make_wide = [] {
        return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Linear>(12, 256), std::make_shared<nn::Activation>("tanh"),
            std::make_shared<nn::Linear>(256, 128), std::make_shared<nn::Activation>("tanh"),
            std::make_shared<nn::Linear>(128, 5)});
    };
    std::vector<std::vector<double>> at[2];
    std::vector<std::vector<double>> reference;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        manual_seed(7);
        auto model = make_wide();
        auto x = randn({80, 12});
        auto y = randint(0, 5, {80});
        if (threads == 1) {
            nn::cross_entropy((*model)(x), y).backward();
            reference = grads_of(*model);
            model->zero_grad();
        }
        nn::DataParallel dp(model, make_wide, 40);
        for (int step = 0; step < 2; ++step) {  // the second step reuses the replicas
            model->zero_grad();
            dp.forward_backward(x, y, ce);
        }
        at[threads - 1] = grads_of(*model);
    }
    set_num_threads(2);
    BOOST_TEST(at[0] == at[1]);
    BOOST_REQUIRE_EQUAL(at[0].size(), reference.size());
    for (std::size_t i = 0; i < reference.size(); ++i)
        for (std::size_t j = 0; j < reference[i].size(); ++j)
            BOOST_TEST(std::fabs(at[0][i][j] - reference[i][j]) < 1e-6);
}

BOOST_AUTO_TEST_CASE(replicas_share_the_master_buffers) {
    manual_seed(5);
    auto model = make_mlp();
    nn::DataParallel dp(model, make_mlp, 2);  // replicas made before the master changes below
    auto x = randn({6, 12});
    auto y = randint(0, 5, {6});
    {
        NoGradGuard ng;
        model->parameters()[0].fill_(0.25);  // in place, after the replicas exist
        model->parameters()[2].mul_(-2.0);
    }
    const double loss = dp.forward_backward(x, y, ce);
    const auto sharded = grads_of(*model);
    model->zero_grad();
    const double reference_loss = nn::cross_entropy((*model)(x), y).item<double>();
    nn::cross_entropy((*model)(x), y).backward();
    const auto reference = grads_of(*model);
    // A replica holding copies of the old values would give another loss and other gradients.
    BOOST_TEST(std::fabs(loss - reference_loss) < 1e-5);
    for (std::size_t i = 0; i < reference.size(); ++i)
        for (std::size_t j = 0; j < reference[i].size(); ++j)
            BOOST_TEST(std::fabs(sharded[i][j] - reference[i][j]) < 1e-6);
}

BOOST_AUTO_TEST_CASE(inputs_that_require_grad_receive_the_mean_loss_gradient) {
    // The shards' graphs must share no node (concurrent passes): each shard gets its own leaf of
    // its rows, and the rows' gradients reach the batch tensor's graph afterwards.
    manual_seed(6);
    auto model = make_mlp();
    auto leaf = randn({9, 12}).requires_grad_();  // 9 rows: shards of 3, 2, 2, 2
    auto y = randint(0, 5, {9});
    nn::cross_entropy((*model)(leaf * 2.0), y).backward();
    const auto reference = leaf.grad().to_vector<double>();
    leaf.zero_grad();
    model->zero_grad();
    nn::DataParallel dp(model, make_mlp, 4);
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        dp.forward_backward(leaf * 2.0, y, ce);  // the batch is a non-leaf: its graph continues
        BOOST_REQUIRE(leaf.grad().defined());
        const auto sharded = leaf.grad().to_vector<double>();
        for (std::size_t i = 0; i < reference.size(); ++i) BOOST_TEST(std::fabs(sharded[i] - reference[i]) < 1e-6);
        leaf.zero_grad();
    }
}

BOOST_AUTO_TEST_CASE(bad_arguments_throw) {
    auto model = make_mlp();
    BOOST_CHECK_THROW(nn::DataParallel(model, make_mlp, 0), ValueError);
    auto wrong = [] { return std::static_pointer_cast<nn::Module>(std::make_shared<nn::Linear>(3, 3)); };
    BOOST_CHECK_THROW(nn::DataParallel(model, wrong, 2), Error);
    nn::DataParallel dp(model, make_mlp, 2);
    BOOST_CHECK_THROW(dp.forward_backward(randn({4, 12}), randint(0, 5, {3}), ce), ShapeError);
}

BOOST_AUTO_TEST_SUITE_END()
