// The in-memory namespace of an image being flattened: one Node per path,
// Inodes shared between hard links. It implements the OCI layer rules that
// only concern names (path validation, in-tree symlink resolution,
// replacement, whiteouts); reading archives and writing squashfs live in
// layer_flattener.cpp and squashfs_image_writer.cpp.
#pragma once

#include <sqfs/predef.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sarus::flat {

inline constexpr std::uint32_t kNoXattrs = 0xFFFFFFFF;

// Deeper trees are refused so that the recursive walks over the tree stay
// far away from the stack limit; PATH_MAX (4096) allows at most 2048 levels.
inline constexpr std::uint32_t kMaxDepth = 2048;

// Same limit as Linux (MAXSYMLINKS).
inline constexpr int kMaxSymlinkHops = 40;

// What a path refers to. Hard links share one Inode, so it lives in the
// tree's arena rather than in a Node; this also keeps a file's inode alive
// after its last path is gone, because libsquashfs keeps writing block
// locations into it until the data area is flushed.
struct Inode {
    Inode() = default;
    Inode(const Inode&) = delete;
    Inode& operator=(const Inode&) = delete;
    ~Inode();

    bool isDirectory() const;
    bool isSymlink() const;

    std::uint32_t mode = 0;  // S_IFMT type bits | permission bits (07777)
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::uint32_t mtime = 0;
    std::uint32_t xattrs = kNoXattrs;  // token of the squashfs xattr writer
    std::uint32_t devno = 0;           // squashfs (new_encode_dev) layout
    std::uint32_t links = 0;           // paths referring to it in the tree
    std::string symlinkTarget;
    sqfs_inode_generic_t* fileData = nullptr;  // filled by the block processor

    // Assigned while the image is serialised.
    std::uint32_t number = 0;
    std::uint64_t reference = 0;
    bool written = false;
};

struct Node {
    // std::map keeps names in byte order, which squashfs directories need.
    using Children = std::map<std::string, std::unique_ptr<Node>, std::less<>>;

    Node* child(std::string_view name) const;
    bool isDirectory() const { return inode->isDirectory(); }

    Inode* inode = nullptr;
    Node* parent = nullptr;
    std::uint32_t layer = 0;        // layer that last declared this path
    std::uint32_t newestLayer = 0;  // newest layer of this path or any below it
    // Layer whose whiteouts already removed every lower entry below this
    // path: repeated markers in that layer have nothing left to do.
    std::uint32_t hiddenBelowIn = 0;
    std::uint32_t depth = 0;
    Children children;
};

// Splits an archive path into its components, dropping "", "." and the
// slashes around them; the root is an empty list. Throws for absolute paths,
// ".." components and names longer than NAME_MAX.
void splitPath(std::string_view path, std::vector<std::string_view>& components);

class FlatTree {
public:
    FlatTree();
    FlatTree(const FlatTree&) = delete;
    FlatTree& operator=(const FlatTree&) = delete;

    Node& root() { return *root_; }

    // A fresh inode owned by the tree; referenced by nothing until put().
    Inode& newInode();

    // The directory that holds the last of `components`, following symlinks
    // of the tree for every component before it. With create, missing
    // directories are made like an unpacker would (0755, root-owned, given
    // mtime and layer); without, a missing one yields nullptr.
    Node* parentDirectory(const std::vector<std::string_view>& components,
                          std::uint32_t layer, std::uint32_t mtime, bool create);

    // Places inode at dir/name, replacing whatever was there with its whole
    // subtree.
    Node& put(Node& dir, std::string_view name, Inode& inode, std::uint32_t layer);

    // Records that `layer` declared this path (dir over dir keeps children).
    void touch(Node& node, std::uint32_t layer);

    // Whiteout of dir/name: hides what lower layers put at or below that path
    // while keeping whatever `layer` itself declared, whatever the entry
    // order inside the layer. A missing name is not an error.
    void hideLowerLayers(Node& dir, std::string_view name, std::uint32_t layer);
    // Opaque directory: the same for every child of dir.
    void hideLowerChildren(Node& dir, std::uint32_t layer);

private:
    Node* followSymlink(const Node& link, int& hops);
    Node& makeImplicitDirectory(Node& dir, std::string_view name, std::uint32_t layer,
                                std::uint32_t mtime);
    // Erases the child at `it` and its subtree; returns the next child.
    Node::Children::iterator erase(Node& dir, Node::Children::iterator it);

    std::deque<Inode> inodes_;  // stable addresses; see Inode
    std::unique_ptr<Node> root_;
};

}  // namespace sarus::flat
