// Typed exceptions. Every message names the op, layer or file and the shapes involved,
// so a user can find the offending line without a debugger.
#pragma once

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace xtape {

/// Base of every error xtape throws on purpose.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// An argument with a bad value (Keras: ValueError).
class ValueError : public Error {
public:
    using Error::Error;
};

/// Shapes that do not fit together. Keras raises ValueError for these, so `catch (ValueError&)`
/// catches them too.
class ShapeError : public ValueError {
public:
    using ValueError::ValueError;
};

/// A config key the class does not take (Keras: TypeError, "Error when deserializing class ...
/// Unrecognized keyword arguments").
class TypeError : public Error {
public:
    using Error::Error;
};

/// A name that is not known: a layer class, an initializer, a config key (Keras: ValueError/KeyError).
class KeyError : public Error {
public:
    using Error::Error;
};

/// Misuse of an object's life cycle: fit before compile, a tape used twice (Keras: RuntimeError).
class RuntimeError : public Error {
public:
    using Error::Error;
};

/// An attribute that does not exist in this state, e.g. layer.input of a layer called twice
/// (Keras: AttributeError).
class AttributeError : public Error {
public:
    using Error::Error;
};

/// Reading or writing a file failed; the message names the file.
class IOError : public Error {
public:
    using Error::Error;
};

/// A valid request that xtape does not implement yet; the message says what is missing.
class NotImplementedError : public Error {
public:
    using Error::Error;
};

template <class S>
std::string shape_str(const S& shape)
{
    std::ostringstream os;
    os << '(';
    std::size_t i = 0;
    for (auto d : shape) {
        if (i++)
            os << ", ";
        os << d;
    }
    if (i == 1)
        os << ',';
    os << ')';
    return os.str();
}

} // namespace xtape
