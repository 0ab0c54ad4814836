// ctest-labels: sanitize
// gradcheck_model (issue 17): a whole model's gradient check is exact for layers whose training
// call moves state (BatchNormalization with renorm, every BN option) and for Dropout with a
// noise_shape, because every evaluation restores the non-trainable weights and reseeds the
// layers; the same checks done naively fail, which is why; a wrong backward still fails.
#include "framework/gradcheck_model.hpp"
#include "framework/ops.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/input_layer.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

using namespace xtape;
using xtape::testing::random_tensor;

namespace test_gradcheck_model {

std::shared_ptr<BatchNormalization<double>> make_bn(BatchNormalizationOptions<double> o)
{
    return std::make_shared<BatchNormalization<double>>(o);
}

/// Input(4) -> Dense(6) -> middle... -> Dense(2), compiled with MSE.
std::shared_ptr<Sequential<double>> model_with(const std::vector<LayerPtr<double>>& middle, dims_t input = { -1, 4 })
{
    auto m = std::make_shared<Sequential<double>>();
    m->add_input(input);
    m->add(std::make_shared<Dense<double>>(6, "tanh"));
    for (const auto& l : middle)
        m->add(l);
    m->add(std::make_shared<Dense<double>>(2));
    m->compile("sgd", "mse");
    return m;
}

/// The check without restoring state or reseeding: what gradcheck_model prevents.
GradcheckResult naive_check(Model<double>& m, const Tensor<double>& x, const Tensor<double>& y)
{
    std::vector<Tensor<double>> params;
    for (const auto& v : m.trainable_weights())
        params.push_back(v.tensor());
    return gradcheck([&] { return m.compute_loss_list(std::vector<Tensor<double>>{ y }, m(std::vector<Tensor<double>>{ x }, true)); }, params);
}

// An identity whose backward doubles the gradient: a check must catch it.
class WrongBackward : public Layer<double> {
public:
    WrongBackward()
        : Layer<double>("WrongBackward")
    {
    }

protected:
    Tensor<double> call(const Tensor<double>& x, bool, const Tensor<double>&) override
    {
        Tensor<double> out(array_t<double>(x.value()));
        record_op<double>("wrong_identity", { x }, out,
                          [](const array_t<double>& dy, const std::vector<array_t<double>*>& dx) {
                              if (dx[0])
                                  *dx[0] += 2.0 * dy;
                          });
        return out;
    }
};

} // namespace test_gradcheck_model

using namespace test_gradcheck_model;

TEST_CASE("gradcheck_model: BatchNormalization(renorm=True) with clipped corrections, the model left as it was")
{
    // tf.keras computes renorm's r and d under stop_gradient, so its backward is the derivative of
    // the forward only where the clipping holds r and d fixed: rmin = rmax fixes r, dmax = 0 fixes d.
    BatchNormalizationOptions<double> o;
    o.renorm = true;
    o.renorm_clipping = RenormClipping{ 1.25, 1.25, 0.0, json() };
    o.momentum = 0.5;
    o.renorm_momentum = 0.5;
    auto m = model_with({ make_bn(o) });
    const Tensor<double> x = random_tensor({ 8, 4 }, 1), y = random_tensor({ 8, 2 }, 2);
    for (int i = 0; i < 3; ++i) // move the moving and renorm statistics away from their start
        (*m)(std::vector<Tensor<double>>{ x }, true);
    const std::vector<array_t<double>> before = m->get_weights();
    const ModelGradcheckResult r = gradcheck_model(*m, { x }, { y });
    INFO(r.report());
    CHECK(r.passed);
    CHECK(std::isfinite(r.loss));
    CHECK(r.entries.size() == m->trainable_weights().size());
    // Every evaluation moved the statistics; the check puts them back each time and at the end.
    const std::vector<array_t<double>> after = m->get_weights();
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < after.size(); ++i)
        CHECK(after[i] == before[i]);

    // Unclipped, the corrections follow the batch and the stop_gradient backward differs from the
    // derivative: the check says so (README, "gradcheck_model").
    BatchNormalizationOptions<double> free_renorm;
    free_renorm.renorm = true;
    auto m2 = model_with({ make_bn(free_renorm) });
    for (int i = 0; i < 3; ++i)
        (*m2)(std::vector<Tensor<double>>{ x }, true);
    CHECK_FALSE(gradcheck_model(*m2, { x }, { y }).passed);
}

TEST_CASE("gradcheck_model: every BatchNormalization option in one model")
{
    BatchNormalizationOptions<double> ghost; // virtual batches of 4 in a batch of 8
    ghost.virtual_batch_size = 4;
    BatchNormalizationOptions<double> bare;
    bare.center = false;
    bare.scale = false;
    BatchNormalizationOptions<double> renorm;
    renorm.renorm = true;
    renorm.renorm_clipping = RenormClipping{ 0.8, 0.8, 0.0, json() };
    BatchNormalizationOptions<double> frozen;
    frozen.trainable = false; // inference mode inside fit
    auto m = model_with({ make_bn(ghost), make_bn(bare), make_bn(renorm), make_bn(frozen) });
    const Tensor<double> x = random_tensor({ 8, 4 }, 3), y = random_tensor({ 8, 2 }, 4);
    m->predict_on_batch(x.value());
    const ModelGradcheckResult r = gradcheck_model(*m, { x }, { y });
    INFO(r.report());
    CHECK(r.passed);
}

TEST_CASE("gradcheck_model: Dropout with a noise_shape draws the same masks at every evaluation")
{
    DropoutOptions o;
    o.rate = 0.4;
    o.noise_shape = dims_t{ none_dim, 1, 6 }; // one mask per sample and feature, shared over steps
    auto m = model_with({ std::make_shared<Dropout<double>>(o) }, { -1, 3, 4 });
    const Tensor<double> x = random_tensor({ 5, 3, 4 }, 5), y = random_tensor({ 5, 3, 2 }, 6);
    m->predict_on_batch(x.value());
    const ModelGradcheckResult r = gradcheck_model(*m, { x }, { y });
    INFO(r.report());
    CHECK(r.passed);
    CHECK_FALSE(naive_check(*m, x, y).passed); // new masks at each evaluation
}

TEST_CASE("gradcheck_model: a wrong backward fails; an uncompiled model is a ValueError")
{
    auto m = model_with({ std::make_shared<WrongBackward>() });
    const Tensor<double> x = random_tensor({ 4, 4 }, 7), y = random_tensor({ 4, 2 }, 8);
    m->predict_on_batch(x.value());
    const ModelGradcheckResult r = gradcheck_model(*m, { x }, { y });
    CHECK_FALSE(r.passed);
    Sequential<double> plain({ std::make_shared<Dense<double>>(2) });
    CHECK_THROWS_AS(gradcheck_model(plain, { x }, { y }), ValueError);
}
