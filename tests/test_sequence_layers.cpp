// ctest-labels: sanitize
// Embedding, Masking and TimeDistributed: Keras's published values (embedding_test.py,
// masking_test.py, time_distributed_test.py), the sparse embedding gradient checked in double, masks
// reaching the following layers, Keras 3's per-step TimeDistributed(BatchNormalization), configs and
// the Bidirectional error.
#include "framework/embedding.hpp"
#include "framework/model.hpp"
#include "framework/ops.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/core/embedding.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/normalization/group_normalization.hpp"
#include "layers/normalization/layer_normalization.hpp"
#include "layers/pooling/global_pooling.hpp"
#include "layers/preprocessing/normalization.hpp"
#include "layers/registry.hpp"
#include "layers/wrappers/time_distributed.hpp"
#include "optim/sgd.hpp"
#include "saving/keras_h5.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::contains;
using xtape::testing::message_of;
using xtape::testing::random_tensor;

namespace test_sequence_layers {

/// Passes its input through and remembers the mask it was called with (Keras's masking_test TestLayer).
template <class T>
class MaskProbe : public Layer<T> {
public:
    MaskProbe()
        : Layer<T>("MaskProbe")
    {
        this->set_supports_masking(true); // as Keras's TestLayer in masking_test.py
    }
    Tensor<T> seen;

protected:
    Tensor<T> call(const Tensor<T>& x, bool, const Tensor<T>& mask) override
    {
        seen = mask;
        return x;
    }
};

Tensor<double> indices(const array_t<double>& a) { return Tensor<double>(a); }

} // namespace test_sequence_layers

using namespace test_sequence_layers;

TEST_CASE("Embedding: Keras's test_correctness, mask_zero, bad indices")
{
    EmbeddingOptions<float> o;
    o.input_dim = 3;
    o.output_dim = 2;
    Embedding<float> e(o);
    e.build_once({ none_dim });
    e.set_weights({ array_t<float>{ { 0.f, 0.f }, { 2.f, 2.f }, { 3.f, 3.f } } });
    Tensor<float> y = e(Tensor<float>(array_t<float>{ 2.f, 1.f, 0.f }));
    CHECK(y.value() == array_t<float>{ { 3.f, 3.f }, { 2.f, 2.f }, { 0.f, 0.f } });
    CHECK(!e.compute_mask(Tensor<float>(array_t<float>{ 2.f, 0.f }), {}).defined()); // no mask_zero: no mask

    o.mask_zero = true;
    Embedding<float> em(o);
    Tensor<float> ids(array_t<float>{ { 1.f, 2.f, 0.f }, { 0.f, 0.f, 2.f } });
    CHECK(em.compute_mask(ids, {}).value() == array_t<float>{ { 1.f, 1.f, 0.f }, { 0.f, 0.f, 1.f } });
    CHECK(em(ids).shape() == shape_t{ 2, 3, 2 });

    const std::string m = message_of<ValueError>([&] { em(Tensor<float>(array_t<float>{ { 1.f, 3.f } })); });
    CHECK(contains(m, "indices[0,1] = 3"));
    CHECK(contains(m, "is not in [0, 3)"));
    CHECK(contains(m, em.name()));
    EmbeddingOptions<float> bad;
    bad.input_dim = 0;
    bad.output_dim = 2;
    CHECK(contains(message_of<ValueError>([&] { Embedding<float> x(bad); }),
                   "`input_dim` must be a positive integer. Received: input_dim=0"));
}

TEST_CASE("gradcheck: embedding_lookup accumulates repeated rows (sparse backward)")
{
    // Rows 1 and 3 appear several times, row 0 never: its gradient must stay 0.
    const Tensor<double> ids = indices(array_t<double>{ { 1., 3., 1. }, { 2., 3., 3. } });
    Tensor<double> table = random_tensor<double>({ 4, 5 }, 3);
    GradcheckResult r = gradcheck([&] { return square(embedding_lookup(ids, table)); }, { table });
    INFO(r.report());
    CHECK(r.passed);
    // The analytic gradient of sum(y) counts each row's uses: row 3 three times, row 0 none.
    GradientTape<double> tape;
    tape.watch(table);
    auto g = tape.gradient(embedding_lookup(ids, table), { table });
    CHECK(g[0].value()(0, 0) == 0.0);
    CHECK(g[0].value()(1, 4) == 2.0);
    CHECK(g[0].value()(3, 2) == 3.0);
    // Used twice: a second lookup's gradient adds.
    check_gradients([&](const std::vector<Tensor<double>>& v) { return add(embedding_lookup(ids, v[0]), mul(embedding_lookup(ids, v[0]), embedding_lookup(ids, v[0]))); },
                    { table });
}

TEST_CASE("Masking: Keras's test_masking_correctness (values, mask, the mask reaches the next layer)")
{
    array_t<double> x = { { { 0., 0. }, { 1., 2. }, { 0., 0. } }, { { 2., 2. }, { 0., 0. }, { 2., 1. } } };
    auto masking = std::make_shared<Masking<double>>(0.0);
    auto probe = std::make_shared<MaskProbe<double>>();
    Sequential<double> model({ masking, probe });
    Tensor<double> y = model(Tensor<double>(x));
    REQUIRE(probe->seen.defined());
    CHECK(probe->seen.value() == array_t<double>{ { 0., 1., 0. }, { 1., 0., 1. } });
    CHECK(y.value() == x); // masked steps are already zero
    Masking<double> m5(5.0);
    Tensor<double> y5 = m5(Tensor<double>(array_t<double>{ { { 5., 5. }, { 5., 1. } } }));
    CHECK(y5.value() == array_t<double>{ { { 0., 0. }, { 5., 1. } } });
    // Away from the mask's boundary (a step entirely at mask_value jumps when perturbed).
    check_gradients([&](const std::vector<Tensor<double>>& v) { return m5(v[0]); },
                    { Tensor<double>(array_t<double>{ { { 5., 2. }, { 5., 1.5 } } }) });
    CHECK(Masking<float>::from_config({ { "name", "m" }, { "mask_value", -1.0 } })->get_config()["mask_value"] == -1.0);
    // Keras 3 writes a tensor argument as {"class_name": "__tensor__", "config": {"value", "dtype"}}.
    auto k3 = layer_from_config<float>(json::parse(R"({"module": "keras.layers", "class_name": "Masking",
        "config": {"name": "masking", "trainable": true, "dtype": "float32",
                   "mask_value": {"class_name": "__tensor__", "config": {"value": 2.5, "dtype": "float32"}}},
        "registered_name": null})"));
    CHECK(std::dynamic_pointer_cast<Masking<float>>(k3)->mask_value() == 2.5);
}

TEST_CASE("Embedding(mask_zero) masks reach BatchNormalization and GlobalAveragePooling1D")
{
    // Padding at the end of sample 0: the pooled value is the mean of the first two steps only.
    EmbeddingOptions<double> o;
    o.input_dim = 4;
    o.output_dim = 2;
    o.mask_zero = true;
    auto emb = std::make_shared<Embedding<double>>(o);
    auto probe = std::make_shared<MaskProbe<double>>();
    auto gap = std::make_shared<GlobalAveragePooling1D<double>>();
    Sequential<double> model({ emb, probe, gap });
    model.build_once({ none_dim, 3 });
    emb->set_weights({ array_t<double>{ { 9., 9. }, { 1., 2. }, { 3., 4. }, { 5., 6. } } });
    Tensor<double> y = model(Tensor<double>(array_t<double>{ { 1., 2., 0. }, { 3., 3., 3. } }));
    CHECK(probe->seen.value() == array_t<double>{ { 1., 1., 0. }, { 1., 1., 1. } });
    CHECK(y.value() == array_t<double>{ { 2., 3. }, { 5., 6. } });
}

TEST_CASE("TimeDistributed: Keras's test_correctness, shared weights, config and weights nested")
{
    DenseOptions<float> d;
    d.units = 1;
    d.use_bias = false;
    d.kernel_initializer = get_initializer<float>(json{ { "class_name", "Constant" }, { "config", { { "value", 0.01 } } } });
    auto td = std::make_shared<TimeDistributed<float>>(std::make_shared<Dense<float>>(d));
    array_t<float> seq = xt::arange<float>(24.f);
    seq.reshape({ 3, 2, 4 });
    Tensor<float> y = (*td)(Tensor<float>(seq));
    const float expected[] = { 0.06f, 0.22f, 0.38f, 0.54f, 0.7f, 0.86f };
    REQUIRE(y.shape() == shape_t{ 3, 2, 1 });
    for (int i = 0; i < 6; ++i)
        CHECK(y.data()[i] == doctest::Approx(expected[i]).epsilon(1e-5));
    CHECK(td->weights().size() == 1); // one kernel for every step
    CHECK(td->weight_path(td->weights()[0]) == td->name() + "/kernel");

    const json c = td->get_config();
    CHECK(c["layer"]["class_name"] == "Dense");
    auto again = layer_from_config<float>("TimeDistributed", c);
    again->build_once({ none_dim, 2, 4 });
    CHECK(again->weights()[0].shape() == shape_t{ 4, 1 });
    // tf.keras's nested form.
    auto tfk = layer_from_config<float>(json::parse(R"({"class_name": "TimeDistributed", "config": {"name": "td",
        "trainable": true, "dtype": "float32", "layer": {"class_name": "Dense", "config": {"name": "dense_9",
        "units": 3, "activation": "relu", "use_bias": true}}}})"));
    CHECK(tfk->compute_output_shape({ none_dim, 5, 4 }) == dims_t{ none_dim, 5, 3 });
    CHECK(contains(message_of<ValueError>([&] { tfk->build_once({ none_dim, 4 }); }),
                   "`TimeDistributed` Layer should be passed an `input_shape` with at least 3 dimensions"));
}

TEST_CASE("gradcheck: TimeDistributed(Dense) in x and in the shared kernel")
{
    auto dense = std::make_shared<Dense<double>>(3, "tanh");
    TimeDistributed<double> td(dense);
    td.build_once({ none_dim, 4, 2 });
    Tensor<double> x = random_tensor<double>({ 2, 4, 2 }, 5);
    check_gradients([&](const std::vector<Tensor<double>>& v) { return td(v[0]); }, { x });
    const auto w = td.trainable_weights();
    GradcheckResult r = gradcheck([&] { return td(x); }, { w[0].tensor(), w[1].tensor() });
    INFO(r.report());
    CHECK(r.passed);
}

TEST_CASE("TimeDistributed(BatchNormalization): Keras 3 normalizes each step over the batch, T updates")
{
    // Note [TimeDistributed semantics]: step t uses the batch statistics of x[:, t] only.
    BatchNormalizationOptions<double> o;
    o.momentum = 0.5;
    auto bn = std::make_shared<BatchNormalization<double>>(o);
    TimeDistributed<double> td(bn);
    array_t<double> x = { 1., 10., 3., 30. }; // (2, 2, 1): step 0 holds {1, 3}, step 1 {10, 30}
    x.reshape({ 2, 2, 1 });
    Tensor<double> y = td(Tensor<double>(x), /*training=*/true);
    const double s0 = 1.0 / std::sqrt(1.0 + 1e-3), s1 = 1.0 / std::sqrt(100.0 + 1e-3);
    CHECK(y.value()(0, 0, 0) == doctest::Approx(-1.0 * s0));
    CHECK(y.value()(1, 1, 0) == doctest::Approx(10.0 * s1));
    // Two updates with momentum 0.5: 0 -> 1 (step 0's mean 2) -> 10.5 (step 1's mean 20).
    CHECK(bn->moving_mean().value()(0) == doctest::Approx(10.5));
}

TEST_CASE("Bidirectional in a config is a clear error naming the layer")
{
    const std::string m = message_of<NotImplementedError>([] {
        layer_from_config<float>(json::parse(R"({"class_name": "Bidirectional", "config": {"name": "bidi_1",
            "layer": {"class_name": "LSTM", "config": {"units": 4}}, "merge_mode": "concat"}})"));
    });
    CHECK(contains(m, "Bidirectional layer 'bidi_1' wraps \"LSTM\""));
    CHECK(contains(m, "no recurrent layers yet"));
}

namespace test_sequence_layers {

/// The issue's model written out by hand in double: Embedding(V, D, mask_zero) -> TimeDistributed(
/// Dense(H)) -> BatchNormalization (training, masked moments: Keras 3's sum(w x) / (sum(w) + 1e-7))
/// -> GlobalAveragePooling1D (masked mean) -> Dense(1, sigmoid), binary cross-entropy averaged over
/// the batch. Parameters in one flat vector: table V*D, kernel D*H, bias H, gamma H, beta H,
/// head kernel H, head bias 1 (the model's weight order).
struct Reference {
    std::size_t V, D, H;
    double loss(const std::vector<double>& p, const array_t<double>& ids, const array_t<double>& y,
                std::vector<double>* batch_mean = nullptr, std::vector<double>* batch_var = nullptr) const
    {
        const std::size_t B = ids.shape()[0], L = ids.shape()[1];
        const double* table = p.data();
        const double* k = table + V * D;
        const double* b = k + D * H;
        const double* gamma = b + H;
        const double* beta = gamma + H;
        const double* hk = beta + H;
        const double hb = hk[H];
        std::vector<double> h(B * L * H);
        for (std::size_t i = 0; i < B * L; ++i)
            for (std::size_t o = 0; o < H; ++o) {
                double s = b[o];
                for (std::size_t d = 0; d < D; ++d)
                    s += table[static_cast<std::size_t>(ids.data()[i]) * D + d] * k[d * H + o];
                h[i * H + o] = s;
            }
        double wsum = 0;
        for (std::size_t i = 0; i < B * L; ++i)
            wsum += ids.data()[i] != 0 ? 1 : 0;
        double total = 0;
        std::vector<double> mean(H, 0), var(H, 0);
        for (std::size_t o = 0; o < H; ++o) {
            for (std::size_t i = 0; i < B * L; ++i)
                mean[o] += (ids.data()[i] != 0) * h[i * H + o];
            mean[o] /= wsum + 1e-7;
            for (std::size_t i = 0; i < B * L; ++i)
                var[o] += (ids.data()[i] != 0) * (h[i * H + o] - mean[o]) * (h[i * H + o] - mean[o]);
            var[o] /= wsum + 1e-7;
        }
        if (batch_mean) {
            *batch_mean = mean;
            *batch_var = var;
        }
        for (std::size_t s = 0; s < B; ++s) {
            double z = hb, steps = 0;
            std::vector<double> pooled(H, 0);
            for (std::size_t t = 0; t < L; ++t) {
                const std::size_t i = s * L + t;
                if (ids.data()[i] == 0)
                    continue;
                steps += 1;
                for (std::size_t o = 0; o < H; ++o)
                    pooled[o] += gamma[o] * (h[i * H + o] - mean[o]) / std::sqrt(var[o] + 1e-3) + beta[o];
            }
            for (std::size_t o = 0; o < H; ++o)
                z += pooled[o] / steps * hk[o];
            const double prob = 1.0 / (1.0 + std::exp(-z));
            total += -(y(s, 0) * std::log(prob) + (1 - y(s, 0)) * std::log(1 - prob));
        }
        return total / B;
    }
};

} // namespace test_sequence_layers

TEST_CASE("Masked training: fit on Embedding(mask_zero) -> TimeDistributed(Dense) -> BN -> pooling -> Dense "
          "matches a float64 reference")
{
    const std::size_t V = 5, D = 2, H = 3;
    EmbeddingOptions<double> eo;
    eo.input_dim = V;
    eo.output_dim = D;
    eo.mask_zero = true;
    eo.embeddings_initializer = get_initializer<double>(json{ { "class_name", "RandomUniform" },
                                                             { "config", { { "minval", -1.0 }, { "maxval", 1.0 }, { "seed", 1 } } } });
    auto bn = std::make_shared<BatchNormalization<double>>();
    Sequential<double> model({ std::make_shared<Embedding<double>>(eo),
                               std::make_shared<TimeDistributed<double>>(std::make_shared<Dense<double>>(H)), bn,
                               std::make_shared<GlobalAveragePooling1D<double>>(),
                               std::make_shared<Dense<double>>(1, "sigmoid") });
    model.build_once({ none_dim, 4 });
    model.compile(std::make_shared<SGD<double>>(0.5), "binary_crossentropy");
    // Padding of different lengths, one sample fully used.
    const array_t<double> ids = { { 1., 2., 0., 0. }, { 3., 4., 4., 1. }, { 2., 0., 0., 0. }, { 4., 3., 1., 0. } };
    array_t<double> y = { 1., 0., 1., 0. };
    y.reshape({ 4, 1 });

    std::vector<double> p;
    for (const auto& w : model.trainable_weights())
        p.insert(p.end(), w.value().begin(), w.value().end());
    REQUIRE(p.size() == V * D + D * H + 4 * H + 1); // table, kernel, bias, gamma, beta, head kernel and bias

    const Reference ref{ V, D, H };
    std::vector<double> moving_mean(H, 0.0), moving_var(H, 1.0);
    const int steps = 3;
    for (int step = 0; step < steps; ++step) {
        std::vector<double> bm, bv;
        ref.loss(p, ids, y, &bm, &bv);
        for (std::size_t o = 0; o < H; ++o) {
            moving_mean[o] = moving_mean[o] * 0.99 + bm[o] * 0.01;
            moving_var[o] = moving_var[o] * 0.99 + bv[o] * 0.01;
        }
        std::vector<double> g(p.size());
        for (std::size_t i = 0; i < p.size(); ++i) {
            std::vector<double> a = p, b = p;
            a[i] += 1e-6;
            b[i] -= 1e-6;
            g[i] = (ref.loss(a, ids, y) - ref.loss(b, ids, y)) / 2e-6;
        }
        for (std::size_t i = 0; i < p.size(); ++i)
            p[i] -= 0.5 * g[i];
    }
    FitOptions<double> fo;
    fo.epochs = steps;
    fo.batch_size = 4;
    fo.shuffle = false;
    fo.verbose = 0;
    model.fit(ids, y, fo);
    std::vector<double> got;
    for (const auto& w : model.trainable_weights())
        got.insert(got.end(), w.value().begin(), w.value().end());
    REQUIRE(got.size() == p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i] == doctest::Approx(p[i]).epsilon(1e-6));
    }
    for (std::size_t o = 0; o < H; ++o) {
        CHECK(bn->moving_mean().value()(o) == doctest::Approx(moving_mean[o]).epsilon(1e-9));
        CHECK(bn->moving_variance().value()(o) == doctest::Approx(moving_var[o]).epsilon(1e-9));
    }
}

TEST_CASE("A Sequential with Embedding, TimeDistributed, LayerNormalization, GroupNormalization and Normalization "
          "saves to Keras's HDF5 format and loads back with the same outputs")
{
    EmbeddingOptions<float> eo;
    eo.input_dim = 6;
    eo.output_dim = 4;
    eo.mask_zero = true;
    auto norm = std::make_shared<Normalization<float>>();
    Sequential<float> model({ std::make_shared<InputLayer<float>>(dims_t{ 5 }), std::make_shared<Embedding<float>>(eo),
                              std::make_shared<TimeDistributed<float>>(std::make_shared<Dense<float>>(4, "relu")),
                              std::make_shared<LayerNormalization<float>>(),
                              std::make_shared<GroupNormalization<float>>([] {
                                  GroupNormalizationOptions<float> g;
                                  g.groups = 2;
                                  return g;
                              }()),
                              norm, std::make_shared<GlobalAveragePooling1D<float>>(),
                              std::make_shared<Dense<float>>(1) });
    norm->adapt(random_tensor<float>({ 8, 5, 4 }, 3));
    const Tensor<float> ids(array_t<float>{ { 1.f, 2.f, 3.f, 0.f, 0.f }, { 5.f, 4.f, 3.f, 2.f, 1.f } });
    const Tensor<float> before = model(ids);
    const std::string path = (std::filesystem::temp_directory_path() / "xtape_sequence_layers.h5").string();
    save_model(model, path);
    auto loaded = load_model<float>(path);
    const Tensor<float> after = (*loaded)(ids);
    std::filesystem::remove(path);
    REQUIRE(after.shape() == before.shape());
    for (std::size_t i = 0; i < before.size(); ++i)
        CHECK(after.data()[i] == before.data()[i]);
    CHECK(loaded->weights().size() == model.weights().size());
}

TEST_CASE("In a functional model the Embedding's mask passes TimeDistributed and reaches the pooling")
{
    EmbeddingOptions<double> o;
    o.input_dim = 4;
    o.output_dim = 2;
    o.mask_zero = true;
    auto emb = std::make_shared<Embedding<double>>(o);
    auto td = std::make_shared<TimeDistributed<double>>(std::make_shared<Dense<double>>(2));
    auto gap = std::make_shared<GlobalAveragePooling1D<double>>();
    auto in = Input<double>({ 3 });
    Model<double> model(in, (*gap)((*td)((*emb)(in))), "masked_functional");
    emb->set_weights({ array_t<double>{ { 9., 9. }, { 1., 2. }, { 3., 4. }, { 5., 6. } } });
    td->set_weights({ array_t<double>{ { 1., 0. }, { 0., 1. } }, array_t<double>{ 0., 0. } }); // identity
    Tensor<double> y = model(Tensor<double>(array_t<double>{ { 1., 2., 0. } }));
    CHECK(y.value() == array_t<double>{ { 2., 3. } }); // the padding row (9, 9) is not averaged in
}
