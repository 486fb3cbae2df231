#include "image/flat_tree.hpp"

#include "common/error.hpp"

#include <sqfs/predef.h>

#include <sys/stat.h>

namespace sarus::flat {

namespace {

constexpr std::size_t kNameMax = 255;  // squashfs and Linux limit

std::string joinComponents(const std::vector<std::string_view>& components, std::size_t count) {
    std::string path;
    for (std::size_t i = 0; i < count; ++i) {
        if (i != 0) {
            path += '/';
        }
        path += components[i];
    }
    return path;
}

// Drops the link counts of every inode below (and at) node, before the
// subtree's Nodes are destroyed.
void releaseLinks(Node& node) {
    --node.inode->links;
    for (auto& [name, child] : node.children) {
        releaseLinks(*child);
    }
}

}  // namespace

Inode::~Inode() {
    sqfs_free(fileData);
}

bool Inode::isDirectory() const {
    return S_ISDIR(mode);
}

bool Inode::isSymlink() const {
    return S_ISLNK(mode);
}

Node* Node::child(std::string_view name) const {
    auto it = children.find(name);
    return it == children.end() ? nullptr : it->second.get();
}

void splitPath(std::string_view path, std::vector<std::string_view>& components) {
    components.clear();
    if (!path.empty() && path.front() == '/') {
        throw Error("absolute path names are not allowed in layers");
    }
    std::size_t begin = 0;
    while (begin <= path.size()) {
        std::size_t end = path.find('/', begin);
        if (end == std::string_view::npos) {
            end = path.size();
        }
        std::string_view component = path.substr(begin, end - begin);
        if (component == "..") {
            throw Error("path names with '..' components are not allowed in layers");
        }
        if (component.size() > kNameMax) {
            throw Error("path component longer than " + std::to_string(kNameMax) + " bytes");
        }
        if (!component.empty() && component != ".") {
            components.push_back(component);
        }
        begin = end + 1;
    }
}

FlatTree::FlatTree() : root_(std::make_unique<Node>()) {
    Inode& inode = newInode();
    inode.mode = S_IFDIR | 0755;
    inode.links = 1;
    root_->inode = &inode;
}

Inode& FlatTree::newInode() {
    return inodes_.emplace_back();
}

Node* FlatTree::parentDirectory(const std::vector<std::string_view>& components,
                                std::uint32_t layer, std::uint32_t mtime, bool create) {
    Node* dir = root_.get();
    int hops = 0;
    for (std::size_t i = 0; i + 1 < components.size(); ++i) {
        Node* next = dir->child(components[i]);
        if (next == nullptr) {
            if (!create) {
                return nullptr;
            }
            next = &makeImplicitDirectory(*dir, components[i], layer, mtime);
        } else if (next->inode->isSymlink()) {
            next = followSymlink(*next, hops);
            if (next == nullptr) {
                throw Error("parent '" + joinComponents(components, i + 1) +
                            "' is a symlink that does not lead to a directory in the image");
            }
        } else if (!next->isDirectory()) {
            throw Error("parent '" + joinComponents(components, i + 1) + "' is not a directory");
        }
        dir = next;
    }
    return dir;
}

// Resolves like the kernel would inside a chroot at the image root: absolute
// targets start at the root and ".." stops there. Returns the directory the
// link leads to, or nullptr if it dangles or ends at a non-directory.
Node* FlatTree::followSymlink(const Node& link, int& hops) {
    if (++hops > kMaxSymlinkHops) {
        throw Error("too many levels of symbolic links");
    }
    const std::string& target = link.inode->symlinkTarget;
    Node* current = (!target.empty() && target.front() == '/') ? root_.get() : link.parent;
    std::size_t begin = 0;
    while (begin <= target.size() && current != nullptr) {
        std::size_t end = target.find('/', begin);
        if (end == std::string::npos) {
            end = target.size();
        }
        std::string_view component(target.data() + begin, end - begin);
        begin = end + 1;
        if (component.empty() || component == ".") {
            continue;
        }
        if (component == "..") {
            current = current->parent != nullptr ? current->parent : current;
            continue;
        }
        Node* next = current->child(component);
        if (next != nullptr && next->inode->isSymlink()) {
            next = followSymlink(*next, hops);
        } else if (next != nullptr && !next->isDirectory()) {
            next = nullptr;
        }
        current = next;
    }
    return current;
}

Node& FlatTree::makeImplicitDirectory(Node& dir, std::string_view name, std::uint32_t layer,
                                      std::uint32_t mtime) {
    Inode& inode = newInode();
    inode.mode = S_IFDIR | 0755;
    inode.mtime = mtime;
    return put(dir, name, inode, layer);
}

Node& FlatTree::put(Node& dir, std::string_view name, Inode& inode, std::uint32_t layer) {
    if (dir.depth + 1 > kMaxDepth) {
        throw Error("directory tree deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    auto node = std::make_unique<Node>();
    node->inode = &inode;
    node->parent = &dir;
    node->depth = dir.depth + 1;
    Node& placed = *node;
    // Count the new link first: for a hard link to the node being replaced,
    // the inode must not look unreferenced in between.
    ++inode.links;
    auto it = dir.children.find(name);
    if (it != dir.children.end()) {
        releaseLinks(*it->second);
        it->second = std::move(node);
    } else {
        dir.children.emplace(std::string(name), std::move(node));
    }
    touch(placed, layer);
    return placed;
}

void FlatTree::touch(Node& node, std::uint32_t layer) {
    node.layer = layer;
    // Ancestors always have newestLayer >= their children, so the walk can
    // stop at the first one that is already up to date.
    for (Node* n = &node; n != nullptr && n->newestLayer != layer; n = n->parent) {
        n->newestLayer = layer;
    }
}

void FlatTree::hideLowerLayers(Node& dir, std::string_view name, std::uint32_t layer) {
    auto it = dir.children.find(name);
    if (it == dir.children.end()) {
        return;
    }
    if (it->second->newestLayer < layer) {
        erase(dir, it);
    } else {
        hideLowerChildren(*it->second, layer);
    }
}

void FlatTree::hideLowerChildren(Node& dir, std::uint32_t layer) {
    // A layer can repeat a marker as often as it likes, each for 512 bytes:
    // walking the subtree again each time would cost N x M.
    if (dir.hiddenBelowIn == layer) {
        return;
    }
    dir.hiddenBelowIn = layer;
    for (auto it = dir.children.begin(); it != dir.children.end();) {
        Node& child = *it->second;
        if (child.newestLayer < layer) {
            it = erase(dir, it);
            continue;
        }
        hideLowerChildren(child, layer);
        ++it;
    }
}

Node::Children::iterator FlatTree::erase(Node& dir, Node::Children::iterator it) {
    releaseLinks(*it->second);
    return dir.children.erase(it);
}

}  // namespace sarus::flat
