#include "common/error.hpp"

#include <cstring>

namespace sarus {

Error systemError(const std::string& what, int errnum) {
    return Error(what + ": " + std::strerror(errnum));
}

}  // namespace sarus
