#include "image/image_archive.hpp"

#include "common/cancellation.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "registry/manifest.hpp"
#include "common/sha256.hpp"
#include "image/image_metadata.hpp"

#include <archive.h>
#include <initializer_list>
#include <archive_entry.h>

#include <algorithm>
#include <optional>

namespace sarus {

namespace fs = std::filesystem;

namespace {

// Manifests, index and configuration are small JSON documents; anything
// larger, or not JSON, is a layer (read again when it is flattened). What is
// kept is capped: zeros compress to nothing in an archive's outer zstd.
constexpr std::uint64_t smallMemberLimit = 4 << 20;
constexpr std::uint64_t keptMembersLimit = 64 << 20;
constexpr std::size_t readBlockSize = 1 << 20;

using Reader = std::unique_ptr<archive, ArchiveReaderDeleter>;

std::string normalizeMemberName(std::string name) {
    while (name.rfind("./", 0) == 0) {
        name = name.substr(2);
    }
    return name;
}

// Only decompressors linked into libarchive, chosen for the formats images
// come in: filter_all would also take rpm, uu, lzip and chains of them, and
// run lrzip, grzip or lzop from the caller's PATH on the archive's bytes. A
// libarchive built without one of these libraries would run an external
// program for it (and say so with ARCHIVE_WARN): that filter is left out.
struct Filter {
    int (*support)(archive*);
    const char* (*libraryVersion)();
};

const Filter gzipFilter{archive_read_support_filter_gzip, archive_zlib_version};
const Filter zstdFilter{archive_read_support_filter_zstd, archive_libzstd_version};
const Filter bzip2Filter{archive_read_support_filter_bzip2, archive_bzlib_version};
const Filter xzFilter{archive_read_support_filter_xz, archive_liblzma_version};

void supportFilters(archive* reader, std::initializer_list<Filter> filters) {
    for (const auto& filter : filters) {
        if (filter.libraryVersion() != nullptr) {
            filter.support(reader);
        }
    }
}

Reader openOuter(const fs::path& file) {
    Reader reader(archive_read_new());
    // docker save's tar, or the same through gzip, bzip2, xz or zstd
    supportFilters(reader.get(), {gzipFilter, bzip2Filter, xzFilter, zstdFilter});
    archive_read_support_format_tar(reader.get());
    if (archive_read_open_filename(reader.get(), file.c_str(), readBlockSize) != ARCHIVE_OK) {
        throw Error(file.string() + ": cannot read archive: " + archive_error_string(reader.get()));
    }
    return reader;
}

bool isIndexType(const std::string& mediaType) {
    return mediaType == manifest::media::ociIndex || mediaType == manifest::media::dockerList;
}

std::string blobPath(const std::string& digest) {
    auto colon = digest.find(':');
    if (colon == std::string::npos || digest.find('/') != std::string::npos ||
        digest.find("..") != std::string::npos) {
        throw Error("bad digest '" + digest + "'");
    }
    return "blobs/" + digest.substr(0, colon) + "/" + digest.substr(colon + 1);
}

// libarchive read callback that pulls a member's bytes from the outer archive
// and hashes them on the way, so the digest check costs no second pass.
struct MemberStream {
    archive* outer;
    Sha256 hash;
    std::uint64_t bytes = 0;
    std::vector<char> buffer = std::vector<char>(readBlockSize);
};

la_ssize_t readMember(archive* inner, void* data, const void** out) {
    auto* stream = static_cast<MemberStream*>(data);
    la_ssize_t n = archive_read_data(stream->outer, stream->buffer.data(), stream->buffer.size());
    if (n < 0) {
        archive_set_error(inner, EIO, "%s", archive_error_string(stream->outer));
        return -1;
    }
    stream->hash.update(stream->buffer.data(), static_cast<std::size_t>(n));
    stream->bytes += static_cast<std::uint64_t>(n);
    *out = stream->buffer.data();
    return n;
}

}  // namespace

void ArchiveReaderDeleter::operator()(archive* a) const { archive_read_free(a); }

std::unique_ptr<archive, ArchiveReaderDeleter> newLayerReader() {
    std::unique_ptr<archive, ArchiveReaderDeleter> reader(archive_read_new());
    // the layer media types: tar, tar+gzip, tar+zstd
    supportFilters(reader.get(), {gzipFilter, zstdFilter});
    archive_read_support_format_tar(reader.get());
    archive_read_support_format_empty(reader.get());
    return reader;
}

ImageArchive::ImageArchive(fs::path file) : file_(std::move(file)) {
    withContext("reading image archive " + file_.string(), [&] {
        scan();
        if (smallMembers_.count("manifest.json")) {
            format_ = "docker-archive";
            resolveDockerArchive();
        } else if (smallMembers_.count("index.json")) {
            format_ = "oci-archive";
            resolveOciArchive();
        } else {
            throw Error(file_.string() +
                        ": not a docker-archive or OCI archive (no manifest.json or index.json)");
        }
        if (layers_.empty()) {
            throw Error(file_.string() + ": the image has no layers");
        }
    });
}

std::optional<std::string> ImageArchive::readJsonMember(archive* reader, const std::string& name,
                                                        std::uint64_t size) const {
    std::string content(size, '\0');
    auto read = [&](std::size_t from, std::size_t length) {
        auto n = archive_read_data(reader, content.data() + from, length);
        if (n < 0 || static_cast<std::size_t>(n) != length) {
            throw Error(file_.string() + ": cannot read member " + name + ": " +
                        (n < 0 ? archive_error_string(reader) : "truncated"));
        }
    };
    // Every document an image archive describes itself with is a JSON object
    // or list; a layer (tar, gzip, zstd) never starts like one.
    auto head = std::min<std::size_t>(content.size(), 64);
    read(0, head);
    auto first = content.find_first_not_of(" \t\r\n", 0);
    if (first == std::string::npos ? head < content.size() : (content[first] != '{' && content[first] != '[')) {
        return std::nullopt;
    }
    read(head, content.size() - head);
    return content;
}

void ImageArchive::scan() {
    auto reader = openOuter(file_);
    std::uint64_t kept = 0;
    archive_entry* entry = nullptr;
    int status;
    while ((status = archive_read_next_header(reader.get(), &entry)) == ARCHIVE_OK ||
           status == ARCHIVE_WARN) {
        cancellation::throwIfRequested();  // a compressed archive is decompressed whole here
        if (archive_entry_filetype(entry) != AE_IFREG) {
            continue;
        }
        auto name = normalizeMemberName(archive_entry_pathname(entry));
        auto size = static_cast<std::uint64_t>(archive_entry_size(entry));
        memberSizes_[name] = size;
        if (size > smallMemberLimit) {
            continue;  // skipped with a seek, never read
        }
        auto content = readJsonMember(reader.get(), name, size);
        if (!content) {
            continue;
        }
        kept += size;
        if (kept > keptMembersLimit) {
            throw Error(file_.string() + ": more than " + std::to_string(keptMembersLimit >> 20) +
                        " MiB of JSON members: not an image archive");
        }
        smallMembers_[name] = std::move(*content);
    }
    if (status != ARCHIVE_EOF) {
        throw Error(file_.string() + ": corrupt or truncated archive: " +
                    archive_error_string(reader.get()));
    }
}

const std::string& ImageArchive::member(const std::string& name) const {
    auto it = smallMembers_.find(name);
    if (it == smallMembers_.end()) {
        throw Error(file_.string() + ": member '" + name + "' is missing");
    }
    return it->second;
}

nlohmann::json ImageArchive::jsonMember(const std::string& name) const {
    try {
        return nlohmann::json::parse(member(name));
    } catch (const nlohmann::json::exception& e) {
        throw Error(file_.string() + ": member '" + name + "' is not valid JSON");
    }
}

void ImageArchive::resolveDockerArchive() {
    auto manifest = jsonMember("manifest.json");
    if (!manifest.is_array() || manifest.empty() || !manifest[0].is_object()) {
        throw Error(file_.string() + ": manifest.json is not a list of images");
    }
    if (manifest.size() > 1) {
        log::warn(file_.string() + " holds " + std::to_string(manifest.size()) +
                  " images; loading the first");
    }
    try {
        auto configName = normalizeMemberName(manifest[0].at("Config").get<std::string>());
        const auto& configText = member(configName);
        configDigest_ = Sha256::of(configText);
        imageConfig_ = jsonMember(configName);
        auto diffIds = layerDiffIds(imageConfig_);
        const auto& listed = manifest[0].at("Layers");
        if (!diffIds.empty() && diffIds.size() != listed.size()) {
            throw Error(file_.string() + ": the image configuration gives " + std::to_string(diffIds.size()) +
                        " diff ids for " + std::to_string(listed.size()) + " layers");
        }
        for (const auto& layer : listed) {
            auto name = normalizeMemberName(layer.get<std::string>());
            if (!memberSizes_.count(name)) {
                throw Error(file_.string() + ": layer '" + name + "' listed in manifest.json is missing");
            }
            // Docker >= 25 stores layers as blobs/sha256/<hex>: the name is the digest.
            std::string digest;
            if (name.rfind("blobs/sha256/", 0) == 0) {
                digest = "sha256:" + name.substr(13);
            }
            auto index = layers_.size();
            auto diffId = index < diffIds.size() ? diffIds[index] : "";
            if (digest.empty() && diffId.empty()) {
                throw Error(file_.string() + ": layer '" + name +
                            "' has neither a digest nor a diff id in the image configuration to check it against");
            }
            layers_.push_back({name, "", digest, diffId, memberSizes_[name]});
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(file_.string() + ": malformed manifest.json: " + e.what());
    }
}

namespace {

// The entry of an archive's index for this machine, as pull chooses one; an
// archive of one image often gives its entry no platform, and that entry is
// taken as it is.
nlohmann::json manifestForThisMachine(const nlohmann::json& manifests) {
    std::vector<manifest::Descriptor> described;
    bool anyPlatform = false;
    for (const auto& entry : manifests) {
        manifest::Descriptor d;
        d.mediaType = entry.value("mediaType", "");
        d.digest = entry.value("digest", "");
        if (entry.contains("platform") && entry["platform"].is_object()) {
            const auto& p = entry["platform"];
            d.platform = manifest::Platform{p.value("os", ""), p.value("architecture", ""), p.value("variant", "")};
            anyPlatform = true;
        }
        described.push_back(d);
    }
    if (!anyPlatform) {
        return manifests[0];
    }
    auto host = manifest::Platform::host();
    auto chosen = manifest::selectPlatform(described, host);
    if (!chosen) {
        std::string offered;
        for (const auto& d : described) {
            offered += (offered.empty() ? "" : ", ") + (d.platform ? d.platform->toString() : std::string("none"));
        }
        throw Error("no image for " + host.toString() + " in the archive (it has " + offered + ")");
    }
    for (const auto& entry : manifests) {
        if (entry.value("digest", "") == chosen->digest) {
            return entry;
        }
    }
    return manifests[0];
}

}  // namespace

void ImageArchive::resolveOciArchive() {
    auto index = jsonMember("index.json");
    try {
        // Follow nested indexes down to one image manifest for this machine.
        nlohmann::json descriptor;
        for (int depth = 0; depth < 4; ++depth) {
            const auto& manifests = index.at("manifests");
            if (!manifests.is_array() || manifests.empty()) {
                throw Error(file_.string() + ": index has no manifests");
            }
            descriptor = manifestForThisMachine(manifests);
            auto path = blobPath(descriptor.at("digest").get<std::string>());
            if (Sha256::of(member(path)) != descriptor.at("digest").get<std::string>()) {
                throw Error(file_.string() + ": blob " + path + " does not match its digest");
            }
            auto document = jsonMember(path);
            auto mediaType = descriptor.value("mediaType", document.value("mediaType", ""));
            if (!isIndexType(mediaType)) {
                index = document;
                break;
            }
            index = document;
        }
        const auto& manifest = index;
        auto configDigest = manifest.at("config").at("digest").get<std::string>();
        auto configPath = blobPath(configDigest);
        if (Sha256::of(member(configPath)) != configDigest) {
            throw Error(file_.string() + ": image configuration " + configPath +
                        " does not match its digest");
        }
        configDigest_ = configDigest;
        imageConfig_ = jsonMember(configPath);
        for (const auto& layer : manifest.at("layers")) {
            auto mediaType = layer.value("mediaType", "");
            if (!manifest::isSupportedLayerType(mediaType)) {
                throw Error(file_.string() + ": unsupported layer media type '" + mediaType + "'");
            }
            auto digest = layer.at("digest").get<std::string>();
            auto path = blobPath(digest);
            if (!memberSizes_.count(path)) {
                throw Error(file_.string() + ": layer blob " + path + " is missing");
            }
            layers_.push_back({path, mediaType, digest, "", memberSizes_[path]});
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(file_.string() + ": malformed OCI image layout: " + e.what());
    }
}

Reader ImageArchive::openAtLayer(const std::string& member) const {
    auto outer = openOuter(file_);
    archive_entry* entry = nullptr;
    int status;
    while ((status = archive_read_next_header(outer.get(), &entry)) == ARCHIVE_OK || status == ARCHIVE_WARN) {
        if (normalizeMemberName(archive_entry_pathname(entry)) == member) {
            return outer;
        }
    }
    throw Error(file_.string() + ": layer " + member + " vanished while reading");
}

std::string ImageArchive::decodedDigest(const std::string& member) const {
    auto outer = openAtLayer(member);
    MemberStream stream{outer.get()};
    Reader decoder(archive_read_new());
    supportFilters(decoder.get(), {gzipFilter, zstdFilter});
    archive_read_support_format_raw(decoder.get());
    Sha256 decoded;
    std::vector<char> buffer(readBlockSize);
    archive_entry* entry = nullptr;
    if (archive_read_open(decoder.get(), &stream, nullptr, readMember, nullptr) == ARCHIVE_OK &&
        archive_read_next_header(decoder.get(), &entry) == ARCHIVE_OK) {
        la_ssize_t n;
        while ((n = archive_read_data(decoder.get(), buffer.data(), buffer.size())) > 0) {
            cancellation::throwIfRequested();
            decoded.update(buffer.data(), static_cast<std::size_t>(n));
        }
        if (n == 0) {
            return decoded.digest();
        }
    }
    throw Error(file_.string() + ": layer " + member + ": " + archive_error_string(decoder.get()));
}

void ImageArchive::forEachLayer(
    const std::function<void(archive*, const ArchiveLayer&)>& consume) const {
    for (const auto& layer : layers_) {
        auto outer = openAtLayer(layer.member);
        MemberStream stream{outer.get()};
        auto inner = newLayerReader();
        if (archive_read_open(inner.get(), &stream, nullptr, readMember, nullptr) != ARCHIVE_OK) {
            throw Error(file_.string() + ": layer " + layer.member + ": " +
                        archive_error_string(inner.get()));
        }
        std::string consumeError;
        try {
            consume(inner.get(), layer);
        } catch (const Error& e) {
            consumeError = e.what();
        }
        // Hash what the tar reader did not need (end-of-archive padding, or
        // everything after a decompression failure).
        const void* ignored;
        while (readMember(inner.get(), &stream, &ignored) > 0) {
        }
        // `docker save` before Docker 25 names a layer by no digest: the
        // configuration's diff id is the digest of its bytes as plain tar,
        // which every docker-archive Docker and Skopeo write. A compressed
        // one (made by hand) is decoded once more to be hashed: libarchive
        // does not check gzip's CRC.
        auto expected = layer.digest.empty() ? layer.diffId : layer.digest;
        if (!expected.empty()) {
            bool compressed = layer.digest.empty() && archive_filter_code(inner.get(), 0) != ARCHIVE_FILTER_NONE;
            auto actual = compressed ? decodedDigest(layer.member) : stream.hash.digest();
            if (actual != expected) {
                throw Error(file_.string() + ": layer " + layer.member + " is corrupt: digest " + actual +
                            " does not match the expected " + expected);
            }
        }
        if (!consumeError.empty()) {
            throw Error(file_.string() + ": " + consumeError);
        }
    }
}

}  // namespace sarus
