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
// fit, evaluate and predict also take a BatchSource (framework/batch_source.hpp, Keras's
// PyDataset) for data that does not fit in memory; arrays are one such source (ArrayBatches),
// so both run the same loop.
#pragma once

#include "framework/batch_source.hpp"
#include "framework/callbacks.hpp"
#include "framework/graph/graph.hpp"
#include "framework/layer.hpp"
#include "framework/losses_api.hpp"
#include "framework/metrics.hpp"
#include "framework/optimizer.hpp"

#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace xtape {

/// An optimizer for compile(): an instance, a Keras name ("adam") or a config.
template <class T>
struct OptimizerSpec {
    OptimizerPtr<T> ptr;
    /// An optimizer instance, used as is (its state is shared with the caller).
    OptimizerSpec(OptimizerPtr<T> p)
        : ptr(std::move(p))
    {
    }
    template <class O, class = std::enable_if_t<std::is_base_of_v<Optimizer<T>, O>>>
    /// An instance of any Optimizer subclass (std::make_shared<Adam<float>>()).
    OptimizerSpec(std::shared_ptr<O> p)
        : ptr(std::move(p))
    {
    }
    /// A Keras name ("adam", "sgd", "rmsprop") with Keras's defaults; KeyError for an unknown name.
    OptimizerSpec(const char* name)
        : ptr(get_optimizer<T>(json(name)))
    {
    }
    /// A Keras name, as the const char* form.
    OptimizerSpec(const std::string& name)
        : ptr(get_optimizer<T>(json(name)))
    {
    }
    /// A Keras config ({"class_name": "Adam", "config": {...}}) or name, through get_optimizer.
    OptimizerSpec(const json& config)
        : ptr(get_optimizer<T>(config))
    {
    }
};

/// A loss for compile(): an instance, a Keras name ("mse") or a config.
template <class T>
struct LossSpec {
    LossPtr<T> ptr;
    /// A loss instance (null: no loss, for an output in CompileOptions).
    LossSpec(LossPtr<T> p)
        : ptr(std::move(p))
    {
    }
    template <class L, class = std::enable_if_t<std::is_base_of_v<Loss<T>, L>>>
    /// An instance of any Loss subclass (std::make_shared<MeanSquaredError<float>>()).
    LossSpec(std::shared_ptr<L> p)
        : ptr(std::move(p))
    {
    }
    /// A Keras name or alias ("mse", "categorical_crossentropy"); KeyError for an unknown name.
    LossSpec(const char* name)
        : ptr(get_loss<T>(json(name)))
    {
    }
    /// A Keras name, as the const char* form.
    LossSpec(const std::string& name)
        : ptr(get_loss<T>(json(name)))
    {
    }
    /// A Keras config or name, through get_loss.
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
    /// A metric instance, updated and reset by the model.
    MetricSpec(MetricPtr<T> p)
        : ptr(std::move(p))
    {
    }
    template <class M, class = std::enable_if_t<std::is_base_of_v<Metric<T>, M>>>
    /// An instance of any Metric subclass.
    MetricSpec(std::shared_ptr<M> p)
        : ptr(std::move(p))
    {
    }
    /// A Keras name ("accuracy", "mae", "auc"), resolved on the first batch from the shapes.
    MetricSpec(const char* name)
        : id(name)
    {
    }
    /// A Keras name, as the const char* form.
    MetricSpec(const std::string& name)
        : id(name)
    {
    }
    /// A Keras config or name, resolved on the first batch.
    MetricSpec(const json& config)
        : id(config)
    {
    }
};

/// The arrays of a model's inputs, targets or sample weights (Keras's x, y, sample_weight): one
/// array (a model with one input or output; sample weights then weigh every output, as Keras
/// uses a sample_weight that is not a list), a list in the model's input / output order, or a map
/// by input / output name (the names of the layers that make them: input_names(), output_names()).
/// Arrays given as lvalues are viewed, not copied (they must outlive the call, or the options that
/// hold the list); temporaries and braced lists are moved or copied in and owned.
template <class T>
class ArrayList {
public:
    /// No arrays (an absent argument: empty() is true).
    ArrayList() = default;
    /// One array, viewed (it must outlive the use of the list).
    ArrayList(const array_t<T>& a)
        : m_list{ &a }
    {
    }
    /// One temporary array, moved in and owned.
    ArrayList(array_t<T>&& a)
        : ArrayList(std::vector<array_t<T>>{ std::move(a) })
    {
    }
    /// An xtensor expression (xt::ones<float>({4, 3})) is evaluated into an owned array.
    template <class E, class = std::enable_if_t<xt::is_xexpression<std::decay_t<E>>::value &&
                                                !std::is_same_v<std::decay_t<E>, array_t<T>>>>
    ArrayList(E&& e)
        : ArrayList(array_t<T>(std::forward<E>(e)))
    {
    }
    /// One array per input / output in order, viewed.
    ArrayList(const std::vector<array_t<T>>& v)
    {
        for (const auto& a : v)
            m_list.push_back(&a);
    }
    /// One array per input / output in order, moved in and owned.
    ArrayList(std::vector<array_t<T>>&& v);
    /// A braced list of arrays, copied in and owned.
    ArrayList(std::initializer_list<array_t<T>> v)
        : ArrayList(std::vector<array_t<T>>(v))
    {
    }
    /// Arrays by input / output name, viewed.
    ArrayList(const std::map<std::string, array_t<T>>& m)
    {
        for (const auto& kv : m)
            m_named.emplace(kv.first, &kv.second);
    }
    /// Arrays by input / output name, moved in and owned.
    ArrayList(std::map<std::string, array_t<T>>&& m);

    /// True when no array was given.
    bool empty() const { return m_list.empty() && m_named.empty(); }
    /// True when the arrays were given as a map by name.
    bool by_name() const { return !m_named.empty(); }
    /// One array per name of `names`, in that order.
    /// requires: a list of names.size() arrays, or of one when `one_for_all` (it is then repeated);
    ///           a map whose keys are all among `names` (an absent name gives null when
    ///           `allow_missing`). Otherwise ValueError naming `what`, the expected names or count
    ///           and what was received.
    std::vector<const array_t<T>*> resolve(const std::vector<std::string>& names, const std::string& what,
                                           bool one_for_all = false, bool allow_missing = false) const;

private:
    std::vector<const array_t<T>*> m_list;
    std::map<std::string, const array_t<T>*> m_named;
    std::shared_ptr<const void> m_owned; // the moved-in arrays the pointers above point into
};

/// fit's validation data: arrays (viewed when given as lvalues, as ArrayList), or a batch source.
template <class T>
/// fit()'s validation_data: x, y and optional sample weights, each as an ArrayList.
struct ValidationData {
    ArrayList<T> x, y;
    std::optional<ArrayList<T>> sample_weight;
    /// Instead of the arrays: a source of batches (not owned: it must outlive fit).
    BatchSource<T>* source = nullptr;

    /// No validation data.
    ValidationData() = default;
    /// Arrays: x, y and optionally sample weights (lvalues viewed, as ArrayList).
    ValidationData(ArrayList<T> x_, ArrayList<T> y_, std::optional<ArrayList<T>> sample_weight_ = std::nullopt)
        : x(std::move(x_))
        , y(std::move(y_))
        , sample_weight(std::move(sample_weight_))
    {
    }
    /// A batch source (not owned).
    ValidationData(BatchSource<T>& source_)
        : source(&source_)
    {
    }
};

/// compile()'s arguments for a model with several outputs (Keras's compile(loss=[...] or {...},
/// loss_weights, metrics, weighted_metrics)). Each field is empty (not given), a list with one
/// entry (used for every output, tf.keras 2's rule for an argument that is not a list), a list with
/// one entry per output in output order, or (the *_by_name fields, instead of the list) a map by
/// output name; an output a map does not name gets no loss / weight / metrics. A null LossSpec
/// in a list means "no loss for this output" (Keras's None).
template <class T>
struct CompileOptions {
    std::vector<LossSpec<T>> loss;
    std::map<std::string, LossSpec<T>> loss_by_name;
    /// Each output's loss is multiplied by its weight in the total loss (Keras's loss_weights).
    std::vector<double> loss_weights;
    std::map<std::string, double> loss_weights_by_name;
    /// Metrics without sample weights, one list per output.
    std::vector<std::vector<MetricSpec<T>>> metrics;
    std::map<std::string, std::vector<MetricSpec<T>>> metrics_by_name;
    /// Metrics that receive the sample weights, one list per output.
    std::vector<std::vector<MetricSpec<T>>> weighted_metrics;
    std::map<std::string, std::vector<MetricSpec<T>>> weighted_metrics_by_name;
};

template <class T>
/// Keras's fit() arguments with its defaults (batch_size 32, epochs 1, verbose "auto", shuffle true).
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
    /// One weight per training sample, shape (n,), for every output (viewed when given as an
    /// lvalue, as ArrayList: it must outlive fit).
    std::optional<ArrayList<T>> sample_weight;
    /// Weight per class index, turned into sample weights (not with sample_weight; Keras's rule).
    std::map<int, double> class_weight;
    /// Instead of sample_weight: one array per output (a list, or a map by output name; an output
    /// a map does not name is unweighted). Last, so that aggregate initializers keep their order.
    ArrayList<T> output_sample_weights;
};

template <class T>
/// Keras's evaluate() arguments with its defaults (batch_size 32, verbose "auto").
struct EvaluateOptions {
    std::size_t batch_size = 32;
    int verbose = -1;
    /// As FitOptions::sample_weight.
    std::optional<ArrayList<T>> sample_weight;
    std::vector<CallbackPtr<T>> callbacks;
    /// As FitOptions: instead of sample_weight, one array per output.
    ArrayList<T> output_sample_weights;
};

template <class T>
/// Keras's predict() arguments with its defaults (batch_size 32, verbose "auto").
struct PredictOptions {
    std::size_t batch_size = 32;
    int verbose = -1;
    std::vector<CallbackPtr<T>> callbacks;
};

template <class T>
/// keras.Model: a layer made of layers with compile, fit, evaluate, predict and summary (see the top of this file).
class Model : public Layer<T> {
public:
    /// keras.Model(inputs, outputs, name): a functional model (class name "Functional") of the
    /// graph between symbolic tensors; Graph's rules and errors (framework/graph/graph.hpp).
    /// Built at once; calling it on real tensors runs the graph, on symbolic tensors records a
    /// node (so models nest as layers).
    Model(std::vector<KerasTensor<T>> inputs, std::vector<KerasTensor<T>> outputs, std::string name = "",
          bool trainable = true);
    /// keras.Model(input, output, name) for one input and one output; as the list form.
    Model(const KerasTensor<T>& input, const KerasTensor<T>& output, std::string name = "", bool trainable = true);

    /// The layers: a functional model's in Keras's order without its InputLayers (a layer
    /// used several times once), a Sequential's in call order.
    virtual std::vector<LayerPtr<T>> layers() const;
    /// The graph of a functional model; null for Sequential and subclassed models.
    const std::shared_ptr<const Graph<T>>& graph() const { return m_graph; }
    /// A functional model's symbolic inputs and outputs (empty otherwise).
    std::vector<KerasTensor<T>> inputs() const;
    /// A functional model's symbolic outputs, in output order (empty for other models).
    std::vector<KerasTensor<T>> outputs() const;
    /// The names of the layers that make the inputs / outputs (Keras's input_names, output_names).
    std::vector<std::string> input_names() const;
    /// The names of the layers that make the outputs, in output order (Keras's output_names).
    std::vector<std::string> output_names() const;
    /// Keras's Functional.input / output / input_shape / output_shape: the model's own symbolic
    /// tensors (its only input / output; ValueError when it has several). A model that is not
    /// functional answers as any layer, from the nodes of its calls.
    KerasTensor<T> input() const;
    /// The only output's symbolic tensor (ValueError when the model has several); other models as Layer::output.
    KerasTensor<T> output() const;
    /// The only input's shape, batch axis None (ValueError when several); other models as Layer::input_shape.
    dims_t input_shape() const;
    /// The only output's shape, batch axis None (ValueError when several); other models as Layer::output_shape.
    dims_t output_shape() const;
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
    /// Reseeds every layer, the i-th from a value mixed from `seed` and i (Layer::reseed).
    void reseed(std::uint64_t seed) override;
    /// A JSON list of the layers' random_state(), in layers() order.
    std::string random_state() const override;
    /// requires: a text random_state() of a model with the same layers gave (ValueError otherwise).
    void set_random_state(const std::string& state) override;
    /// A functional model's output masks: those its graph produced in the call just made on
    /// these inputs (a model's masks come from running it; the executors ask right after the
    /// call). Other models: as Layer.
    std::vector<Tensor<T>> compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                             const std::vector<Tensor<T>>& masks) const override;
    /// A model called on symbolic tensors: the masks its graph (or its layers in turn) would
    /// give its outputs for these input masks.
    std::vector<std::optional<dims_t>> compute_mask_shapes(const std::vector<dims_t>& input_shapes,
                                                           const std::vector<std::optional<dims_t>>& input_masks,
                                                           const std::vector<dims_t>& output_shapes) const override;
    /// The path the sublayer that owns `v` gives it (Layer's rule for a weight of no sublayer).
    std::string weight_path(const Variable<T>& v) const override;
    /// A functional model's config in Keras's functional form (framework/graph/functional.hpp).
    json get_config() const override;
    /// The only output's shape for `input_shape`, through the graph or the layers in turn.
    dims_t compute_output_shape(const dims_t& input_shape) const override;
    /// Every output's shape for one shape per input, through the graph (functional) or the layers in turn.
    std::vector<dims_t> compute_output_shape_list(const std::vector<dims_t>& input_shapes) const override;

    // ---- compile --------------------------------------------------------------------------------
    /// Keras's compile. The weights that training updates are the trainable weights at the first
    /// training step after compile: as in Keras, changing a layer's `trainable` afterwards takes
    /// effect in fit only after compile is called again (Note [Trainable after compile] in
    /// model.cpp). Compiling again with the same optimizer keeps its slots and step count for the
    /// weights it had and adds slots for the new ones. With several outputs
    /// `loss` and `metrics` apply to every output (tf.keras 2's rule; CompileOptions gives each
    /// output its own).
    void compile(OptimizerSpec<T> optimizer, LossSpec<T> loss, std::vector<MetricSpec<T>> metrics = {});
    /// requires: every list of `options` has one entry or one per output, every map names outputs
    ///           of the model, some output has a loss (ValueError naming the argument otherwise).
    void compile(OptimizerSpec<T> optimizer, CompileOptions<T> options);
    /// Whether compile() has been called; fit, evaluate, train_on_batch and test_on_batch require it.
    bool compiled() const { return !m_heads.empty(); }
    /// The optimizer given to compile() (null before).
    const OptimizerPtr<T>& optimizer() const { return m_optimizer; }
    /// The loss of the first output that has one.
    const LossPtr<T>& loss() const;
    /// The metrics of the first output as given to compile() (names unresolved).
    const std::vector<MetricSpec<T>>& metric_specs() const;
    /// compile()'s arguments as given (a training_config stores them so).
    const CompileOptions<T>& compile_options() const { return m_compile_options; }

    // ---- training loop -----------------------------------------------------------------------------
    // x, y and sample weights are ArrayLists: one array, a list per input / output, or a map by
    // name. y holds one array per output; sample weights one for all outputs or one per output.
    // Outputs that have no loss and no metrics still need their y (Keras's rule for lists).

    /// requires: compile() called (RuntimeError otherwise); x and y (and sample weights) with the
    ///           same number of samples (ValueError naming the sizes otherwise); batch_size >= 1.
    /// ensures:  epochs [initial_epoch, epochs) run unless a callback stops training; the History
    ///           holds one entry per epoch run, named as Keras 3 names them (Note [Names of the
    ///           logs] in framework/model.cpp).
    std::shared_ptr<History<T>> fit(const ArrayList<T>& x, const ArrayList<T>& y, const FitOptions<T>& options = {});
    /// Loss and metrics over x, y in batches (the batch losses averaged weighted by batch size).
    Logs evaluate(const ArrayList<T>& x, const ArrayList<T>& y, const EvaluateOptions<T>& options = {});
    /// The only output for x in batches, without a tape, with training=false (ValueError when the
    /// model has several outputs: predict_list).
    array_t<T> predict(const ArrayList<T>& x, const PredictOptions<T>& options = {});
    /// Every output for x, in output order.
    std::vector<array_t<T>> predict_list(const ArrayList<T>& x, const PredictOptions<T>& options = {});

    // With a batch source (Keras's PyDataset): the source decides the batches, their order and
    // their sample weights, so options.batch_size and shuffle are not used; validation_split and
    // sample_weight in the options are ValueErrors (as Keras), class_weight applies to each batch.
    // Each batch must hold one array per input (and, but for predict, per output) with the same
    // number of samples, at least one (ValueError naming the batch otherwise).

    /// As fit(x, y): on_epoch_begin / on_epoch_end of `data` around each epoch.
    std::shared_ptr<History<T>> fit(BatchSource<T>& data, const FitOptions<T>& options = {});
    /// As evaluate(x, y), over the batches of `data`.
    Logs evaluate(BatchSource<T>& data, const EvaluateOptions<T>& options = {});
    /// The predictions of the batches, concatenated in batch order (the outputs are held in memory).
    array_t<T> predict(BatchSource<T>& data, const PredictOptions<T>& options = {});
    /// Every output for the batches of `data`, in output order.
    std::vector<array_t<T>> predict_list(BatchSource<T>& data, const PredictOptions<T>& options = {});
    /// One gradient step on one batch. As Keras 3, metrics are not reset between calls
    /// (reset_metrics() does it); returns the running logs.
    /// Several processes (Note [Data-parallel training]): x is the global batch, the same on every
    /// rank; each rank steps on its contiguous share as fit does and every rank returns the global
    /// batch's logs (test_on_batch too; predict_on_batch gathers the rows on every rank). Every rank
    /// must call. The first such call on a model that fit/evaluate/predict have not synchronized
    /// yet takes rank 0's weights.
    Logs train_on_batch(const ArrayList<T>& x, const ArrayList<T>& y, const array_t<T>* sample_weight = nullptr,
                        const std::map<int, double>* class_weight = nullptr);
    /// With sample weights for every output or per output.
    Logs train_on_batch(const ArrayList<T>& x, const ArrayList<T>& y, const ArrayList<T>& sample_weight,
                        const std::map<int, double>* class_weight = nullptr);
    /// Loss and metrics on one batch without a gradient step; metrics accumulate as in train_on_batch (RuntimeError before compile).
    Logs test_on_batch(const ArrayList<T>& x, const ArrayList<T>& y, const array_t<T>* sample_weight = nullptr);
    /// With sample weights for every output or per output.
    Logs test_on_batch(const ArrayList<T>& x, const ArrayList<T>& y, const ArrayList<T>& sample_weight);
    /// The only output for x as one batch, training=false (ValueError when the model has several outputs).
    array_t<T> predict_on_batch(const ArrayList<T>& x);
    /// Every output for x as one batch, in output order.
    std::vector<array_t<T>> predict_on_batch_list(const ArrayList<T>& x);

    /// The compiled loss (with sample weights, may be empty) plus the sum of losses().
    Tensor<T> compute_loss(const Tensor<T>& y, const Tensor<T>& y_pred, const Tensor<T>& sample_weight = Tensor<T>());
    /// Several outputs: the sum over outputs of loss weight * loss (sample weights one per output,
    /// each possibly empty, or none) plus the sum of losses().
    Tensor<T> compute_loss_list(const std::vector<Tensor<T>>& y, const std::vector<Tensor<T>>& y_pred,
                                const std::vector<Tensor<T>>& sample_weight = {});

    // ---- metrics -----------------------------------------------------------------------------------
    /// "loss" then the compiled metrics' names (those given as names appear once resolved), then
    /// the per-output losses ("dense_1_loss") of a model with several.
    std::vector<std::string> metrics_names() const;
    /// Resets the loss tracker and every compiled metric to its initial state (as fit and evaluate do at their start).
    void reset_metrics();
    /// {"loss": ..., metric name: ...} as they stand.
    Logs get_metrics_result() const;
    /// +1/-1 for a metric known to be maximized/minimized ("loss": -1), 0 otherwise.
    int metric_direction(const std::string& name) const;

    /// Keras's model.stop_training: set by a callback (EarlyStopping), fit ends after the current epoch.
    bool stop_training() const { return m_stop_training; }
    /// Asks fit to stop after the current epoch (true), or clears the request.
    void set_stop_training(bool s) { m_stop_training = s; }
    /// The History of the last fit (null before).
    const std::shared_ptr<History<T>>& history() const { return m_history; }

    /// Where fit stands, for callbacks that save a run to resume it (BackupAndRestore): the
    /// epoch, the batches of it done, and the epoch's order of the training samples (empty
    /// without shuffling). Valid inside fit, from on_epoch_begin on.
    struct TrainingPosition {
        int epoch = 0;                  ///< the epoch (counted from 0)
        std::int64_t step = 0;          ///< batches of that epoch done
        std::vector<std::size_t> order; ///< the epoch's sample order; empty without shuffling
    };
    /// Where fit is: the epoch, the batches of it done and its sample order (what BackupAndRestore saves).
    const TrainingPosition& training_position() const { return m_position; }
    /// Called from on_train_begin: fit then starts at `p.epoch`, skipping its first `p.step`
    /// batches, in p.order (when not empty; it must be a permutation of the training samples)
    /// instead of drawing a new order for that epoch. Keras's `model._initial_epoch`, to the batch.
    void resume_training_at(TrainingPosition p) { m_resume = std::move(p); }

    // ---- summary -----------------------------------------------------------------------------------
    /// One row of the summary: what the table prints and `xtape summary --json` writes.
    struct SummaryRow {
        std::string name, class_name;
        /// The outputs of the layer's last call in this model; empty when unknown.
        std::vector<dims_t> output_shapes;
        std::size_t params = 0;
        bool built = false;
        /// "layer[node][tensor]" of every call's inputs (functional models; empty otherwise).
        std::vector<std::string> connected_to;
    };
    /// The rows of the summary table, in its order.
    std::vector<SummaryRow> summary_rows() const;
    /// The weight counts under the table: trainable, non-trainable, optimizer (0 before its first step).
    struct ParamCounts {
        std::size_t trainable = 0, non_trainable = 0, optimizer = 0;
    };
    /// The trainable, non-trainable and optimizer weight counts that summary() prints.
    ParamCounts param_counts() const;
    /// Keras 3's summary table (as Keras prints it when output is not a terminal). line_length <= 0:
    /// min(88, terminal columns - 4), the columns from $COLUMNS, the terminal, or 80.
    std::string summary_string(int line_length = 0) const;
    /// Prints summary_string() to `os` (std::cout by default).
    void summary(std::ostream* os = nullptr, int line_length = 0) const;

protected:
    /// For Sequential and subclassed models, which override call_list.
    Model(std::string class_name, std::string name, bool trainable = true);

    /// Builds every layer in turn for `input_shape` (the layers are a chain: Sequential).
    void build(const dims_t& input_shape) override;
    /// A functional model is built at construction; others build as Layer does.
    void build_list(const std::vector<dims_t>& input_shapes) override;
    /// A functional model runs its graph; other models must override this.
    std::vector<Tensor<T>> call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                     const CallArgs& args) override;
    /// A functional model checks every input against its Input's shape (Keras's message).
    void check_input_list(const std::vector<shape_t>& shapes) const override;


    /// One batch: one tensor per input, per output, and per output a sample weight (may be empty).
    Logs train_step(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y,
                    const std::vector<Tensor<T>>& sample_weight);
    /// One evaluation batch: forward with training=false, updates the loss tracker and metrics; returns the running logs.
    Logs test_step(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y,
                   const std::vector<Tensor<T>>& sample_weight);

private:
    /// One output's compiled loss and metrics.
    struct Head {
        std::string output_name;
        LossPtr<T> loss;                 ///< null: the output has no loss
        std::optional<double> loss_weight;
        std::vector<MetricSpec<T>> metric_specs, weighted_metric_specs;
        std::vector<MetricPtr<T>> metrics, weighted_metrics; ///< resolved on the first batch
        Mean<T> loss_tracker;            ///< the unweighted loss, logged when several outputs have one
    };
    /// Arrays resolved against the model: one per input, per output, per output (null: none).
    struct Data {
        std::vector<const array_t<T>*> x, y, sample_weight;
    };
    void assert_compiled(const char* what) const;
    std::vector<std::string> data_input_names() const;
    std::vector<std::string> data_output_names() const;
    Data resolve_data(const char* what, const ArrayList<T>& x, const ArrayList<T>* y,
                      const ArrayList<T>* sample_weight) const;
    /// fit's and evaluate's sample weights: `one` for every output or `per_output`, not both.
    Data resolve_data(const char* what, const ArrayList<T>& x, const ArrayList<T>& y,
                      const std::optional<ArrayList<T>>& one, const ArrayList<T>& per_output) const;
    /// This rank's share of a batch of a source, as tensors: one per input, per output and per
    /// output's sample weights (empty: none); `size` is the whole batch's.
    struct BatchShare {
        std::vector<Tensor<T>> x, y, sample_weight;
        std::size_t size = 0;
    };
    BatchShare share_of_batch(Batch<T>&& batch, const std::string& what, std::size_t index, bool targets,
                              const std::map<int, double>& class_weight) const;
    /// compute_loss_list; also appends each output's unweighted loss to `per_output` when given.
    Tensor<T> total_loss(const std::vector<Tensor<T>>& y, const std::vector<Tensor<T>>& y_pred,
                         const std::vector<Tensor<T>>& sample_weight, std::vector<double>* per_output);
    void update_loss_trackers(const std::vector<double>& per_output, double batch);
    bool is_loss_tracker(const Metric<T>* m) const;
    void update_metrics(const std::vector<Tensor<T>>& y, const std::vector<Tensor<T>>& y_pred,
                        const std::vector<Tensor<T>>& sample_weight);
    /// The logged metrics in Keras's order with Keras's names (Note [Names of the logs]).
    std::vector<std::pair<std::string, const Metric<T>*>> named_metrics() const;
    // The loops: every form of fit / evaluate / predict ends in run_fit / run_evaluation / run_predict.
    Logs run_evaluation(BatchSource<T>& data, const std::string& what, CallbackList<T>& callbacks);
    std::shared_ptr<History<T>> run_fit(BatchSource<T>& train, BatchSource<T>* validation, const FitOptions<T>& options);
    std::vector<array_t<T>> run_predict(BatchSource<T>& data, const PredictOptions<T>& options);
    Logs run_evaluate(BatchSource<T>& data, const EvaluateOptions<T>& options);
    std::shared_ptr<History<T>> fit_impl(const ArrayList<T>& x, const ArrayList<T>& y, const FitOptions<T>& options);
    Logs evaluate_impl(const ArrayList<T>& x, const ArrayList<T>& y, const EvaluateOptions<T>& options);
    std::vector<array_t<T>> predict_impl(const ArrayList<T>& x, const PredictOptions<T>& options);
    /// One step on this rank's share of a global batch of `global_batch` samples (0: one process,
    /// the step of train_step / test_step). Note [Data-parallel training] in framework/data_parallel.hpp.
    Logs step_on_share(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y,
                       const std::vector<Tensor<T>>& sample_weight, bool training, std::size_t global_batch);
    /// Several processes: builds the model from one sample of the first batch if needed, then
    /// takes rank 0's weights.
    void sync_weights_from_rank0(BatchSource<T>& data);
    /// Several processes: the *_on_batch calls' rank-0 weights, once (m_weights_synced); builds the model
    /// from one sample of d first if needed.
    void sync_weights_once(const Data& d);
    /// train_on_batch / test_on_batch with several processes: this rank's share of the batch d.
    Logs step_on_batch_share(const Data& d, const std::vector<Tensor<T>>& sample_weight, bool training);
    std::vector<Metric<T>*> all_metrics();

    std::shared_ptr<const Graph<T>> m_graph;
    /// The inputs and output masks of each thread's last call, for compute_mask_list: per thread,
    /// so that threads calling one model for inference at once do not overwrite each other's
    /// (Note [Concurrent inference] in framework/model.cpp).
    struct LastCall {
        std::vector<Tensor<T>> inputs, output_masks;
    };
    struct LastCalls {
        std::mutex mutex;
        std::map<std::thread::id, LastCall> by_thread;
    };
    std::shared_ptr<LastCalls> m_last_calls = std::make_shared<LastCalls>();
protected:
    /// Keeps the output masks of the call just made on `inputs` (by this thread), for compute_mask_list.
    void remember_output_masks(const std::vector<Tensor<T>>& inputs, std::vector<Tensor<T>> masks);

private:
    OptimizerPtr<T> m_optimizer;
    CompileOptions<T> m_compile_options;
    std::vector<Head> m_heads; // one per output once compiled
    Mean<T> m_loss_tracker{ "loss" };
    bool m_stop_training = false;
    bool m_warned_no_weights = false;
    bool m_weights_synced = false; ///< rank 0's weights taken (several processes)
    // The weights training updates, taken at the first training step after compile.
    std::vector<Variable<T>> m_train_vars;
    bool m_train_vars_taken = false;
    std::shared_ptr<History<T>> m_history;
    TrainingPosition m_position;
    std::optional<TrainingPosition> m_resume;
};

template <class T>
using ModelPtr = std::shared_ptr<Model<T>>;

// Models from Keras JSON: framework/ knows no particular layer, so from_config() takes a
// LayerSpecFactory that turns a layer spec {"class_name", "config", ...} into a layer; the
// layers/ registry provides one (layer_from_config<T>), and the HDF5 loader in saving/ passes
// it. Nested Sequential/Functional specs are built here, recursively.

/// Makes a layer from its Keras spec {"class_name": ..., "config": {...}}; e.g.
/// [](const json& s) { return layer_from_config<float>(s); } with layers/registry.hpp.
template <class T>
using LayerSpecFactory = std::function<LayerPtr<T>(const json& layer_spec)>;

/// A model from {"class_name": "Sequential" | "Functional" | "Model", "config": {...}}
/// (KeyError for other class names). Keras 1/2/3 forms, nested models included.
template <class T>
std::shared_ptr<Model<T>> model_from_config(const json& spec, const LayerSpecFactory<T>& make_layer);

/// A layer spec through `make_layer`, or through model_from_config for a model class.
template <class T>
LayerPtr<T> layer_from_spec(const json& spec, const LayerSpecFactory<T>& make_layer);

/// {"class_name": model.class_name(), "config": model.get_config()}.
template <class T>
json model_to_json(const Model<T>& model);

/// The number of the first `samples` that fit trains on with `validation_split` (Keras's
/// train_validation_split: floor(samples * (1 - split)); the rest validate).
///   requires: the split leaves both parts non-empty (ValueError, Keras's message, otherwise).
std::size_t training_samples(std::size_t samples, double validation_split);

/// Keras's class_weight_to_sample_weights: the weight of each sample's class (the label for
/// class indices, the argmax of a one-hot row), 1 for classes not in the map.
template <class T>
array_t<T> class_weight_to_sample_weights(const array_t<T>& y, const std::map<int, double>& class_weight);

} // namespace xtape
