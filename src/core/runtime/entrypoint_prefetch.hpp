// Every run mounts the image afresh, so the first program of the container
// starts from an empty page cache and faults its pages in one by one, each
// fault a decompression (and, in userns mode, a FUSE round trip). Reading that
// program and its ELF interpreter ahead, in a helper process on the other core
// while the runtime starts, turns most of those faults into cache hits.
#pragma once

#include "runtime/container_spec.hpp"

#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sarus {

// Host path (under rootfs) of the program the container execs first, found
// as the container will find it (PATH of its environment, symlinks resolved
// inside rootfs); empty when it is not a regular file there.
std::filesystem::path entrypointProgram(const std::filesystem::path& rootfs, const ContainerSpec& spec);

// The ELF interpreter (PT_INTERP) named by an executable, "" when it names
// none or is not a 64-bit ELF file.
std::string elfInterpreter(int fd);

// The files worth reading ahead: the entrypoint's interpreter, then the
// entrypoint itself.
std::vector<std::filesystem::path> entrypointFiles(const std::filesystem::path& rootfs, const ContainerSpec& spec);

class EntrypointPrefetch {
public:
    // Finds and reads the files in a child process that first takes the
    // container's identity: it reads nothing the container could not.
    EntrypointPrefetch(const std::filesystem::path& rootfs, const ContainerSpec& spec, uid_t uid, gid_t gid);
    ~EntrypointPrefetch();  // stops and reaps the helper if it is still there
    EntrypointPrefetch(const EntrypointPrefetch&) = delete;
    EntrypointPrefetch& operator=(const EntrypointPrefetch&) = delete;

    // Readable when the helper has ended; -1 without a helper. The owner's
    // wait loop reaps it then (reapIfDone), so that no '<defunct>' helper
    // shows while the container runs.
    int exitFd() const { return pidfd_; }
    void reapIfDone();

private:
    int pidfd_ = -1;  // a pidfd: no signal or wait can reach a reused pid
};

}  // namespace sarus
