// A Sarus image repository: images/<server>/<repository>/<tag>.squashfs and
// .meta, indexed by metadata.json. The index is written in Sarus 1.7's
// format (uniqueKey, server, namespace, image, tag, registryDigest, id,
// imagePath, metadataPath, datasize, created) plus "digest" and "reference",
// so Sarus 1.7 and sarus share one repository; indexes of earlier sarus
// versions (imagefile, metafile, numeric datasize) are read too. Writers take
// an exclusive flock on a lock file beside the index, and on metadata.json
// itself as Sarus 1.7 does, and replace files by rename, so concurrent
// imports never lose an index entry and readers never see half-written files.
#pragma once

#include "image/image_metadata.hpp"
#include "image/image_reference.hpp"
#include "common/unnamed_file.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sarus {

class Config;

struct StoredImage {
    ImageReference reference;
    std::string id;       // digest of the image configuration
    std::string digest;   // manifest digest from the registry, empty for loaded images
    std::string created;  // when it was imported, local time "YYYY-MM-DDTHH:MM:SS"
    std::uint64_t size = 0;
    std::filesystem::path imageFile;
    std::filesystem::path metadataFile;
    // Recorded under "index.docker.io", Docker Hub's name before Sarus 1.5.1;
    // read as docker.io, found after a docker.io entry of the same name.
    bool legacyServer = false;

    // The index entry, in Sarus 1.7's format plus "digest" and "reference".
    nlohmann::json toJson() const;
    // An entry written by sarus or by Sarus 1.7 (or earlier); throws
    // sarus::Error saying which field is wrong. The size is not read: it is
    // the image file's, see ImageStore::list().
    static StoredImage fromJson(const nlohmann::json& json);
};

// A squashfs being written for an image; deleted unless committed.
class PendingImage {
public:
    PendingImage(ImageReference reference, std::filesystem::path partialFile);
    ~PendingImage();
    PendingImage(PendingImage&&) noexcept;
    PendingImage(const PendingImage&) = delete;
    PendingImage& operator=(const PendingImage&) = delete;
    const std::filesystem::path& file() const { return partialFile_; }
    const ImageReference& reference() const { return reference_; }
    void markCommitted() { partialFile_.clear(); }

private:
    ImageReference reference_;
    std::filesystem::path partialFile_;
};

class ImageStore {
public:
    ImageStore(std::filesystem::path repositoryDir, int lockTimeoutMs, int lockWarningMs);

    // <localRepositoryBaseDir>/<user>/.sarus, or the centralized repository.
    static ImageStore local(const Config& config);
    static ImageStore centralized(const Config& config);

    const std::filesystem::path& directory() const { return directory_; }
    std::filesystem::path imagesDirectory() const { return directory_ / "images"; }
    std::filesystem::path cacheDirectory() const { return directory_ / "cache"; }

    // Entries whose files vanished are left out; entries that cannot be read
    // are left out with a warning (and kept in the index).
    std::vector<StoredImage> list() const;
    std::optional<StoredImage> find(const ImageReference& reference) const;

    // Reserves a partial file next to the final image location.
    PendingImage beginImport(const ImageReference& reference);
    // Throws sarus::Error when another image's files stand where this one's
    // go: Sarus's layout makes a repository a directory and a tag a file, so
    // "a/latest.squashfs:x" and "a:latest" need the same path.
    void checkStorable(const ImageReference& reference) const;
    // Moves the partial file into place, writes .meta and the index entry;
    // the entry it replaces goes, and so do its files if they were elsewhere.
    StoredImage commit(PendingImage& pending, const ImageMetadata& metadata, const std::string& id,
                       const std::string& digest);
    // A new, unnamed image file at the top of the images directory, the
    // repository made and checked first (and partial files of dead imports
    // removed): an import that fails or is killed leaves nothing.
    std::unique_ptr<UnnamedFile> newImageFile(const std::string& fallbackName) const;
    // Gives a complete image file its place, then commits it as above.
    StoredImage commit(const ImageReference& reference, UnnamedFile& image, const ImageMetadata& metadata,
                       const std::string& id, const std::string& digest);
    // Throws sarus::Error if the image is not in the store.
    StoredImage remove(const ImageReference& reference);

private:
    std::filesystem::path indexFile() const { return directory_ / "metadata.json"; }
    std::filesystem::path imageDirectory(const ImageReference& reference) const;
    nlohmann::json readIndex() const;
    void writeIndex(const nlohmann::json& index) const;
    void ensureLayout() const;
    void refuseRepositoryOfAnother() const;

    std::filesystem::path directory_;
    // <localRepositoryBaseDir> of a local repository, whose directories below
    // it must be the caller's; empty for the centralized one (the admin's).
    std::filesystem::path userBase_;
    int lockTimeoutMs_;
    int lockWarningMs_;
};

}  // namespace sarus
