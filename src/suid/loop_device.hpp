#pragma once

#include <string>

namespace sarus::suid {

// A read-only loop device bound to an already open image file. Uses
// LOOP_CTL_GET_FREE + LOOP_CONFIGURE, retrying when another process (another
// rank on the same node) grabs the same free device first. The device has
// LO_FLAGS_AUTOCLEAR: it is released when its last mount goes away.
class LoopDevice {
public:
    explicit LoopDevice(int imageFd);
    ~LoopDevice();
    LoopDevice(const LoopDevice&) = delete;
    LoopDevice& operator=(const LoopDevice&) = delete;
    const std::string& path() const { return path_; }

private:
    int fd_ = -1;
    std::string path_;
};

}  // namespace sarus::suid
