#include "layers/wrappers/register_wrappers.hpp"

#include "layers/wrappers/time_distributed.hpp"

namespace xtape {

template <class T>
void register_wrapper_layers(std::map<std::string, LayerFactory<T>>& factories)
{
    factories["TimeDistributed"] = [](const json& c) { return TimeDistributed<T>::from_config(c); };
    factories["Bidirectional"] = [](const json& c) -> LayerPtr<T> {
        const std::string name = c.is_object() && c.contains("name") && c["name"].is_string()
                                     ? c["name"].get<std::string>()
                                     : std::string("bidirectional");
        std::string inner = "?";
        if (c.is_object() && c.contains("layer") && c["layer"].is_object() && c["layer"].contains("class_name"))
            inner = c["layer"]["class_name"].dump();
        throw NotImplementedError("Bidirectional layer '" + name + "' wraps " + inner +
                                  ": Keras accepts only recurrent layers (LSTM, GRU, SimpleRNN, RNN) in "
                                  "Bidirectional, and xtape has no recurrent layers yet, so this model cannot load");
    };
}

template void register_wrapper_layers<float>(std::map<std::string, LayerFactory<float>>&);
template void register_wrapper_layers<double>(std::map<std::string, LayerFactory<double>>&);

} // namespace xtape
