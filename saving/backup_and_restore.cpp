#include "saving/backup_and_restore.hpp"

#include "framework/collective.hpp"
#include "framework/errors.hpp"
#include "framework/io/atomic_file.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/model.hpp"
#include "framework/random.hpp"

#include <filesystem>

namespace xtape {

// Note [One backup file]
// A backup is one HDF5 file, replaced atomically (framework/io/atomic_file.hpp): a kill at any
// moment leaves either the previous backup or the new one, never weights of one step beside the
// position of another. Keras's two files (weights, then metadata JSON) can be left out of step
// by a kill between the writes, which a bit-identical resume cannot afford. Layout, version 1:
//   root attributes  xtape_backup (int32 version), epoch, step (int64: where fit resumes),
//                    global_rng, layer_rng (generator states as text), weight_count,
//                    optimizer_count (int64)
//   weights/<i>      model.weights()[i]          optimizer/<i>  optimizer->variables()[i]
//   order            int64 sample order of the interrupted epoch (absent: draw a new one)
// Everything is read and checked against the model before anything changes.

namespace {

constexpr std::int32_t k_backup_version = 1;

std::int64_t parse_save_freq(const std::string& save_freq)
{
    if (save_freq == "epoch")
        return 0;
    std::size_t used = 0;
    long long n = 0;
    try {
        n = std::stoll(save_freq, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != save_freq.size() || n <= 0)
        throw ValueError("Invalid value for argument `save_freq`. Received: save_freq=" + save_freq +
                         ". Expected either 'epoch' or an integer value.");
    return n;
}

} // namespace

template <class T>
BackupAndRestore<T>::BackupAndRestore(std::string backup_dir, std::string save_freq, bool delete_checkpoint)
    : m_dir(std::move(backup_dir))
    , m_save_every(parse_save_freq(save_freq))
    , m_delete(delete_checkpoint)
{
    if (m_dir.empty())
        throw ValueError("Empty `backup_dir` argument passed");
}

template <class T>
std::string BackupAndRestore<T>::backup_path() const
{
    return (std::filesystem::path(m_dir) / "backup.h5").string();
}

template <class T>
void BackupAndRestore<T>::on_train_begin(Logs&)
{
    m_restored = false;
    m_batches_since_save = 0;
    if (!this->model()->built())
        throw ValueError("To use the BackupAndRestore callback, you model must be built before you call `fit()`. "
                         "Model \"" + this->model()->name() +
                         "\" is unbuilt. You can build it beforehand by calling it on a batch of data.");
    // A process killed inside a backup write leaves that write's temporary behind; nobody else
    // will remove it (write_atomically names it "backup.h5.tmp.<pid>.<n>").
    std::error_code ec;
    const std::string tmp_prefix = std::filesystem::path(backup_path()).filename().string() + ".tmp.";
    for (std::filesystem::directory_iterator it(m_dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().rfind(tmp_prefix, 0) == 0)
            std::filesystem::remove(it->path(), ec);
    if (std::filesystem::exists(backup_path(), ec))
        restore();
}

template <class T>
void BackupAndRestore<T>::restore()
{
    const std::string path = backup_path();
    Model<T>& model = *this->model();
    io::H5File file = io::H5File::open_read(path);
    const io::H5Group root = file.root();
    if (!root.has_attribute("xtape_backup"))
        throw ValueError(path + ": not a BackupAndRestore backup (no 'xtape_backup' attribute)");
    const auto version = root.read_scalar_attribute<std::int32_t>("xtape_backup");
    if (version != k_backup_version)
        throw ValueError(path + ": backup version " + std::to_string(version) + ", this xtape reads version " +
                         std::to_string(k_backup_version));
    const auto epoch = root.read_scalar_attribute<std::int64_t>("epoch");
    const auto step = root.read_scalar_attribute<std::int64_t>("step");
    if (epoch < 0 || epoch > 1'000'000'000 || step < 0)
        throw ValueError(path + ": invalid position epoch " + std::to_string(epoch) + ", batch " + std::to_string(step));

    auto read_list = [&](const std::string& group, const std::string& count_attr,
                         const std::vector<Variable<T>>& expected) {
        const auto n = root.read_scalar_attribute<std::int64_t>(count_attr);
        if (n != static_cast<std::int64_t>(expected.size()))
            throw ValueError(path + ": the backup holds " + std::to_string(n) + " " + group + " arrays, model \"" +
                             model.name() + "\" has " + std::to_string(expected.size()));
        std::vector<array_t<T>> values;
        for (std::size_t i = 0; i < expected.size(); ++i) {
            const std::string name = group + "/" + std::to_string(i);
            if (root.dataset_shape(name) != expected[i].shape())
                throw ValueError(path + ": '" + name + "' has shape " + shape_str(root.dataset_shape(name)) +
                                 ", the model's " + expected[i].name() + " has shape " + shape_str(expected[i].shape()));
            values.push_back(root.read_dataset<T>(name));
        }
        return values;
    };
    const std::vector<Variable<T>> weights = model.weights();
    const std::vector<array_t<T>> weight_values = read_list("weights", "weight_count", weights);
    const auto n_opt = root.read_scalar_attribute<std::int64_t>("optimizer_count");
    const OptimizerPtr<T>& opt = model.optimizer();
    std::vector<array_t<T>> opt_values;
    if (n_opt > 0) {
        // A fresh optimizer has no slots yet: their shapes are those of the trainable weights,
        // so take the values as stored, and let set_state check them.
        for (std::int64_t i = 0; i < n_opt && i < 1'000'000; ++i)
            opt_values.push_back(root.read_dataset<T>("optimizer/" + std::to_string(i)));
        if (static_cast<std::int64_t>(opt_values.size()) != n_opt)
            throw ValueError(path + ": " + std::to_string(n_opt) + " optimizer arrays is more than any optimizer has");
    }
    typename Model<T>::TrainingPosition position;
    position.epoch = static_cast<int>(epoch);
    position.step = step;
    if (root.has_dataset("order")) {
        const array_t<std::int64_t> order = root.read_dataset<std::int64_t>("order");
        for (std::int64_t v : order) {
            if (v < 0)
                throw ValueError(path + ": the sample order holds " + std::to_string(v));
            position.order.push_back(static_cast<std::size_t>(v));
        }
    }
    const std::string global = root.read_string_attribute("global_rng");
    const std::string layers = root.read_string_attribute("layer_rng");
    file.close();

    // Checked: now change the model.
    model.set_weights(weight_values);
    if (!opt_values.empty()) {
        if (!opt)
            throw ValueError(path + ": the backup holds an optimizer state but model \"" + model.name() +
                             "\" is not compiled");
        opt->set_state(model.trainable_weights(), opt_values);
    }
    rng_t g;
    set_rng_state(g, global, path + ": global_rng");
    model.set_random_state(layers);
    global_rng() = g;
    model.resume_training_at(std::move(position));
    m_restored = true;
}

template <class T>
void BackupAndRestore<T>::save(int epoch, std::int64_t step, bool with_order)
{
    if (collective().rank() != 0)
        return; // the ranks hold the same state; one file, written by rank 0
    const Model<T>& model = *this->model();
    const std::string path = backup_path();
    std::error_code ec;
    std::filesystem::create_directories(m_dir, ec);
    if (ec)
        throw IOError(m_dir + ": cannot create the backup directory: " + ec.message());
    io::write_atomically(path, [&](const std::string& tmp) {
        io::H5File f = io::H5File::create(tmp);
        {
            io::H5Group root = f.root();
            root.write_scalar_attribute<std::int32_t>("xtape_backup", k_backup_version);
            root.write_scalar_attribute<std::int64_t>("epoch", epoch);
            root.write_scalar_attribute<std::int64_t>("step", step);
            root.write_string_attribute("global_rng", rng_state(global_rng()));
            root.write_string_attribute("layer_rng", model.random_state());
            const std::vector<Variable<T>> weights = model.weights();
            root.write_scalar_attribute<std::int64_t>("weight_count", static_cast<std::int64_t>(weights.size()));
            for (std::size_t i = 0; i < weights.size(); ++i)
                root.write_dataset<T>("weights/" + std::to_string(i), weights[i].value());
            std::vector<Variable<T>> opt_vars;
            if (model.optimizer())
                opt_vars = model.optimizer()->variables();
            root.write_scalar_attribute<std::int64_t>("optimizer_count", static_cast<std::int64_t>(opt_vars.size()));
            for (std::size_t i = 0; i < opt_vars.size(); ++i)
                root.write_dataset<T>("optimizer/" + std::to_string(i), opt_vars[i].value());
            const std::vector<std::size_t>& order = model.training_position().order;
            if (with_order && !order.empty()) {
                array_t<std::int64_t> o = array_t<std::int64_t>::from_shape({ order.size() });
                std::copy(order.begin(), order.end(), o.begin());
                root.write_dataset<std::int64_t>("order", o);
            }
        }
        f.close();
    });
}

template <class T>
void BackupAndRestore<T>::on_train_batch_end(int, Logs&)
{
    if (m_save_every == 0 || ++m_batches_since_save < m_save_every)
        return;
    m_batches_since_save = 0;
    const auto& pos = this->model()->training_position();
    // After an epoch's last batch the resumed run starts the next epoch with a new order.
    if (this->params().steps > 0 && pos.step >= this->params().steps)
        save(pos.epoch + 1, 0, false);
    else
        save(pos.epoch, pos.step, true);
}

template <class T>
void BackupAndRestore<T>::on_epoch_end(int epoch, Logs&)
{
    if (m_save_every == 0)
        save(epoch + 1, 0, false);
}

template <class T>
void BackupAndRestore<T>::on_train_end(Logs&)
{
    if (!m_delete || collective().rank() != 0)
        return;
    std::error_code ec;
    std::filesystem::remove(backup_path(), ec);
    if (ec)
        throw IOError(backup_path() + ": cannot delete the backup: " + ec.message());
    std::filesystem::remove(m_dir, ec); // only when empty: the directory may hold the user's files
}

template class BackupAndRestore<float>;
template class BackupAndRestore<double>;

} // namespace xtape
