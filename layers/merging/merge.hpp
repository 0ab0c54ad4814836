// Keras's merge layers (keras.layers.Add, Subtract, Multiply, Average, Maximum, Minimum,
// Concatenate, Dot): layers called on a list of tensors.
//
//   auto s = (*std::make_shared<Add<float>>())({ a, b });                 // symbolic or real
//   auto c = (*std::make_shared<Concatenate<float>>(-1))({ a, b });
//   auto d = (*std::make_shared<Dot<float>>(std::vector<int>{ 1, 1 }, true))({ a, b });
//
// Elementwise merges (Keras's Merge base): inputs of one batch size whose non-batch shapes
// broadcast (a dimension of 1 or None stretches; otherwise equal, ValueError "Inputs have
// incompatible shapes" naming both); an input of lower rank gets axes of size 1 inserted after
// the batch axis. Output masks: none unless every input has one, then their logical or
// (Keras's Merge.compute_mask). Multiply, Maximum and Minimum leave masked-out positions out of
// their values as Keras 3 does (Note [Masked merges] in merge.cpp).
// Gradients flow through the framework's broadcasting ops (framework/ops.hpp).
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

template <class T>
/// Keras's Merge base of the elementwise merges: broadcasting of the inputs, rank alignment and output masks (see the top of this file).
class Merge : public Layer<T> {
public:
    /// The inputs' broadcast shape, lower ranks given axes after the batch (ValueError, Keras's message, when they do not broadcast).
    std::vector<dims_t> compute_output_shape_list(const std::vector<dims_t>& input_shapes) const override;
    /// No mask unless every input has one, then their logical or (Keras's Merge.compute_mask).
    std::vector<Tensor<T>> compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                             const std::vector<Tensor<T>>& masks) const override;

protected:
    /// For subclasses: `class_name` is Keras's ("Add"); an empty `name` gets a unique one from it.
    Merge(std::string class_name, std::string name, bool trainable);
    /// requires: at least `min_inputs` inputs (ValueError), shapes that broadcast (ValueError).
    void build_list(const std::vector<dims_t>& input_shapes) override;
    std::vector<Tensor<T>> call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                     const CallArgs& args) override;
    void check_input_list(const std::vector<shape_t>& shapes) const override;
    /// The merge of inputs that all have the same rank.
    virtual Tensor<T> merge(const std::vector<Tensor<T>>& inputs) const = 0;
    /// The merge when some input has a mask (`masks` one per input, each undefined or broadcast
    /// to its input's rank); by default the masks do not change the values (Add, Subtract,
    /// Average). Note [Masked merges] in merge.cpp.
    virtual Tensor<T> merge_masked(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks) const;
    /// Keras's _apply_merge_op_and_or_mask with `op` (Maximum, Minimum).
    Tensor<T> merge_extremum_masked(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                    Tensor<T> (*op)(const Tensor<T>&, const Tensor<T>&)) const;
    /// Throws ValueError with Keras's message when `n` inputs are too few (at least 1; Subtract requires exactly 2).
    virtual void check_count(std::size_t n) const;
};

// EXTRA: further member declarations (the masked merges declare merge_masked).
#define XTAPE_MERGE_LAYER(Name, EXTRA)                                                                         \
    template <class T>                                                                                         \
    class Name : public Merge<T> {                                                                             \
    public:                                                                                                    \
        explicit Name(const std::string& name = "", bool trainable = true);                                   \
        static std::shared_ptr<Name> from_config(const json& config);                                          \
                                                                                                               \
    protected:                                                                                                 \
        Tensor<T> merge(const std::vector<Tensor<T>>& inputs) const override;                                  \
        void check_count(std::size_t n) const override;                                                        \
        EXTRA                                                                                                  \
    };
#define XTAPE_MASKED_MERGE                                                                                     \
    Tensor<T> merge_masked(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks)          \
        const override;

/// keras.layers.Add: the elementwise sum of one or more broadcastable inputs.
XTAPE_MERGE_LAYER(Add, )
XTAPE_MERGE_LAYER(Subtract, ) ///< exactly 2 inputs: inputs[0] - inputs[1]
/// keras.layers.Multiply: the elementwise product of one or more inputs; masked-out positions take no part (Keras 3).
XTAPE_MERGE_LAYER(Multiply, XTAPE_MASKED_MERGE)
/// keras.layers.Average: the elementwise mean of one or more inputs.
XTAPE_MERGE_LAYER(Average, )
/// keras.layers.Maximum: the elementwise maximum of one or more inputs; masked-out positions take no part (Keras 3).
XTAPE_MERGE_LAYER(Maximum, XTAPE_MASKED_MERGE)
/// keras.layers.Minimum: the elementwise minimum of one or more inputs; masked-out positions take no part (Keras 3).
XTAPE_MERGE_LAYER(Minimum, XTAPE_MASKED_MERGE)
// The members the merge macro declares (Doxygen reads no comment inside a macro):
/// \fn xtape::Add::Add(const std::string& name, bool trainable)
/// Add(name = "", trainable = true): the sum of one or more inputs; an empty name becomes "add", "add_1", ...
/// \fn xtape::Add::from_config(const json& config)
/// Builds an Add layer from a Keras config (its name and trainable).
/// \fn xtape::Subtract::Subtract(const std::string& name, bool trainable)
/// Subtract(name = "", trainable = true): inputs[0] - inputs[1]; called on exactly 2 inputs; an empty name becomes "subtract", "subtract_1", ...
/// \fn xtape::Subtract::from_config(const json& config)
/// Builds a Subtract layer from a Keras config (its name and trainable).
/// \fn xtape::Multiply::Multiply(const std::string& name, bool trainable)
/// Multiply(name = "", trainable = true): the product of one or more inputs; an empty name becomes "multiply", "multiply_1", ...
/// \fn xtape::Multiply::from_config(const json& config)
/// Builds a Multiply layer from a Keras config (its name and trainable).
/// \fn xtape::Average::Average(const std::string& name, bool trainable)
/// Average(name = "", trainable = true): the mean of one or more inputs; an empty name becomes "average", "average_1", ...
/// \fn xtape::Average::from_config(const json& config)
/// Builds an Average layer from a Keras config (its name and trainable).
/// \fn xtape::Maximum::Maximum(const std::string& name, bool trainable)
/// Maximum(name = "", trainable = true): the maximum of one or more inputs; an empty name becomes "maximum", "maximum_1", ...
/// \fn xtape::Maximum::from_config(const json& config)
/// Builds a Maximum layer from a Keras config (its name and trainable).
/// \fn xtape::Minimum::Minimum(const std::string& name, bool trainable)
/// Minimum(name = "", trainable = true): the minimum of one or more inputs; an empty name becomes "minimum", "minimum_1", ...
/// \fn xtape::Minimum::from_config(const json& config)
/// Builds a Minimum layer from a Keras config (its name and trainable).
#undef XTAPE_MERGE_LAYER
#undef XTAPE_MASKED_MERGE

/// keras.layers.Concatenate(axis=-1): inputs of equal rank whose shapes match except on `axis`
/// (ValueError with Keras's message otherwise). Masks: when any input has one, the inputs'
/// masks (all ones for an input without) concatenated, any() over the last axis.
template <class T>
class Concatenate : public Layer<T> {
public:
    /// Concatenate(axis = -1): the axis the inputs are joined along (negative counts from the end; not the batch axis).
    explicit Concatenate(int axis = -1, const std::string& name = "", bool trainable = true);
    /// Builds the layer from a Keras config (axis, default -1).
    static std::shared_ptr<Concatenate> from_config(const json& config);
    json get_config() const override;
    /// The concatenation axis as given (negative counts from the end).
    int axis() const { return m_axis; }
    /// The inputs' common shape with the sizes on `axis` summed (None if any is None); ValueError when the other sizes differ.
    std::vector<dims_t> compute_output_shape_list(const std::vector<dims_t>& input_shapes) const override;
    /// When any input has a mask: the masks (ones for an input without) concatenated along `axis`, any() over the last axis; otherwise none.
    std::vector<Tensor<T>> compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                             const std::vector<Tensor<T>>& masks) const override;

protected:
    void build_list(const std::vector<dims_t>& input_shapes) override;
    std::vector<Tensor<T>> call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                     const CallArgs& args) override;
    void check_input_list(const std::vector<shape_t>& shapes) const override;

private:
    int m_axis;
};

/// keras.layers.Dot(axes, normalize=false): the batch-wise dot product of two inputs along
/// axes[0] of the first and axes[1] of the second (an int is used for both; negative counts
/// from the end; the batch axis cannot be one). normalize L2-normalizes both along those axes
/// first (x / max(||x||, 1e-7), Keras 3's ops.normalize). Inputs of any rank >= 2 (ValueError
/// for rank < 2; Keras's batch_dot). Output shape: the first's without its axis,
/// then the second's without its axis and batch; (batch, 1) when that leaves one dimension.
/// No output mask.
template <class T>
class Dot : public Layer<T> {
public:
    /// Dot(axes, normalize = false) with the same axis for both inputs.
    explicit Dot(int axes, bool normalize = false, const std::string& name = "", bool trainable = true);
    /// Dot(axes, normalize = false) with one axis per input ({a} means the same for both).
    Dot(std::vector<int> axes, bool normalize = false, const std::string& name = "", bool trainable = true);
    /// Builds the layer from a Keras config (axes as an int or a list of two, normalize).
    static std::shared_ptr<Dot> from_config(const json& config);
    json get_config() const override;
    /// batch_dot's shape: the first input's without its axis, then the second's without its axis and batch ((batch, 1) if nothing is left).
    std::vector<dims_t> compute_output_shape_list(const std::vector<dims_t>& input_shapes) const override;
    /// No output mask (Keras's Dot.compute_mask).
    std::vector<Tensor<T>> compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                             const std::vector<Tensor<T>>& masks) const override;

protected:
    void build_list(const std::vector<dims_t>& input_shapes) override;
    std::vector<Tensor<T>> call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                     const CallArgs& args) override;
    void check_input_list(const std::vector<shape_t>& shapes) const override;

private:
    std::pair<std::size_t, std::size_t> resolved_axes(std::size_t rank1, std::size_t rank2) const;
    std::vector<int> m_axes; // one entry: the same axis for both
    bool m_normalize;
};

/// Registers the merge layers under their Keras class names (called by layers/registry.cpp).
template <class T>
void register_merging_layers();

} // namespace xtape
