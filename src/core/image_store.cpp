#include "image_store.hpp"

#include "config.hpp"
#include "error.hpp"
#include "file_utils.hpp"
#include "log.hpp"
#include "text_table.hpp"

#include <cerrno>
#include <chrono>
#include <ctime>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

namespace {

const std::string partialMarker = ".partial-";

// Exclusive flock on <repository>/.metadata.lock for the scope of the object.
class IndexLock {
public:
    IndexLock(const fs::path& file, int timeoutMs, int warningMs) {
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd_ < 0) {
            throw systemError("cannot open lock file " + file.string(), errno);
        }
        auto start = std::chrono::steady_clock::now();
        bool warned = false;
        while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK && errno != EINTR) {
                int err = errno;
                ::close(fd_);
                throw systemError("cannot lock " + file.string(), err);
            }
            auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start).count();
            if (!warned && waited >= warningMs) {
                log::warn("still waiting for the lock on " + file.string() +
                          " (another sarus is updating the repository)");
                warned = true;
            }
            if (waited >= timeoutMs) {
                ::close(fd_);
                throw Error("timed out after " + std::to_string(timeoutMs) +
                            " ms waiting for the lock on " + file.string());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    ~IndexLock() { ::close(fd_); }
    IndexLock(const IndexLock&) = delete;
    IndexLock& operator=(const IndexLock&) = delete;

private:
    int fd_ = -1;
};

std::string currentUserName() {
    struct passwd* pw = ::getpwuid(::getuid());
    if (pw == nullptr) {
        throw Error("cannot find the name of user " + std::to_string(::getuid()) +
                    " in the passwd database");
    }
    return pw->pw_name;
}


bool fileExists(const fs::path& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

// Partial files of imports whose process died (kill -9, node crash) are
// removed by the next import into the same directory.
void removeStalePartials(const fs::path& directory) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(directory, ec)) {
        auto name = entry.path().filename().string();
        auto pos = name.rfind(partialMarker);
        if (name.empty() || name[0] != '.' || pos == std::string::npos) {
            continue;
        }
        auto pid = std::atoi(name.c_str() + pos + partialMarker.size());
        if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
            log::verbose("removing stale partial image " + entry.path().string());
            fs::remove(entry.path(), ec);
        }
    }
}

}  // namespace

nlohmann::json StoredImage::toJson() const {
    return {{"server", reference.server},
            {"repository", reference.repository},
            {"tag", reference.tag},
            {"digest", digest},
            {"id", id},
            {"created", created},
            {"datasize", size},
            {"imagefile", imageFile.string()},
            {"metafile", metadataFile.string()},
            {"reference", reference.normalized()}};
}

StoredImage StoredImage::fromJson(const nlohmann::json& json) {
    StoredImage image;
    image.reference.server = json.at("server").get<std::string>();
    image.reference.repository = json.at("repository").get<std::string>();
    image.reference.tag = json.value("tag", "");
    image.digest = json.value("digest", "");
    image.id = json.value("id", "");
    image.created = json.value("created", "");
    image.size = json.value("datasize", std::uint64_t{0});
    image.imageFile = json.at("imagefile").get<std::string>();
    image.metadataFile = json.at("metafile").get<std::string>();
    if (image.reference.tag.empty()) {
        image.reference.digest = image.digest;
    }
    return image;
}

PendingImage::PendingImage(ImageReference reference, fs::path partialFile)
    : reference_(std::move(reference)), partialFile_(std::move(partialFile)) {}

PendingImage::PendingImage(PendingImage&& other) noexcept
    : reference_(std::move(other.reference_)), partialFile_(std::move(other.partialFile_)) {
    other.partialFile_.clear();
}

PendingImage::~PendingImage() {
    if (!partialFile_.empty()) {
        ::unlink(partialFile_.c_str());
    }
}

ImageStore::ImageStore(fs::path repositoryDir, int lockTimeoutMs, int lockWarningMs)
    : directory_(std::move(repositoryDir)), lockTimeoutMs_(lockTimeoutMs), lockWarningMs_(lockWarningMs) {}

ImageStore ImageStore::local(const Config& config) {
    auto dir = config.localRepositoryBaseDir() / currentUserName() / config.localRepositoryFolder();
    return ImageStore(dir, config.metadataLockTimeoutMs(), config.metadataLockWarningMs());
}

ImageStore ImageStore::centralized(const Config& config) {
    auto dir = config.centralizedRepositoryDir();
    if (dir.empty()) {
        throw Error("no centralized repository: 'centralizedRepositoryDir' is not set in " +
                    config.file().string());
    }
    // Every user runs the images of a centralized repository: the admin's
    // umask may keep others from writing to it, never from reading it.
    ::umask(::umask(0) & 022);
    return ImageStore(dir, config.metadataLockTimeoutMs(), config.metadataLockWarningMs());
}

fs::path ImageStore::imageDirectory(const ImageReference& reference) const {
    return imagesDirectory() / reference.server / reference.repository;
}

void ImageStore::ensureLayout() const {
    createDirectories(imagesDirectory());
    createDirectories(cacheDirectory());
}

nlohmann::json ImageStore::readIndex() const {
    if (!fileExists(indexFile())) {
        return {{"images", nlohmann::json::array()}};
    }
    auto index = parseJsonFile(indexFile());
    if (!index.is_object() || !index.contains("images") || !index["images"].is_array()) {
        throw Error(indexFile().string() + ": not a sarus repository index (no 'images' list)");
    }
    return index;
}

void ImageStore::writeIndex(const nlohmann::json& index) const {
    writeFileAtomically(indexFile(), index.dump(4) + "\n");
}

std::vector<StoredImage> ImageStore::list() const {
    std::vector<StoredImage> images;
    auto index = readIndex();
    for (const auto& entry : index["images"]) {
        StoredImage image;
        try {
            image = StoredImage::fromJson(entry);
        } catch (const nlohmann::json::exception& e) {
            throw Error(indexFile().string() + ": malformed image entry: " + e.what());
        }
        if (fileExists(image.imageFile) && fileExists(image.metadataFile)) {
            images.push_back(std::move(image));
        } else {
            log::verbose("ignoring index entry " + image.reference.normalized() +
                         ": its files are gone");
        }
    }
    return images;
}

std::optional<StoredImage> ImageStore::find(const ImageReference& given) const {
    // As Sarus: a digest names the image pulled by that digest (TAG <none>),
    // never a tagged image that happens to have it; a tag names its image.
    auto reference = given.identity();
    for (auto& image : list()) {
        bool sameName = image.reference.server == reference.server &&
                        image.reference.repository == reference.repository;
        bool sameVersion = reference.tag.empty()
                               ? image.reference.tag.empty() && image.digest == reference.digest
                               : image.reference.tag == reference.tag;
        if (sameName && sameVersion) {
            return image;
        }
    }
    return std::nullopt;
}

PendingImage ImageStore::beginImport(const ImageReference& reference) {
    ensureLayout();
    auto dir = imageDirectory(reference);
    createDirectories(dir);
    removeStalePartials(dir);
    auto partial = dir / ("." + reference.storeName() + ".squashfs" + partialMarker +
                          std::to_string(::getpid()));
    return PendingImage(reference, partial);
}

StoredImage ImageStore::commit(PendingImage& pending, const ImageMetadata& metadata,
                               const std::string& id, const std::string& digest) {
    const auto& reference = pending.reference();
    auto dir = imageDirectory(reference);
    StoredImage image;
    image.reference = reference;
    image.id = id;
    image.digest = digest;
    image.created = localTimestamp();
    image.imageFile = dir / (reference.storeName() + ".squashfs");
    image.metadataFile = dir / (reference.storeName() + ".meta");
    struct stat st {};
    if (::stat(pending.file().c_str(), &st) != 0) {
        throw systemError("cannot stat " + pending.file().string(), errno);
    }
    image.size = static_cast<std::uint64_t>(st.st_size);
    // libsquashfs creates 0600 files; images follow the umask like other files
    // (a centralized repository must be readable by every user).
    mode_t mask = ::umask(0);
    ::umask(mask);
    ::chmod(pending.file().c_str(), 0644 & ~mask);

    IndexLock lock(directory_ / ".metadata.lock", lockTimeoutMs_, lockWarningMs_);
    auto index = readIndex();  // before touching files: a corrupt index aborts cleanly
    writeFileAtomically(image.metadataFile, metadata.toJson().dump(4) + "\n");
    if (::rename(pending.file().c_str(), image.imageFile.c_str()) != 0) {
        throw systemError("cannot move " + pending.file().string() + " to " +
                          image.imageFile.string(), errno);
    }
    pending.markCommitted();
    auto& entries = index["images"];
    for (auto it = entries.begin(); it != entries.end();) {
        auto existing = StoredImage::fromJson(*it);
        it = existing.imageFile == image.imageFile ? entries.erase(it) : it + 1;
    }
    entries.push_back(image.toJson());
    writeIndex(index);
    return image;
}

StoredImage ImageStore::remove(const ImageReference& reference) {
    auto missing = [&] { return Error("Cannot find image '" + reference.identity().normalized() + "'"); };
    if (!fileExists(indexFile())) {
        throw missing();
    }
    IndexLock lock(directory_ / ".metadata.lock", lockTimeoutMs_, lockWarningMs_);
    auto image = find(reference);
    if (!image) {
        throw missing();
    }
    auto index = readIndex();
    auto& entries = index["images"];
    for (auto it = entries.begin(); it != entries.end();) {
        auto existing = StoredImage::fromJson(*it);
        it = existing.imageFile == image->imageFile ? entries.erase(it) : it + 1;
    }
    writeIndex(index);
    ::unlink(image->imageFile.c_str());
    ::unlink(image->metadataFile.c_str());
    return *image;
}

}  // namespace sarus
