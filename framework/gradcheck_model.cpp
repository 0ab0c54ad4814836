#include "framework/gradcheck_model.hpp"

#include "framework/errors.hpp"
#include "framework/tape.hpp"

#include <cmath>
#include <string>

namespace xtape {

// Note [Stateful layers in a gradient check]
// Central differences compare f(w + eps) with f(w - eps), so f must be one function of the
// weights. A training call is not: BatchNormalization moves its moving statistics (and with
// renorm, r and d are computed from them, so the next call's output changes), and Dropout draws
// new masks. Every evaluation therefore starts from the same state: the non-trainable weights are
// put back to their values from before the check, and every layer's random generators restart
// from one seed through the per-layer hook Layer::reseed (no class names are special here). After
// the check the non-trainable weights are restored once more, so the check leaves the model as it
// found it.
ModelGradcheckResult gradcheck_model(Model<double>& model, const std::vector<Tensor<double>>& xs,
                                     const std::vector<Tensor<double>>& ys, GradcheckOptions options,
                                     std::uint64_t seed, bool rounding_floor)
{
    if (!model.loss())
        throw ValueError("gradcheck_model: model \"" + model.name() + "\" is not compiled; compile it with a loss first");
    std::vector<Tensor<double>> params;
    std::vector<std::string> names;
    for (const auto& v : model.trainable_weights()) {
        params.push_back(v.tensor());
        names.push_back(model.weight_path(v));
    }
    if (params.empty())
        throw ValueError("gradcheck_model: model \"" + model.name() + "\" has no trainable weights to check");
    std::vector<Variable<double>> state = model.non_trainable_weights();
    std::vector<array_t<double>> saved;
    for (const auto& v : state)
        saved.push_back(v.value());
    auto restore = [&] {
        for (std::size_t i = 0; i < state.size(); ++i)
            state[i].assign(saved[i]);
    };
    auto loss_fn = [&]() -> Tensor<double> {
        restore();
        model.reseed(seed);
        return model.compute_loss_list(ys, model(xs, /*training=*/true));
    };
    ModelGradcheckResult out;
    {
        NoGradGuard no_tape;
        out.loss = loss_fn().item();
    }
    if (!std::isfinite(out.loss)) {
        restore();
        throw ValueError("gradcheck_model: the loss of model \"" + model.name() + "\" is " + std::to_string(out.loss) +
                         "; gradients of a non-finite loss cannot be checked");
    }
    if (rounding_floor) {
        const double ulp = std::nextafter(std::abs(out.loss), HUGE_VAL) - std::abs(out.loss);
        options.min_abs_error = std::max(options.min_abs_error, 32 * ulp / (2 * options.eps));
    }
    out.min_abs_error = options.min_abs_error;
    GradcheckResult r = gradcheck(loss_fn, params, names, options);
    restore();
    out.passed = r.passed;
    out.entries = std::move(r.entries);
    return out;
}

} // namespace xtape
