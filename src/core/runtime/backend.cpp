#include "runtime/backend.hpp"

#include "config/config.hpp"
#include "common/error.hpp"
#include "suid/suid_backend.hpp"
#include "userns/userns_backend.hpp"

namespace sarus {

std::unique_ptr<Backend> makeBackend(const Config& config) {
    switch (config.mode()) {
    case Mode::userns:
        return std::make_unique<userns::UsernsBackend>(config);
    case Mode::suid:
        return std::make_unique<suid::SuidBackend>(config);
    }
    throw Error("unknown mode in " + config.file().string());
}

}  // namespace sarus
