// A two-tower functional model: two inputs share one encoder (the same Dense and
// BatchNormalization weights, two nodes each), their codes are concatenated, and two heads
// answer different questions with different losses:
//
//   query (8) ──┐                               ┌── "same_topic"  Dense(1, sigmoid)  binary_crossentropy
//               ├─ encoder ─ Concat(q, i, q*i) ─┤
//   item  (8) ──┘  Dense(16, relu)              └── "distance"    Dense(1)           mse (loss weight 0.5)
//                  BatchNormalization
//
// The data is made here: each query and item is a noisy copy of one of 4 topic centres; the
// first target says whether they share the topic, the second is the distance between them.
// The model is trained with fit (x and y as lists, metrics per output, a validation split),
// saved to HDF5, reloaded, and the reloaded model's predictions are checked to be identical.
//
//   functional_two_tower [--epochs 20] [--seed 3] [--out two_tower.h5]
#include "framework/model.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/merging/merge.hpp"
#include "saving/keras_h5.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

using namespace xtape;

namespace {

struct Data {
    array_t<float> query, item, same_topic, distance;
};

Data make_data(std::size_t n, unsigned seed)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> noise(0.f, 0.3f);
    std::uniform_int_distribution<int> topic(0, 3);
    const std::size_t dim = 8;
    Data d{ array_t<float>::from_shape({ n, dim }), array_t<float>::from_shape({ n, dim }),
            array_t<float>::from_shape({ n, 1 }), array_t<float>::from_shape({ n, 1 }) };
    for (std::size_t i = 0; i < n; ++i) {
        const int tq = topic(gen);
        // Half the pairs share the topic, so the classes are balanced.
        const int ti = i % 2 ? tq : (tq + 1 + topic(gen) % 3) % 4;
        double dist2 = 0;
        for (std::size_t k = 0; k < dim; ++k) {
            // Topic t's centre is 1 on features 2t and 2t+1, 0 elsewhere.
            const float cq = k / 2 == static_cast<std::size_t>(tq) ? 1.f : 0.f;
            const float ci = k / 2 == static_cast<std::size_t>(ti) ? 1.f : 0.f;
            d.query(i, k) = cq + noise(gen);
            d.item(i, k) = ci + noise(gen);
            dist2 += double(d.query(i, k) - d.item(i, k)) * double(d.query(i, k) - d.item(i, k));
        }
        d.same_topic(i, 0) = tq == ti ? 1.f : 0.f;
        d.distance(i, 0) = static_cast<float>(std::sqrt(dist2));
    }
    return d;
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    int epochs = 20;
    unsigned seed = 3;
    std::string out = "two_tower.h5";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--epochs"))
            epochs = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--seed"))
            seed = static_cast<unsigned>(std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--out"))
            out = argv[i + 1];
    }
    try {
        set_random_seed(seed);
        auto query = Input<float>({ 8 }, "query"), item = Input<float>({ 8 }, "item");
        // One encoder, two calls: both towers use (and train) the same weights and statistics.
        auto dense = std::make_shared<Dense<float>>(16, "relu", true, "encoder_dense");
        auto bn = std::make_shared<BatchNormalization<float>>();
        auto encode = [&](const KerasTensor<float>& x) { return (*bn)((*dense)(x)); };
        const auto cq = encode(query), ci = encode(item);
        // The product of the codes makes "same topic" a linear question for the head (a sum of
        // matching features); the codes themselves carry the distance.
        auto match = (*std::make_shared<Multiply<float>>("match"))({ cq, ci });
        auto codes = (*std::make_shared<Concatenate<float>>(-1, "codes"))({ cq, ci, match });
        auto same_topic = (*std::make_shared<Dense<float>>(1, "sigmoid", true, "same_topic"))(codes);
        auto distance = (*std::make_shared<Dense<float>>(1, "linear", true, "distance"))(codes);
        Model<float> model(std::vector<KerasTensor<float>>{ query, item },
                           std::vector<KerasTensor<float>>{ same_topic, distance }, "two_tower");
        model.summary();

        CompileOptions<float> co;
        co.loss_by_name = { { "same_topic", "binary_crossentropy" }, { "distance", "mse" } };
        co.loss_weights_by_name = { { "same_topic", 1.0 }, { "distance", 0.5 } };
        co.metrics_by_name = { { "same_topic", { "accuracy" } }, { "distance", { "mae" } } };
        model.compile("adam", co);

        const Data train = make_data(2048, seed + 1), test = make_data(512, seed + 2);
        FitOptions<float> fo;
        fo.epochs = epochs;
        fo.batch_size = 64;
        fo.validation_split = 0.1;
        fo.verbose = 2;
        auto history = model.fit({ train.query, train.item }, { train.same_topic, train.distance }, fo);
        std::printf("history keys:");
        for (const auto& kv : history->history)
            std::printf(" %s", kv.first.c_str());
        std::printf("\n");

        EvaluateOptions<float> eo;
        eo.verbose = 0;
        const Logs logs = model.evaluate({ test.query, test.item }, { test.same_topic, test.distance }, eo);
        std::printf("test: loss %.4f, same_topic_accuracy %.4f, distance_mae %.4f\n", logs.at("loss"),
                    logs.at("same_topic_accuracy"), logs.at("distance_mae"));

        save_model(model, out);
        auto reloaded = load_model<float>(out);
        PredictOptions<float> po;
        po.verbose = 0;
        const auto before = model.predict_list({ test.query, test.item }, po);
        const auto after = reloaded->predict_list({ test.query, test.item }, po);
        bool identical = before.size() == after.size();
        for (std::size_t k = 0; identical && k < before.size(); ++k)
            identical = before[k] == after[k];
        std::printf("saved to %s and reloaded: predictions of both outputs %s\n", out.c_str(),
                    identical ? "identical" : "DIFFER");
        return identical ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "functional_two_tower: %s\n", e.what());
        return 1;
    }
}
