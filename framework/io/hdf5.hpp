// A small RAII layer over the HDF5 C API: files, groups, attributes and numeric datasets.
// It knows the string encodings Keras and h5py produce, and nothing about layers or models.
//
// Contract for every function here:
//   ensures: any failure (missing or non-HDF5 file, truncated file, missing object, wrong type)
//            throws xtape::IOError whose message names the file and the object path inside it,
//            e.g. "foo.h5: no dataset 'model_weights/dense_1/dense_1/kernel:0'". HDF5's own error
//            printing is switched off; its innermost message, when useful, is appended to ours.
//   ensures: HDF5 handles are owned by RAII objects and released on every path, exceptions included.
//   ensures: safe to call from several threads: every call into HDF5 holds one library-wide lock
//            (the Debian HDF5 library is built without thread safety; Note [One HDF5 lock]).
//            Threads do not run HDF5 work in parallel; one H5File or H5Group object shared by
//            threads is as safe as any shared object (copies are cheap: give each thread its own).
//
// Paths: object paths are relative to the group they are given to and may be nested ("a/b/c").
// Keras weight names contain '/' ("dense_1/kernel:0"), which HDF5 turns into subgroups; pass them
// unchanged. A leading '/' means the file root, as in HDF5.
#pragma once

#include "framework/tensor.hpp"

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace xtape::io {

/// HDF5 object identifier; equals the C API's hid_t (checked in hdf5.cpp), so hdf5.h stays private.
using h5_id_t = std::int64_t;

namespace detail {
/// Holds one reference to an HDF5 identifier and releases it with the matching H5?close function.
/// Copies take another reference (H5Iinc_ref), so a copy stays valid after the original is gone.
class H5Handle {
public:
    /// The H5?close function that releases this kind of identifier (H5Fclose, H5Gclose, ...).
    using closer_t = int (*)(h5_id_t);
    /// No identifier (valid() is false).
    H5Handle() = default;
    /// Takes ownership of one reference to `id`, released with `closer`.
    H5Handle(h5_id_t id, closer_t closer)
        : m_id(id)
        , m_closer(closer)
    {
    }
    /// Another reference to the same identifier (H5Iinc_ref).
    H5Handle(const H5Handle& o);
    /// Releases this reference, then takes another reference to o's identifier.
    H5Handle& operator=(const H5Handle& o);
    /// Takes o's reference; o becomes invalid.
    H5Handle(H5Handle&& o) noexcept
        : m_id(o.m_id)
        , m_closer(o.m_closer)
    {
        o.m_id = -1;
    }
    /// Releases this reference and takes o's; o becomes invalid.
    H5Handle& operator=(H5Handle&& o) noexcept
    {
        if (this != &o) {
            reset();
            m_id = o.m_id;
            m_closer = o.m_closer;
            o.m_id = -1;
        }
        return *this;
    }
    /// Releases the reference, ignoring errors (close() paths report them).
    ~H5Handle() { reset(); }
    /// The identifier, -1 when invalid.
    h5_id_t get() const { return m_id; }
    /// Whether the handle holds an identifier.
    bool valid() const { return m_id >= 0; }
    /// Releases this reference now; false when HDF5 reported an error (e.g. a failed flush).
    bool reset() noexcept;

private:
    h5_id_t m_id = -1;
    closer_t m_closer = nullptr;
};
} // namespace detail

class H5Group;

/// The one lock around every HDF5 call (Note [One HDF5 lock] in hdf5.cpp): Debian's libhdf5 is
/// built without thread safety. Every H5File/H5Group entry point takes it; hold it yourself to keep
/// a sequence of calls together (io::H5Batches reads its next batch in the background under it).
std::recursive_mutex& hdf5_mutex();

/// An open HDF5 file. H5File and H5Group are cheap handles: copies share the open object.
/// Groups taken from a file keep it open even after every H5File copy is destroyed (HDF5's "weak"
/// close), so call close() and drop every H5Group before renaming or reopening a written file.
class H5File {
public:
    /// requires: `path` is an existing, complete HDF5 file. ensures: opened read-only.
    static H5File open_read(const std::string& path);
    /// ensures: a new empty file at `path` (an existing file is truncated), opened read-write.
    static H5File create(const std::string& path);
    /// True when `path` exists and starts with an HDF5 signature; never throws.
    static bool is_hdf5(const std::string& path) noexcept;
    /// Opens the HDF5 file held in `image` (e.g. an entry of a zip archive), read-only, in memory
    /// (HDF5's core driver, no backing file). `name` stands for the file in messages.
    ///   requires: `image` is a complete HDF5 file (IOError naming `name` otherwise).
    static H5File open_image(const std::string& name, const std::string& image);
    /// A new empty file that lives only in memory until image() copies it out.
    static H5File create_in_memory(const std::string& name);
    /// The bytes of a file made by create_in_memory, flushed: a complete HDF5 file.
    std::string image() const;

    /// The root group "/" of the file.
    H5Group root() const;
    /// The file's path, or the name given to open_image / create_in_memory.
    const std::string& path() const { return m_path; }
    /// Flushes everything written so far to the operating system and releases this handle (the
    /// file itself closes when no copy or group refers to it any more). Throws IOError if HDF5
    /// reports a failure. Idempotent; the destructor releases silently, without reporting errors.
    void close();

private:
    H5File(std::string path, detail::H5Handle h)
        : m_path(std::move(path))
        , m_handle(std::move(h))
    {
    }
    std::string m_path;
    detail::H5Handle m_handle;
};

/// An open group (the root or any subgroup); copies share it. Reading methods are const; writing
/// needs a file opened with H5File::create.
class H5Group {
public:
    /// Path of this group inside the file, "/" for the root, else "a/b" without a leading '/'.
    const std::string& name() const { return m_name; }
    /// The path of the file the group belongs to, as messages name it.
    const std::string& file_path() const { return m_file; }

    // ---- structure -----------------------------------------------------------------------
    /// True if every component of `path` exists and the last one is a group.
    bool has_group(const std::string& path) const;
    /// True if every component of `path` exists and the last one is a dataset.
    bool has_dataset(const std::string& path) const;
    /// requires: has_group(path).
    H5Group group(const std::string& path) const;
    /// Creates `path` and any missing intermediate groups; an existing group is simply opened.
    H5Group create_group(const std::string& path);
    /// Names of the direct members (groups and datasets), in HDF5's alphabetical order. Keras's
    /// order is NOT this order: take it from the layer_names / weight_names attributes.
    std::vector<std::string> member_names() const;

    // ---- attributes ----------------------------------------------------------------------
    /// True if the group has an attribute `name` (Keras's chunked `name0` form does not count).
    bool has_attribute(const std::string& name) const;
    /// True if `name` exists or Keras's chunked form `name0` does.
    bool has_string_array_attribute(const std::string& name) const;
    /// The names of the group's attributes, in HDF5's order.
    std::vector<std::string> attribute_names() const;
    /// Removes `name` if present (and nothing else).
    void delete_attribute(const std::string& name);

    /// A string attribute with one element (scalar or shape (1,)), fixed or variable length,
    /// ASCII or UTF-8. Fixed-length NULLPAD values lose their trailing NULs (as numpy does).
    std::string read_string_attribute(const std::string& name) const;
    /// A string array attribute, flattened in row-major order, as Keras's
    /// load_attributes_from_hdf5_group reads it:
    ///   - fixed or variable length, either character set; NUL padding stripped;
    ///   - a numeric attribute with 0 elements (Keras writes float64 shape (0,) for an empty
    ///     list) gives {}; a numeric attribute with elements is an error;
    ///   - when `name` is absent but `name0`, `name1`, ... exist, their contents are concatenated.
    ///   - a scalar string gives one element.
    std::vector<std::string> read_string_array_attribute(const std::string& name) const;
    /// Writes a scalar variable-length UTF-8 string, as h5py does for a Python str.
    /// Replaces an existing attribute of that name.
    void write_string_attribute(const std::string& name, const std::string& value);
    /// Writes as Keras's save_attributes_to_hdf5_group does:
    ///   - a fixed-length NULLPAD ASCII array sized to the longest value (numpy's S<n>);
    ///   - an empty list as a float64 array of shape (0,);
    ///   - when the array exceeds 64512 bytes, it is split with numpy's array_split into the
    ///     fewest chunks `name0`, `name1`, ... that each fit.
    /// requires: no single value longer than 64512 bytes. Replaces `name` and any `name<k>`.
    void write_string_array_attribute(const std::string& name, const std::vector<std::string>& values);

    /// A numeric attribute with exactly one element, converted to T (T: float, double, int32_t,
    /// int64_t, uint8_t). Integer <-> float conversion follows HDF5's rules.
    template <class T>
    T read_scalar_attribute(const std::string& name) const;
    /// Writes a scalar attribute of T's native type. Replaces an existing one.
    template <class T>
    void write_scalar_attribute(const std::string& name, T value);

    // ---- datasets ------------------------------------------------------------------------
    /// The shape of a dataset ({} for a scalar dataspace).
    shape_t dataset_shape(const std::string& path) const;
    /// numpy's name for the stored element type: "float32", "float64", "int32", "uint8", ...,
    /// "string" or "other".
    std::string dataset_dtype(const std::string& path) const;
    /// Reads any stored integer or floating-point dataset, converted to T. A string or compound
    /// dataset is an error.
    template <class T>
    array_t<T> read_dataset(const std::string& path) const;
    /// Rows [begin, begin + count) of a dataset's first axis (a hyperslab: the rest of the file is
    /// not read), converted to T as read_dataset.
    ///   requires: a dataset with at least one axis and begin + count <= its first dimension.
    template <class T>
    array_t<T> read_dataset_rows(const std::string& path, std::size_t begin, std::size_t count) const;
    /// Creates a contiguous, uncompressed dataset of T's native type (as Keras writes weights),
    /// creating intermediate groups. requires: nothing exists at `path` yet.
    template <class T>
    void write_dataset(const std::string& path, const array_t<T>& value);

private:
    friend class H5File;
    H5Group(std::string file, std::string name, detail::H5Handle h)
        : m_file(std::move(file))
        , m_name(std::move(name))
        , m_handle(std::move(h))
    {
    }
    /// Path of a member for messages: "model_weights/dense_1/kernel:0".
    std::string child_path(const std::string& path) const;
    std::string where() const;
    /// "file: " + message, as an IOError.
    [[noreturn]] void fail(const std::string& message) const;
    /// Opens an existing dataset or throws "no dataset".
    detail::H5Handle open_dataset(const std::string& path) const;
    detail::H5Handle open_attribute(const std::string& name) const;
    shape_t shape_of_dataset(h5_id_t dataset, const std::string& path) const;
    /// Throws unless the dataset holds integers or floating-point numbers.
    void require_numeric(h5_id_t dataset, const std::string& path) const;
    /// 1: group, 2: dataset, 0: another kind of object, -1: missing.
    int object_kind(const std::string& path) const;

    std::string m_file;
    std::string m_name;
    detail::H5Handle m_handle;
};

} // namespace xtape::io
