#include "saving/keras_h5_legacy_kernels.hpp"

#include <xtensor/xmanipulation.hpp>
#include <xtensor/xview.hpp>

namespace xtape::keras_h5 {

namespace {

bool is_conv(const std::string& c)
{
    return c == "Conv1D" || c == "Conv2D" || c == "Conv3D" || c == "Convolution1D" || c == "Convolution2D" ||
           c == "Convolution3D" || c == "AtrousConvolution1D" || c == "AtrousConvolution2D";
}

bool is_transpose(const std::string& c)
{
    return c == "Conv1DTranspose" || c == "Conv2DTranspose" || c == "Conv3DTranspose";
}

bool keras1(const std::string& version) { return !version.empty() && version[0] == '1'; }

bool channels_first(const json& config)
{
    auto f = config.find("data_format");
    if (f != config.end() && f->is_string())
        return f->get<std::string>() == "channels_first";
    auto d = config.find("dim_ordering");
    return d != config.end() && d->is_string() && d->get<std::string>() == "th";
}

std::size_t spatial_rank(const std::string& c)
{
    for (char r : { '1', '2', '3' })
        if (c.find(std::string(1, r) + "D") != std::string::npos)
            return std::size_t(r - '0');
    return 0;
}

} // namespace

bool needs_legacy_kernel_conversion(const std::string& class_name, const json& config,
                                    const std::string& keras_version, const std::string& backend)
{
    if (backend == "theano" && (is_conv(class_name) || is_transpose(class_name)))
        return true;
    if (keras1(keras_version) && is_transpose(class_name))
        return true; // Keras 1's Deconvolution2D kept Convolution2D's kernel layout
    if (!keras1(keras_version) || !is_conv(class_name))
        return false;
    return spatial_rank(class_name) == 1 || channels_first(config);
}

template <class T>
void convert_legacy_kernel(const std::string& class_name, const json& config, std::vector<array_t<T>>& values,
                           const std::string& keras_version, const std::string& backend)
{
    if (values.empty())
        return;
    array_t<T>& k = values[0];
    const std::size_t rank = spatial_rank(class_name);
    if (keras1(keras_version) && is_conv(class_name)) {
        if (rank == 1 && k.dimension() == 4) {
            long length = -1, filters = -1;
            if (auto it = config.find("filter_length"); it != config.end() && it->is_number_integer())
                length = it->get<long>();
            else if (auto ks = config.find("kernel_size"); ks != config.end())
                length = ks->is_array() ? (*ks)[0].get<long>() : ks->get<long>();
            if (auto it = config.find("nb_filter"); it != config.end() && it->is_number_integer())
                filters = it->get<long>();
            else if (auto f = config.find("filters"); f != config.end() && f->is_number_integer())
                filters = f->get<long>();
            // Keras 1.1 (filters, input_dim, length, 1); Keras 1.2 (length, 1, input_dim, filters)
            if (long(k.shape()[0]) != length || k.shape()[1] != 1 || long(k.shape()[3]) != filters)
                k = array_t<T>(xt::transpose(k, { 2, 3, 1, 0 }));
            k = array_t<T>(xt::view(k, xt::all(), 0, xt::all(), xt::all()));
        } else if (rank == 2 && k.dimension() == 4 && channels_first(config)) {
            k = array_t<T>(xt::transpose(k, { 2, 3, 1, 0 }));
        } else if (rank == 3 && k.dimension() == 5 && channels_first(config)) {
            k = array_t<T>(xt::transpose(k, { 2, 3, 4, 1, 0 }));
        }
    }
    if (keras1(keras_version) && is_transpose(class_name) && rank == 2 && k.dimension() == 4) {
        // Deconvolution2D stored (rows, cols, stack, filters) for "tf" and (filters, stack, rows, cols)
        // for "th"; Keras 2 and 3 keep (rows, cols, filters, stack), the order conv2d_transpose takes.
        if (channels_first(config))
            k = array_t<T>(xt::transpose(k, { 2, 3, 0, 1 }));
        else
            k = array_t<T>(xt::transpose(k, { 0, 1, 3, 2 }));
    }
    if (backend == "theano" && k.dimension() >= 3) {
        // Keras's convert_kernel: reverse every axis but the last two (the channel axes).
        array_t<T> flipped = k;
        const shape_t s = shape_of(k);
        const std::size_t spatial = s.size() - 2, inner = s[s.size() - 2] * s.back();
        std::size_t points = 1;
        for (std::size_t d = 0; d < spatial; ++d)
            points *= s[d];
        // Reversing every spatial axis of a row-major array reverses the order of the spatial points.
        for (std::size_t p = 0; p < points; ++p)
            std::copy(k.data() + p * inner, k.data() + (p + 1) * inner, flipped.data() + (points - 1 - p) * inner);
        k = std::move(flipped);
    }
}

template void convert_legacy_kernel<float>(const std::string&, const json&, std::vector<array_t<float>>&,
                                           const std::string&, const std::string&);
template void convert_legacy_kernel<double>(const std::string&, const json&, std::vector<array_t<double>>&,
                                            const std::string&, const std::string&);

} // namespace xtape::keras_h5
