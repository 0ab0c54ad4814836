#include "framework/collective.hpp"

#include <cstdlib>
#include <iostream>

namespace xtape {

void Collective::abort(const std::string& message, int code) const
{
    std::cerr << "xtape: rank " << rank() << ": " << message << std::endl;
    std::exit(code);
}

namespace {
std::shared_ptr<const Collective>& slot()
{
    static std::shared_ptr<const Collective> c = std::make_shared<Collective>();
    return c;
}
} // namespace

const Collective& collective() { return *slot(); }
std::shared_ptr<const Collective> collective_ptr() { return slot(); }

void set_collective(std::shared_ptr<const Collective> c)
{
    slot() = c ? std::move(c) : std::make_shared<Collective>();
}

} // namespace xtape
