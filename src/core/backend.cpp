#include "backend.hpp"

#include "config.hpp"
#include "error.hpp"
#include "userns/userns_backend.hpp"

namespace sarus {

std::unique_ptr<Backend> makeBackend(const Config& config) {
    switch (config.mode()) {
    case Mode::userns:
        return std::make_unique<userns::UsernsBackend>(config);
    case Mode::suid:
        throw Error("mode \"suid\" in " + config.file().string() +
                    " is not available yet in this version of sarus; use \"userns\"");
    }
    throw Error("unknown mode in " + config.file().string());
}

}  // namespace sarus
