// Batch-norm folding for inference (no Keras equivalent): an inference-mode BatchNormalization
// that directly follows a Dense, Conv1D/2D/3D or DepthwiseConv1D/2D is a per-channel affine map,
// y = (z - mean) * gamma / sqrt(var + eps) + beta, so it can be folded into that layer:
//   kernel'[..., o] = kernel[..., o] * s[o],  bias'[o] = (bias[o] - mean[o]) * s[o] + beta[o],
//   s[o] = gamma[o] / sqrt(var[o] + eps)   (computed in double, rounded once to T).
// A pair folds when the layer has no activation (Keras's "linear"), its output feeds only the
// BatchNormalization, and the BatchNormalization normalizes exactly the layer's output-channel
// axis (the last axis; axis 1 for channels_first convolutions). Everything works on configs and
// weights through the layer registry, so the result is an ordinary model that save_model writes as
// a Keras file Keras loads (the folded layers get use_bias = true).
#pragma once

#include "framework/model.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

/// A new model in which every foldable (layer, BatchNormalization) pair is one layer with the
/// folded kernel and bias; other layers keep their configs and weights. `model` is unchanged.
///   requires: a built Sequential or Functional model (ValueError otherwise).
///   ensures:  folded, when given, lists "layer <- batch_normalization" for each pair folded;
///             the new model predicts what `model` predicts in inference mode, up to rounding.
template <class T>
std::shared_ptr<Model<T>> fold_batch_norm(const Model<T>& model, std::vector<std::string>* folded = nullptr);

} // namespace xtape
