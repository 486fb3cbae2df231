// Verified layer blobs of a repository, kept in <repository>/cache by their
// digest ("sha256:<hex>") so that images sharing layers download them once.
// A blob gets its name only after its digest was checked, so every named
// file in the cache is complete and correct.
#pragma once

#include "common/file_descriptor.hpp"
#include "common/unnamed_file.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace sarus {

class BlobCache {
public:
    // Creates the directory if needed and removes partial files of dead pulls.
    explicit BlobCache(std::filesystem::path directory);

    const std::filesystem::path& directory() const { return directory_; }
    std::filesystem::path pathOf(const std::string& digest) const;

    // The cached blob with this digest and size, if there is one.
    std::optional<FileDescriptor> open(const std::string& digest, std::uint64_t size) const;
    // A new, still unnamed file for a blob being downloaded.
    std::unique_ptr<UnnamedFile> create(const std::string& digest) const;
    // Names a verified download; a concurrent pull may have done it first.
    void publish(UnnamedFile& file, const std::string& digest) const;
    // Drops a cached blob that turned out to be corrupt.
    void remove(const std::string& digest) const;

    // A stamp on the blob (an extended attribute with the digest and the
    // file's size and modification time) saying its digest was checked: a
    // later pull uses it without hashing it again unless the file changed.
    // Without extended attributes there is no stamp and blobs are hashed.
    static void markVerified(int fd, const std::string& digest);
    static bool isMarkedVerified(int fd, const std::string& digest);
    // The same for the blob's decoded content, found to hash to the diff id
    // the image configuration gives.
    static void markContentVerified(int fd, const std::string& diffId);
    static bool isContentMarkedVerified(int fd, const std::string& diffId);

private:
    std::filesystem::path directory_;
};

}  // namespace sarus
