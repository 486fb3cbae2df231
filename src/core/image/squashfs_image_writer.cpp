#include "image/squashfs_image_writer.hpp"

#include "common/cancellation.hpp"
#include "common/error.hpp"

#include <string_view>

#include <sqfs/block.h>
#include <sqfs/block_processor.h>
#include <sqfs/block_writer.h>
#include <sqfs/compressor.h>
#include <sqfs/dir_writer.h>
#include <sqfs/error.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/meta_writer.h>
#include <sqfs/xattr.h>
#include <sqfs/xattr_writer.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace sarus {

namespace {

// Loop mounts read the device in 4 KiB pages; mksquashfs pads the same way.
constexpr std::uint64_t kImageAlignment = 4096;

std::string sqfsErrorText(int status) {
    switch (status) {
    case SQFS_ERROR_ALLOC: return "out of memory";
    case SQFS_ERROR_IO: return std::string("I/O error (") + std::strerror(errno) + ")";
    case SQFS_ERROR_COMPRESSOR: return "compressor failure";
    case SQFS_ERROR_INTERNAL: return "internal libsquashfs error";
    case SQFS_ERROR_CORRUPTED: return "corrupted data";
    case SQFS_ERROR_UNSUPPORTED: return "unsupported";
    case SQFS_ERROR_OVERFLOW: return "size overflow";
    case SQFS_ERROR_OUT_OF_BOUNDS: return "out of bounds";
    case SQFS_ERROR_ARG_INVALID: return "invalid argument";
    case SQFS_ERROR_SEQUENCE: return "calls out of sequence";
    default: return "libsquashfs error " + std::to_string(status);
    }
}

void check(int status, const std::string& what) {
    if (status != 0) {
        throw Error(what + ": " + sqfsErrorText(status));
    }
}

template <typename T>
SqfsPtr<T> checkCreated(T* object, const std::string& what) {
    if (object == nullptr) {
        throw Error(what + ": out of memory or invalid arguments");
    }
    return SqfsPtr<T>(object);
}

SqfsPtr<sqfs_compressor_t> makeCompressor(const SquashfsOptions& options, bool decompress) {
    int id = sqfs_compressor_id_from_name(options.compressor.c_str());
    if (id < 0) {
        throw Error("unknown squashfs compressor '" + options.compressor +
                    "' (expected zstd, gzip, xz, lz4, lzo or lzma)");
    }
    if (options.level < 0) {
        throw Error("invalid compression level " + std::to_string(options.level));
    }
    sqfs_compressor_config_t config;
    check(sqfs_compressor_config_init(&config, static_cast<SQFS_COMPRESSOR>(id), options.blockSize,
                                      decompress ? SQFS_COMP_FLAG_UNCOMPRESS : 0),
          "configuring compressor " + options.compressor);
    // lz4 has no levels; silently keeping the default lets callers pass the
    // generic level option whatever compressor they pick.
    if (options.level != 0 && id != SQFS_COMP_LZ4) {
        config.level = static_cast<sqfs_u32>(options.level);
    }
    sqfs_compressor_t* compressor = nullptr;
    int status = sqfs_compressor_create(&config, &compressor);
    if (status == SQFS_ERROR_UNSUPPORTED) {
        throw Error("squashfs compressor '" + options.compressor +
                    "' is not supported by this libsquashfs with level " +
                    std::to_string(options.level));
    }
    check(status, "creating compressor " + options.compressor + " with level " +
                      std::to_string(options.level));
    return SqfsPtr<sqfs_compressor_t>(compressor);
}

unsigned onlineCpus() {
    long count = sysconf(_SC_NPROCESSORS_ONLN);
    return count > 0 ? static_cast<unsigned>(count) : 1;
}

void syncFile(const std::filesystem::path& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int error = errno;
        if (fd >= 0) {
            close(fd);
        }
        throw systemError("syncing squashfs image " + path.string(), error);
    }
    close(fd);
}

struct SqfsFree {
    void operator()(void* memory) const { sqfs_free(memory); }
};

// Turns the final tree into the inode and directory tables. Inodes are
// written children first, so every directory listing can point at inodes
// whose location is already known; hard-linked inodes are written once.
class TreeSerializer {
public:
    TreeSerializer(sqfs_file_t* file, sqfs_compressor_t* compressor, sqfs_id_table_t* ids,
                   std::optional<ImageOwner> owner)
        : file_(file), ids_(ids), owner_(owner) {
        inodeTable_ = checkCreated(sqfs_meta_writer_create(file, compressor, 0), "inode table");
        // The directory table goes after the inode table on disk but is
        // produced at the same time, so it waits in memory.
        directoryTable_ = checkCreated(
            sqfs_meta_writer_create(file, compressor, SQFS_META_WRITER_KEEP_IN_MEMORY),
            "directory table");
        dirWriter_ = checkCreated(
            sqfs_dir_writer_create(directoryTable_.get(), SQFS_DIR_WRITER_CREATE_EXPORT_TABLE),
            "directory writer");
    }

    // Numbers inodes in the order writeDirectory() will write them; needed
    // up front because a directory inode names its parent's number.
    void numberInodes(flat::Node& dir) {
        for (auto& [name, child] : dir.children) {
            ++entries_;
            newestMtime_ = std::max(newestMtime_, child->inode->mtime);
            if (child->isDirectory()) {
                numberInodes(*child);
            } else if (child->inode->number == 0) {
                child->inode->number = ++inodeCount_;
            }
        }
        dir.inode->number = ++inodeCount_;
    }

    void writeDirectory(flat::Node& dir, std::uint32_t parentNumber) {
        std::size_t subdirectories = 0;
        for (auto& [name, child] : dir.children) {
            if (child->isDirectory()) {
                writeDirectory(*child, dir.inode->number);
                ++subdirectories;
            } else if (!child->inode->written) {
                writeLeaf(*child->inode);
            }
        }
        writeListing(dir);
        auto generic = directoryInode(*dir.inode, parentNumber, 2 + subdirectories);
        writeInode(*dir.inode, *generic);
    }

    void flushTables(sqfs_super_t& super) {
        check(sqfs_meta_writer_flush(inodeTable_.get()), "inode table");
        super.directory_table_start = file_->get_size(file_);
        check(sqfs_meta_writer_flush(directoryTable_.get()), "directory table");
        check(sqfs_meta_write_write_to_file(directoryTable_.get()), "directory table");
    }

    sqfs_dir_writer_t* dirWriter() { return dirWriter_.get(); }
    std::uint32_t inodeCount() const { return inodeCount_; }
    std::uint64_t entries() const { return entries_; }
    std::uint32_t newestMtime() const { return newestMtime_; }

private:
    // Directory entries must come in byte order, which std::map provides.
    void writeListing(const flat::Node& dir) {
        check(sqfs_dir_writer_begin(dirWriter_.get(), 0), "directory table");
        for (const auto& [name, child] : dir.children) {
            const flat::Inode& inode = *child->inode;
            check(sqfs_dir_writer_add_entry(dirWriter_.get(), name.c_str(), inode.number,
                                            inode.reference, static_cast<sqfs_u16>(inode.mode)),
                  "directory entry '" + name + "'");
        }
        check(sqfs_dir_writer_end(dirWriter_.get()), "directory table");
    }

    // The inode for the listing just written.
    std::unique_ptr<sqfs_inode_generic_t, SqfsFree> directoryInode(const flat::Inode& inode,
                                                                   std::uint32_t parentNumber,
                                                                   std::size_t links) {
        // A listing spanning several metadata blocks gets an index so that
        // lookups can skip blocks, like mksquashfs does. Only extended
        // inodes carry one, and libsquashfs makes a directory extended only
        // for xattrs (or huge listings), so a placeholder token forces it and
        // is replaced below.
        const bool wantIndex = sqfs_dir_writer_get_size(dirWriter_.get()) > SQFS_META_BLOCK_SIZE;
        const std::uint32_t xattrs =
            (wantIndex && inode.xattrs == flat::kNoXattrs) ? 0 : inode.xattrs;
        std::unique_ptr<sqfs_inode_generic_t, SqfsFree> generic(
            sqfs_dir_writer_create_inode(dirWriter_.get(), 0, xattrs, parentNumber));
        if (!generic) {
            throw Error("directory inode: out of memory");
        }
        // libsquashfs 1.2 counts every entry as a link; POSIX tools (find,
        // du) expect 2 plus the number of subdirectories.
        if (generic->base.type == SQFS_INODE_EXT_DIR) {
            generic->data.dir_ext.xattr_idx = inode.xattrs;
            generic->data.dir_ext.nlink = static_cast<sqfs_u32>(links);
        } else {
            generic->data.dir.nlink = static_cast<sqfs_u32>(links);
        }
        return generic;
    }

    void writeLeaf(flat::Inode& inode) {
        if (S_ISREG(inode.mode)) {
            if (inode.fileData == nullptr) {
                throw Error("internal error: regular file without data");
            }
            writeInode(inode, prepareFileInode(inode));
        } else {
            writeInode(inode, buildSpecialInode(inode));
        }
    }

    // The block processor filled in the data layout; only what squashfs
    // keeps in extended file inodes (link count, xattrs) is added here.
    sqfs_inode_generic_t& prepareFileInode(flat::Inode& inode) {
        sqfs_inode_generic_t* generic = inode.fileData;
        if (inode.xattrs != flat::kNoXattrs) {
            check(sqfs_inode_set_xattr_index(generic, inode.xattrs), "file inode");
        }
        if (inode.links > 1) {
            check(sqfs_inode_make_extended(generic), "file inode");
        }
        if (generic->base.type == SQFS_INODE_EXT_FILE) {
            generic->data.file_ext.nlink = inode.links;
        }
        return *generic;
    }

    // Symlinks, devices, FIFOs and sockets, built in a reused buffer.
    sqfs_inode_generic_t& buildSpecialInode(const flat::Inode& inode) {
        const std::size_t extra = inode.isSymlink() ? inode.symlinkTarget.size() : 0;
        scratch_.assign((sizeof(sqfs_inode_generic_t) + extra + 7) / 8, 0);
        auto* generic = reinterpret_cast<sqfs_inode_generic_t*>(scratch_.data());
        switch (inode.mode & S_IFMT) {
        case S_IFLNK:
            generic->base.type = SQFS_INODE_SLINK;
            generic->data.slink.nlink = inode.links;
            generic->data.slink.target_size = static_cast<sqfs_u32>(extra);
            generic->payload_bytes_available = generic->payload_bytes_used =
                static_cast<sqfs_u32>(extra);
            std::memcpy(generic->extra, inode.symlinkTarget.data(), extra);
            break;
        case S_IFCHR:
        case S_IFBLK:
            generic->base.type = S_ISCHR(inode.mode) ? SQFS_INODE_CDEV : SQFS_INODE_BDEV;
            generic->data.dev.nlink = inode.links;
            generic->data.dev.devno = inode.devno;
            break;
        case S_IFIFO:
        case S_IFSOCK:
            generic->base.type = S_ISFIFO(inode.mode) ? SQFS_INODE_FIFO : SQFS_INODE_SOCKET;
            generic->data.ipc.nlink = inode.links;
            break;
        default:
            throw Error("internal error: unexpected inode mode " + std::to_string(inode.mode));
        }
        if (inode.xattrs != flat::kNoXattrs) {
            check(sqfs_inode_set_xattr_index(generic, inode.xattrs), "inode");
        }
        return *generic;
    }

    void writeInode(flat::Inode& inode, sqfs_inode_generic_t& generic) {
        generic.base.mode = static_cast<sqfs_u16>(inode.mode);
        if (owner_) {  // here, so that directories no layer names get it too
            inode.uid = owner_->uid;
            inode.gid = owner_->gid;
        }
        check(sqfs_id_table_id_to_index(ids_, inode.uid, &generic.base.uid_idx),
              "uid " + std::to_string(inode.uid) + " (squashfs stores at most 65536 ids)");
        check(sqfs_id_table_id_to_index(ids_, inode.gid, &generic.base.gid_idx),
              "gid " + std::to_string(inode.gid) + " (squashfs stores at most 65536 ids)");
        generic.base.mod_time = inode.mtime;
        generic.base.inode_number = inode.number;
        sqfs_u64 block = 0;
        sqfs_u32 offset = 0;
        sqfs_meta_writer_get_position(inodeTable_.get(), &block, &offset);
        inode.reference = (block << 16) | offset;
        check(sqfs_meta_writer_write_inode(inodeTable_.get(), &generic), "inode table");
        inode.written = true;
    }

    sqfs_file_t* file_;
    sqfs_id_table_t* ids_;
    std::optional<ImageOwner> owner_;
    SqfsPtr<sqfs_meta_writer_t> inodeTable_;
    SqfsPtr<sqfs_meta_writer_t> directoryTable_;
    SqfsPtr<sqfs_dir_writer_t> dirWriter_;  // uses directoryTable_: declared after it
    std::vector<std::uint64_t> scratch_;
    std::uint32_t inodeCount_ = 0;
    std::uint64_t entries_ = 1;  // the root
    std::uint32_t newestMtime_ = 0;
};

}  // namespace

SquashfsImageWriter::OutputGuard::~OutputGuard() {
    if (armed) {
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
    }
}

SquashfsImageWriter::SquashfsImageWriter(const std::filesystem::path& output,
                                         const SquashfsOptions& options)
    : owner_(options.owner) {
    // Settings are validated before anything is created on disk.
    auto compressor = makeCompressor(options, false);
    auto decompressor = makeCompressor(options, true);
    check(sqfs_super_init(&super_, options.blockSize, 0,
                          static_cast<SQFS_COMPRESSOR>(
                              sqfs_compressor_id_from_name(options.compressor.c_str()))),
          "invalid squashfs block size " + std::to_string(options.blockSize) +
              " (must be a power of two between 4 KiB and 1 MiB)");

    sqfs_file_t* file = sqfs_open_file(output.c_str(), SQFS_FILE_OPEN_OVERWRITE);
    if (file == nullptr) {
        throw systemError("cannot create squashfs image " + output.string(), errno);
    }
    file_.reset(file);
    guard_.path = output;
    guard_.armed = true;
    compressor_ = std::move(compressor);
    decompressor_ = std::move(decompressor);

    // Reserve the super block; compressor options must follow it directly.
    check(sqfs_super_write(&super_, file_.get()), "writing " + output.string());
    int optionBytes = compressor_->write_options(compressor_.get(), file_.get());
    if (optionBytes < 0) {
        check(optionBytes, "writing compressor options to " + output.string());
    }
    if (optionBytes > 0) {
        super_.flags |= SQFS_FLAG_COMPRESSOR_OPTIONS;
    }

    blockWriter_ = checkCreated(sqfs_block_writer_create(file_.get(), SQFS_DEVBLK_SIZE, 0),
                                "block writer");
    fragmentTable_ = checkCreated(sqfs_frag_table_create(0), "fragment table");

    sqfs_block_processor_desc_t desc{};
    desc.size = sizeof(desc);
    desc.max_block_size = options.blockSize;
    desc.num_workers = options.workers != 0 ? options.workers : onlineCpus();
    // Bounds the file data held in memory to a few blocks per worker.
    desc.max_backlog = std::max(16u, desc.num_workers * 4);
    desc.cmp = compressor_.get();
    desc.wr = blockWriter_.get();
    desc.tbl = fragmentTable_.get();
    // With these, fragment deduplication compares bytes, not only hashes.
    desc.file = file_.get();
    desc.uncmp = decompressor_.get();
    sqfs_block_processor_t* processor = nullptr;
    check(sqfs_block_processor_create_ex(&desc, &processor), "creating block processor");
    processor_.reset(processor);

    idTable_ = checkCreated(sqfs_id_table_create(0), "id table");
    xattrWriter_ = checkCreated(sqfs_xattr_writer_create(0), "xattr writer");
}

SquashfsImageWriter::~SquashfsImageWriter() {
    // Only reached with a live processor when the image is abandoned.
    // libsquashfs 1.2 leaks blocks that are still queued when a processor is
    // destroyed, so they are drained first; errors no longer matter here.
    if (processor_) {
        sqfs_block_processor_finish(processor_.get());
    }
}

void SquashfsImageWriter::beginFile(sqfs_inode_generic_t** inode) {
    check(sqfs_block_processor_begin_file(processor_.get(), inode, nullptr, 0), "file data");
}

void SquashfsImageWriter::append(const void* data, std::size_t size) {
    check(sqfs_block_processor_append(processor_.get(), data, size), "file data");
}

void SquashfsImageWriter::appendZeros(std::uint64_t count) {
    static const std::array<char, 64 * 1024> zeros{};
    // A sparse entry may declare holes of any size: Ctrl-C must reach it.
    for (std::uint64_t filled = 0; count > 0; filled += zeros.size()) {
        if (filled % (64 << 20) == 0) {
            cancellation::throwIfRequested();
        }
        std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(count, zeros.size()));
        append(zeros.data(), chunk);
        count -= chunk;
    }
}

void SquashfsImageWriter::endFile() {
    check(sqfs_block_processor_end_file(processor_.get()), "file data");
}

void SquashfsImageWriter::beginXattrs() {
    xattrsOpen_ = false;
}

namespace {

// An image keeps its user.* attributes and file capabilities. trusted.* is
// what the kernel's overlayfs (root's, in suid mode) reads from its lower
// layer (trusted.overlay.redirect, .metacopy, .opaque), and the other
// security.* names are labels of the host's security modules: neither is an
// image's to set.
bool imageMayCarry(const char* key) {
    std::string_view name(key);
    return name.rfind("user.", 0) == 0 || name == "security.capability";
}

}  // namespace

void SquashfsImageWriter::addXattr(const char* key, const void* value, std::size_t size) {
    if (!imageMayCarry(key) || sqfs_get_xattr_prefix_id(key) < 0) {
        return;
    }
    if (!xattrsOpen_) {
        check(sqfs_xattr_writer_begin(xattrWriter_.get(), 0), "xattrs");
        xattrsOpen_ = true;
    }
    check(sqfs_xattr_writer_add(xattrWriter_.get(), key, value, size),
          std::string("xattr '") + key + "'");
}

std::uint32_t SquashfsImageWriter::endXattrs() {
    if (!xattrsOpen_) {
        return flat::kNoXattrs;
    }
    xattrsOpen_ = false;
    sqfs_u32 token = flat::kNoXattrs;
    check(sqfs_xattr_writer_end(xattrWriter_.get(), &token), "xattrs");
    return token;
}

FlattenStats SquashfsImageWriter::finish(flat::FlatTree& tree) {
    sqfs_file_t* file = file_.get();
    sqfs_compressor_t* compressor = compressor_.get();
    check(sqfs_block_processor_finish(processor_.get()), "writing file data");

    FlattenStats stats;
    {
        flat::Node& root = tree.root();
        TreeSerializer serializer(file, compressor, idTable_.get(), owner_);
        serializer.numberInodes(root);
        const std::uint32_t inodeCount = serializer.inodeCount();

        super_.inode_table_start = file->get_size(file);
        // Nothing is above the root; mksquashfs uses one past the last inode.
        serializer.writeDirectory(root, inodeCount + 1);
        serializer.flushTables(super_);

        check(sqfs_frag_table_write(fragmentTable_.get(), file, &super_, compressor),
              "writing fragment table");
        check(sqfs_dir_writer_write_export_table(serializer.dirWriter(), file, compressor,
                                                 root.inode->number, root.inode->reference,
                                                 &super_),
              "writing export table");
        check(sqfs_id_table_write(idTable_.get(), file, &super_, compressor), "writing id table");
        check(sqfs_xattr_writer_flush(xattrWriter_.get(), file, &super_, compressor),
              "writing xattr table");

        super_.inode_count = inodeCount;
        super_.root_inode_ref = root.inode->reference;
        super_.modification_time = serializer.newestMtime();
        stats.entries = serializer.entries();
    }
    super_.bytes_used = file->get_size(file);
    stats.imageBytes = (super_.bytes_used + kImageAlignment - 1) / kImageAlignment *
                       kImageAlignment;
    if (stats.imageBytes != super_.bytes_used) {
        check(file->truncate(file, stats.imageBytes), "padding image");
    }
    check(sqfs_super_write(&super_, file), "writing super block");

    // Callers may rename the image into place; make it durable first.
    processor_.reset();
    file_.reset();
    syncFile(guard_.path);
    guard_.armed = false;
    return stats;
}

}  // namespace sarus
