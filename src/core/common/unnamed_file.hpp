// A file that gets a name only once it is complete. On filesystems with
// O_TMPFILE (ext4, xfs, btrfs, tmpfs) it has no name at all until publish(),
// so nothing is left behind even by kill -9 or a power cut; elsewhere (NFS,
// Lustre, GPFS) it is a hidden ".<name>.partial-<pid>-<n>@<host>" next to
// the final name, removed by the destructor or, after a crash, by the next
// import on that host.
#pragma once

#include <filesystem>
#include <string>

namespace sarus {

class UnnamedFile {
public:
    // Creates the file in directory; fallbackName is used where O_TMPFILE is
    // not supported.
    UnnamedFile(const std::filesystem::path& directory, const std::string& fallbackName);
    ~UnnamedFile();
    UnnamedFile(const UnnamedFile&) = delete;
    UnnamedFile& operator=(const UnnamedFile&) = delete;

    int fd() const { return fd_; }
    // A path that opens this same file ("/proc/self/fd/N" or the partial name).
    std::string path() const;

    // Gives the file its final name. Returns false if `target` exists already
    // (another process published the same content first): the file is then
    // dropped. With replace, an existing target is replaced instead.
    bool publish(const std::filesystem::path& target, bool replace = false);

private:
    int fd_ = -1;
    std::filesystem::path partial_;  // empty with O_TMPFILE
};

// Marker in fallback names, shared with the stale-partial cleanup.
inline const std::string partialFileMarker = ".partial-";

// ".<name>.partial-<pid>-<n>@<host>": unique to this process and call,
// also between nodes that share the directory.
std::string partialFileName(const std::string& name);

// Removes the partial files in directory whose process on this host is gone.
void removeStalePartialFiles(const std::filesystem::path& directory);

}  // namespace sarus
