#include "framework/io/hdf5.hpp"

#include "framework/limits.hpp"

#include <hdf5.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <type_traits>

namespace xtape::io {

static_assert(std::is_same_v<hid_t, h5_id_t>, "h5_id_t must equal HDF5's hid_t");
static_assert(std::is_same_v<herr_t, int>, "H5Handle::closer_t assumes herr_t is int");

using detail::H5Handle;

std::recursive_mutex& hdf5_mutex()
{
    static std::recursive_mutex m;
    return m;
}

namespace {

// Note [One HDF5 lock]
// Debian's libhdf5 is built without thread safety: two threads inside the library at once
// corrupt its global state (identifier tables, free lists, the error stack). Every call into
// HDF5 in xtape is in this file, and every entry point of H5File, H5Group and H5Handle holds
// this one lock for its whole body, so that the error stack read by h5_detail() belongs to the
// failing call. Recursive: entry points call each other (has_group -> object_kind, group ->
// H5Handle copies), and releasing a handle inside a locked function takes it again. It is public
// (hdf5_mutex()) so that a sequence of calls can hold it across calls (io::H5Batches).
struct H5Lock {
    H5Lock()
        : guard(hdf5_mutex())
    {
    }
    std::lock_guard<std::recursive_mutex> guard;
};

} // namespace

H5Handle::H5Handle(const H5Handle& o)
    : m_id(o.m_id)
    , m_closer(o.m_closer)
{
    const H5Lock lock; // Note [One HDF5 lock]
    if (m_id >= 0 && H5Iinc_ref(m_id) < 0)
        m_id = -1; // cannot happen for a valid identifier; never close what we do not own
}

bool H5Handle::reset() noexcept
{
    bool ok = true;
    if (m_id >= 0 && m_closer) {
        const H5Lock lock; // Note [One HDF5 lock]
        ok = m_closer(m_id) >= 0;
    }
    m_id = -1;
    return ok;
}

H5Handle& H5Handle::operator=(const H5Handle& o)
{
    if (this != &o) {
        H5Handle copy(o);
        *this = std::move(copy);
    }
    return *this;
}

namespace {

// Keras's HDF5_OBJECT_HEADER_LIMIT: attributes larger than this do not fit in an object header.
constexpr std::size_t k_attribute_limit = 64512;

// HDF5 prints its whole error stack to stderr by default; our exceptions carry the useful part.
// Called on every entry point that can come first, because in thread-safe HDF5 builds the
// setting is per thread.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

herr_t innermost_error(unsigned n, const H5E_error2_t* err, void* client)
{
    // Walked upward, entry 0 is the most specific failure (e.g. "truncated file: eof = ...").
    if (n == 0 && err && err->desc)
        *static_cast<std::string*>(client) = err->desc;
    return 0;
}

// The innermost message of HDF5's current error stack as " (HDF5: ...)", or "". Must be called
// right after the failing call: the next API call clears the stack.
std::string h5_detail()
{
    std::string desc;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, &desc);
    return desc.empty() ? std::string() : " (HDF5: " + desc + ")";
}

template <class T>
hid_t native_type();
template <>
hid_t native_type<float>()
{
    return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<double>()
{
    return H5T_NATIVE_DOUBLE;
}
template <>
hid_t native_type<std::int32_t>()
{
    return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<std::int64_t>()
{
    return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<std::uint8_t>()
{
    return H5T_NATIVE_UINT8;
}

// numpy's name for an HDF5 type, for messages and dataset_dtype().
std::string dtype_of(hid_t type)
{
    const H5T_class_t cls = H5Tget_class(type);
    const std::size_t size = H5Tget_size(type);
    if (cls == H5T_FLOAT)
        return "float" + std::to_string(8 * size);
    if (cls == H5T_INTEGER)
        return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(8 * size);
    if (cls == H5T_STRING)
        return "string";
    return "other";
}

bool is_numeric(hid_t type)
{
    const H5T_class_t cls = H5Tget_class(type);
    return cls == H5T_FLOAT || cls == H5T_INTEGER;
}

std::string shape_of_space(hid_t space)
{
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(rank > 0 ? rank : 0);
    if (rank > 0)
        H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    return shape_str(dims);
}

// Strips padding the way numpy and h5py present fixed-length strings.
std::string unpad(const char* p, std::size_t size, H5T_str_t pad)
{
    std::string s(p, size);
    if (pad == H5T_STR_NULLTERM) {
        s.resize(std::strlen(s.c_str())); // stops at the first NUL
    } else {
        const char fill = pad == H5T_STR_SPACEPAD ? ' ' : '\0';
        while (!s.empty() && s.back() == fill)
            s.pop_back();
    }
    return s;
}

// Frees the strings HDF5 allocated for a variable-length read, also when copying them throws.
struct VlenReclaim {
    hid_t type, space;
    void* buf;
    ~VlenReclaim() { H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf); }
};

std::vector<std::string> split_path(const std::string& path)
{
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i <= path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string::npos)
            j = path.size();
        if (j > i)
            parts.push_back(path.substr(i, j - i));
        i = j + 1;
    }
    return parts;
}

struct NameCollector {
    std::vector<std::string>* names;
    std::exception_ptr error;
};

// Iteration callbacks must not let a C++ exception cross HDF5's C frames.
herr_t collect_link(hid_t, const char* name, const H5L_info_t*, void* client)
{
    auto* c = static_cast<NameCollector*>(client);
    try {
        c->names->emplace_back(name);
    } catch (...) {
        c->error = std::current_exception();
        return -1;
    }
    return 0;
}

herr_t collect_attribute(hid_t, const char* name, const H5A_info_t*, void* client)
{
    return collect_link(-1, name, nullptr, client);
}

} // namespace

// ---- H5File ------------------------------------------------------------------------------------

H5File H5File::open_read(const std::string& path)
{
    const H5Lock lock; // Note [One HDF5 lock]
    silence_hdf5();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw IOError(path + ": no such file");
    if (std::filesystem::is_directory(path, ec))
        throw IOError(path + ": is a directory, not an HDF5 file");
    const htri_t sig = H5Fis_hdf5(path.c_str());
    if (sig == 0)
        throw IOError(path + ": not an HDF5 file (no HDF5 signature)");
    if (sig < 0)
        throw IOError(path + ": cannot read file" + h5_detail());
    const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0)
        throw IOError(path + ": cannot open HDF5 file, it may be truncated or corrupt" + h5_detail());
    return H5File(path, H5Handle(id, H5Fclose));
}

H5File H5File::create(const std::string& path)
{
    const H5Lock lock; // Note [One HDF5 lock]
    silence_hdf5();
    const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (id < 0)
        throw IOError(path + ": cannot create HDF5 file" + h5_detail());
    return H5File(path, H5Handle(id, H5Fclose));
}

namespace {
/// A file-access property list for the core (in-memory) driver without a backing store.
H5Handle core_fapl(const std::string& name)
{
    H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (!fapl.valid() || H5Pset_fapl_core(fapl.get(), 1 << 20, 0) < 0)
        throw IOError(name + ": cannot set up an in-memory HDF5 file" + h5_detail());
    return fapl;
}

/// HDF5 tells open files apart by name when they have no backing file (the core driver compares
/// names), so every in-memory file gets its own, whatever name it shows in messages.
std::string unique_memory_name(const std::string& name)
{
    static std::atomic<unsigned long> counter{ 0 };
    return name + "#xtape-memory-" + std::to_string(++counter);
}
} // namespace

H5File H5File::open_image(const std::string& name, const std::string& image)
{
    const H5Lock lock; // Note [One HDF5 lock]
    silence_hdf5();
    static const char signature[8] = { '\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n' };
    // HDF5 also finds a signature at 512, 1024, ... bytes (a user block); Keras never writes one.
    if (image.size() < 8 || std::memcmp(image.data(), signature, 8) != 0)
        throw IOError(name + ": not an HDF5 file (no HDF5 signature)");
    H5Handle fapl = core_fapl(name);
    // HDF5 copies the image into its own buffer.
    if (H5Pset_file_image(fapl.get(), const_cast<char*>(image.data()), image.size()) < 0)
        throw IOError(name + ": cannot use the in-memory HDF5 image" + h5_detail());
    const hid_t id = H5Fopen(unique_memory_name(name).c_str(), H5F_ACC_RDONLY, fapl.get());
    if (id < 0)
        throw IOError(name + ": cannot open HDF5 file, it may be truncated or corrupt" + h5_detail());
    return H5File(name, H5Handle(id, H5Fclose));
}

H5File H5File::create_in_memory(const std::string& name)
{
    const H5Lock lock; // Note [One HDF5 lock]
    silence_hdf5();
    H5Handle fapl = core_fapl(name);
    const hid_t id = H5Fcreate(unique_memory_name(name).c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (id < 0)
        throw IOError(name + ": cannot create an in-memory HDF5 file" + h5_detail());
    return H5File(name, H5Handle(id, H5Fclose));
}

std::string H5File::image() const
{
    const H5Lock lock; // Note [One HDF5 lock]
    if (!m_handle.valid())
        throw IOError(m_path + ": file is closed");
    if (H5Fflush(m_handle.get(), H5F_SCOPE_GLOBAL) < 0)
        throw IOError(m_path + ": cannot flush HDF5 file" + h5_detail());
    const ssize_t n = H5Fget_file_image(m_handle.get(), nullptr, 0);
    if (n < 0)
        throw IOError(m_path + ": cannot get the HDF5 file image" + h5_detail());
    std::string out(static_cast<std::size_t>(n), '\0');
    if (H5Fget_file_image(m_handle.get(), out.data(), out.size()) != n)
        throw IOError(m_path + ": cannot get the HDF5 file image" + h5_detail());
    return out;
}

bool H5File::is_hdf5(const std::string& path) noexcept
{
    const H5Lock lock; // Note [One HDF5 lock]
    silence_hdf5();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        return false;
    return H5Fis_hdf5(path.c_str()) > 0;
}

H5Group H5File::root() const
{
    const H5Lock lock; // Note [One HDF5 lock]
    if (!m_handle.valid())
        throw IOError(m_path + ": file is closed");
    const hid_t id = H5Gopen2(m_handle.get(), "/", H5P_DEFAULT);
    if (id < 0)
        throw IOError(m_path + ": cannot open the root group" + h5_detail());
    return H5Group(m_path, "/", H5Handle(id, H5Gclose));
}

void H5File::close()
{
    const H5Lock lock; // Note [One HDF5 lock]
    if (!m_handle.valid())
        return;
    unsigned intent = 0;
    if (H5Fget_intent(m_handle.get(), &intent) >= 0 && (intent & H5F_ACC_RDWR)) {
        if (H5Fflush(m_handle.get(), H5F_SCOPE_GLOBAL) < 0) {
            const std::string detail = h5_detail();
            m_handle.reset();
            throw IOError(m_path + ": cannot flush HDF5 file" + detail);
        }
    }
    if (!m_handle.reset())
        throw IOError(m_path + ": cannot close HDF5 file" + h5_detail());
}

// ---- H5Group: paths and structure --------------------------------------------------------------

std::string H5Group::child_path(const std::string& path) const
{
    if (!path.empty() && path[0] == '/')
        return path.size() == 1 ? path : path.substr(1);
    if (m_name == "/")
        return path;
    return m_name + "/" + path;
}

std::string H5Group::where() const { return "'" + m_name + "'"; }

void H5Group::fail(const std::string& message) const { throw IOError(m_file + ": " + message); }

int H5Group::object_kind(const std::string& path) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    const std::vector<std::string> parts = split_path(path);
    if (parts.empty())
        return 1; // "" or "/" name a group that is open already
    // H5Lexists needs every intermediate link to exist, so check them one by one.
    std::string prefix = path[0] == '/' ? "/" : "";
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i > 0)
            prefix += '/';
        prefix += parts[i];
        if (H5Lexists(m_handle.get(), prefix.c_str(), H5P_DEFAULT) <= 0)
            return -1;
    }
    H5Handle obj(H5Oopen(m_handle.get(), prefix.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.valid())
        return -1; // e.g. a dangling soft link
    switch (H5Iget_type(obj.get())) {
        case H5I_GROUP:
            return 1;
        case H5I_DATASET:
            return 2;
        default:
            return 0;
    }
}

bool H5Group::has_group(const std::string& path) const { return object_kind(path) == 1; }

bool H5Group::has_dataset(const std::string& path) const { return object_kind(path) == 2; }

H5Group H5Group::group(const std::string& path) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    const int kind = object_kind(path);
    if (kind == -1)
        fail("no group '" + child_path(path) + "'");
    if (kind != 1)
        fail("'" + child_path(path) + "' is not a group");
    const hid_t id = H5Gopen2(m_handle.get(), path.c_str(), H5P_DEFAULT);
    if (id < 0)
        fail("cannot open group '" + child_path(path) + "'" + h5_detail());
    return H5Group(m_file, child_path(path), H5Handle(id, H5Gclose));
}

H5Group H5Group::create_group(const std::string& path)
{
    const H5Lock lock; // Note [One HDF5 lock]
    const int kind = object_kind(path);
    if (kind == 1)
        return group(path);
    if (kind != -1)
        fail("cannot create group '" + child_path(path) + "': another object exists there");
    H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    if (!lcpl.valid() || H5Pset_create_intermediate_group(lcpl.get(), 1) < 0)
        fail("cannot create group '" + child_path(path) + "'" + h5_detail());
    const hid_t id = H5Gcreate2(m_handle.get(), path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT);
    if (id < 0)
        fail("cannot create group '" + child_path(path) + "'" + h5_detail());
    return H5Group(m_file, child_path(path), H5Handle(id, H5Gclose));
}

std::vector<std::string> H5Group::member_names() const
{
    const H5Lock lock; // Note [One HDF5 lock]
    std::vector<std::string> names;
    NameCollector c{ &names, nullptr };
    const herr_t rc = H5Literate(m_handle.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_link, &c);
    if (c.error)
        std::rethrow_exception(c.error);
    if (rc < 0)
        fail("cannot list the members of " + where() + h5_detail());
    return names;
}

// ---- attributes --------------------------------------------------------------------------------

bool H5Group::has_attribute(const std::string& name) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    const htri_t e = H5Aexists(m_handle.get(), name.c_str());
    if (e < 0)
        fail("cannot look up attribute '" + name + "' on " + where() + h5_detail());
    return e > 0;
}

bool H5Group::has_string_array_attribute(const std::string& name) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    return has_attribute(name) || has_attribute(name + "0");
}

std::vector<std::string> H5Group::attribute_names() const
{
    const H5Lock lock; // Note [One HDF5 lock]
    std::vector<std::string> names;
    NameCollector c{ &names, nullptr };
    const herr_t rc = H5Aiterate2(m_handle.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attribute, &c);
    if (c.error)
        std::rethrow_exception(c.error);
    if (rc < 0)
        fail("cannot list the attributes of " + where() + h5_detail());
    return names;
}

void H5Group::delete_attribute(const std::string& name)
{
    const H5Lock lock; // Note [One HDF5 lock]
    if (has_attribute(name) && H5Adelete(m_handle.get(), name.c_str()) < 0)
        fail("cannot delete attribute '" + name + "' on " + where() + h5_detail());
}

H5Handle H5Group::open_attribute(const std::string& name) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    if (!has_attribute(name))
        fail("no attribute '" + name + "' on " + where());
    H5Handle a(H5Aopen(m_handle.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
    if (!a.valid())
        fail("cannot open attribute '" + name + "' on " + where() + h5_detail());
    return a;
}

namespace {

// Every element of a string attribute, whatever its length kind and character set.
// requires: `type` is of class H5T_STRING.
bool read_attribute_strings(hid_t attr, hid_t type, hid_t space, std::vector<std::string>& out)
{
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n < 0)
        return false;
    out.clear();
    if (n == 0)
        return true;
    const H5T_cset_t cset = H5Tget_cset(type);
    // The memory type keeps the file's character set: HDF5 does not convert ASCII <-> UTF-8.
    H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    if (!mem.valid() || H5Tset_cset(mem.get(), cset) < 0)
        return false;
    if (H5Tis_variable_str(type) > 0) {
        if (H5Tset_size(mem.get(), H5T_VARIABLE) < 0)
            return false;
        std::vector<char*> buf(static_cast<std::size_t>(n), nullptr);
        if (H5Aread(attr, mem.get(), buf.data()) < 0)
            return false;
        VlenReclaim reclaim{ mem.get(), space, buf.data() };
        out.reserve(buf.size());
        for (const char* p : buf)
            out.emplace_back(p ? p : "");
        return true;
    }
    const std::size_t size = H5Tget_size(type);
    const H5T_str_t pad = H5Tget_strpad(type);
    if (size == 0 || H5Tset_size(mem.get(), size) < 0 || H5Tset_strpad(mem.get(), pad) < 0)
        return false;
    std::vector<char> buf(static_cast<std::size_t>(n) * size);
    if (H5Aread(attr, mem.get(), buf.data()) < 0)
        return false;
    out.reserve(static_cast<std::size_t>(n));
    for (hssize_t i = 0; i < n; ++i)
        out.push_back(unpad(buf.data() + i * size, size, pad));
    return true;
}

} // namespace

std::string H5Group::read_string_attribute(const std::string& name) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    H5Handle attr = open_attribute(name);
    H5Handle type(H5Aget_type(attr.get()), H5Tclose);
    H5Handle space(H5Aget_space(attr.get()), H5Sclose);
    if (!type.valid() || !space.valid())
        fail("cannot read attribute '" + name + "' on " + where() + h5_detail());
    if (H5Tget_class(type.get()) != H5T_STRING)
        fail("attribute '" + name + "' on " + where() + " holds " + dtype_of(type.get()) +
             ", expected a string");
    if (H5Sget_simple_extent_npoints(space.get()) != 1)
        fail("attribute '" + name + "' on " + where() + " has shape " + shape_of_space(space.get()) +
             ", expected a single string");
    std::vector<std::string> v;
    if (!read_attribute_strings(attr.get(), type.get(), space.get(), v))
        fail("cannot read attribute '" + name + "' on " + where() + h5_detail());
    return v.at(0);
}

std::vector<std::string> H5Group::read_string_array_attribute(const std::string& name) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    if (!has_attribute(name) && has_attribute(name + "0")) {
        // Keras splits arrays over 64512 bytes into name0, name1, ... (save_attributes_to_hdf5_group).
        std::vector<std::string> all;
        for (std::size_t k = 0; has_attribute(name + std::to_string(k)); ++k) {
            std::vector<std::string> part = read_string_array_attribute(name + std::to_string(k));
            all.insert(all.end(), part.begin(), part.end());
        }
        return all;
    }
    H5Handle attr = open_attribute(name);
    H5Handle type(H5Aget_type(attr.get()), H5Tclose);
    H5Handle space(H5Aget_space(attr.get()), H5Sclose);
    if (!type.valid() || !space.valid())
        fail("cannot read attribute '" + name + "' on " + where() + h5_detail());
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    if (H5Tget_class(type.get()) != H5T_STRING) {
        // Keras stores an empty name list as np.asarray([]): float64 with shape (0,).
        if (n == 0 && is_numeric(type.get()))
            return {};
        fail("attribute '" + name + "' on " + where() + " holds " + dtype_of(type.get()) + " of shape " +
             shape_of_space(space.get()) + ", expected strings");
    }
    std::vector<std::string> v;
    if (!read_attribute_strings(attr.get(), type.get(), space.get(), v))
        fail("cannot read attribute '" + name + "' on " + where() + h5_detail());
    return v;
}

void H5Group::write_string_attribute(const std::string& name, const std::string& value)
{
    const H5Lock lock; // Note [One HDF5 lock]
    delete_attribute(name);
    H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    if (!type.valid() || !space.valid() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 ||
        H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
        fail("cannot write attribute '" + name + "' on " + where() + h5_detail());
    H5Handle attr(H5Acreate2(m_handle.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                  H5Aclose);
    const char* p = value.c_str();
    if (!attr.valid() || H5Awrite(attr.get(), type.get(), &p) < 0)
        fail("cannot write attribute '" + name + "' on " + where() + h5_detail());
}

void H5Group::write_string_array_attribute(const std::string& name, const std::vector<std::string>& values)
{
    const H5Lock lock; // Note [One HDF5 lock]
    delete_attribute(name);
    for (std::size_t k = 0; has_attribute(name + std::to_string(k)); ++k)
        delete_attribute(name + std::to_string(k));

    if (values.empty()) {
        // np.asarray([]) is float64 with shape (0,); Keras writes exactly that.
        const hsize_t zero = 0;
        H5Handle space(H5Screate_simple(1, &zero, &zero), H5Sclose);
        H5Handle attr(space.valid() ? H5Acreate2(m_handle.get(), name.c_str(), H5T_IEEE_F64LE, space.get(),
                                                 H5P_DEFAULT, H5P_DEFAULT)
                                    : -1,
                      H5Aclose);
        if (!attr.valid())
            fail("cannot write attribute '" + name + "' on " + where() + h5_detail());
        return;
    }

    std::size_t itemsize = 1; // numpy's S dtype is at least 1 byte wide
    for (const auto& v : values) {
        if (v.size() > k_attribute_limit)
            fail("cannot write attribute '" + name + "' on " + where() + ": a value of " +
                 std::to_string(v.size()) + " bytes exceeds the HDF5 object header limit of " +
                 std::to_string(k_attribute_limit) + " bytes");
        itemsize = std::max(itemsize, v.size());
    }
    // Keras: the fewest np.array_split chunks whose largest part fits in an object header.
    const std::size_t n = values.size();
    std::size_t chunks = 1;
    while ((n + chunks - 1) / chunks * itemsize > k_attribute_limit)
        ++chunks;

    H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    if (!type.valid() || H5Tset_size(type.get(), itemsize) < 0 ||
        H5Tset_strpad(type.get(), H5T_STR_NULLPAD) < 0 || H5Tset_cset(type.get(), H5T_CSET_ASCII) < 0)
        fail("cannot write attribute '" + name + "' on " + where() + h5_detail());

    std::size_t begin = 0;
    for (std::size_t c = 0; c < chunks; ++c) {
        // np.array_split: the first n % chunks parts get one extra element.
        const std::size_t count = n / chunks + (c < n % chunks ? 1 : 0);
        std::vector<char> buf(count * itemsize, '\0');
        for (std::size_t i = 0; i < count; ++i)
            std::memcpy(buf.data() + i * itemsize, values[begin + i].data(), values[begin + i].size());
        const std::string attr_name = chunks == 1 ? name : name + std::to_string(c);
        const hsize_t dim = count;
        H5Handle space(H5Screate_simple(1, &dim, nullptr), H5Sclose);
        H5Handle attr(space.valid() ? H5Acreate2(m_handle.get(), attr_name.c_str(), type.get(), space.get(),
                                                 H5P_DEFAULT, H5P_DEFAULT)
                                    : -1,
                      H5Aclose);
        if (!attr.valid() || H5Awrite(attr.get(), type.get(), buf.data()) < 0)
            fail("cannot write attribute '" + attr_name + "' on " + where() + h5_detail());
        begin += count;
    }
}

template <class T>
T H5Group::read_scalar_attribute(const std::string& name) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    H5Handle attr = open_attribute(name);
    H5Handle type(H5Aget_type(attr.get()), H5Tclose);
    H5Handle space(H5Aget_space(attr.get()), H5Sclose);
    if (!type.valid() || !space.valid())
        fail("cannot read attribute '" + name + "' on " + where() + h5_detail());
    if (!is_numeric(type.get()))
        fail("attribute '" + name + "' on " + where() + " holds " + dtype_of(type.get()) +
             ", expected a number");
    if (H5Sget_simple_extent_npoints(space.get()) != 1)
        fail("attribute '" + name + "' on " + where() + " has shape " + shape_of_space(space.get()) +
             ", expected a single number");
    T value{};
    if (H5Aread(attr.get(), native_type<T>(), &value) < 0)
        fail("cannot read attribute '" + name + "' on " + where() + h5_detail());
    return value;
}

template <class T>
void H5Group::write_scalar_attribute(const std::string& name, T value)
{
    const H5Lock lock; // Note [One HDF5 lock]
    delete_attribute(name);
    H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    H5Handle attr(space.valid() ? H5Acreate2(m_handle.get(), name.c_str(), native_type<T>(), space.get(),
                                             H5P_DEFAULT, H5P_DEFAULT)
                                : -1,
                  H5Aclose);
    if (!attr.valid() || H5Awrite(attr.get(), native_type<T>(), &value) < 0)
        fail("cannot write attribute '" + name + "' on " + where() + h5_detail());
}

// ---- datasets ----------------------------------------------------------------------------------

H5Handle H5Group::open_dataset(const std::string& path) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    const int kind = object_kind(path);
    if (kind == -1)
        fail("no dataset '" + child_path(path) + "'");
    if (kind != 2)
        fail("'" + child_path(path) + "' is not a dataset");
    H5Handle ds(H5Dopen2(m_handle.get(), path.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.valid())
        fail("cannot open dataset '" + child_path(path) + "'" + h5_detail());
    return ds;
}

shape_t H5Group::shape_of_dataset(h5_id_t ds, const std::string& path) const
{
    H5Handle space(H5Dget_space(ds), H5Sclose);
    const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank < 0)
        fail("cannot read the shape of dataset '" + child_path(path) + "'" + h5_detail());
    if (H5Sget_simple_extent_type(space.get()) == H5S_NULL)
        fail("dataset '" + child_path(path) + "' has a null dataspace (no shape)");
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
        fail("cannot read the shape of dataset '" + child_path(path) + "'" + h5_detail());
    return shape_t(dims.begin(), dims.end());
}

shape_t H5Group::dataset_shape(const std::string& path) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    H5Handle ds = open_dataset(path);
    return shape_of_dataset(ds.get(), path);
}

std::string H5Group::dataset_dtype(const std::string& path) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    H5Handle ds = open_dataset(path);
    H5Handle type(H5Dget_type(ds.get()), H5Tclose);
    if (!type.valid())
        fail("cannot read the type of dataset '" + child_path(path) + "'" + h5_detail());
    return dtype_of(type.get());
}

void H5Group::require_numeric(h5_id_t ds, const std::string& path) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    H5Handle type(H5Dget_type(ds), H5Tclose);
    if (!type.valid())
        fail("cannot read the type of dataset '" + child_path(path) + "'" + h5_detail());
    if (!is_numeric(type.get()))
        fail("dataset '" + child_path(path) + "' holds " + dtype_of(type.get()) +
             ", expected integer or floating-point numbers");
}

template <class T>
array_t<T> H5Group::read_dataset_rows(const std::string& path, std::size_t begin, std::size_t count) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    H5Handle ds = open_dataset(path);
    shape_t shape = shape_of_dataset(ds.get(), path);
    require_numeric(ds.get(), path);
    if (shape.empty() || begin > shape[0] || count > shape[0] - begin)
        fail("cannot read rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ") of dataset '" +
             child_path(path) + "' of shape " + shape_str(shape));
    shape[0] = count;
    try {
        checked_size(shape, "rows of dataset '" + child_path(path) + "'");
    } catch (const ValueError& e) {
        fail(e.what());
    }
    array_t<T> out = array_t<T>::from_shape(shape);
    if (out.size() == 0)
        return out;
    std::vector<hsize_t> start(shape.size(), 0), dims(shape.begin(), shape.end());
    start[0] = begin;
    H5Handle file_space(H5Dget_space(ds.get()), H5Sclose);
    H5Handle mem_space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    if (!file_space.valid() || !mem_space.valid() ||
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr) < 0 ||
        H5Dread(ds.get(), native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT, out.data()) < 0)
        fail("cannot read rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ") of dataset '" +
             child_path(path) + "' of shape " + shape_str(shape_of_dataset(ds.get(), path)) + h5_detail());
    return out;
}

template <class T>
array_t<T> H5Group::read_dataset(const std::string& path) const
{
    const H5Lock lock; // Note [One HDF5 lock]
    H5Handle ds = open_dataset(path);
    const shape_t shape = shape_of_dataset(ds.get(), path);
    require_numeric(ds.get(), path);
    // The declared shape is not bounded by the file's size (chunks may be compressed or absent):
    // Note [Allocation limit].
    try {
        checked_size(shape, "dataset '" + child_path(path) + "'");
    } catch (const ValueError& e) {
        fail(e.what()); // an IOError naming the file, as every other reading failure here
    }
    array_t<T> out = array_t<T>::from_shape(shape);
    if (out.size() > 0 && H5Dread(ds.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
        fail("cannot read dataset '" + child_path(path) + "' of shape " + shape_str(shape) + h5_detail());
    return out;
}

template <class T>
void H5Group::write_dataset(const std::string& path, const array_t<T>& value)
{
    const H5Lock lock; // Note [One HDF5 lock]
    if (split_path(path).empty())
        fail("cannot write a dataset with an empty name in " + where());
    if (object_kind(path) != -1)
        fail("cannot write dataset '" + child_path(path) + "': an object of that name already exists");
    const shape_t shape = shape_of(value);
    const std::vector<hsize_t> dims(shape.begin(), shape.end());
    H5Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                                : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                   H5Sclose);
    H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    if (!space.valid() || !lcpl.valid() || H5Pset_create_intermediate_group(lcpl.get(), 1) < 0)
        fail("cannot write dataset '" + child_path(path) + "'" + h5_detail());
    // Default creation properties: contiguous, no filters, as Keras stores weights.
    H5Handle ds(H5Dcreate2(m_handle.get(), path.c_str(), native_type<T>(), space.get(), lcpl.get(),
                           H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose);
    if (!ds.valid())
        fail("cannot create dataset '" + child_path(path) + "'" + h5_detail());
    if (value.size() > 0 &&
        H5Dwrite(ds.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, value.data()) < 0)
        fail("cannot write dataset '" + child_path(path) + "' of shape " + shape_str(shape) + h5_detail());
}

#define XTAPE_H5_INSTANTIATE(T)                                                                              \
    template T H5Group::read_scalar_attribute<T>(const std::string&) const;                                  \
    template void H5Group::write_scalar_attribute<T>(const std::string&, T);                                 \
    template array_t<T> H5Group::read_dataset<T>(const std::string&) const;                                  \
    template array_t<T> H5Group::read_dataset_rows<T>(const std::string&, std::size_t, std::size_t) const;   \
    template void H5Group::write_dataset<T>(const std::string&, const array_t<T>&);

XTAPE_H5_INSTANTIATE(float)
XTAPE_H5_INSTANTIATE(double)
XTAPE_H5_INSTANTIATE(std::int32_t)
XTAPE_H5_INSTANTIATE(std::int64_t)
XTAPE_H5_INSTANTIATE(std::uint8_t)
#undef XTAPE_H5_INSTANTIATE

} // namespace xtape::io
