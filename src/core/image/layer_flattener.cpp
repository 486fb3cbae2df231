#include "image/layer_flattener.hpp"

#include "common/cancellation.hpp"
#include "common/error.hpp"
#include "image/flat_tree.hpp"
#include "image/squashfs_image_writer.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

namespace sarus {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

Error archiveError(archive* reader, const std::string& what) {
    const char* message = archive_error_string(reader);
    return Error(what + ": " + (message != nullptr ? message : "unknown libarchive error"));
}

// libarchive warns when a name cannot be converted to the current locale
// (layers are UTF-8, processes often run in the C locale) but still hands
// out the raw bytes, which is what the image should contain anyway.
bool isCharsetWarning(archive* reader) {
    const char* message = archive_error_string(reader);
    return message != nullptr && std::strstr(message, "can't be converted") != nullptr;
}

const char* entryPath(archive_entry* entry) {
    const char* path = archive_entry_pathname(entry);
    if (path == nullptr) {
        path = archive_entry_pathname_utf8(entry);
    }
    return path;
}

const char* symlinkTarget(archive_entry* entry) {
    const char* target = archive_entry_symlink(entry);
    return target != nullptr ? target : archive_entry_symlink_utf8(entry);
}

const char* hardlinkTarget(archive_entry* entry) {
    const char* target = archive_entry_hardlink(entry);
    return target != nullptr ? target : archive_entry_hardlink_utf8(entry);
}

// squashfs stores mtimes as unsigned 32-bit seconds.
std::uint32_t clampTime(std::int64_t seconds) {
    if (seconds < 0) {
        return 0;
    }
    if (seconds > std::numeric_limits<std::uint32_t>::max()) {
        return std::numeric_limits<std::uint32_t>::max();
    }
    return static_cast<std::uint32_t>(seconds);
}

std::uint32_t checkedId(la_int64_t id, const char* what) {
    if (id < 0 || id > std::numeric_limits<std::uint32_t>::max()) {
        throw Error(std::string(what) + " " + std::to_string(id) + " out of range");
    }
    return static_cast<std::uint32_t>(id);
}

// The layout of Linux's new_encode_dev(), which squashfs stores.
std::uint32_t encodeDevice(unsigned major, unsigned minor) {
    return (minor & 0xffu) | (major << 8) | ((minor & ~0xffu) << 12);
}

}  // namespace

struct LayerFlattener::Impl {
    Impl(const std::filesystem::path& output, const SquashfsOptions& options)
        : writer(output, options) {}

    void addLayer(archive* reader, const std::string& layerName);
    void applyEntry(archive* reader, archive_entry* entry, const char* path);
    void applyRoot(archive_entry* entry, std::uint32_t mtime);
    void applyWhiteout(std::string_view name, std::uint32_t mtime);
    void applyHardlink(flat::Node& dir, std::string_view name, const char* target);
    void setMetadata(flat::Inode& inode, archive_entry* entry, std::uint32_t type,
                     std::uint32_t mtime);
    std::uint32_t readXattrs(archive_entry* entry);
    void readFileData(archive* reader, archive_entry* entry, flat::Inode& inode);

    // The tree outlives the writer: the writer's worker threads update file
    // inodes owned by the tree until they are joined.
    flat::FlatTree tree;
    SquashfsImageWriter writer;
    std::uint32_t layer = 0;
    bool finished = false;
    bool failed = false;
    // Zeros written for the holes of sparse entries, which cost the writer
    // time and memory but the layer next to nothing.
    std::uint64_t holes = 0;
    void fillHole(std::uint64_t size);
    // Reused for every entry to avoid allocations.
    std::vector<std::string_view> components;
    std::vector<std::string_view> linkComponents;
};

void LayerFlattener::Impl::addLayer(archive* reader, const std::string& layerName) {
    if (finished) {
        throw Error("cannot add layer '" + layerName + "': the squashfs image is already finished");
    }
    if (failed) {
        throw Error("cannot add layer '" + layerName + "': a previous layer failed");
    }
    if (reader == nullptr) {
        throw Error("layer '" + layerName + "': no archive reader");
    }
    ++layer;
    // Stays set if anything below throws: the tree and the block processor
    // may then be half-way through an entry.
    failed = true;
    std::string previous;
    for (;;) {
        cancellation::throwIfRequested();
        archive_entry* entry = nullptr;
        int status = archive_read_next_header(reader, &entry);
        if (status == ARCHIVE_EOF) {
            break;
        }
        if (status != ARCHIVE_OK && !(status == ARCHIVE_WARN && isCharsetWarning(reader))) {
            std::string where = "layer '" + layerName + "'";
            const char* path = (status == ARCHIVE_WARN || status == ARCHIVE_FAILED) && entry != nullptr
                                   ? entryPath(entry)
                                   : nullptr;
            if (path != nullptr) {
                where += ", entry '" + std::string(path) + "'";
            } else if (!previous.empty()) {
                where += ", after entry '" + previous + "'";
            }
            throw archiveError(reader, where);
        }
        const char* path = entryPath(entry);
        if (path == nullptr) {
            throw Error("layer '" + layerName + "', after entry '" + previous +
                        "': entry without a path name");
        }
        try {
            applyEntry(reader, entry, path);
        } catch (const Error& error) {
            throw Error("layer '" + layerName + "', entry '" + path + "': " + error.what());
        }
        previous = path;
    }
    failed = false;
}

void LayerFlattener::Impl::applyEntry(archive* reader, archive_entry* entry, const char* path) {
    flat::splitPath(path, components);
    const std::uint32_t mtime = clampTime(archive_entry_mtime(entry));
    if (components.empty()) {
        applyRoot(entry, mtime);
        return;
    }
    const std::string_view name = components.back();
    if (name.starts_with(kWhiteoutPrefix)) {
        applyWhiteout(name, mtime);
        return;
    }
    flat::Node& dir = *tree.parentDirectory(components, layer, mtime, true);
    if (const char* target = hardlinkTarget(entry)) {
        applyHardlink(dir, name, target);
        return;
    }
    const std::uint32_t type = archive_entry_filetype(entry);
    flat::Node* existing = dir.child(name);
    if (type == AE_IFDIR && existing != nullptr && existing->isDirectory()) {
        // Directory over directory: new metadata, children stay.
        setMetadata(*existing->inode, entry, type, mtime);
        tree.touch(*existing, layer);
        return;
    }
    flat::Inode& inode = tree.newInode();
    setMetadata(inode, entry, type, mtime);
    switch (type) {
    case AE_IFREG:
        readFileData(reader, entry, inode);
        break;
    case AE_IFLNK: {
        const char* target = symlinkTarget(entry);
        if (target == nullptr || *target == '\0') {
            throw Error("symlink without a target");
        }
        inode.symlinkTarget = target;
        break;
    }
    case AE_IFCHR:
    case AE_IFBLK:
        inode.devno = encodeDevice(archive_entry_rdevmajor(entry), archive_entry_rdevminor(entry));
        break;
    case AE_IFDIR:
    case AE_IFIFO:
    case AE_IFSOCK:
        break;
    default:
        throw Error("unsupported entry type " + std::to_string(type));
    }
    tree.put(dir, name, inode, layer);
}

void LayerFlattener::Impl::applyRoot(archive_entry* entry, std::uint32_t mtime) {
    if (hardlinkTarget(entry) != nullptr || archive_entry_filetype(entry) != AE_IFDIR) {
        throw Error("the root of a layer can only be a directory");
    }
    setMetadata(*tree.root().inode, entry, AE_IFDIR, mtime);
}

void LayerFlattener::Impl::applyWhiteout(std::string_view name, std::uint32_t mtime) {
    if (name == kOpaqueMarker) {
        // The marker means its directory exists in this layer; create it
        // like any parent so that the layer's own entries can follow.
        flat::Node* dir = tree.parentDirectory(components, layer, mtime, true);
        tree.hideLowerChildren(*dir, layer);
        return;
    }
    if (name.starts_with(kWhiteoutMetaPrefix)) {
        return;  // other AUFS bookkeeping (.wh..wh.plnk, ...): not content
    }
    const std::string_view hidden = name.substr(kWhiteoutPrefix.size());
    if (hidden.empty() || hidden == "." || hidden == "..") {
        throw Error("invalid whiteout name");
    }
    // Nothing to hide below a directory that does not exist.
    if (flat::Node* dir = tree.parentDirectory(components, layer, mtime, false)) {
        tree.hideLowerLayers(*dir, hidden, layer);
    }
}

// The link shares the target's inode (and thus its data and metadata); the
// link entry's own header metadata is ignored, as tar writers copy it anyway.
void LayerFlattener::Impl::applyHardlink(flat::Node& dir, std::string_view name,
                                         const char* target) {
    const std::string quoted = "hard link target '" + std::string(target) + "'";
    flat::Node* node = nullptr;
    try {
        flat::splitPath(target, linkComponents);
        if (linkComponents.empty()) {
            throw Error("is the root directory");
        }
        flat::Node* targetDir = tree.parentDirectory(linkComponents, layer, 0, false);
        node = targetDir != nullptr ? targetDir->child(linkComponents.back()) : nullptr;
    } catch (const Error& error) {
        throw Error(quoted + ": " + error.what());
    }
    if (node == nullptr) {
        throw Error(quoted + " does not exist");
    }
    if (node->isDirectory()) {
        throw Error(quoted + " is a directory");
    }
    tree.put(dir, name, *node->inode, layer);
}

void LayerFlattener::Impl::setMetadata(flat::Inode& inode, archive_entry* entry,
                                       std::uint32_t type, std::uint32_t mtime) {
    // libarchive's AE_IF* values are the POSIX S_IF* ones.
    inode.mode = type | (archive_entry_perm(entry) & 07777);
    inode.uid = checkedId(archive_entry_uid(entry), "uid");
    inode.gid = checkedId(archive_entry_gid(entry), "gid");
    inode.mtime = mtime;
    inode.xattrs = readXattrs(entry);
}

std::uint32_t LayerFlattener::Impl::readXattrs(archive_entry* entry) {
    if (archive_entry_xattr_reset(entry) == 0) {
        return flat::kNoXattrs;
    }
    writer.beginXattrs();
    const char* key = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    while (archive_entry_xattr_next(entry, &key, &value, &size) == ARCHIVE_OK) {
        writer.addXattr(key, value, size);
    }
    return writer.endXattrs();
}

// Streams the entry's data into the block processor as libarchive decodes
// it; holes of sparse entries (offset jumps) are filled with zeros, which
// the block processor stores as sparse blocks again.
void LayerFlattener::Impl::readFileData(archive* reader, archive_entry* entry,
                                        flat::Inode& inode) {
    writer.beginFile(&inode.fileData);
    std::uint64_t position = 0;
    for (;;) {
        const void* data = nullptr;
        std::size_t size = 0;
        la_int64_t offset = 0;
        int status = archive_read_data_block(reader, &data, &size, &offset);
        if (status == ARCHIVE_EOF) {
            break;
        }
        if (status != ARCHIVE_OK) {
            throw archiveError(reader, "reading file data");
        }
        cancellation::throwIfRequested();
        if (offset < 0 || static_cast<std::uint64_t>(offset) < position) {
            throw Error("file data blocks out of order");
        }
        fillHole(static_cast<std::uint64_t>(offset) - position);
        writer.append(data, size);
        position = static_cast<std::uint64_t>(offset) + size;
    }
    if (archive_entry_size_is_set(entry) && archive_entry_size(entry) > 0 &&
        static_cast<std::uint64_t>(archive_entry_size(entry)) > position) {
        fillHole(static_cast<std::uint64_t>(archive_entry_size(entry)) - position);
    }
    writer.endFile();
}

// A layer of a few bytes may declare sparse files of exabytes: past this
// much, an image is refused rather than written for hours.
constexpr std::uint64_t maxSparseHoles = std::uint64_t(64) << 30;

void LayerFlattener::Impl::fillHole(std::uint64_t size) {
    if (size > maxSparseHoles - holes) {
        throw Error("sparse files with more than 64 GiB of holes");
    }
    holes += size;
    writer.appendZeros(size);
}

LayerFlattener::LayerFlattener(const std::filesystem::path& output, const SquashfsOptions& options)
    : impl_(std::make_unique<Impl>(output, options)) {}

LayerFlattener::~LayerFlattener() = default;

void LayerFlattener::addLayer(archive* layer, const std::string& layerName) {
    impl_->addLayer(layer, layerName);
}

FlattenStats LayerFlattener::finish() {
    if (impl_->finished) {
        throw Error("the squashfs image is already finished");
    }
    if (impl_->failed) {
        throw Error("cannot finish the squashfs image: a layer failed");
    }
    impl_->finished = true;
    return impl_->writer.finish(impl_->tree);
}

}  // namespace sarus
