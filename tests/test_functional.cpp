// Functional models: symbolic tensors and nodes, the layer-node API, graph construction and its
// errors, running graphs (several inputs and outputs, nesting, call arguments of nodes), merge
// layers (values, shapes, errors, masks, gradients), shared layers, configs and files.
#include "framework/graph/functional.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "helpers.hpp"
#include "keras_files.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/input_layer.hpp"
#include "layers/merging/merge.hpp"
#include "layers/registry.hpp"
#include "saving/keras_h5.hpp"
#include "saving/keras_model_config.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>
#include <xtensor/xio.hpp>

using namespace xtape;
using xtape::testing::error_of;
using xtape::testing::check_gradients;
using xtape::testing::random_tensor;
using xtape::testing::TempDir;

namespace {

template <class T = float>
std::shared_ptr<Dense<T>> dense(long units, const std::string& name, const std::string& act = "linear")
{
    return std::make_shared<Dense<T>>(units, act, true, name);
}

template <class T>
LayerPtr<T> registry_factory(const json& spec)
{
    return layer_from_config<T>(spec);
}

bool same_values(const array_t<float>& a, const array_t<float>& b)
{
    return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

FitOptions<float> fit_opts(int epochs)
{
    FitOptions<float> o;
    o.batch_size = 8;
    o.epochs = epochs;
    o.verbose = 0;
    return o;
}

} // namespace

// ---- nodes ---------------------------------------------------------------------------------------------

TEST_CASE("functional: calling a layer on symbolic tensors records nodes; the layer-node API")
{
    reset_layer_names();
    auto a = Input<float>({ 4 }, "a");
    auto b = Input<float>({ 4 }, "b");
    auto d = dense(3, "d");
    CHECK_THROWS_WITH_AS(d->input(), doctest::Contains("The layer d has never been called and thus has no defined input"),
                         AttributeError);
    auto ha = (*d)(a);
    CHECK(ha.shape() == dims_t{ -1, 3 });
    CHECK(ha.layer() == d);
    CHECK(ha.node_index() == 0);
    CHECK(d->built());
    CHECK(d->inbound_node_count() == 1);
    CHECK(a.layer()->outbound_node_count() == 1);
    CHECK(d->input().same_as(a));
    CHECK(d->output().same_as(ha));
    CHECK(d->input_shape() == dims_t{ -1, 4 });
    CHECK(d->output_shape() == dims_t{ -1, 3 });

    // Shared: a second call is a second node with the same weights.
    auto hb = (*d)(b, false);
    CHECK(hb.node_index() == 1);
    CHECK(d->inbound_node_count() == 2);
    CHECK(d->weights().size() == 2);
    CHECK_THROWS_WITH_AS(d->input(), doctest::Contains("Layer d has multiple inbound nodes"), AttributeError);
    CHECK_THROWS_AS(d->output(), AttributeError);
    CHECK_THROWS_AS(d->input_shape(), AttributeError);
    CHECK_THROWS_AS(d->output_shape(), AttributeError);
    CHECK(d->get_input_at(1).same_as(b));
    CHECK(d->get_output_at(1).same_as(hb));
    CHECK(d->get_input_shape_at(0) == dims_t{ -1, 4 });
    CHECK(d->get_output_shape_at(1) == dims_t{ -1, 3 });
    CHECK(d->inbound_nodes()[1]->args.training == std::optional<bool>(false));
    CHECK_THROWS_WITH_AS(d->get_input_at(2), doctest::Contains("Asked to get input at node 2, but the operation has only 2 inbound nodes"),
                         ValueError);
    // A layer on the stack cannot be part of a graph that keeps it alive.
    Dense<float> on_stack(2);
    CHECK_THROWS_WITH_AS(on_stack(a), doctest::Contains("std::shared_ptr"), ValueError);
    // Incompatible symbolic input: checked as a real call would be.
    CHECK_THROWS_AS((*d)(Input<float>({ 5 })), ShapeError);
    // Outbound nodes are weak: a consumer that dies leaves the list.
    {
        auto tmp = dense(2, "tmp");
        (*tmp)(ha);
        CHECK(d->outbound_node_count() == 1);
    }
    CHECK(d->outbound_node_count() == 0);
}

// ---- construction ----------------------------------------------------------------------------------------

TEST_CASE("functional: construction orders layers by depth and refuses what Keras refuses")
{
    reset_layer_names();
    auto x = Input<float>({ 4 }, "x");
    auto left = dense(3, "left"), right = dense(3, "right"), top = dense(2, "top"), unused = dense(1, "unused");
    auto l = (*left)(x), r = (*right)(x);
    (*unused)(l);
    auto s = (*std::make_shared<Add<float>>("sum"))({ l, r });
    auto y = (*top)(s);
    Model<float> m(x, y, "diamond");
    CHECK(m.class_name() == "Functional");
    CHECK(m.built());
    std::vector<std::string> names;
    for (const auto& layer : m.graph()->all_layers())
        names.push_back(layer->name());
    CHECK(names == std::vector<std::string>{ "x", "left", "right", "sum", "top" }); // unused is left out
    CHECK(m.layers().size() == 4);
    CHECK(m.input_names() == std::vector<std::string>{ "x" });
    CHECK(m.output_names() == std::vector<std::string>{ "top" });
    CHECK(m.input_shape() == dims_t{ -1, 4 });
    CHECK(m.output_shape() == dims_t{ -1, 2 });

    // An input the model was not given: Graph disconnected, naming the tensor and the layer.
    auto other = Input<float>({ 4 }, "other");
    auto z = (*std::make_shared<Add<float>>("join"))({ (*dense(4, "p"))(x), other });
    const std::string msg = error_of([&] { Model<float>(x, z); });
    CHECK(msg.find("Graph disconnected: cannot find parent for tensor") != std::string::npos);
    CHECK(msg.find("other:0:0") != std::string::npos);
    CHECK(msg.find("at operation 'join'") != std::string::npos);
    CHECK_THROWS_AS(Model<float>(x, z), ValueError);
    // An output that is an input the model was not given.
    CHECK_THROWS_WITH_AS(Model<float>(x, other), doctest::Contains("Graph disconnected"), ValueError);
    // Inputs must be keras.Input tensors, each once; neither list may be empty.
    CHECK_THROWS_WITH_AS(Model<float>(l, y), doctest::Contains("must come from `keras.Input`"), ValueError);
    CHECK_THROWS_AS(Model<float>(std::vector<KerasTensor<float>>{ x, x }, std::vector<KerasTensor<float>>{ y }),
                    ValueError);
    CHECK_THROWS_AS(Model<float>(std::vector<KerasTensor<float>>{}, std::vector<KerasTensor<float>>{ y }), ValueError);
    CHECK_THROWS_AS(Model<float>(std::vector<KerasTensor<float>>{ x }, std::vector<KerasTensor<float>>{}), ValueError);
    // Two layers with one name.
    auto twin1 = dense(2, "twin"), twin2 = dense(2, "twin");
    CHECK_THROWS_WITH_AS(Model<float>(x, (*twin2)((*twin1)(x))),
                         doctest::Contains("The name \"twin\" is used 2 times in the model"), ValueError);
    // Unused inputs stay (Keras keeps them for losses and metrics).
    Model<float> with_unused(std::vector<KerasTensor<float>>{ x, other }, std::vector<KerasTensor<float>>{ y });
    names.clear();
    for (const auto& layer : with_unused.graph()->all_layers())
        names.push_back(layer->name());
    CHECK(names == std::vector<std::string>{ "x", "left", "right", "sum", "other", "top" }); // depth 0, first
}

// ---- running ---------------------------------------------------------------------------------------------

TEST_CASE("functional: several inputs and outputs, by reference, nested in models and in Sequential")
{
    reset_layer_names();
    set_random_seed(7);
    auto a = Input<float>({ 3 }, "a"), b = Input<float>({ 3 }, "b");
    auto enc = dense(4, "enc", "tanh");
    auto ea = (*enc)(a), eb = (*enc)(b);
    auto cat = (*std::make_shared<Concatenate<float>>(-1, "cat"))({ ea, eb });
    auto out1 = (*dense(2, "out1"))(cat);
    auto out2 = (*std::make_shared<Subtract<float>>("diff"))({ ea, eb });
    Model<float> m(std::vector<KerasTensor<float>>{ a, b }, std::vector<KerasTensor<float>>{ out1, out2 }, "two");
    CHECK(m.weights().size() == 4); // the shared encoder once
    CHECK(m.count_params() == 3 * 4 + 4 + 8 * 2 + 2);

    const Tensor<float> xa = random_tensor<float>({ 5, 3 }, 1), xb = random_tensor<float>({ 5, 3 }, 2);
    std::vector<Tensor<float>> ys = m({ xa, xb });
    REQUIRE(ys.size() == 2);
    // The same layers called on real tensors by hand.
    const Tensor<float> ha = (*enc)(xa), hb = (*enc)(xb);
    const Tensor<float> y1 = (*m.get_layer("out1"))(concatenate<float>({ ha, hb }, -1));
    CHECK(same_values(ys[0].value(), y1.value()));
    CHECK(same_values(ys[1].value(), sub(ha, hb).value()));
    CHECK_THROWS_AS(m(xa), ValueError); // one tensor for a two-input model
    CHECK_THROWS_WITH_AS(m({ xa, random_tensor<float>({ 5, 4 }, 3) }),
                         doctest::Contains("Input 1 of layer \"two\" is incompatible with the layer: expected shape=(None, 3), found shape=(5, 4)"),
                         ShapeError);

    // An output that is an input is that input's tensor: no copy.
    auto id_in = Input<float>({ 3 }, "id");
    Model<float> identity(id_in, id_in, "identity");
    CHECK(identity(xa).node() == xa.node());

    // Nested: the model called on symbolic tensors is a node of an outer model.
    auto c = Input<float>({ 3 }, "c"), d = Input<float>({ 3 }, "d");
    auto mp = std::make_shared<Model<float>>(std::vector<KerasTensor<float>>{ a, b },
                                             std::vector<KerasTensor<float>>{ out1, out2 }, "inner");
    std::vector<KerasTensor<float>> inner_out = (*mp)({ c, d });
    REQUIRE(inner_out.size() == 2);
    CHECK(inner_out[1].shape() == dims_t{ -1, 4 });
    auto head = (*dense(1, "head"))(inner_out[0]);
    Model<float> outer(std::vector<KerasTensor<float>>{ c, d }, std::vector<KerasTensor<float>>{ head }, "outer");
    CHECK(outer.layers().size() == 2);
    CHECK(outer.weights().size() == 6);
    const Tensor<float> yo = outer({ xa, xb })[0];
    CHECK(same_values(yo.value(), (*outer.get_layer("head"))(ys[0]).value()));

    // A functional model inside Sequential.
    auto si = Input<float>({ 3 }, "si");
    auto sub_model = std::make_shared<Functional<float>>(si, std::vector<LayerPtr<float>>{ dense(4, "s1", "relu") }, "sub");
    Sequential<float> seq({ Input<float>({ 3 }), sub_model, dense(2, "s2") }, "seq");
    CHECK(seq.built());
    CHECK(seq.predict_on_batch(xa.value()).shape() == std::vector<std::size_t>{ 5, 2 });
    CHECK(seq.count_params() == 3 * 4 + 4 + 4 * 2 + 2);
    // ... and a Sequential (not built yet) inside a functional model: built by the symbolic call.
    auto inner_seq = std::make_shared<Sequential<float>>(std::vector<LayerPtr<float>>{ dense(4, "q1", "relu") }, "inner_seq");
    CHECK_FALSE(inner_seq->built());
    auto qi = Input<float>({ 3 }, "qi");
    Model<float> around(qi, (*dense(1, "q2"))((*inner_seq)(qi)), "around");
    CHECK(inner_seq->built());
    CHECK(around.weights().size() == 4);
    CHECK(around(xa).shape() == shape_t{ 5, 1 });
    const json around_cfg = model_to_json(around);
    auto around_back = model_from_config<float>(around_cfg, registry_factory<float>);
    around_back->set_weights(around.get_weights());
    CHECK(same_values((*around_back)(xa).value(), around(xa).value()));
}

TEST_CASE("functional: a node's training argument wins over the model's call (tf.keras's rule)")
{
    reset_layer_names();
    auto x = Input<float>({ 6 }, "x");
    // dropout(x, training=true) stays active in predict.
    auto drop = std::make_shared<Dropout<float>>(0.5, 3);
    Model<float> noisy(x, (*drop)(x, true), "noisy");
    const array_t<float> ones = xt::ones<float>({ 8, 6 });
    const array_t<float> p = noisy.predict(ones, [] { PredictOptions<float> o; o.verbose = 0; return o; }());
    CHECK(std::count(p.begin(), p.end(), 0.0f) > 0);
    // bn(x, training=false) keeps its moving statistics while the model trains.
    auto bn = std::make_shared<BatchNormalization<float>>();
    auto h = (*bn)((*dense(6, "pre"))(x), false);
    Model<float> frozen(x, (*dense(1, "post"))(h), "frozen");
    frozen.compile("sgd", "mse");
    const array_t<float> mean_before = bn->moving_mean().value();
    frozen.fit(random_tensor<float>({ 16, 6 }, 4).value(), random_tensor<float>({ 16, 1 }, 5).value(),
               fit_opts(2));
    CHECK(same_values(bn->moving_mean().value(), mean_before));
    // ... while a BN whose node has no training argument follows the model.
    auto bn2 = std::make_shared<BatchNormalization<float>>();
    Model<float> follows(x, (*bn2)(x), "follows");
    follows.compile("sgd", "mse");
    follows.fit(random_tensor<float>({ 16, 6 }, 6).value(), random_tensor<float>({ 16, 6 }, 7).value(),
                fit_opts(1));
    CHECK_FALSE(same_values(bn2->moving_mean().value(), mean_before));
}

// ---- merges ----------------------------------------------------------------------------------------------

TEST_CASE("merging: values, broadcasting and output shapes")
{
    reset_layer_names();
    const Tensor<double> p(array_t<double>{ { 1.0, -2.0, 3.0 }, { 4.0, 5.0, -6.0 } });
    const Tensor<double> q(array_t<double>{ { 2.0, 2.0, -1.0 }, { 0.0, 7.0, 1.0 } });
    const Tensor<double> r(array_t<double>{ { 1.0, 1.0, 1.0 }, { 2.0, 2.0, 2.0 } });
    auto run = [&](Layer<double>& l, std::vector<Tensor<double>> xs) { return l(xs)[0].value(); };
    Add<double> add_l;
    Subtract<double> sub_l;
    Multiply<double> mul_l;
    Average<double> avg_l;
    Maximum<double> max_l;
    Minimum<double> min_l;
    CHECK(run(add_l, { p, q, r }) == array_t<double>{ { 4.0, 1.0, 3.0 }, { 6.0, 14.0, -3.0 } });
    CHECK(run(sub_l, { p, q }) == array_t<double>{ { -1.0, -4.0, 4.0 }, { 4.0, -2.0, -7.0 } });
    CHECK(run(mul_l, { p, q }) == array_t<double>{ { 2.0, -4.0, -3.0 }, { 0.0, 35.0, -6.0 } });
    CHECK(run(avg_l, { p, q }) == array_t<double>{ { 1.5, 0.0, 1.0 }, { 2.0, 6.0, -2.5 } });
    CHECK(run(max_l, { p, q, r }) == array_t<double>{ { 2.0, 2.0, 3.0 }, { 4.0, 7.0, 2.0 } });
    CHECK(run(min_l, { p, q }) == array_t<double>{ { 1.0, -2.0, -1.0 }, { 0.0, 5.0, -6.0 } });
    // (None, 1, 3) + (None, 4, 3) broadcasts; a rank-2 input gets an axis after the batch.
    Add<double> bc;
    CHECK(bc.compute_output_shape_list({ { -1, 1, 3 }, { -1, 4, 3 } }) == std::vector<dims_t>{ { -1, 4, 3 } });
    CHECK(bc.compute_output_shape_list({ { -1, 3 }, { -1, 4, 3 } }) == std::vector<dims_t>{ { -1, 4, 3 } });
    const auto y = bc({ p, Tensor<double>(array_t<double>(xt::ones<double>({ 2, 4, 3 }))) })[0];
    CHECK(y.shape() == shape_t{ 2, 4, 3 });
    CHECK(y.value()(1, 3, 2) == -5);
    // Symbolic shapes.
    auto a = Input<double>({ 5 }), b = Input<double>({ 5 });
    CHECK((*std::make_shared<Maximum<double>>())({ a, b })[0].shape() == dims_t{ -1, 5 });
    CHECK((*std::make_shared<Concatenate<double>>())({ a, b })[0].shape() == dims_t{ -1, 10 });
    CHECK((*std::make_shared<Dot<double>>(1))({ a, b })[0].shape() == dims_t{ -1, 1 });

    // Concatenate on another axis, Dot on rank 3 and with normalize.
    Concatenate<double> c0(1);
    const auto pq = c0({ expand_dims(p, 1), expand_dims(q, 1) })[0];
    CHECK(pq.shape() == shape_t{ 2, 2, 3 });
    CHECK(c0.compute_output_shape_list({ { -1, 1, 3 }, { -1, 2, 3 } }) == std::vector<dims_t>{ { -1, 3, 3 } });
    Dot<double> dot1(1);
    const auto pq_dot = dot1({ p, q })[0].value();
    CHECK(pq_dot.shape() == std::vector<std::size_t>{ 2, 1 });
    CHECK(pq_dot(0, 0) == -5.0);
    CHECK(pq_dot(1, 0) == 29.0);
    Dot<double> dot_n(std::vector<int>{ -1, -1 }, true);
    const auto cos = dot_n({ p, p })[0].value();
    CHECK(cos(0, 0) == doctest::Approx(1.0));
    CHECK(cos(1, 0) == doctest::Approx(1.0));
    // (B, 2, 3) . (B, 2, 3) on axes (1, 1): (B, 3, 3) = x1^T x2 per sample.
    Dot<double> dot3(std::vector<int>{ 1, 1 });
    CHECK(dot3.compute_output_shape_list({ { -1, 2, 3 }, { -1, 2, 3 } }) == std::vector<dims_t>{ { -1, 3, 3 } });
    const auto g = dot3({ pq, pq })[0].value();
    CHECK(g.shape()[1] == 3);
    CHECK(g(0, 0, 0) == 1 * 1 + 2 * 2);
    CHECK(g(1, 2, 1) == -6 * 5 + 1 * 7);
    // (B, 3) . (B, 2, 3) on axes (1, 2): (B, 2).
    Dot<double> dot23(std::vector<int>{ 1, 2 });
    CHECK(dot23.compute_output_shape_list({ { -1, 3 }, { -1, 2, 3 } }) == std::vector<dims_t>{ { -1, 2 } });
    CHECK(dot23({ p, pq })[0].value() == array_t<double>{ { 14.0, -5.0 }, { 77.0, 29.0 } });
}

TEST_CASE("Dot on higher ranks: Keras's batch_dot, values by explicit sums and gradients (double)")
{
    // (B, 2, 3, 4) . (B, 4, 5) on axes (3, 1): (B, 2, 3, 5); (B, 2, 3, 4) . (B, 3, 2) on (2, 1): (B, 2, 4, 2).
    const Tensor<double> x = random_tensor({ 2, 2, 3, 4 }, 21), y = random_tensor({ 2, 4, 5 }, 22);
    Dot<double> d(std::vector<int>{ 3, 1 });
    CHECK(d.compute_output_shape_list({ { -1, 2, 3, 4 }, { -1, 4, 5 } }) == std::vector<dims_t>{ { -1, 2, 3, 5 } });
    const array_t<double> got = d({ x, y })[0].value();
    REQUIRE(got.shape() == std::vector<std::size_t>{ 2, 2, 3, 5 });
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t j = 0; j < 3; ++j)
                for (std::size_t n = 0; n < 5; ++n) {
                    double want = 0;
                    for (std::size_t k = 0; k < 4; ++k)
                        want += x.value()(b, i, j, k) * y.value()(b, k, n);
                    CHECK(got(b, i, j, n) == doctest::Approx(want).epsilon(1e-12));
                }
    const Tensor<double> z = random_tensor({ 2, 3, 2 }, 23);
    Dot<double> d2(std::vector<int>{ 2, 1 });
    const array_t<double> got2 = d2({ x, z })[0].value();
    REQUIRE(got2.shape() == std::vector<std::size_t>{ 2, 2, 4, 2 });
    double want = 0;
    for (std::size_t k = 0; k < 3; ++k)
        want += x.value()(1, 1, k, 3) * z.value()(1, k, 0);
    CHECK(got2(1, 1, 3, 0) == doctest::Approx(want).epsilon(1e-12));
    check_gradients([&](const std::vector<Tensor<double>>& in) { return d(in)[0]; }, { x, y });
    Dot<double> dn(std::vector<int>{ 2, 1 }, true);
    check_gradients([&](const std::vector<Tensor<double>>& in) { return dn(in)[0]; }, { x, z });
}

TEST_CASE("merging: errors with Keras's messages")
{
    reset_layer_names();
    auto a = Input<float>({ 3 }), b = Input<float>({ 4 }), c = Input<float>({ 3 }), e = Input<float>({ 2, 3 });
    CHECK_THROWS_WITH_AS((*std::make_shared<Add<float>>())({ a, b }),
                         doctest::Contains("Inputs have incompatible shapes. Received shapes (3,) and (4,)"), ValueError);
    CHECK_THROWS_WITH_AS((*std::make_shared<Subtract<float>>())({ a, c, a }),
                         doctest::Contains("A `Subtract` layer should be called on exactly 2 inputs"), ValueError);
    CHECK_THROWS_WITH_AS((*std::make_shared<Concatenate<float>>())({ a, e }),
                         doctest::Contains("A `Concatenate` layer requires inputs with matching shapes except for the concatenation axis"),
                         ValueError);
    CHECK_THROWS_AS((*std::make_shared<Concatenate<float>>(1))({ e, Input<float>({ 2, 4 }) }), ValueError);
    CHECK_THROWS_WITH_AS((*std::make_shared<Dot<float>>(1))({ a, b }),
                         doctest::Contains("Incompatible input shapes: axis values 3 (at axis 1) != 4 (at axis 1)"),
                         ValueError);
    CHECK_THROWS_WITH_AS((*std::make_shared<Dot<float>>(1))({ a, b, c }),
                         doctest::Contains("A `Dot` layer should be called on a list of 2 inputs"), ValueError);
    CHECK_THROWS_AS(Dot<float>(std::vector<int>{ 1, 1, 1 }), ValueError);
    // Batch sizes that differ, on real tensors.
    Add<float> add;
    CHECK_THROWS_WITH_AS(add({ Tensor<float>::zeros({ 2, 3 }), Tensor<float>::zeros({ 3, 3 }) }),
                         doctest::Contains("Cannot merge tensors with different batch sizes"), ValueError);
    // A single-input layer called on a list.
    CHECK_THROWS_WITH_AS((*dense(2, "single"))({ a, c }), doctest::Contains("expects 1 input(s), but it received 2 input tensors"),
                         ValueError);
}

TEST_CASE("merging: masks merge as Keras merges them")
{
    Add<float> add;
    const Tensor<float> x = Tensor<float>::zeros({ 2, 3, 4 });
    const Tensor<float> m1(array_t<float>{ { 1, 0, 0 }, { 1, 1, 0 } }), m2(array_t<float>{ { 0, 0, 1 }, { 1, 0, 0 } });
    CHECK_FALSE(add.compute_mask_list({ x, x }, {}).at(0).defined());
    CHECK_FALSE(add.compute_mask_list({ x, x }, { m1, Tensor<float>() }).at(0).defined());
    CHECK(add.compute_mask_list({ x, x }, { m1, m2 }).at(0).value() == array_t<float>{ { 1, 0, 1 }, { 1, 1, 0 } });
    Concatenate<float> cat(1);
    const auto cm = cat.compute_mask_list({ x, x }, { m1, Tensor<float>() }).at(0).value();
    CHECK(cm == array_t<float>{ { 1, 0, 0, 1, 1, 1 }, { 1, 1, 0, 1, 1, 1 } });
    Dot<float> dot(2);
    CHECK_FALSE(dot.compute_mask_list({ x, x }, { m1, m2 }).at(0).defined());
}

TEST_CASE("merging: gradients of every merge layer, a diamond graph and a shared layer (double)")
{
    reset_layer_names();
    std::vector<std::shared_ptr<Layer<double>>> layers{
        std::make_shared<Add<double>>(),          std::make_shared<Subtract<double>>(),
        std::make_shared<Multiply<double>>(),     std::make_shared<Average<double>>(),
        std::make_shared<Maximum<double>>(),      std::make_shared<Minimum<double>>(),
        std::make_shared<Concatenate<double>>(),  std::make_shared<Dot<double>>(1),
        std::make_shared<Dot<double>>(1, true),
    };
    for (auto& l : layers) {
        INFO(l->class_name());
        check_gradients([&](const std::vector<Tensor<double>>& in) { return (*l)(in)[0]; },
                        { random_tensor({ 3, 4 }, 11), random_tensor({ 3, 4 }, 12) });
    }
    Dot<double> dot3(std::vector<int>{ 2, 1 });
    check_gradients([&](const std::vector<Tensor<double>>& in) { return dot3(in)[0]; },
                    { random_tensor({ 2, 3, 4 }, 13), random_tensor({ 2, 4, 5 }, 14) });
    Add<double> broadcast;
    check_gradients([&](const std::vector<Tensor<double>>& in) { return broadcast(in)[0]; },
                    { random_tensor({ 2, 1, 4 }, 15), random_tensor({ 2, 3, 4 }, 16), random_tensor({ 2, 4 }, 17) });

    // Diamond: x feeds two branches that a Multiply joins; a shared Dense in both branches.
    auto x = Input<double>({ 4 }, "x");
    auto shared = dense<double>(4, "shared", "tanh");
    auto left = (*shared)(x);
    auto right = (*shared)((*dense<double>(4, "pre", "sigmoid"))(x));
    auto joined = (*std::make_shared<Multiply<double>>("join"))({ left, right });
    auto y = (*dense<double>(2, "y"))((*std::make_shared<Concatenate<double>>(-1, "cat"))({ joined, x }));
    Model<double> m(x, y, "diamond");
    CHECK(m.weights().size() == 6);
    const Tensor<double> xv = random_tensor({ 5, 4 }, 18);
    check_gradients([&](const std::vector<Tensor<double>>& in) { return m(in[0], true); }, { xv });
    std::vector<Tensor<double>> params;
    for (const auto& v : m.weights())
        params.push_back(v.tensor());
    GradcheckResult r = gradcheck([&] { return m(xv, true); }, params);
    INFO(r.report());
    CHECK(r.passed);
}

// ---- configs and files -----------------------------------------------------------------------------------

namespace {
/// Two inputs, a shared Dense+BN encoder (BN's node with training=false), Concatenate, Dot,
/// a nested functional model and two outputs.
std::shared_ptr<Model<float>> two_tower()
{
    auto a = Input<float>({ 4 }, "a"), b = Input<float>({ 4 }, "b");
    auto enc = dense(5, "enc", "relu");
    auto bn = std::make_shared<BatchNormalization<float>>(BatchNormalizationOptions<float>{});
    auto ea = (*bn)((*enc)(a), false), eb = (*bn)((*enc)(b), false);
    auto hi = Input<float>({ 10 }, "hi");
    auto head = std::make_shared<Functional<float>>(
        hi, std::vector<LayerPtr<float>>{ dense(3, "head_dense", "tanh"), dense(3, "head_dense_2") }, "head");
    auto cat = (*std::make_shared<Concatenate<float>>(-1, "cat"))({ ea, eb });
    auto out1 = (*dense(1, "score", "sigmoid"))((*head)(cat));
    auto out2 = (*std::make_shared<Dot<float>>(1, true, "cosine"))({ ea, eb });
    return std::make_shared<Model<float>>(std::vector<KerasTensor<float>>{ a, b },
                                          std::vector<KerasTensor<float>>{ out1, out2 }, "two_tower");
}
} // namespace

TEST_CASE("functional: configs round-trip in Keras 3's and tf.keras 2's forms")
{
    reset_layer_names();
    set_random_seed(3);
    auto m = two_tower();
    const json spec = model_to_json(*m);
    const json& c = spec["config"];
    CHECK(c["input_layers"] == json::parse(R"([["a", 0, 0], ["b", 0, 0]])"));
    CHECK(c["output_layers"] == json::parse(R"([["score", 0, 0], ["cosine", 0, 0]])"));
    json enc_entry, bn_entry, cat_entry;
    for (const auto& l : c["layers"]) {
        if (l["name"] == "enc")
            enc_entry = l;
        if (l["name"] == "batch_normalization")
            bn_entry = l;
        if (l["name"] == "cat")
            cat_entry = l;
    }
    REQUIRE(enc_entry["inbound_nodes"].size() == 2);
    CHECK(enc_entry["inbound_nodes"][1]["args"][0]["config"]["keras_history"] == json::parse(R"(["b", 0, 0])"));
    CHECK(bn_entry["inbound_nodes"][1]["kwargs"] == json{ { "training", false } });
    // A merge's inputs are one list argument, and its tensors name the node they come from.
    CHECK(cat_entry["inbound_nodes"][0]["args"][0][1]["config"]["keras_history"] ==
          json::parse(R"(["batch_normalization", 1, 0])"));

    auto back = model_from_config<float>(spec, registry_factory<float>);
    CHECK(model_to_json(*back) == spec);
    back->set_weights(m->get_weights());
    const Tensor<float> xa = random_tensor<float>({ 6, 4 }, 1), xb = random_tensor<float>({ 6, 4 }, 2);
    auto y0 = (*m)({ xa, xb }), y1 = (*back)({ xa, xb });
    CHECK(same_values(y0[0].value(), y1[0].value()));
    CHECK(same_values(y0[1].value(), y1[1].value()));

    // tf.keras 2's node lists, call arguments in the fourth element.
    const json tfk = keras_h5::to_tf_keras_model_config(spec);
    json tf_bn;
    for (const auto& l : tfk["config"]["layers"])
        if (l["name"] == "batch_normalization")
            tf_bn = l;
    CHECK(tf_bn["inbound_nodes"][1] == json::parse(R"([["enc", 1, 0, {"training": false}]])"));
    auto from_tf = model_from_config<float>(tfk, registry_factory<float>);
    from_tf->set_weights(m->get_weights());
    CHECK(same_values((*from_tf)({ xa, xb })[1].value(), y0[1].value()));
    CHECK(dynamic_cast<BatchNormalization<float>&>(*from_tf->get_layer("batch_normalization"))
              .inbound_nodes()[0]->args.training == std::optional<bool>(false));

    // Unknown call arguments are refused, never dropped.
    json bad = tfk;
    for (auto& l : bad["config"]["layers"])
        if (l["name"] == "enc")
            l["inbound_nodes"][0][0][3] = json{ { "scale", 2 } };
    CHECK_THROWS_WITH_AS(model_from_config<float>(bad, registry_factory<float>),
                         doctest::Contains("called with the argument 'scale'"), NotImplementedError);
    // A node that reads a node that never comes to exist.
    json missing = spec;
    for (auto& l : missing["config"]["layers"])
        if (l["name"] == "cat")
            l["inbound_nodes"][0]["args"][0][0]["config"]["keras_history"][1] = 7;
    CHECK_THROWS_WITH_AS(model_from_config<float>(missing, registry_factory<float>),
                         doctest::Contains("can never be made"), ValueError);
}

TEST_CASE("functional: save_model / load_model of branches, merges, shared layers and nested models")
{
    reset_layer_names();
    set_random_seed(5);
    TempDir tmp("functional");
    auto m = two_tower();
    const std::string path = (tmp.dir / "two_tower.h5").string();
    save_model(*m, path);
    auto back = load_model<float>(path);
    CHECK(back->class_name() == "Functional");
    CHECK(model_to_json(*back)["config"]["layers"].size() == model_to_json(*m)["config"]["layers"].size());
    const auto w0 = m->weights(), w1 = back->weights();
    REQUIRE(w0.size() == w1.size());
    // A nested model's weights are named by their own layers, so two kernels do not collide.
    CHECK(m->get_layer("head")->weight_path(m->get_layer("head")->weights()[2]) == "head_dense_2/kernel");
    for (std::size_t i = 0; i < w0.size(); ++i) {
        CHECK(w0[i].name() == w1[i].name());
        CHECK(same_values(w0[i].value(), w1[i].value()));
    }
    const Tensor<float> xa = random_tensor<float>({ 6, 4 }, 8), xb = random_tensor<float>({ 6, 4 }, 9);
    auto y0 = (*m)({ xa, xb }), y1 = (*back)({ xa, xb });
    CHECK(same_values(y0[0].value(), y1[0].value()));
    CHECK(same_values(y0[1].value(), y1[1].value()));
}

TEST_CASE("functional: summary shows Keras's Connected to column for graphs")
{
    reset_layer_names();
    auto m = two_tower();
    const std::string s = m->summary_string(120);
    INFO(s);
    CHECK(s.find("Connected to") != std::string::npos);
    CHECK(s.find("│ enc[0][0], enc[1][0]") != std::string::npos); // BN reads enc's two nodes
    CHECK(s.find("│ a[0][0], b[0][0]") != std::string::npos);
    CHECK(s.find("a (InputLayer)") != std::string::npos);
    CHECK(s.find("cosine (Dot)") != std::string::npos);
    // A chain keeps the three columns.
    auto x = Input<float>({ 3 }, "x");
    Functional<float> chain(x, std::vector<LayerPtr<float>>{ dense(2, "c1") }, "chain");
    CHECK(chain.summary_string(88).find("Connected to") == std::string::npos);
}
