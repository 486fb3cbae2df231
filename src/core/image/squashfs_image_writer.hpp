// Owns the libsquashfs objects of one image being written: file data is
// streamed into the block processor as layers are read, and finish()
// serialises the final FlatTree (inode, directory, fragment, export, id and
// xattr tables, super block). Until finish() succeeds the output file is
// treated as scratch and removed on destruction.
#pragma once

#include "image/flat_tree.hpp"
#include "image/layer_flattener.hpp"

#include <sqfs/predef.h>
#include <sqfs/super.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

namespace sarus {

struct SqfsDestroy {
    void operator()(void* object) const { sqfs_destroy(object); }
};
template <typename T>
using SqfsPtr = std::unique_ptr<T, SqfsDestroy>;

class SquashfsImageWriter {
public:
    SquashfsImageWriter(const std::filesystem::path& output, const SquashfsOptions& options);
    ~SquashfsImageWriter();
    SquashfsImageWriter(const SquashfsImageWriter&) = delete;
    SquashfsImageWriter& operator=(const SquashfsImageWriter&) = delete;

    // One regular file: beginFile, any number of append/appendZeros, endFile.
    // *inode must stay at the same address until finish(): the block
    // processor keeps updating it from its worker threads.
    void beginFile(sqfs_inode_generic_t** inode);
    void append(const void* data, std::size_t size);
    void appendZeros(std::uint64_t count);
    void endFile();

    // Extended attributes of one inode. Keys with a prefix squashfs cannot
    // store are skipped; returns flat::kNoXattrs if nothing was kept.
    void beginXattrs();
    void addXattr(const char* key, const void* value, std::size_t size);
    std::uint32_t endXattrs();

    FlattenStats finish(flat::FlatTree& tree);

private:
    class OutputGuard {
    public:
        ~OutputGuard();
        std::filesystem::path path;
        bool armed = false;
    };

    // Declaration order is destruction order in reverse: the processor (and
    // its threads) goes before what it writes to, the file is closed before
    // the guard removes it.
    OutputGuard guard_;
    SqfsPtr<sqfs_file_t> file_;
    SqfsPtr<sqfs_compressor_t> compressor_;
    SqfsPtr<sqfs_compressor_t> decompressor_;
    SqfsPtr<sqfs_block_writer_t> blockWriter_;
    SqfsPtr<sqfs_frag_table_t> fragmentTable_;
    SqfsPtr<sqfs_block_processor_t> processor_;
    SqfsPtr<sqfs_id_table_t> idTable_;
    SqfsPtr<sqfs_xattr_writer_t> xattrWriter_;
    sqfs_super_t super_{};
    std::optional<ImageOwner> owner_;
    bool xattrsOpen_ = false;
};

}  // namespace sarus
