// Layer: the Keras Layer contract in C++.
//
//   Dense<float> d(DenseOptions{...});      // name "dense", then "dense_1", ... (Keras's uids)
//   Tensor<float> y = d(x, /*training=*/true); // builds from x's shape on the first call
//   KerasTensor<float> h = (*dense)(Input<float>({ 4 }));   // symbolic: records a Node
//   auto s = (*add)({ h1, h2 });                              // a list of inputs (merges)
//
// Inputs and outputs are lists (Note [One tensor or a list]): the general entry points
// (build_list, call_list, check_input_list, compute_output_shape_list, compute_mask_list) take
// one entry per input. Their defaults require exactly one input and call the single-tensor
// methods (build, call, check_input, compute_output_shape, compute_mask), so a single-input layer
// overrides only those; a multi-input layer (a merge) overrides the list forms.
//
// Parameters and state are kept apart: add_weight(trainable=true) makes parameters that
// receive gradients; add_weight(trainable=false) makes state (moving statistics) that only
// the layer changes. weights() lists trainable weights first, then non-trainable ones, as
// Keras does; get_weights/set_weights use that order.
#pragma once

#include "framework/config.hpp"
#include "framework/errors.hpp"
#include "framework/graph/keras_tensor.hpp"
#include "framework/initializer.hpp"
#include "framework/tensor.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xtape {

/// "(None, 784)" as Keras prints shapes.
std::string dims_str(const dims_t& d);
/// The concrete shape of x as dims.
dims_t dims_of(const shape_t& s);

/// Keras's unique names: the first "dense", then "dense_1", "dense_2", ...
std::string unique_layer_name(const std::string& base);
/// Forgets the counters (keras.backend.clear_session()).
void reset_layer_names();
/// "BatchNormalization" -> "batch_normalization" (Keras's to_snake_case).
std::string to_snake_case(const std::string& class_name);

template <class T>
struct Node;

/// While one is alive on a thread, layer calls on that thread neither clear nor add losses.
/// predict holds one: nothing reads its calls' losses, and threads predicting with one model at
/// once must write nothing into it (Note [Concurrent inference] in framework/model.cpp).
class LossesDiscarded {
public:
    LossesDiscarded();
    ~LossesDiscarded();
    LossesDiscarded(const LossesDiscarded&) = delete;
    LossesDiscarded& operator=(const LossesDiscarded&) = delete;
    /// Whether one is alive on this thread.
    static bool active();

private:
    bool m_previous;
};

template <class T>
/// keras.layers.Layer: weights, build-on-first-call, real and symbolic calls, masks, losses and config (see the top of this file).
class Layer : public std::enable_shared_from_this<Layer<T>> {
public:
    /// `class_name` is Keras's ("Dense"); an empty `name` gets a unique one from it.
    explicit Layer(std::string class_name, std::string name = "", bool trainable = true);
    /// Destroys the layer; symbolic tensors and nodes that still hold it keep it alive through shared_ptr.
    virtual ~Layer() = default;
    /// Not copyable: a layer owns its variables and nodes; share it through LayerPtr instead.
    Layer(const Layer&) = delete;
    /// Not assignable, for the same reason as the copy constructor.
    Layer& operator=(const Layer&) = delete;

    /// Keras's class name as written in configs ("Dense", "BatchNormalization").
    const std::string& class_name() const { return m_class_name; }
    /// The layer's unique name ("dense_1"), used as the prefix of its weights' paths in files.
    const std::string& name() const { return m_name; }

    // ---- building and calling ---------------------------------------------------------------
    /// Whether build has run (on the first call, or through build_once); weights exist only then.
    bool built() const { return m_built; }
    /// Builds once for `input_shape` (batch dimension included, may be None).
    void build_once(const dims_t& input_shape) { build_once_list({ input_shape }); }
    /// Builds once for one shape per input.
    void build_once_list(const std::vector<dims_t>& input_shapes);
    /// The input shape the layer was built for (the first input's for a multi-input layer).
    const dims_t& build_input_shape() const;
    /// One shape per input, as built.
    const std::vector<dims_t>& build_input_shapes() const { return m_build_shapes; }

    /// Keras's __call__ on real tensors, the single path every call takes: builds on first use
    /// from the inputs' shapes (batch axis as None), checks the inputs against the built shapes
    /// (ShapeError naming the layer, the expected and the received shapes), runs call_list(),
    /// and adds the activity regularizer's loss for each output. `masks` is empty or one
    /// (possibly empty) tensor per input; args.training unset means false.
    std::vector<Tensor<T>> call_tensors(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                        const CallArgs& args);
    /// One real tensor in, one out. requires: the layer returns one output (ValueError otherwise).
    Tensor<T> operator()(const Tensor<T>& x, bool training = false, const Tensor<T>& mask = Tensor<T>());
    /// A list of real tensors in (a merge's inputs), every output out.
    std::vector<Tensor<T>> operator()(const std::vector<Tensor<T>>& xs, bool training = false,
                                      const std::vector<Tensor<T>>& masks = {});

    /// Symbolic call: builds from the tensors' shapes if needed, checks them, records a Node
    /// (with `training` as its call argument: unset follows the model's call) and returns the
    /// outputs' symbolic tensors. requires: the layer is owned by a std::shared_ptr (make_shared;
    /// ValueError otherwise: the tensors keep their layer alive).
    std::vector<KerasTensor<T>> call_symbolic(const std::vector<KerasTensor<T>>& inputs, const CallArgs& args);
    /// One symbolic tensor in, one out (ValueError for a layer with several outputs).
    KerasTensor<T> operator()(const KerasTensor<T>& x, std::optional<bool> training = std::nullopt);
    /// A list of symbolic tensors in, every output out (usable as one tensor when there is one).
    KerasTensors<T> operator()(const std::vector<KerasTensor<T>>& xs, std::optional<bool> training = std::nullopt);

    /// The output shape for `input_shape` (batch axis included, None allowed) without running the layer; the default returns the input shape unchanged.
    virtual dims_t compute_output_shape(const dims_t& input_shape) const { return input_shape; }
    /// One shape per input -> one shape per output; by default one input through compute_output_shape.
    virtual std::vector<dims_t> compute_output_shape_list(const std::vector<dims_t>& input_shapes) const;
    /// The mask of the output; by default the input mask passes through unchanged.
    virtual Tensor<T> compute_mask(const Tensor<T>& x, const Tensor<T>& mask) const
    {
        (void)x;
        return mask;
    }
    /// One mask per output from the inputs and their masks (`masks` empty or one per input);
    /// by default one input through compute_mask.
    virtual std::vector<Tensor<T>> compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                                     const std::vector<Tensor<T>>& masks) const;

    /// Keras's supports_masking: whether the layer's outputs carry the mask compute_mask_list
    /// gives. False by default, as in Keras 3; a layer that does not support masking still
    /// receives its inputs' masks in call, but its outputs carry none (Keras 3 destroys the mask
    /// there with a warning; tf.keras 2 raised). Note [Masks across layers] in layer.cpp.
    virtual bool supports_masking() const { return m_supports_masking; }
    /// Overrides supports_masking() (Keras sets the attribute in a layer's constructor).
    void set_supports_masking(bool s) { m_supports_masking = s; }
    /// The masks the outputs carry after a call on `inputs` with `masks`: compute_mask_list when
    /// the layer supports masking, otherwise none (an empty list). Every caller that moves masks
    /// from layer to layer (Sequential, the functional graph) goes through this one rule.
    std::vector<Tensor<T>> output_masks(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks) const;
    /// The masks a symbolic call attaches to its outputs (Keras's `_keras_mask`), as their shapes
    /// with None dimensions; nullopt for an output without a mask. `input_masks` holds one
    /// entry per input. The default runs compute_mask_list on placeholders (Note [Symbolic masks]
    /// in layer.cpp); models override it.
    virtual std::vector<std::optional<dims_t>>
    compute_mask_shapes(const std::vector<dims_t>& input_shapes, const std::vector<std::optional<dims_t>>& input_masks,
                        const std::vector<dims_t>& output_shapes) const;

    // ---- nodes: the layer's calls on symbolic tensors (tf.keras's layer-node API) ------------
    /// The nodes recorded by this layer's symbolic calls, in call order (node_index counts them).
    const std::vector<std::shared_ptr<Node<T>>>& inbound_nodes() const { return m_inbound_nodes; }
    /// The nodes (of other layers) that consume this layer's outputs and are still alive.
    std::vector<std::shared_ptr<Node<T>>> outbound_nodes() const;
    /// How many times the layer has been called on symbolic tensors.
    std::size_t inbound_node_count() const { return m_inbound_nodes.size(); }
    /// How many live nodes of other layers consume this layer's outputs.
    std::size_t outbound_node_count() const { return outbound_nodes().size(); }
    /// The input / output tensor(s) of the call `node_index` (ValueError when out of range; the
    /// singular forms also when that call has several tensors).
    KerasTensor<T> get_input_at(std::size_t node_index) const;
    /// The output tensor of the call `node_index` (ValueError when out of range or when that call has several outputs).
    KerasTensor<T> get_output_at(std::size_t node_index) const;
    /// Every input tensor of the call `node_index` (ValueError when out of range).
    std::vector<KerasTensor<T>> get_inputs_at(std::size_t node_index) const;
    /// Every output tensor of the call `node_index` (ValueError when out of range).
    std::vector<KerasTensor<T>> get_outputs_at(std::size_t node_index) const;
    /// The input shape (batch axis None) of the call `node_index`; ValueError as get_input_at.
    dims_t get_input_shape_at(std::size_t node_index) const;
    /// The output shape (batch axis None) of the call `node_index`; ValueError as get_output_at.
    dims_t get_output_shape_at(std::size_t node_index) const;
    /// The layer's only call's tensors and shapes. requires: exactly one inbound node
    /// (AttributeError otherwise, Keras's message).
    KerasTensor<T> input() const;
    /// The only call's output tensor (AttributeError unless exactly one inbound node, Keras's message).
    KerasTensor<T> output() const;
    /// The only call's input shape (AttributeError unless exactly one inbound node).
    dims_t input_shape() const;
    /// The only call's output shape (AttributeError unless exactly one inbound node).
    dims_t output_shape() const;
    /// The masks of the call `node_index`'s input / output tensors, as KerasTensor::keras_mask()
    /// gives them (the shape of the mask, nullopt for none); the singular forms require one
    /// tensor (ValueError otherwise).
    std::optional<dims_t> get_input_mask_at(std::size_t node_index) const;
    /// The mask shape of the call `node_index`'s only output, nullopt for none (ValueError when out of range or several outputs).
    std::optional<dims_t> get_output_mask_at(std::size_t node_index) const;
    /// The mask shape of every input of the call `node_index`, nullopt where an input has none.
    std::vector<std::optional<dims_t>> get_input_masks_at(std::size_t node_index) const;
    /// The mask shape of every output of the call `node_index`, nullopt where an output has none.
    std::vector<std::optional<dims_t>> get_output_masks_at(std::size_t node_index) const;
    /// The only call's input / output mask. requires: exactly one inbound node (AttributeError).
    std::optional<dims_t> input_mask() const;
    /// The only call's output mask shape, nullopt for none (AttributeError unless exactly one inbound node).
    std::optional<dims_t> output_mask() const;
    /// Records the node of an InputLayer (no inputs, one output of `shape`); for InputLayer.
    void add_input_node(const dims_t& shape);

    // ---- weights --------------------------------------------------------------------------
    // Virtual so that a model (a layer made of layers) aggregates its sublayers' weights.
    /// Every weight: trainable_weights() then non_trainable_weights(), Keras's order (the order of get_weights and of files).
    virtual std::vector<Variable<T>> weights() const;
    /// Empty while trainable() is false (Keras: a frozen layer has no trainable weights).
    virtual std::vector<Variable<T>> trainable_weights() const;
    /// The state (moving statistics) and, while trainable() is false, every weight (trainable ones first).
    virtual std::vector<Variable<T>> non_trainable_weights() const;
    /// Copies of the weights' values in weights() order (Keras's get_weights()).
    std::vector<array_t<T>> get_weights() const;
    /// requires: one array per weight, in weights() order, each of that weight's shape
    ///           (ValueError/ShapeError naming the layer, the weight and both shapes otherwise).
    void set_weights(const std::vector<array_t<T>>& values);
    /// The number of scalars in all weights, trainable or not (Keras's count_params(), the "Param #" of summary()).
    virtual std::size_t count_params() const;

    /// Keras's `trainable` (default true); false freezes every weight and, for BatchNormalization, means inference.
    bool trainable() const { return m_trainable; }
    /// Freezes (false) or unfreezes the layer; a model passes it to every sublayer, and fit() reads it at every step.
    virtual void set_trainable(bool t) { m_trainable = t; }

    // ---- losses ---------------------------------------------------------------------------
    // Keras 3's rules (Note [Losses added during a call] in layer.cpp): the outermost call of a
    // layer or model clears the losses added to it and to all its sublayers, then the call adds
    // new ones (add_loss in call(), the activity regularizer after each call). A sublayer called
    // twice inside one outer call keeps both calls' losses. add_loss outside a call is allowed;
    // that loss counts in losses() until the next outermost call that covers the layer clears it
    // (so fit() never sees it: its forward pass clears it first).

    /// Keras's order: the losses added to this layer and to its sublayers (since the last
    /// outermost call), then the regularization penalties of the trainable weights (computed
    /// now, so a live tape records them).
    std::vector<Tensor<T>> losses() const;
    /// Adds a scalar (or, summed, a tensor) loss; meant for call().
    void add_loss(const Tensor<T>& loss);
    /// Only the losses added to this layer itself (no sublayers', no regularization penalties).
    const std::vector<Tensor<T>>& added_losses() const { return m_added_losses; }
    /// Appends the losses added to this layer, then (for a model) to its sublayers in order.
    virtual void collect_added_losses(std::vector<Tensor<T>>& out) const;
    /// Forgets the losses added to this layer and to its sublayers.
    /// (A layer without losses is not written: threads may call it at once, Note [Concurrent inference].)
    virtual void clear_losses()
    {
        if (!m_added_losses.empty())
            m_added_losses.clear();
    }
    /// Keras's activity_regularizer: its penalty of each output is added to losses() after each call (null: none).
    void set_activity_regularizer(RegularizerPtr<T> r) { m_activity_regularizer = std::move(r); }
    /// The activity regularizer, null when there is none.
    const RegularizerPtr<T>& activity_regularizer() const { return m_activity_regularizer; }

    // ---- random state ---------------------------------------------------------------------
    /// Restarts the layer's random generators (Keras's SeedGenerator) from `seed`, so that
    /// repeated calls draw the same noise: a gradient check evaluates one function of the weights
    /// (gradcheck_model). No-op for layers that draw nothing; models give each sublayer its own
    /// seed derived from `seed`, wrappers pass it to the layer they wrap.
    virtual void reseed(std::uint64_t seed) { (void)seed; }
    /// The state of the layer's random generators as text ("" for a layer that draws nothing);
    /// set_random_state(random_state()) continues the same sequence. A model joins its
    /// sublayers' states. BackupAndRestore saves it so that a resumed run drops the same units.
    virtual std::string random_state() const { return {}; }
    /// requires: a text random_state() of a layer of the same structure gave (ValueError otherwise).
    virtual void set_random_state(const std::string& state) { (void)state; }

    // ---- config ---------------------------------------------------------------------------
    /// Keras's keys: the base writes name, trainable, dtype; subclasses add theirs.
    virtual json get_config() const;
    /// Path of a weight as Keras names it in files: "<layer name>/<weight name>".
    /// A model names a sublayer's weight as that layer does (tf.keras's variable names are
    /// scoped by the innermost layer: "dense_1/kernel" inside a nested model too).
    virtual std::string weight_path(const Variable<T>& v) const { return m_name + "/" + v.name(); }

protected:
    /// Creates the layer's weights for `input_shape`. Called once, by build_once().
    virtual void build(const dims_t& input_shape) { (void)input_shape; }
    /// One shape per input; by default requires one input and calls build.
    virtual void build_list(const std::vector<dims_t>& input_shapes);
    /// The computation; x has the built shape (up to the batch dimension). A layer that
    /// overrides call_list instead need not override this (the default throws).
    virtual Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask);
    /// The general computation: one tensor per input, `masks` empty or one per input, the
    /// call's arguments (training resolved); returns every output. By default requires one
    /// input and calls call(x, training, mask).
    virtual std::vector<Tensor<T>> call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                             const CallArgs& args);
    /// Checks x against the built input shape; override for layers that accept other ranks.
    virtual void check_input(const shape_t& x) const;
    /// Checks every input; by default requires one input and calls check_input.
    virtual void check_input_list(const std::vector<shape_t>& shapes) const;
    /// "Layer "dense" expects 1 input(s), but it received 2 input tensors" (Keras's message).
    void require_one_input(std::size_t n) const;

    /// Creates a weight named `name` ("kernel") of `shape` drawn from `initializer`, tracked in creation order; trainable=false makes state. ValueError without an initializer, ShapeError when it returns another shape.
    Variable<T> add_weight(const std::string& name, const shape_t& shape, const InitializerPtr<T>& initializer,
                           const RegularizerPtr<T>& regularizer = nullptr,
                           const ConstraintPtr<T>& constraint = nullptr, bool trainable = true);

private:
    std::string m_class_name;
    std::string m_name;
    bool m_trainable;
    bool m_supports_masking = false;
    bool m_built = false;
    std::vector<dims_t> m_build_shapes;
    std::vector<std::shared_ptr<Node<T>>> m_inbound_nodes;
    std::vector<std::weak_ptr<Node<T>>> m_outbound_nodes;
    std::vector<Variable<T>> m_variables; // creation order
    std::vector<Tensor<T>> m_added_losses;
    RegularizerPtr<T> m_activity_regularizer;
};

template <class T>
using LayerPtr = std::shared_ptr<Layer<T>>;

} // namespace xtape
