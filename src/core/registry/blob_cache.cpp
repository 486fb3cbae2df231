#include "registry/blob_cache.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "common/log.hpp"
#include "registry/manifest.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

BlobCache::BlobCache(fs::path directory) : directory_(std::move(directory)) {
    createDirectories(directory_);
    removeStalePartialFiles(directory_);
}

fs::path BlobCache::pathOf(const std::string& digest) const {
    // Digests come from manifests: never let one name a path elsewhere.
    if (!manifest::isValidDigest(digest)) {
        throw Error("invalid blob digest '" + digest + "'");
    }
    return directory_ / digest;
}

std::optional<FileDescriptor> BlobCache::open(const std::string& digest, std::uint64_t size) const {
    auto path = pathOf(digest);
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0) {
        return std::nullopt;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_size) != size) {
        log::warn("ignoring cached blob " + path.string() + ": its size is not the expected " +
                  std::to_string(size) + " bytes");
        return std::nullopt;
    }
    return fd;
}

std::unique_ptr<UnnamedFile> BlobCache::create(const std::string& digest) const {
    return std::make_unique<UnnamedFile>(directory_, pathOf(digest).filename().string());
}

void BlobCache::publish(UnnamedFile& file, const std::string& digest) const {
    // Replacing keeps a wrong-sized leftover from shadowing a good download.
    file.publish(pathOf(digest), true);
}

void BlobCache::remove(const std::string& digest) const {
    ::unlink(pathOf(digest).c_str());
}

namespace {

const char* const verifiedAttribute = "user.sarus.verified";
const char* const contentVerifiedAttribute = "user.sarus.diffid";

std::string verifiedStamp(int fd, const std::string& digest) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return "";
    }
    return digest + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec);
}

void stamp(int fd, const char* attribute, const std::string& digest) {
    auto value = verifiedStamp(fd, digest);
    if (!value.empty() && ::fsetxattr(fd, attribute, value.data(), value.size(), 0) != 0) {
        log::debug("no verification stamp on the cached blob for " + digest + ": " + std::strerror(errno));
    }
}

bool isStamped(int fd, const char* attribute, const std::string& digest) {
    char value[256];
    auto n = ::fgetxattr(fd, attribute, value, sizeof value);
    return n > 0 && std::string(value, static_cast<std::size_t>(n)) == verifiedStamp(fd, digest);
}

}  // namespace

void BlobCache::markVerified(int fd, const std::string& digest) { stamp(fd, verifiedAttribute, digest); }

bool BlobCache::isMarkedVerified(int fd, const std::string& digest) {
    return isStamped(fd, verifiedAttribute, digest);
}

void BlobCache::markContentVerified(int fd, const std::string& diffId) {
    stamp(fd, contentVerifiedAttribute, diffId);
}

bool BlobCache::isContentMarkedVerified(int fd, const std::string& diffId) {
    return isStamped(fd, contentVerifiedAttribute, diffId);
}

}  // namespace sarus
