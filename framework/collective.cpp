#include "framework/collective.hpp"

#include "framework/errors.hpp"

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

void write_on_rank_zero(const std::string& what, const std::function<void()>& write)
{
    const Collective& c = collective();
    if (c.size() == 1)
        return write();
    std::exception_ptr failed;
    if (c.rank() == 0) {
        try {
            write();
        } catch (...) {
            failed = std::current_exception();
        }
    }
    double status = failed ? 1.0 : 0.0;
    c.allreduce_sum(&status, 1); // Note [Saving on rank 0]: the barrier, and rank 0's outcome
    if (failed)
        std::rethrow_exception(failed);
    if (status != 0)
        throw IOError(what + ": rank 0, which writes it for every rank, failed (its error message says why)");
}

} // namespace xtape
