// Reads `docker save` archives and OCI image-layout archives without
// extracting them: one pass over the tar headers finds the manifests and
// configuration; each layer is then streamed straight out of the archive.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct archive;

namespace sarus {

struct ArchiveReaderDeleter {
    void operator()(archive* a) const;
};

struct ArchiveLayer {
    std::string member;     // path of the layer inside the archive
    std::string mediaType;  // empty for docker-archive (compression is detected)
    std::string digest;     // expected digest of the member's bytes, if known
    std::string diffId;     // the configuration's digest of the layer as plain tar, if given
    std::uint64_t size = 0;
};

class ImageArchive {
public:
    // Throws sarus::Error naming the file and what is wrong with it.
    explicit ImageArchive(std::filesystem::path file);

    const std::string& format() const { return format_; }  // "docker-archive" | "oci-archive"
    const nlohmann::json& imageConfig() const { return imageConfig_; }
    const std::string& configDigest() const { return configDigest_; }
    const std::vector<ArchiveLayer>& layers() const { return layers_; }

    // Calls consume with an opened libarchive reader for each layer, in order.
    // The layer's digest, when known, is verified after consume returns.
    void forEachLayer(const std::function<void(archive*, const ArchiveLayer&)>& consume) const;

private:
    void scan();
    // The member's content if it is a JSON document, from its first bytes.
    std::optional<std::string> readJsonMember(archive* reader, const std::string& name, std::uint64_t size) const;
    // The archive read up to the header of a layer's member.
    std::unique_ptr<archive, ArchiveReaderDeleter> openAtLayer(const std::string& member) const;
    // The digest of a compressed member's decompressed bytes.
    std::string decodedDigest(const std::string& member) const;
    void resolveDockerArchive();
    void resolveOciArchive();
    const std::string& member(const std::string& name) const;
    nlohmann::json jsonMember(const std::string& name) const;

    std::filesystem::path file_;
    std::string format_;
    std::map<std::string, std::string> smallMembers_;
    std::map<std::string, std::uint64_t> memberSizes_;
    nlohmann::json imageConfig_;
    std::string configDigest_;
    std::vector<ArchiveLayer> layers_;
};

// Opens a libarchive reader for tar layers with every compression filter.
std::unique_ptr<archive, ArchiveReaderDeleter> newLayerReader();

}  // namespace sarus
