#pragma once
// What the OCI hooks print, relayed by the sandbox as it comes: a hook's
// stdout to sarus's stdout and its stderr to sarus's stderr, as Sarus shows
// them.
//
// crun gives the hooks the files named by the run.oci.hooks.stdout and
// .stderr annotations. They are FIFOs in the bundle here, because crun
// cannot reopen sarus's own stdout or stderr (a socket under Slurm, a file
// of the caller's in suid mode). The sandbox holds a write end of each
// until the runtime is done, so that the read ends do not see their end
// between hooks.

#include "common/file_descriptor.hpp"

#include <filesystem>
#include <vector>

struct pollfd;

namespace sarus {

class HooksOutputRelay {
public:
    // Makes the FIFOs hooks.stdout and hooks.stderr in bundleDir.
    explicit HooksOutputRelay(const std::filesystem::path& bundleDir);

    std::filesystem::path stdoutPath() const { return stdout_.path; }
    std::filesystem::path stderrPath() const { return stderr_.path; }

    // The descriptors to poll, appended to watched.
    void watch(std::vector<pollfd>& watched) const;
    // Copies what the polled descriptors have to read.
    void serve(const std::vector<pollfd>& watched);
    // After the runtime has ended: copies what is left to read, without
    // waiting for a writer that outlives the runtime.
    void drain();

private:
    struct Stream {
        std::filesystem::path path;
        int target = -1;  // sarus's stdout or stderr
        FileDescriptor reading;
        FileDescriptor holding;  // a write end of ours, closed by drain()
    };
    static Stream open(const std::filesystem::path& path, int target);
    static void copyAvailable(Stream& stream);

    Stream stdout_;
    Stream stderr_;
};

}  // namespace sarus
