#include "image/image_store.hpp"

#include "config/config.hpp"
#include "common/cancellation.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "common/unnamed_file.hpp"
#include "common/log.hpp"
#include "cli/text_table.hpp"

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

// flock(LOCK_EX) on fd, retried until timeoutMs with one warning at warningMs.
void lockWithTimeout(int fd, const fs::path& file, int timeoutMs, int warningMs) {
    auto start = std::chrono::steady_clock::now();
    bool warned = false;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            throw systemError("cannot lock " + file.string(), errno);
        }
        cancellation::throwIfRequested();
        auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start).count();
        if (!warned && waited >= warningMs) {
            log::warn("still waiting for the lock on " + file.string() +
                      " (another sarus is updating the repository)");
            warned = true;
        }
        if (waited >= timeoutMs) {
            throw Error("timed out after " + std::to_string(timeoutMs) +
                        " ms waiting for the lock on " + file.string());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

// Exclusive flock on <repository>/.metadata.lock for the scope of the object,
// and on metadata.json itself, the file Sarus 1.7 locks, when there is one.
class IndexLock {
public:
    IndexLock(const fs::path& file, const fs::path& index, int timeoutMs, int warningMs) {
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd_ < 0) {
            throw systemError("cannot open lock file " + file.string(), errno);
        }
        try {
            lockWithTimeout(fd_, file, timeoutMs, warningMs);
            // A symlink planted in place of the index is never followed; it is
            // replaced by the next index written.
            indexFd_ = ::open(index.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
            if (indexFd_ >= 0) {
                lockWithTimeout(indexFd_, index, timeoutMs, warningMs);
            }
        } catch (...) {
            release();
            throw;
        }
    }
    ~IndexLock() { release(); }
    IndexLock(const IndexLock&) = delete;
    IndexLock& operator=(const IndexLock&) = delete;

private:
    void release() {
        if (indexFd_ >= 0) {
            ::close(indexFd_);
        }
        ::close(fd_);
    }
    int fd_ = -1;
    int indexFd_ = -1;
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

void moveOrThrow(const fs::path& from, const fs::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0) {
        throw systemError("cannot move " + from.string() + " to " + to.string(), errno);
    }
}

}  // namespace

namespace {

// Sarus names an image by server, namespace and image: "library/alpine" is
// namespace "library", image "alpine"; "ns/sub/img" is "ns/sub" and "img".
std::pair<std::string, std::string> splitRepository(const std::string& repository) {
    auto slash = repository.rfind('/');
    if (slash == std::string::npos) {
        return {"", repository};
    }
    return {repository.substr(0, slash), repository.substr(slash + 1)};
}

// Sarus's ImageReference::getUniqueKey(): the image's path in the repository
// without extension, the digest's colon made a dash.
std::string uniqueKey(const ImageReference& reference) {
    std::string key = reference.server + "/" + reference.repository + "/";
    if (!reference.tag.empty()) {
        return key + reference.tag;
    }
    auto digest = reference.digest;
    for (auto& c : digest) {
        c = c == ':' ? '-' : c;
    }
    return key + digest;
}

// Sarus stores the image ID as the bare hex of the configuration's digest.
std::string bareId(const std::string& id) {
    return id.rfind("sha256:", 0) == 0 ? id.substr(7) : id;
}

std::string stringField(const nlohmann::json& entry, const char* key, bool required) {
    auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) {
        if (required) {
            throw Error(std::string("no '") + key + "'");
        }
        return "";
    }
    if (!it->is_string()) {
        throw Error(std::string("'") + key + "' is not a string");
    }
    return it->get<std::string>();
}

bool isDockerHubAlias(const std::string& server) {
    return server == "index.docker.io" || server == "registry-1.docker.io";
}

void checkName(const std::string& what, const std::string& value) {
    if (value.empty()) {
        throw Error("empty '" + what + "'");
    }
    for (size_t start = 0; start <= value.size();) {
        auto end = value.find('/', start);
        end = end == std::string::npos ? value.size() : end;
        auto part = value.substr(start, end - start);
        if (part.empty() || part == "." || part == "..") {
            throw Error("'" + what + "' is not a name: '" + value + "'");
        }
        start = end + 1;
    }
}

// Entries of Sarus 1.7 (and of sarus since it writes Sarus's format).
StoredImage fromSarusEntry(const nlohmann::json& json) {
    StoredImage image;
    image.reference.server = stringField(json, "server", true);
    auto repositoryNamespace = stringField(json, "namespace", false);
    auto name = stringField(json, "image", true);
    checkName("server", image.reference.server);
    checkName("image", name);
    if (!repositoryNamespace.empty()) {
        checkName("namespace", repositoryNamespace);
    }
    image.reference.repository = repositoryNamespace.empty() ? name : repositoryNamespace + "/" + name;
    image.reference.tag = stringField(json, "tag", false);
    // "digest" is always "" in Sarus's entries (kept for Sarus 1.4); the
    // registry's digest is "registryDigest", absent before Sarus 1.5.
    image.digest = stringField(json, "registryDigest", false);
    image.id = stringField(json, "id", false);
    if (!image.id.empty() && image.id.find(':') == std::string::npos) {
        image.id = "sha256:" + image.id;
    }
    image.created = stringField(json, "created", false);
    image.imageFile = stringField(json, "imagePath", true);
    image.metadataFile = stringField(json, "metadataPath", true);
    if (isDockerHubAlias(image.reference.server)) {
        image.reference.server = "docker.io";
        image.legacyServer = true;
    }
    return image;
}

// Entries of sarus before it wrote Sarus's format.
StoredImage fromOwnEntry(const nlohmann::json& json) {
    StoredImage image;
    image.reference.server = stringField(json, "server", true);
    image.reference.repository = stringField(json, "repository", true);
    checkName("server", image.reference.server);
    checkName("repository", image.reference.repository);
    image.reference.tag = stringField(json, "tag", false);
    image.digest = stringField(json, "digest", false);
    image.id = stringField(json, "id", false);
    image.created = stringField(json, "created", false);
    image.imageFile = stringField(json, "imagefile", true);
    image.metadataFile = stringField(json, "metafile", true);
    return image;
}

bool sameImage(const ImageReference& a, const ImageReference& b) {
    auto x = a.identity();
    auto y = b.identity();
    return x.server == y.server && x.repository == y.repository && x.tag == y.tag &&
           (!x.tag.empty() || x.digest == y.digest);
}

}  // namespace

nlohmann::json StoredImage::toJson() const {
    auto [repositoryNamespace, name] = splitRepository(reference.repository);
    return {{"uniqueKey", uniqueKey(reference)},
            {"server", reference.server},
            {"namespace", repositoryNamespace},
            {"image", name},
            {"tag", reference.tag},
            {"digest", digest},
            {"registryDigest", digest},
            {"id", bareId(id)},
            {"imagePath", imageFile.string()},
            {"metadataPath", metadataFile.string()},
            {"datasize", humanReadableSize(size)},
            {"created", created},
            {"reference", reference.normalized()}};
}

StoredImage StoredImage::fromJson(const nlohmann::json& json) {
    if (!json.is_object()) {
        throw Error("not a JSON object");
    }
    StoredImage image;
    if (json.contains("imagePath")) {
        image = fromSarusEntry(json);
    } else if (json.contains("imagefile")) {
        image = fromOwnEntry(json);
    } else {
        throw Error("neither 'imagePath' nor 'imagefile'");
    }
    const auto& server = image.reference.server;
    if ((server == "docker.io" || server == "load") && image.reference.repository.find('/') == std::string::npos) {
        image.reference.repository = "library/" + image.reference.repository;
    }
    if (image.reference.tag.empty()) {
        if (image.digest.empty()) {
            throw Error("neither 'tag' nor 'registryDigest'");
        }
        image.reference.digest = image.digest;
    }
    if (image.imageFile.empty() || image.metadataFile.empty()) {
        throw Error("empty image or metadata path");
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
    auto base = config.localRepositoryBaseDir();
    auto dir = base / currentUserName() / config.localRepositoryFolder();
    ImageStore store(dir, config.metadataLockTimeoutMs(), config.metadataLockWarningMs());
    store.userBase_ = base;
    store.refuseRepositoryOfAnother();
    return store;
}

void ImageStore::refuseRepositoryOfAnother() const {
    if (!userBase_.empty()) {
        refuseDirectoriesOfAnother(userBase_, directory_, ::getuid());
    }
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
    if (!userBase_.empty()) {
        // Images pulled with --login are no business of other users: a new
        // local repository is the user's alone, as podman's storage is.
        createDirectories(directory_.parent_path());
        if (::mkdir(directory_.c_str(), 0700) != 0 && errno != EEXIST) {
            throw systemError("cannot create directory " + directory_.string(), errno);
        }
    }
    createDirectories(imagesDirectory());
    createDirectories(cacheDirectory());
    refuseRepositoryOfAnother();  // also when another user made a directory while this one did
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

namespace {

// The images of an index in its order, each with its position; entries that
// cannot be read are reported through `bad` and left out.
template <typename OnBad>
std::vector<std::pair<size_t, StoredImage>> readEntries(const nlohmann::json& index, OnBad bad) {
    std::vector<std::pair<size_t, StoredImage>> images;
    const auto& entries = index["images"];
    for (size_t i = 0; i < entries.size(); ++i) {
        try {
            images.emplace_back(i, StoredImage::fromJson(entries[i]));
        } catch (const Error& e) {
            bad(i, e.what());
        } catch (const nlohmann::json::exception& e) {
            bad(i, e.what());
        }
    }
    return images;
}

}  // namespace

std::vector<StoredImage> ImageStore::list() const {
    std::vector<StoredImage> images;
    auto index = readIndex();
    auto entries = readEntries(index, [&](size_t i, const std::string& why) {
        log::warn("ignoring image entry " + std::to_string(i + 1) + " of " + indexFile().string() + ": " + why);
    });
    for (auto& [position, image] : entries) {
        struct stat st {};
        if (::stat(image.imageFile.c_str(), &st) == 0 && fileExists(image.metadataFile)) {
            image.size = static_cast<std::uint64_t>(st.st_size);
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
    // As Sarus's run, an image under docker.io before one under the legacy
    // index.docker.io.
    std::optional<StoredImage> legacy;
    for (auto& image : list()) {
        if (!sameImage(image.reference, given)) {
            continue;
        }
        if (!image.legacyServer) {
            return image;
        }
        if (!legacy) {
            legacy = image;
        }
    }
    return legacy;
}

void ImageStore::checkStorable(const ImageReference& reference) const {
    auto clash = [&](const fs::path& path) {
        return Error("cannot store image '" + reference.normalized() + "': " + path.string() +
                     " belongs to another image (in Sarus's layout a repository is a directory and a tag a file)");
    };
    auto directory = imageDirectory(reference);
    fs::path path = imagesDirectory();
    for (const auto& component : directory.lexically_relative(imagesDirectory())) {
        path /= component;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) {
            return;  // made when the image is stored
        }
        if (!S_ISDIR(st.st_mode)) {
            throw clash(path);
        }
    }
    for (const auto& file : {directory / (reference.storeName() + ".squashfs"),
                             directory / (reference.storeName() + ".meta")}) {
        struct stat st {};
        if (::lstat(file.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
            throw clash(file);
        }
    }
}

PendingImage ImageStore::beginImport(const ImageReference& reference) {
    ensureLayout();
    auto dir = imageDirectory(reference);
    createDirectories(dir);
    // Partial files of imports whose process died (kill -9, node crash) are
    // removed by the next import into the same directory.
    removeStalePartialFiles(dir);
    auto partial = dir / partialFileName(reference.storeName() + ".squashfs");
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

    IndexLock lock(directory_ / ".metadata.lock", indexFile(), lockTimeoutMs_, lockWarningMs_);
    auto index = readIndex();  // before touching files: a corrupt index aborts cleanly
    // The new metadata takes its name only once the new image has its own:
    // an image that cannot be moved into place leaves the one it would have
    // replaced with that image's metadata.
    ScopedFile newMetadata(dir / partialFileName(reference.storeName() + ".meta"));
    writeFileAtomically(newMetadata.path(), metadata.toJson().dump(4) + "\n");
    moveOrThrow(pending.file(), image.imageFile);
    pending.markCommitted();
    moveOrThrow(newMetadata.path(), image.metadataFile);
    newMetadata.release();
    // The entry of the same image goes, whoever wrote it; entries that cannot
    // be read stay as they are.
    std::vector<StoredImage> replaced;
    auto entries = readEntries(index, [](size_t, const std::string&) {});
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
        if (sameImage(it->second.reference, reference)) {
            replaced.push_back(it->second);
            index["images"].erase(index["images"].begin() + static_cast<std::ptrdiff_t>(it->first));
        }
    }
    index["images"].push_back(image.toJson());
    writeIndex(index);
    // Files of a replaced entry stored elsewhere (Sarus names a digest's files
    // without '@'; Docker Hub's legacy server) would be left behind unlisted.
    auto remaining = readEntries(index, [](size_t, const std::string&) {});
    auto stillListed = [&](const fs::path& file) {
        for (const auto& [position, other] : remaining) {
            if (other.imageFile == file || other.metadataFile == file) {
                return true;
            }
        }
        return false;
    };
    for (const auto& old : replaced) {
        for (const auto& file : {old.imageFile, old.metadataFile}) {
            if (!stillListed(file)) {
                log::verbose("removing " + file.string() + " of the replaced " + old.reference.normalized());
                ::unlink(file.c_str());
            }
        }
    }
    return image;
}

std::unique_ptr<UnnamedFile> ImageStore::newImageFile(const std::string& fallbackName) const {
    ensureLayout();
    removeStalePartialFiles(imagesDirectory());
    return std::make_unique<UnnamedFile>(imagesDirectory(), fallbackName);
}

StoredImage ImageStore::commit(const ImageReference& reference, UnnamedFile& image, const ImageMetadata& metadata,
                               const std::string& id, const std::string& digest) {
    auto pending = beginImport(reference);
    image.publish(pending.file(), true);
    return commit(pending, metadata, id, digest);
}

StoredImage ImageStore::remove(const ImageReference& reference) {
    auto missing = [&] { return Error("Cannot find image '" + reference.identity().normalized() + "'"); };
    if (!fileExists(indexFile())) {
        throw missing();
    }
    IndexLock lock(directory_ / ".metadata.lock", indexFile(), lockTimeoutMs_, lockWarningMs_);
    auto image = find(reference);
    if (!image) {
        throw missing();
    }
    auto index = readIndex();
    auto entries = readEntries(index, [](size_t, const std::string&) {});
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
        if (it->second.imageFile == image->imageFile) {
            index["images"].erase(index["images"].begin() + static_cast<std::ptrdiff_t>(it->first));
        }
    }
    writeIndex(index);
    ::unlink(image->imageFile.c_str());
    ::unlink(image->metadataFile.c_str());
    return *image;
}

}  // namespace sarus
