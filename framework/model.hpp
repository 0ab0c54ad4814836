// Model: a Layer made of layers, with Keras's training loop.
//
//   Sequential<float> model("mlp");
//   model.add(std::make_shared<Dense<float>>(...)); ...
//   model.compile("adam", "sparse_categorical_crossentropy", { "accuracy" });
//   FitOptions<float> fo; fo.epochs = 10; fo.batch_size = 128; fo.validation_split = 0.1;
//   auto history = model.fit(x_train, y_train, fo);      // history->history["val_accuracy"]
//   Logs test = model.evaluate(x_test, y_test);           // test["loss"], test["accuracy"]
//   array_t<float> probs = model.predict(x_test);
//
// The training loss is Keras's: the compiled loss reduced over the batch (sum_over_batch_size:
// sum(per-sample loss * sample weight) / batch size) plus the sum of the model's losses()
// (regularization penalties of trainable weights and losses added during the call).
// A train step records the forward pass (training=true) and the loss on a GradientTape, takes
// the gradient with respect to trainable_weights() and calls optimizer->apply_gradients.
// "loss" in the logs is the mean of the batch losses weighted by batch size; metrics see
// y and y_pred without sample weights (Keras's `metrics`, not `weighted_metrics`).
//
// Data: x and y are arrays whose first axis is the sample axis; labels for sparse losses are
// class indices stored as T. Batches are taken in order, or in a fresh permutation each
// epoch when shuffle is true; the permutation is drawn serially from the global generator
// (framework/random.hpp), so a seeded run gives the same batches for any thread count.
#pragma once

#include "framework/callbacks.hpp"
#include "framework/layer.hpp"
#include "framework/losses_api.hpp"
#include "framework/metrics.hpp"
#include "framework/optimizer.hpp"

#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace xtape {

/// An optimizer for compile(): an instance, a Keras name ("adam") or a config.
template <class T>
struct OptimizerSpec {
    OptimizerPtr<T> ptr;
    OptimizerSpec(OptimizerPtr<T> p)
        : ptr(std::move(p))
    {
    }
    template <class O, class = std::enable_if_t<std::is_base_of_v<Optimizer<T>, O>>>
    OptimizerSpec(std::shared_ptr<O> p)
        : ptr(std::move(p))
    {
    }
    OptimizerSpec(const char* name)
        : ptr(get_optimizer<T>(json(name)))
    {
    }
    OptimizerSpec(const std::string& name)
        : ptr(get_optimizer<T>(json(name)))
    {
    }
    OptimizerSpec(const json& config)
        : ptr(get_optimizer<T>(config))
    {
    }
};

/// A loss for compile(): an instance, a Keras name ("mse") or a config.
template <class T>
struct LossSpec {
    LossPtr<T> ptr;
    LossSpec(LossPtr<T> p)
        : ptr(std::move(p))
    {
    }
    template <class L, class = std::enable_if_t<std::is_base_of_v<Loss<T>, L>>>
    LossSpec(std::shared_ptr<L> p)
        : ptr(std::move(p))
    {
    }
    LossSpec(const char* name)
        : ptr(get_loss<T>(json(name)))
    {
    }
    LossSpec(const std::string& name)
        : ptr(get_loss<T>(json(name)))
    {
    }
    LossSpec(const json& config)
        : ptr(get_loss<T>(config))
    {
    }
};

/// A metric for compile(): an instance, or a name resolved on the first batch (so that
/// "accuracy" can become binary/categorical/sparse accuracy from the shapes, as in Keras 3).
template <class T>
struct MetricSpec {
    MetricPtr<T> ptr;
    json id;
    MetricSpec(MetricPtr<T> p)
        : ptr(std::move(p))
    {
    }
    template <class M, class = std::enable_if_t<std::is_base_of_v<Metric<T>, M>>>
    MetricSpec(std::shared_ptr<M> p)
        : ptr(std::move(p))
    {
    }
    MetricSpec(const char* name)
        : id(name)
    {
    }
    MetricSpec(const std::string& name)
        : id(name)
    {
    }
    MetricSpec(const json& config)
        : id(config)
    {
    }
};

template <class T>
struct ValidationData {
    array_t<T> x, y;
    std::optional<array_t<T>> sample_weight;
};

template <class T>
struct FitOptions {
    std::size_t batch_size = 32;
    int epochs = 1;
    int verbose = -1; ///< -1 "auto" (= 1), 0 silent, 1 progress bar, 2 one line per epoch
    std::vector<CallbackPtr<T>> callbacks;
    /// Fraction of the samples, taken from the end of x and y before shuffling, kept for validation.
    double validation_split = 0;
    /// Overrides validation_split when given.
    std::optional<ValidationData<T>> validation_data;
    bool shuffle = true;
    int initial_epoch = 0;
    /// One weight per training sample, shape (n,).
    std::optional<array_t<T>> sample_weight;
    /// Weight per class index, turned into sample weights (not with sample_weight; Keras's rule).
    std::map<int, double> class_weight;
};

template <class T>
struct EvaluateOptions {
    std::size_t batch_size = 32;
    int verbose = -1;
    std::optional<array_t<T>> sample_weight;
    std::vector<CallbackPtr<T>> callbacks;
};

template <class T>
struct PredictOptions {
    std::size_t batch_size = 32;
    int verbose = -1;
    std::vector<CallbackPtr<T>> callbacks;
};

template <class T>
class Model : public Layer<T> {
public:
    Model(std::string class_name, std::string name, bool trainable = true);

    /// The layers in call order (without an InputLayer).
    virtual std::vector<LayerPtr<T>> layers() const = 0;
    /// The layer with this name (ValueError listing the names otherwise).
    LayerPtr<T> get_layer(const std::string& name) const;

    // ---- Layer: weights and losses are the sublayers', in layer order -------------------------
    std::vector<Variable<T>> weights() const override;
    std::vector<Variable<T>> trainable_weights() const override;
    std::vector<Variable<T>> non_trainable_weights() const override;
    /// Forgets the losses added to the model and to every layer (Keras's _clear_losses).
    void clear_losses() override;
    void collect_added_losses(std::vector<Tensor<T>>& out) const override;
    std::size_t count_params() const override;
    /// Sets the flag on the model and on every layer (Keras propagates it down).
    void set_trainable(bool t) override;
    dims_t compute_output_shape(const dims_t& input_shape) const override;

    // ---- compile --------------------------------------------------------------------------------
    /// Keras's compile. Trainable weights are read at every step (changing a layer's trainable
    /// flag takes effect at the next step; Keras requires compiling again).
    void compile(OptimizerSpec<T> optimizer, LossSpec<T> loss, std::vector<MetricSpec<T>> metrics = {});
    bool compiled() const { return static_cast<bool>(m_loss); }
    const OptimizerPtr<T>& optimizer() const { return m_optimizer; }
    const LossPtr<T>& loss() const { return m_loss; }
    /// The metrics as given to compile() (names unresolved), e.g. for a saved training_config.
    const std::vector<MetricSpec<T>>& metric_specs() const { return m_metric_specs; }

    // ---- training loop -----------------------------------------------------------------------------
    /// requires: compile() called (RuntimeError otherwise); x and y (and sample weights) with the
    ///           same number of samples (ValueError naming the sizes otherwise); batch_size >= 1.
    /// ensures:  epochs [initial_epoch, epochs) run unless a callback stops training; the History
    ///           holds one entry per epoch run.
    std::shared_ptr<History<T>> fit(const array_t<T>& x, const array_t<T>& y, const FitOptions<T>& options = {});
    /// Loss and metrics over x, y in batches (the batch losses averaged weighted by batch size).
    Logs evaluate(const array_t<T>& x, const array_t<T>& y, const EvaluateOptions<T>& options = {});
    /// Outputs for x in batches, without a tape, with training=false.
    array_t<T> predict(const array_t<T>& x, const PredictOptions<T>& options = {});
    /// One gradient step on one batch. As Keras 3, metrics are not reset between calls
    /// (reset_metrics() does it); returns the running logs.
    Logs train_on_batch(const array_t<T>& x, const array_t<T>& y, const array_t<T>* sample_weight = nullptr,
                        const std::map<int, double>* class_weight = nullptr);
    Logs test_on_batch(const array_t<T>& x, const array_t<T>& y, const array_t<T>* sample_weight = nullptr);
    array_t<T> predict_on_batch(const array_t<T>& x);

    /// The compiled loss (with sample weights, may be empty) plus the sum of losses().
    Tensor<T> compute_loss(const Tensor<T>& y, const Tensor<T>& y_pred, const Tensor<T>& sample_weight = Tensor<T>());

    // ---- metrics -----------------------------------------------------------------------------------
    /// "loss" then the compiled metrics' names (those given as names appear once resolved).
    std::vector<std::string> metrics_names() const;
    void reset_metrics();
    /// {"loss": ..., metric name: ...} as they stand.
    Logs get_metrics_result() const;
    /// +1/-1 for a metric known to be maximized/minimized ("loss": -1), 0 otherwise.
    int metric_direction(const std::string& name) const;

    bool stop_training() const { return m_stop_training; }
    void set_stop_training(bool s) { m_stop_training = s; }
    /// The History of the last fit (null before).
    const std::shared_ptr<History<T>>& history() const { return m_history; }

    // ---- summary -----------------------------------------------------------------------------------
    /// Keras 3's summary table (as Keras prints it when output is not a terminal). line_length <= 0:
    /// min(88, terminal columns - 4), the columns from $COLUMNS, the terminal, or 80.
    std::string summary_string(int line_length = 0) const;
    /// Prints summary_string() to `os` (std::cout by default).
    void summary(std::ostream* os = nullptr, int line_length = 0) const;

protected:
    /// Builds every layer in turn for `input_shape` (the layers are a chain).
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;

    /// Rows for summary(): the InputLayer row of a Functional model goes first.
    virtual bool summary_shows_input_layer() const { return false; }
    virtual std::string input_layer_name() const { return "input_layer"; }

    Logs train_step(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& sample_weight);
    Logs test_step(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& sample_weight);

private:
    void assert_compiled(const char* what) const;
    void update_metrics(const Tensor<T>& y, const Tensor<T>& y_pred);
    Logs run_evaluation(const array_t<T>& x, const array_t<T>& y, const array_t<T>* sample_weight,
                        std::size_t batch_size, CallbackList<T>& callbacks);

    OptimizerPtr<T> m_optimizer;
    LossPtr<T> m_loss;
    std::vector<MetricSpec<T>> m_metric_specs;
    std::vector<MetricPtr<T>> m_metrics; // resolved on the first batch
    Mean<T> m_loss_tracker{ "loss" };
    bool m_stop_training = false;
    bool m_warned_no_weights = false;
    std::shared_ptr<History<T>> m_history;
};

template <class T>
using ModelPtr = std::shared_ptr<Model<T>>;

/// Keras's class_weight_to_sample_weights: the weight of each sample's class (the label for
/// class indices, the argmax of a one-hot row), 1 for classes not in the map.
template <class T>
array_t<T> class_weight_to_sample_weights(const array_t<T>& y, const std::map<int, double>& class_weight);

} // namespace xtape
