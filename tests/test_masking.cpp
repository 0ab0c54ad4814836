// ctest-labels: sanitize
// Masks across layers (issues 11 and 13): which layers support masking (Keras 3's values), a mask
// stopping at a layer that does not, the masks symbolic tensors carry and the layer-node API that
// reports them (input_mask, output_mask, get_*_mask_at), nested models, and Keras 3's masked
// merges (Maximum, Minimum, Multiply) by hand-computed values and gradient checks in double.
#include "framework/graph/node.hpp"
#include "framework/model.hpp"
#include "framework/ops.hpp"
#include "framework/sequential.hpp"
#include "layers/convolutional/base_conv.hpp"
#include "layers/core/embedding.hpp"
#include "layers/dense.hpp"
#include "layers/flatten.hpp"
#include "layers/input_layer.hpp"
#include "layers/merging/merge.hpp"
#include "layers/pooling/global_pooling.hpp"
#include "layers/reshaping/repeat_vector.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::check_values;
using xtape::testing::contains;
using xtape::testing::message_of;
using xtape::testing::tensor_of;

namespace test_masking {

std::shared_ptr<Embedding<double>> masked_embedding(long input_dim, long output_dim)
{
    EmbeddingOptions<double> o;
    o.input_dim = input_dim;
    o.output_dim = output_dim;
    o.mask_zero = true;
    return std::make_shared<Embedding<double>>(o);
}

const dims_t& mask_of(const std::optional<dims_t>& m)
{
    REQUIRE(m.has_value());
    return *m;
}

/// One step per value: shape (1, steps, 1).
Tensor<double> steps(const std::vector<double>& v) { return tensor_of(v, { 1, v.size(), 1 }); }
/// A step mask (1, steps).
Tensor<double> step_mask(const std::vector<double>& v) { return tensor_of(v, { 1, v.size() }); }

} // namespace test_masking

using namespace test_masking;

TEST_CASE("supports_masking follows Keras 3: set by the layers that use or pass masks, false otherwise")
{
    CHECK(Dense<double>(2).supports_masking());
    CHECK(masked_embedding(3, 2)->supports_masking());
    CHECK(Masking<double>().supports_masking());
    CHECK(Add<double>().supports_masking());
    CHECK(Concatenate<double>(-1).supports_masking());
    CHECK(Dot<double>(1).supports_masking());
    CHECK(GlobalAveragePooling1D<double>().supports_masking());
    CHECK(Sequential<double>().supports_masking());
    CHECK_FALSE(GlobalMaxPooling1D<double>().supports_masking());
    CHECK_FALSE(Flatten<double>().supports_masking());
    CHECK_FALSE(Conv1D<double>(2, { 1 }).supports_masking());
    CHECK_FALSE(RepeatVector<double>(2).supports_masking());
    Flatten<double> f;
    f.set_supports_masking(true); // a user may declare it, as in Keras
    CHECK(f.supports_masking());
}

TEST_CASE("A mask stops at a layer that does not support masking (Keras 3 destroys it there)")
{
    // Embedding(mask_zero) -> X -> GlobalAveragePooling1D: with X = Dense the padded step is left
    // out of the average; with X = Conv1D (kernel 1, the same identity weights) the mask is gone
    // and the pooling averages every step.
    auto run = [](bool through_conv) {
        auto emb = masked_embedding(4, 2);
        auto gap = std::make_shared<GlobalAveragePooling1D<double>>();
        auto in = Input<double>({ 3 });
        LayerPtr<double> mid;
        if (through_conv)
            mid = std::make_shared<Conv1D<double>>(2, std::vector<std::size_t>{ 1 });
        else
            mid = std::make_shared<Dense<double>>(2);
        KerasTensor<double> h = (*mid)((*emb)(in));
        Model<double> model(in, (*gap)(h));
        emb->set_weights({ array_t<double>{ { 9., 9. }, { 1., 2. }, { 3., 4. }, { 5., 6. } } });
        const array_t<double> eye{ { 1., 0. }, { 0., 1. } };
        if (through_conv)
            mid->set_weights({ array_t<double>(xt::reshape_view(eye, { 1, 2, 2 })), array_t<double>{ 0., 0. } });
        else
            mid->set_weights({ eye, array_t<double>{ 0., 0. } });
        CHECK(mid->output_mask().has_value() == !through_conv);
        return model(Tensor<double>(array_t<double>{ { 1., 2., 0. } }));
    };
    check_values(run(false), { 2., 3. });                     // (1,2) and (3,4)
    check_values(run(true), { 13. / 3., 15. / 3. });          // the padding row (9,9) counts
}

TEST_CASE("Sequential moves masks with the same rule and reports its output mask")
{
    auto emb = masked_embedding(4, 2);
    Sequential<double> through_dense({ emb, std::make_shared<Dense<double>>(2) });
    const Tensor<double> x(array_t<double>{ { 1., 0., 3. } });
    through_dense(x);
    const auto masks = through_dense.compute_mask_list({ x }, {});
    REQUIRE(masks.size() == 1);
    REQUIRE(masks[0].defined());
    CHECK(masks[0].value() == array_t<double>{ { 1., 0., 1. } });

    Sequential<double> through_flatten({ masked_embedding(4, 2), std::make_shared<Flatten<double>>() });
    through_flatten(x);
    const auto none = through_flatten.compute_mask_list({ x }, {});
    CHECK((none.empty() || !none[0].defined()));
}

TEST_CASE("Symbolic tensors carry Keras's masks; the layer-node API reports them")
{
    auto emb = masked_embedding(10, 3);
    auto dense = std::make_shared<Dense<double>>(4);
    auto flatten = std::make_shared<Flatten<double>>();
    auto in = Input<double>({ 5 });
    CHECK_FALSE(in.keras_mask().has_value());
    KerasTensor<double> e = (*emb)(in);
    CHECK(mask_of(e.keras_mask()) == dims_t{ none_dim, 5 });
    CHECK_FALSE(emb->input_mask().has_value());
    CHECK(mask_of(emb->output_mask()) == dims_t{ none_dim, 5 });
    KerasTensor<double> d = (*dense)(e);
    CHECK(mask_of(dense->input_mask()) == dims_t{ none_dim, 5 });
    CHECK(mask_of(dense->output_mask()) == dims_t{ none_dim, 5 });
    KerasTensor<double> f = (*flatten)(d);
    CHECK(mask_of(flatten->input_mask()) == dims_t{ none_dim, 5 });
    CHECK_FALSE(flatten->output_mask().has_value());
    CHECK_FALSE(f.keras_mask().has_value());

    // A shared layer: one node with a mask, one without; the singular getters need one node.
    auto plain = Input<double>({ 5, 3 });
    (*dense)(plain);
    CHECK(mask_of(dense->get_output_mask_at(0)) == dims_t{ none_dim, 5 });
    CHECK_FALSE(dense->get_output_mask_at(1).has_value());
    CHECK_FALSE(dense->get_input_mask_at(1).has_value());
    CHECK(contains(message_of<AttributeError>([&] { (void)dense->output_mask(); }), "multiple inbound nodes"));
    CHECK(contains(message_of<AttributeError>([&] { (void)dense->input_mask(); }), "get_input_mask_at"));
    CHECK(contains(message_of<ValueError>([&] { (void)dense->get_output_mask_at(2); }), "only 2 inbound nodes"));
}

TEST_CASE("Masking over an unknown length keeps the length None in the mask's shape")
{
    auto masking = std::make_shared<Masking<double>>(0.0);
    auto in = Input<double>({ none_dim, 2 });
    KerasTensor<double> m = (*masking)(in);
    CHECK(mask_of(m.keras_mask()) == dims_t{ none_dim, none_dim });
}

TEST_CASE("Merges' symbolic masks: or for elementwise merges, Concatenate's any, none from Dot")
{
    auto a = (*masked_embedding(10, 3))(Input<double>({ 4 }));
    auto b = (*masked_embedding(10, 3))(Input<double>({ 4 }));
    auto c = Input<double>({ 4, 3 });
    CHECK(mask_of(((*std::make_shared<Add<double>>())({ a, b })).single().keras_mask()) == dims_t{ none_dim, 4 });
    CHECK_FALSE(((*std::make_shared<Add<double>>())({ a, c })).single().keras_mask().has_value());
    CHECK(mask_of(((*std::make_shared<Concatenate<double>>(-1))({ a, c })).single().keras_mask()) ==
          dims_t{ none_dim, 4 });
    CHECK_FALSE(((*std::make_shared<Dot<double>>(2))({ a, b })).single().keras_mask().has_value());
    auto add = std::make_shared<Maximum<double>>();
    (*add)({ a, c });
    CHECK(add->get_input_masks_at(0).size() == 2);
    CHECK(mask_of(add->get_input_masks_at(0)[0]) == dims_t{ none_dim, 4 });
    CHECK_FALSE(add->get_input_masks_at(0)[1].has_value());
    CHECK(contains(message_of<ValueError>([&] { (void)add->get_input_mask_at(0); }), "get_input_masks_at"));
}

TEST_CASE("A nested model gives its outputs the masks its graph makes")
{
    auto in = Input<double>({ 6 });
    auto inner = std::make_shared<Model<double>>(in, (*std::make_shared<Dense<double>>(2))((*masked_embedding(5, 3))(in)),
                                                 "inner");
    auto outer_in = Input<double>({ 6 });
    KerasTensor<double> y = (*inner)(outer_in);
    CHECK(mask_of(y.keras_mask()) == dims_t{ none_dim, 6 });
    auto seq = std::make_shared<Sequential<double>>(
        std::vector<LayerPtr<double>>{ masked_embedding(5, 3), std::make_shared<Flatten<double>>() });
    CHECK_FALSE((*seq)(Input<double>({ 6 })).keras_mask().has_value());
    auto seq2 = std::make_shared<Sequential<double>>(
        std::vector<LayerPtr<double>>{ masked_embedding(5, 3), std::make_shared<Dense<double>>(2) });
    CHECK(mask_of((*seq2)(Input<double>({ 6 })).keras_mask()) == dims_t{ none_dim, 6 });
}

TEST_CASE("Keras 3's masked merges: Maximum, Minimum and Multiply leave masked positions out")
{
    // Hand-computed from keras/src/layers/merging (base_merge._apply_merge_op_and_or_mask and
    // multiply._merge_function) for a = (4, 9, 6), b = (2, 8, 7) over three steps.
    const Tensor<double> a = steps({ 4., 9., 6. }), b = steps({ 2., 8., 7. });
    const Tensor<double> ma = step_mask({ 1., 0., 1. }), mb = step_mask({ 1., 1., 0. });
    Maximum<double> maximum_layer;
    Minimum<double> minimum_layer;
    Multiply<double> multiply_layer;
    // b' = where(mb, b, a) = (2, 8, 6); a' = where(ma, a, b') = (4, 8, 6).
    check_values(maximum_layer({ a, b }, false, { ma, mb })[0], { 4., 8., 6. });
    check_values(maximum_layer({ a, b })[0], { 4., 9., 7. }); // without masks
    check_values(minimum_layer({ steps({ 4., 1., 6. }), steps({ 2., 8., 3. }) }, false, { ma, mb })[0],
                 { 2., 8., 6. });
    // Only b masked: b' = where(mb, b, a) = (2, 8, 6), a unchanged: max = (4, 9, 6).
    check_values(maximum_layer({ a, b }, false, { Tensor<double>(), mb })[0], { 4., 9., 6. });
    // Multiply: masked factors become 1; with every input masked, positions masked in all are 0.
    check_values(multiply_layer({ a, b }, false, { ma, mb })[0], { 8., 8., 6. });
    check_values(multiply_layer({ a, b }, false, { step_mask({ 1., 0., 0. }), mb })[0], { 8., 8., 0. });
    check_values(multiply_layer({ a, b }, false, { ma, Tensor<double>() })[0], { 8., 8., 42. });
    // Add, Subtract and Average ignore the masks in their values.
    Add<double> add_layer;
    check_values(add_layer({ a, b }, false, { ma, mb })[0], { 6., 17., 13. });
}

TEST_CASE("gradcheck: masked Maximum, Minimum and Multiply in both inputs")
{
    const Tensor<double> ma = step_mask({ 1., 0., 1., 1. }), mb = step_mask({ 1., 1., 0., 1. });
    const Tensor<double> a = xtape::testing::random_tensor({ 1, 4, 2 }, 5);
    const Tensor<double> b = xtape::testing::random_tensor({ 1, 4, 2 }, 6);
    const Tensor<double> w = xtape::testing::random_tensor({ 1, 4, 2 }, 7, 0.5, 1.5);
    std::vector<std::shared_ptr<Layer<double>>> layers{ std::make_shared<Maximum<double>>(),
                                                        std::make_shared<Minimum<double>>(),
                                                        std::make_shared<Multiply<double>>() };
    for (const auto& l : layers) {
        CAPTURE(l->class_name());
        check_gradients([&](const std::vector<Tensor<double>>& in) {
            return sum(mul((*l)(in, false, { ma, mb })[0], w));
        }, { a, b });
    }
}
