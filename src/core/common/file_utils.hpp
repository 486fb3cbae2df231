#pragma once

#include <filesystem>
#include <string>
#include <sys/types.h>

namespace sarus {

std::string readFile(const std::filesystem::path& path);

// Writes via a temporary file in the same directory and rename(2), so readers
// see either the old or the new content, never a partial file. A durable
// write is also on disk before the rename (an fsync: milliseconds on a busy
// disk); state that means nothing after a reboot need not pay for it.
enum class Durability { onDisk, untilReboot };
void writeFileAtomically(const std::filesystem::path& path, const std::string& content,
                         mode_t mode = 0644, Durability durability = Durability::onDisk);

// Creates path and missing parents with the given mode; throws sarus::Error.
void createDirectories(const std::filesystem::path& path, mode_t mode = 0755);

// Creates path (mode 0700) unless it exists; throws sarus::Error unless it
// is then a directory of the caller's that nobody else can use. purpose
// says what it holds, for the message.
void ensurePrivateDirectory(const std::filesystem::path& path, const std::string& purpose);

// Creates path (mode 0700) unless it exists, then checks it: false when it
// is not a directory of the caller's without the mode bits in
// `othersMayNot` (in a shared /tmp another user may make the name first,
// also just after a check). Throws sarus::Error when it cannot be created.
bool claimDirectory(const std::filesystem::path& path, mode_t othersMayNot);

// True when something is at path (lstat) that is not a directory of the
// caller's without the mode bits in `othersMayNot`: in a shared /tmp,
// another user may have made the name first.
bool takenByAnother(const std::filesystem::path& path, mode_t othersMayNot);

// True when path is (lstat) a directory of the caller's that nobody else can
// use, as ensurePrivateDirectory leaves it.
bool isPrivateDirectoryOfCaller(const std::filesystem::path& path);

// Throws unless every entry from the first below `base` down to `path` that
// exists belongs to `owner` or root (what a symlink leads to; the symlink
// itself where others may write to its directory), every directory among
// them is not world-writable, and `base` is root's or `owner`'s and sticky
// if others may write to it. In a base every user may write to (a shared
// scratch) another user could otherwise make them first, and would then
// choose what is read from them: the images one runs, the SSH keys one's
// containers trust.
void refuseDirectoriesOfAnother(const std::filesystem::path& base, const std::filesystem::path& path, uid_t owner);

// A file that is deleted when this object dies unless release() was called.
class ScopedFile {
public:
    explicit ScopedFile(std::filesystem::path path) : path_(std::move(path)) {}
    ~ScopedFile();
    ScopedFile(const ScopedFile&) = delete;
    ScopedFile& operator=(const ScopedFile&) = delete;
    const std::filesystem::path& path() const { return path_; }
    void release() { path_.clear(); }

private:
    std::filesystem::path path_;
};

// A directory created with mkdtemp under base, removed recursively on destruction.
class TempDirectory {
public:
    explicit TempDirectory(const std::filesystem::path& base, const std::string& prefix = "sarus");
    ~TempDirectory();
    TempDirectory(const TempDirectory&) = delete;
    TempDirectory& operator=(const TempDirectory&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

std::string humanReadableSize(unsigned long long bytes);

}  // namespace sarus
