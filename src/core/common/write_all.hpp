// Writing a whole buffer to a descriptor, for the relays that copy a
// container's streams.
#pragma once

#include <cerrno>
#include <cstddef>
#include <unistd.h>

namespace sarus {

// Writes all of data to fd, retrying after EINTR. When fd takes nothing
// (EAGAIN on a non-blocking descriptor), whenFull decides: true to try again
// (after waiting or doing other work as it likes), false to give up. Returns
// false when fd fails or whenFull gives up.
template <typename WhenFull>
bool writeAll(int fd, const char* data, std::size_t size, WhenFull whenFull) {
    while (size > 0) {
        ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            if (whenFull()) {
                continue;
            }
            return false;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace sarus
