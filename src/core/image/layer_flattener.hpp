// Flattens OCI image layers, streamed one after another, into a single
// squashfs image. Nothing is unpacked to disk: entries are applied to an
// in-memory tree (whiteouts, opaque directories, hard links, ownership from
// the tar headers) while file contents go straight into the squashfs data
// area through libsquashfs.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

struct archive;  // libarchive reader

namespace sarus {

// Who owns every file of an image. Sarus's rule: an image belongs to the user
// who imports it, so the container's user can write anywhere in its rootfs
// (pip install into /usr, edit /etc) whatever owners the layers record.
struct ImageOwner {
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    // The real ids of this process. Inline: Config uses it, and a definition
    // in layer_flattener.cpp would link libarchive and libsquashfs (and their
    // dependencies, ICU among them) into every `sarus run`.
    static ImageOwner ofCaller() {
        return {static_cast<std::uint32_t>(::getuid()), static_cast<std::uint32_t>(::getgid())};
    }
};

struct SquashfsOptions {
    std::string compressor = "zstd";  // zstd | gzip | xz | lz4 | lzo | lzma
    int level = 3;                    // 0: the compressor's default
    std::uint32_t blockSize = 131072;
    unsigned workers = 0;             // 0: one per online CPU
    std::optional<ImageOwner> owner;  // unset: the owners the layers record
};

struct FlattenStats {
    std::uint64_t entries = 0;        // entries in the final tree
    std::uint64_t imageBytes = 0;     // size of the squashfs file
};

class LayerFlattener {
public:
    LayerFlattener(const std::filesystem::path& output, const SquashfsOptions& options);
    ~LayerFlattener();
    LayerFlattener(const LayerFlattener&) = delete;
    LayerFlattener& operator=(const LayerFlattener&) = delete;

    // Applies every entry of an opened libarchive reader (any format/filter
    // the caller enabled) as the next layer. layerName appears in errors.
    void addLayer(archive* layer, const std::string& layerName);

    // Writes the tables and the super block. The output file is complete
    // only after this returns.
    FlattenStats finish();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sarus
