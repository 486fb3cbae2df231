#include "loop_device.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace sarus::suid {

LoopDevice::LoopDevice(int imageFd) {
    int control = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control < 0) {
        throw systemError("cannot open /dev/loop-control", errno);
    }
    for (int attempt = 0; attempt < 64; ++attempt) {
        int number = ::ioctl(control, LOOP_CTL_GET_FREE);
        if (number < 0) {
            int err = errno;
            ::close(control);
            throw systemError("cannot get a free loop device", err);
        }
        path_ = "/dev/loop" + std::to_string(number);
        fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) {
            continue;
        }
        loop_config config;
        std::memset(&config, 0, sizeof config);
        config.fd = static_cast<__u32>(imageFd);
        config.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
        if (::ioctl(fd_, LOOP_CONFIGURE, &config) == 0) {
            ::close(control);
            return;
        }
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        if (err != EBUSY) {
            ::close(control);
            throw systemError("cannot configure " + path_, err);
        }
        // EBUSY: another process took this device between GET_FREE and CONFIGURE.
    }
    ::close(control);
    throw Error("cannot get a loop device: all attempts raced with other processes");
}

LoopDevice::~LoopDevice() {
    if (fd_ >= 0) {
        ::close(fd_);  // AUTOCLEAR detaches it once unmounted
    }
}

}  // namespace sarus::suid
