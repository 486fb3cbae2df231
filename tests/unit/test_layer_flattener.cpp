// Builds small layers in memory with libarchive, flattens them and checks the
// resulting squashfs with independent readers (unsquashfs from squashfs-tools,
// rdsquashfs from squashfs-tools-ng, and the kernel when running as root).
#include "image/image_archive.hpp"
#include "common/file_utils.hpp"
#include "image/layer_flattener.hpp"

#include "common/error.hpp"

#include <gtest/gtest.h>

#include <archive.h>
#include <archive_entry.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using sarus::FlattenStats;
using sarus::LayerFlattener;
using sarus::SquashfsOptions;

namespace {

constexpr time_t kMtime = 1700000000;

// ---- building layers -------------------------------------------------------

class LayerBuilder {
public:
    explicit LayerBuilder(bool gzip = false) : writer_(archive_write_new()) {
        archive_write_set_format_pax_restricted(writer_);
        if (gzip) {
            archive_write_add_filter_gzip(writer_);
        }
        archive_write_open(writer_, &bytes_, nullptr, &LayerBuilder::append, nullptr);
    }
    ~LayerBuilder() { archive_write_free(writer_); }
    LayerBuilder(const LayerBuilder&) = delete;
    LayerBuilder& operator=(const LayerBuilder&) = delete;

    using Customize = std::function<void(archive_entry*)>;

    LayerBuilder& add(const std::string& path, unsigned type, unsigned perm,
                      const std::string& content = "", const Customize& customize = {}) {
        archive_entry* entry = archive_entry_new();
        archive_entry_set_pathname(entry, path.c_str());
        archive_entry_set_filetype(entry, type);
        archive_entry_set_perm(entry, perm);
        archive_entry_set_mtime(entry, kMtime, 0);
        archive_entry_set_size(entry, static_cast<la_int64_t>(content.size()));
        if (customize) {
            customize(entry);
        }
        EXPECT_EQ(archive_write_header(writer_, entry), ARCHIVE_OK) << archive_error_string(writer_);
        if (!content.empty()) {
            EXPECT_EQ(archive_write_data(writer_, content.data(), content.size()),
                      static_cast<la_ssize_t>(content.size()));
        }
        archive_entry_free(entry);
        return *this;
    }

    LayerBuilder& dir(const std::string& path, unsigned perm = 0755, la_int64_t uid = 0,
                      la_int64_t gid = 0) {
        return add(path, AE_IFDIR, perm, "", [&](archive_entry* e) {
            archive_entry_set_uid(e, uid);
            archive_entry_set_gid(e, gid);
        });
    }
    LayerBuilder& file(const std::string& path, const std::string& content, unsigned perm = 0644,
                       la_int64_t uid = 0, la_int64_t gid = 0) {
        return add(path, AE_IFREG, perm, content, [&](archive_entry* e) {
            archive_entry_set_uid(e, uid);
            archive_entry_set_gid(e, gid);
        });
    }
    LayerBuilder& symlink(const std::string& path, const std::string& target) {
        return add(path, AE_IFLNK, 0777, "",
                   [&](archive_entry* e) { archive_entry_set_symlink(e, target.c_str()); });
    }
    LayerBuilder& hardlink(const std::string& path, const std::string& target) {
        return add(path, AE_IFREG, 0644, "",
                   [&](archive_entry* e) { archive_entry_set_hardlink(e, target.c_str()); });
    }
    LayerBuilder& device(const std::string& path, unsigned type, unsigned major, unsigned minor) {
        return add(path, type, 0620, "", [&](archive_entry* e) {
            archive_entry_set_rdevmajor(e, major);
            archive_entry_set_rdevminor(e, minor);
        });
    }
    LayerBuilder& whiteout(const std::string& path) { return file(path, ""); }

    std::string build() {
        EXPECT_EQ(archive_write_close(writer_), ARCHIVE_OK) << archive_error_string(writer_);
        return bytes_;
    }

private:
    static la_ssize_t append(archive*, void* client, const void* buffer, size_t length) {
        static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
        return static_cast<la_ssize_t>(length);
    }

    archive* writer_;
    std::string bytes_;
};

std::string pattern(std::size_t size, unsigned seed) {
    std::string data(size, '\0');
    std::uint32_t state = seed * 2654435761u + 1;
    for (std::size_t i = 0; i < size; ++i) {
        state = state * 1103515245u + 12345u;
        // Mostly compressible, never all zeros, different per seed.
        data[i] = static_cast<char>((i % 251) ^ ((state >> 16) & 0x0f));
    }
    return data;
}

// ---- running the tools -----------------------------------------------------

struct CommandResult {
    int status = -1;
    std::string output;
};

CommandResult run(const std::string& command) {
    CommandResult result;
    FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
    if (pipe == nullptr) {
        return result;
    }
    char buffer[65536];
    std::size_t n = 0;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
        result.output.append(buffer, n);
    }
    int status = pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

bool haveTool(const std::string& name) {
    return run("command -v " + name).status == 0;
}

std::string quote(const std::string& text) {
    std::string quoted = "'";
    for (char c : text) {
        quoted += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    }
    return quoted + "'";
}

struct Listed {
    std::string perms;   // "-rwsr-xr-x"
    std::string owner;   // "uid/gid"
    std::string size;    // bytes, or "major,minor" as unsquashfs prints it
    std::string target;  // symlinks
};

// Parses `unsquashfs -lln`; keys are paths relative to the root ("" = root).
std::map<std::string, Listed> listing(const fs::path& image) {
    std::map<std::string, Listed> entries;
    CommandResult result = run("unsquashfs -lln " + quote(image));
    EXPECT_EQ(result.status, 0) << "unsquashfs failed on " << image;
    std::istringstream lines(result.output);
    std::string line;
    const std::string root = "squashfs-root";
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        Listed entry;
        std::string date, time, path;
        fields >> entry.perms >> entry.owner >> entry.size;
        if (entry.perms.empty() || entry.perms.size() != 10) {
            continue;
        }
        if (entry.perms[0] == 'c' || entry.perms[0] == 'b') {
            std::string minor;
            fields >> minor;
            entry.size += minor;
        }
        fields >> date >> time;
        std::string rest;
        std::getline(fields, rest);
        rest.erase(0, rest.find_first_not_of(' '));
        std::size_t arrow = rest.find(" -> ");
        path = rest.substr(0, arrow);
        if (arrow != std::string::npos) {
            entry.target = rest.substr(arrow + 4);
        }
        if (path.rfind(root, 0) != 0) {
            continue;
        }
        path.erase(0, root.size());
        if (!path.empty() && path[0] == '/') {
            path.erase(0, 1);
        }
        entries[path] = entry;
    }
    return entries;
}

std::string cat(const fs::path& image, const std::string& path) {
    CommandResult result = run("rdsquashfs -c " + quote("/" + path) + " " + quote(image));
    EXPECT_EQ(result.status, 0) << "rdsquashfs -c failed for " << path;
    return result.output;
}

// `rdsquashfs -s`: "Key: value" lines.
std::map<std::string, std::string> inodeInfo(const fs::path& image, const std::string& path) {
    std::map<std::string, std::string> info;
    CommandResult result = run("rdsquashfs -s " + quote("/" + path) + " " + quote(image));
    EXPECT_EQ(result.status, 0) << "rdsquashfs -s failed for " << path;
    std::istringstream lines(result.output);
    std::string line;
    while (std::getline(lines, line)) {
        std::size_t colon = line.find(": ");
        if (colon != std::string::npos) {
            info[line.substr(0, colon)] = line.substr(colon + 2);
        }
    }
    return info;
}

// ---- fixture ---------------------------------------------------------------

struct ReaderFree {
    void operator()(archive* reader) const { archive_read_free(reader); }
};

void addLayerBytes(LayerFlattener& flattener, const std::string& bytes, const std::string& name) {
    std::unique_ptr<archive, ReaderFree> reader(archive_read_new());
    archive_read_support_filter_all(reader.get());
    archive_read_support_format_all(reader.get());
    ASSERT_EQ(archive_read_open_memory(reader.get(), bytes.data(), bytes.size()), ARCHIVE_OK)
        << archive_error_string(reader.get());
    flattener.addLayer(reader.get(), name);
}

class LayerFlattenerTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!haveTool("unsquashfs") || !haveTool("rdsquashfs")) {
            GTEST_SKIP() << "unsquashfs (squashfs-tools) and rdsquashfs (squashfs-tools-ng) "
                            "are needed to check images";
        }
    }

    // Layers are named "layer1", "layer2", ... in errors.
    FlattenStats flatten(const std::vector<std::string>& layers, SquashfsOptions options = {}) {
        options.workers = options.workers == 0 ? 2 : options.workers;
        LayerFlattener flattener(image_, options);
        for (std::size_t i = 0; i < layers.size(); ++i) {
            addLayerBytes(flattener, layers[i], "layer" + std::to_string(i + 1));
        }
        return flattener.finish();
    }

    // Expects flattening to fail with a message containing all `needles`
    // and the partial image to be gone afterwards.
    void expectRejected(const std::vector<std::string>& layers,
                        const std::vector<std::string>& needles) {
        std::string message;
        try {
            flatten(layers);
        } catch (const sarus::Error& error) {
            message = error.what();
        }
        ASSERT_FALSE(message.empty()) << "flattening was expected to fail";
        for (const std::string& needle : needles) {
            EXPECT_NE(message.find(needle), std::string::npos)
                << "'" << needle << "' missing from: " << message;
        }
        EXPECT_FALSE(fs::exists(image_)) << "partial image left behind";
    }

    sarus::TempDirectory temp_{fs::temp_directory_path(), "flattener-test"};
    const fs::path dir_ = temp_.path();
    const fs::path image_ = dir_ / "image.sqfs";
};

// ---- tests -----------------------------------------------------------------

TEST_F(LayerFlattenerTest, KeepsTypesModesOwnersAndTimes) {
    std::string layer = LayerBuilder()
                            .dir("./", 0750, 0, 0)
                            .dir("etc/")
                            .file("etc/passwd", "root:x:0:0\n", 0644)
                            .file("usr/bin/sudo", "#!/bin/true\n", 04755, 0, 0)
                            .file("usr/bin/wall", "x", 02755, 0, 5)
                            .dir("tmp/", 01777)
                            .file("home/user/notes", "mine", 0600, 1000, 100)
                            .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
                            .symlink("bin", "usr/bin")
                            .build();
    FlattenStats stats = flatten({layer});
    auto entries = listing(image_);

    EXPECT_EQ(stats.entries, entries.size());
    EXPECT_EQ(stats.imageBytes, fs::file_size(image_));
    EXPECT_EQ(stats.imageBytes % 4096, 0u);

    EXPECT_EQ(entries[""].perms, "drwxr-x---");
    EXPECT_EQ(entries["etc"].perms, "drwxr-xr-x");
    EXPECT_EQ(entries["etc/passwd"].perms, "-rw-r--r--");
    EXPECT_EQ(entries["etc/passwd"].size, "11");
    EXPECT_EQ(entries["usr/bin/sudo"].perms, "-rwsr-xr-x");
    EXPECT_EQ(entries["usr/bin/wall"].perms, "-rwxr-sr-x");
    EXPECT_EQ(entries["usr/bin/wall"].owner, "0/5");
    EXPECT_EQ(entries["tmp"].perms, "drwxrwxrwt");
    EXPECT_EQ(entries["home/user/notes"].perms, "-rw-------");
    EXPECT_EQ(entries["home/user/notes"].owner, "1000/100");
    EXPECT_EQ(entries["etc/localtime"].perms, "lrwxrwxrwx");
    EXPECT_EQ(entries["etc/localtime"].target, "/usr/share/zoneinfo/UTC");
    EXPECT_EQ(entries["bin"].target, "usr/bin");

    // Implicit parents: 0755, root-owned.
    EXPECT_EQ(entries["usr"].perms, "drwxr-xr-x");
    EXPECT_EQ(entries["home/user"].owner, "0/0");

    auto info = inodeInfo(image_, "home/user/notes");
    EXPECT_NE(info["Last modified"].find("(" + std::to_string(kMtime) + ")"), std::string::npos)
        << info["Last modified"];
    EXPECT_EQ(cat(image_, "etc/passwd"), "root:x:0:0\n");
}

TEST_F(LayerFlattenerTest, AnOwnerOwnsEveryEntryWithModesKept) {
    std::string layer = LayerBuilder()
                            .file("usr/bin/sudo", "#!/bin/true\n", 04755, 0, 0)
                            .file("home/user/notes", "mine", 0600, 1000, 100)
                            .symlink("bin", "usr/bin")
                            .build();
    SquashfsOptions options;
    options.owner = sarus::ImageOwner{4321, 8765};
    flatten({layer}, options);
    auto entries = listing(image_);

    // with the root and the implicit usr, usr/bin, home and home/user
    ASSERT_EQ(entries.size(), 8u);
    for (const auto& [path, entry] : entries) {
        EXPECT_EQ(entry.owner, "4321/8765") << "'" << path << "'";
    }
    EXPECT_EQ(entries["usr/bin/sudo"].perms, "-rwsr-xr-x");
    EXPECT_EQ(entries["home/user/notes"].perms, "-rw-------");
}

TEST_F(LayerFlattenerTest, DirectoryLinkCountCountsSubdirectories) {
    std::string layer = LayerBuilder()
                            .dir("d/")
                            .dir("d/a/")
                            .dir("d/b/")
                            .file("d/f", "x")
                            .build();
    flatten({layer});
    EXPECT_EQ(inodeInfo(image_, "d")["Hard link count"], "4");
    EXPECT_EQ(inodeInfo(image_, "d/a")["Hard link count"], "2");
    EXPECT_EQ(inodeInfo(image_, "")["Hard link count"], "3");
}

TEST_F(LayerFlattenerTest, LargeDirectoriesGetAnIndex) {
    LayerBuilder builder;
    for (int i = 0; i < 1500; ++i) {
        char name[32];
        std::snprintf(name, sizeof(name), "many/entry-%05d", i);
        builder.file(name, std::to_string(i));
    }
    builder.file("small/one", "1");
    flatten({builder.build()});
    auto entries = listing(image_);
    EXPECT_EQ(entries.size(), 1 + 1 + 1500 + 1 + 1u);
    auto many = inodeInfo(image_, "many");
    EXPECT_EQ(many["Inode type"], "extended directory");
    EXPECT_NE(many["Directory index entries"], "0");
    EXPECT_EQ(many["Xattr index"], "0xFFFFFFFF");
    EXPECT_EQ(inodeInfo(image_, "small")["Inode type"], "directory");
    EXPECT_EQ(cat(image_, "many/entry-01234"), "1234");
    EXPECT_EQ(cat(image_, "many/entry-00000"), "0");
}

TEST_F(LayerFlattenerTest, StoresFileContents) {
    const std::string big = pattern(1024 * 1024, 1);
    const std::string odd = pattern(128 * 1024 + 17, 2);
    const std::string smallA = pattern(1000, 3);
    const std::string smallB = pattern(1000, 4);  // same size, other bytes
    std::string layer = LayerBuilder()
                            .file("big", big)
                            .file("odd", odd)
                            .file("a", smallA)
                            .file("b", smallB)
                            .file("a-copy", smallA)
                            .file("empty", "")
                            .file("zeros", std::string(300000, '\0'))
                            .build();
    flatten({layer});
    EXPECT_EQ(cat(image_, "big"), big);
    EXPECT_EQ(cat(image_, "odd"), odd);
    EXPECT_EQ(cat(image_, "a"), smallA);
    EXPECT_EQ(cat(image_, "b"), smallB);
    EXPECT_EQ(cat(image_, "a-copy"), smallA);
    EXPECT_EQ(cat(image_, "empty"), "");
    EXPECT_EQ(cat(image_, "zeros"), std::string(300000, '\0'));
    auto entries = listing(image_);
    EXPECT_EQ(entries["big"].size, std::to_string(big.size()));
    EXPECT_EQ(entries["zeros"].size, "300000");
}

TEST_F(LayerFlattenerTest, FillsHolesOfSparseFiles) {
    const std::string head = pattern(5000, 7);
    const std::string tail = pattern(3000, 8);
    const la_int64_t size = 4 * 1024 * 1024;
    const la_int64_t tailOffset = 3 * 1024 * 1024;
    std::string data = head;
    data.resize(static_cast<std::size_t>(tailOffset), '\0');
    data += tail;
    data.resize(static_cast<std::size_t>(size), '\0');

    // The pax writer drops the holes from the data it is given; reading
    // back yields data blocks at offsets, with a hole at the end too.
    std::string layer = LayerBuilder()
                            .add("sparse", AE_IFREG, 0644, data,
                                 [&](archive_entry* e) {
                                     archive_entry_sparse_add_entry(
                                         e, 0, static_cast<la_int64_t>(head.size()));
                                     archive_entry_sparse_add_entry(
                                         e, tailOffset, static_cast<la_int64_t>(tail.size()));
                                 })
                            .build();
    ASSERT_LT(layer.size(), 100000u) << "the layer does not contain a sparse entry";
    flatten({layer});
    EXPECT_EQ(cat(image_, "sparse"), data);
    auto info = inodeInfo(image_, "sparse");
    EXPECT_EQ(info["File size"], std::to_string(size));
}

TEST_F(LayerFlattenerTest, RefusesSparseFilesOfHugeHoles) {
    // GNU tar stores a 100 GiB file of holes in a few KiB (SEEK_HOLE).
    auto big = dir_ / "sparse-source";
    fs::create_directories(big);
    ASSERT_EQ(run("truncate -s 100G " + quote((big / "huge").string()) + " && printf x >> " +
                  quote((big / "huge").string()) + " && tar -C " + quote(big.string()) +
                  " --sparse --format=pax -cf - huge")
                  .status,
              0);
    auto layer = run("tar -C " + quote(big.string()) + " --sparse --format=pax -cf - huge").output;
    fs::remove_all(big);
    ASSERT_LT(layer.size(), 1000000u) << "the layer does not contain a sparse entry";
    expectRejected({layer}, {"layer1", "huge", "sparse files with more than 64 GiB of holes"});
}

TEST_F(LayerFlattenerTest, WhiteoutRemovesLowerFileAndDirectory) {
    std::string lower = LayerBuilder()
                            .file("a/x", "x")
                            .file("a/y", "y")
                            .file("b/c/d", "d")
                            .file("keep", "k")
                            .build();
    std::string upper = LayerBuilder()
                            .whiteout("a/.wh.x")
                            .whiteout(".wh.b")
                            .whiteout(".wh.does-not-exist")
                            .whiteout("missing/dir/.wh.x")
                            .build();
    FlattenStats stats = flatten({lower, upper});
    auto entries = listing(image_);
    EXPECT_FALSE(entries.count("a/x"));
    EXPECT_TRUE(entries.count("a/y"));
    EXPECT_FALSE(entries.count("b"));
    EXPECT_FALSE(entries.count("b/c/d"));
    EXPECT_TRUE(entries.count("keep"));
    EXPECT_FALSE(entries.count("missing")) << "a whiteout must not create directories";
    for (const auto& [path, entry] : entries) {
        EXPECT_EQ(path.find(".wh."), std::string::npos) << path;
    }
    EXPECT_EQ(stats.entries, entries.size());
}

TEST_F(LayerFlattenerTest, OpaqueDirectoryKeepsOnlyItsOwnLayer) {
    std::string lower = LayerBuilder()
                            .file("d/old", "o")
                            .file("d/sub/older", "o")
                            .file("other/kept", "k")
                            .build();
    std::string upper = LayerBuilder()
                            .dir("d/")
                            .file("d/before", "b")
                            .whiteout("d/.wh..wh..opq")
                            .file("d/after", "a")
                            .build();
    flatten({lower, upper});
    auto entries = listing(image_);
    EXPECT_TRUE(entries.count("d"));
    EXPECT_TRUE(entries.count("d/before"));
    EXPECT_TRUE(entries.count("d/after"));
    EXPECT_FALSE(entries.count("d/old"));
    EXPECT_FALSE(entries.count("d/sub"));
    EXPECT_FALSE(entries.count("d/.wh..wh..opq"));
    EXPECT_TRUE(entries.count("other/kept"));
}

TEST_F(LayerFlattenerTest, RepeatedMarkersInALayerHideOnlyLowerLayers) {
    std::string lower = LayerBuilder().file("d/old", "o").file("d/sub/older", "o").build();
    std::string middle = LayerBuilder()
                             .file("d/a", "a")
                             .whiteout("d/.wh..wh..opq")
                             .file("d/b", "b")
                             .whiteout("d/.wh..wh..opq")
                             .file("d/sub/new", "n")
                             .whiteout("d/.wh..wh..opq")
                             .whiteout("d/sub/.wh..wh..opq")
                             .whiteout(".wh.d")
                             .whiteout(".wh.d")
                             .build();
    std::string upper = LayerBuilder().file("e/kept", "k").whiteout("e/.wh..wh..opq").build();
    std::string top = LayerBuilder()
                          .whiteout("e/.wh..wh..opq")
                          .file("e/c", "c")
                          .whiteout("e/.wh..wh..opq")
                          .build();
    flatten({lower, middle, upper, top});
    auto entries = listing(image_);
    EXPECT_TRUE(entries.count("d/a"));
    EXPECT_TRUE(entries.count("d/b"));
    EXPECT_TRUE(entries.count("d/sub/new"));
    EXPECT_FALSE(entries.count("d/old"));
    EXPECT_FALSE(entries.count("d/sub/older"));
    EXPECT_TRUE(entries.count("e/c"));
    EXPECT_FALSE(entries.count("e/kept")) << "the next layer's marker hides what an earlier one kept";
}

TEST_F(LayerFlattenerTest, WhiteoutDoesNotRemoveEntriesOfItsOwnLayer) {
    std::string lower = LayerBuilder().file("f", "old").file("g", "old g").build();
    std::string upper = LayerBuilder()
                            .file("f", "new")
                            .whiteout(".wh.f")  // after the entry
                            .whiteout(".wh.g")  // before the entry
                            .file("g", "new g")
                            .whiteout(".wh.h")
                            .file("h", "h")
                            .build();
    flatten({lower, upper});
    EXPECT_EQ(cat(image_, "f"), "new");
    EXPECT_EQ(cat(image_, "g"), "new g");
    EXPECT_EQ(cat(image_, "h"), "h");
}

TEST_F(LayerFlattenerTest, DirectoryOverDirectoryKeepsChildren) {
    std::string lower = LayerBuilder().dir("d/", 0755).file("d/a", "a").build();
    std::string upper = LayerBuilder().dir("d/", 0700, 5, 6).file("d/b", "b").build();
    flatten({lower, upper});
    auto entries = listing(image_);
    EXPECT_EQ(entries["d"].perms, "drwx------");
    EXPECT_EQ(entries["d"].owner, "5/6");
    EXPECT_TRUE(entries.count("d/a"));
    EXPECT_TRUE(entries.count("d/b"));
}

TEST_F(LayerFlattenerTest, ReplacementDropsTheWholeSubtree) {
    std::string lower = LayerBuilder()
                            .file("d/a", "a")
                            .file("d/sub/b", "b")
                            .symlink("s", "d")
                            .file("f", "file")
                            .build();
    std::string upper = LayerBuilder()
                            .symlink("d", "elsewhere")  // symlink replaces directory
                            .dir("s/")                  // directory replaces symlink
                            .file("s/inside", "i")
                            .dir("f/")                  // directory replaces file
                            .file("f/child", "c")
                            .build();
    flatten({lower, upper});
    auto entries = listing(image_);
    EXPECT_EQ(entries["d"].perms, "lrwxrwxrwx");
    EXPECT_EQ(entries["d"].target, "elsewhere");
    EXPECT_FALSE(entries.count("d/a"));
    EXPECT_FALSE(entries.count("d/sub/b"));
    EXPECT_EQ(entries["s"].perms, "drwxr-xr-x");
    EXPECT_TRUE(entries.count("s/inside"));
    EXPECT_EQ(entries["f"].perms[0], 'd');
    EXPECT_EQ(cat(image_, "f/child"), "c");
}

TEST_F(LayerFlattenerTest, HardLinksShareOneInode) {
    std::string layer = LayerBuilder()
                            .file("bin/tool", "tool-data", 0755)
                            .hardlink("bin/alias", "bin/tool")
                            .hardlink("./bin/alias2", "./bin/tool")
                            .build();
    flatten({layer});
    auto tool = inodeInfo(image_, "bin/tool");
    auto alias = inodeInfo(image_, "bin/alias");
    EXPECT_EQ(tool["Inode number"], alias["Inode number"]);
    EXPECT_EQ(inodeInfo(image_, "bin/alias2")["Inode number"], tool["Inode number"]);
    EXPECT_EQ(tool["Hard link count"], "3");
    EXPECT_EQ(cat(image_, "bin/alias"), "tool-data");
    EXPECT_EQ(listing(image_)["bin/alias"].perms, "-rwxr-xr-x");
}

TEST_F(LayerFlattenerTest, HardLinkKeepsContentWhenTargetIsReplaced) {
    std::string lower = LayerBuilder()
                            .file("f", "original")
                            .hardlink("h", "f")
                            .file("w", "whited")
                            .hardlink("wl", "w")
                            .build();
    std::string upper = LayerBuilder().file("f", "replacement").whiteout(".wh.w").build();
    flatten({lower, upper});
    EXPECT_EQ(cat(image_, "f"), "replacement");
    EXPECT_EQ(cat(image_, "h"), "original");
    EXPECT_EQ(cat(image_, "wl"), "whited");
    auto f = inodeInfo(image_, "f");
    auto h = inodeInfo(image_, "h");
    EXPECT_NE(f["Inode number"], h["Inode number"]);
    // rdsquashfs only prints the count of extended inodes, which a file with
    // a single link does not need.
    EXPECT_TRUE(h["Hard link count"] == "" || h["Hard link count"] == "1") << h["Hard link count"];
    auto wl = inodeInfo(image_, "wl");
    EXPECT_TRUE(wl["Hard link count"] == "" || wl["Hard link count"] == "1")
        << wl["Hard link count"];
}

TEST_F(LayerFlattenerTest, RejectsParentTraversal) {
    expectRejected({LayerBuilder().file("ok", "x").build(),
                    LayerBuilder().file("../x", "evil").build()},
                   {"layer2", "'../x'"});
}

TEST_F(LayerFlattenerTest, RejectsDotDotInsidePath) {
    expectRejected({LayerBuilder().file("a/../../x", "evil").build()}, {"layer1", "a/../../x"});
}

TEST_F(LayerFlattenerTest, RejectsAbsolutePath) {
    expectRejected({LayerBuilder().file("/abs", "evil").build()}, {"layer1", "'/abs'"});
}

TEST_F(LayerFlattenerTest, RejectsEscapingHardLinks) {
    expectRejected({LayerBuilder().hardlink("passwd", "../../etc/passwd").build()},
                   {"layer1", "'passwd'", "../../etc/passwd"});
    expectRejected({LayerBuilder().hardlink("passwd", "/etc/passwd").build()},
                   {"layer1", "'passwd'", "/etc/passwd"});
}

TEST_F(LayerFlattenerTest, RejectsBrokenHardLinks) {
    expectRejected({LayerBuilder().hardlink("h", "missing").build()},
                   {"layer1", "'h'", "missing", "does not exist"});
    expectRejected({LayerBuilder().dir("d/").hardlink("h", "d").build()},
                   {"layer1", "'h'", "is a directory"});
}

TEST_F(LayerFlattenerTest, RejectsNonDirectoryParent) {
    expectRejected({LayerBuilder().file("f", "x").file("f/child", "y").build()},
                   {"layer1", "f/child", "not a directory"});
}

TEST_F(LayerFlattenerTest, RejectsSymlinkLoops) {
    expectRejected({LayerBuilder().symlink("a", "b").symlink("b", "a").file("a/x", "x").build()},
                   {"layer1", "a/x", "too many levels of symbolic links"});
}

TEST_F(LayerFlattenerTest, ResolvesParentSymlinksInsideTheImage) {
    std::string lower = LayerBuilder()
                            .dir("usr/")
                            .dir("usr/lib/")
                            .symlink("lib", "usr/lib")
                            .symlink("abs", "/usr/lib")
                            .symlink("escape", "../../..")
                            .symlink("usr/up", "../usr/./lib/")
                            .build();
    std::string upper = LayerBuilder()
                            .file("lib/x", "x")
                            .file("abs/y", "y")
                            .file("escape/z", "z")
                            .file("usr/up/w", "w")
                            .build();
    flatten({lower, upper});
    auto entries = listing(image_);
    EXPECT_EQ(entries["lib"].perms, "lrwxrwxrwx");
    EXPECT_EQ(entries["lib"].target, "usr/lib");
    EXPECT_EQ(cat(image_, "usr/lib/x"), "x");
    EXPECT_EQ(cat(image_, "usr/lib/y"), "y");
    EXPECT_EQ(cat(image_, "z"), "z");
    EXPECT_EQ(cat(image_, "usr/lib/w"), "w");
    EXPECT_FALSE(entries.count("lib/x"));
}

TEST_F(LayerFlattenerTest, RejectsCorruptCompressedLayer) {
    LayerBuilder builder(true);
    builder.file("big", pattern(512 * 1024, 9)).file("after", "a");
    std::string gz = builder.build();
    ASSERT_EQ(gz.substr(0, 2), "\x1f\x8b");

    // A valid gzip layer works...
    flatten({gz});
    EXPECT_EQ(cat(image_, "after"), "a");
    fs::remove(image_);

    // ...a truncated one and one with garbage in the middle do not.
    expectRejected({gz.substr(0, gz.size() / 2)}, {"layer1"});
    std::string garbled = gz;
    for (std::size_t i = gz.size() / 2; i < gz.size() / 2 + 300; ++i) {
        garbled[i] = static_cast<char>(garbled[i] ^ 0x5a);
    }
    expectRejected({garbled}, {"layer1"});
}

TEST_F(LayerFlattenerTest, KeepsSupportedXattrs) {
    const std::string capability("\x01\x00\x00\x02\x00\x20\x00\x00", 8);
    std::string layer =
        LayerBuilder()
            .add("ping", AE_IFREG, 0755, "ping",
                 [&](archive_entry* e) {
                     archive_entry_xattr_add_entry(e, "user.note", "hello", 5);
                     archive_entry_xattr_add_entry(e, "security.capability", capability.data(),
                                                   capability.size());
                     archive_entry_xattr_add_entry(e, "system.posix_acl_access", "junk", 4);
                 })
            .add("d", AE_IFDIR, 0755, "",
                 [](archive_entry* e) {
                     archive_entry_xattr_add_entry(e, "trusted.overlay.opaque", "y", 1);
                     archive_entry_xattr_add_entry(e, "security.selinux", "label", 5);
                     archive_entry_xattr_add_entry(e, "user.kept", "v", 1);
                 })
            .file("plain", "p")
            .build();
    flatten({layer});
    CommandResult xattrs = run("rdsquashfs -x /ping " + quote(image_));
    ASSERT_EQ(xattrs.status, 0);
    EXPECT_NE(xattrs.output.find("user.note"), std::string::npos) << xattrs.output;
    EXPECT_NE(xattrs.output.find("hello"), std::string::npos) << xattrs.output;
    EXPECT_NE(xattrs.output.find("security.capability"), std::string::npos) << xattrs.output;
    EXPECT_EQ(xattrs.output.find("system."), std::string::npos) << xattrs.output;
    // trusted.* (overlayfs reads it from a lower layer) and LSM labels are not an image's
    auto directory = run("rdsquashfs -x /d " + quote(image_)).output;
    EXPECT_EQ(directory.find("trusted."), std::string::npos) << directory;
    EXPECT_EQ(directory.find("security.selinux"), std::string::npos) << directory;
    EXPECT_NE(directory.find("user.kept"), std::string::npos) << directory;
    EXPECT_EQ(run("rdsquashfs -x /plain " + quote(image_)).output, "");
    EXPECT_EQ(cat(image_, "ping"), "ping");
}

TEST_F(LayerFlattenerTest, KeepsDevicesFifosAndSockets) {
    std::string layer = LayerBuilder()
                            .device("dev/null", AE_IFCHR, 1, 3)
                            .device("dev/big", AE_IFCHR, 4, 300)
                            .device("dev/sda1", AE_IFBLK, 8, 1)
                            .add("run/fifo", AE_IFIFO, 0600)
                            .build();
    flatten({layer});
    auto entries = listing(image_);
    EXPECT_EQ(entries["dev/null"].perms, "crw--w----");
    EXPECT_EQ(entries["dev/sda1"].perms[0], 'b');
    EXPECT_EQ(entries["run/fifo"].perms, "prw-------");
    EXPECT_NE(inodeInfo(image_, "dev/null")["Device number"].find("1:3"), std::string::npos);
    // minor > 255 exercises the split encoding: 300 | 4 << 8 | 256 << 12
    EXPECT_EQ(inodeInfo(image_, "dev/big")["Device number"], "4:300 (1049644)");
    EXPECT_NE(inodeInfo(image_, "dev/sda1")["Device number"].find("8:1"), std::string::npos);
}

TEST_F(LayerFlattenerTest, RootEntryOnlyReplacesMetadata) {
    std::string lower = LayerBuilder().file("a", "a").build();
    std::string upper = LayerBuilder().dir(".", 0711, 3, 4).build();
    flatten({lower, upper});
    auto entries = listing(image_);
    EXPECT_EQ(entries[""].perms, "drwx--x--x");
    EXPECT_EQ(entries[""].owner, "3/4");
    EXPECT_TRUE(entries.count("a"));
}

TEST_F(LayerFlattenerTest, KeepsNonAsciiNamesVerbatim) {
    // Layers carry UTF-8 names (pax records without hdrcharset, like Go's
    // archive/tar writes them), while importers often run in the C locale,
    // where libarchive warns that it cannot convert them.
    const std::string name = "caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac";
    if (setlocale(LC_CTYPE, "C.UTF-8") == nullptr) {
        GTEST_SKIP() << "the C.UTF-8 locale is needed to write a UTF-8 layer";
    }
    std::string layer = LayerBuilder().file(name, "utf8").symlink("link", name).build();
    setlocale(LC_CTYPE, "C");
    flatten({layer});
    auto entries = listing(image_);
    EXPECT_TRUE(entries.count(name));
    EXPECT_EQ(entries["link"].target, name);
    EXPECT_EQ(cat(image_, name), "utf8");
}

TEST_F(LayerFlattenerTest, WorksWithOtherCompressors) {
    const std::string data = pattern(300000, 11);
    for (const char* compressor : {"gzip", "xz", "lz4"}) {
        SquashfsOptions options;
        options.compressor = compressor;
        options.level = 0;
        options.workers = 1;
        flatten({LayerBuilder().file("f", data).file("s", "small").build()}, options);
        EXPECT_EQ(cat(image_, "f"), data) << compressor;
        EXPECT_EQ(cat(image_, "s"), "small") << compressor;
        fs::remove(image_);
    }
}

TEST_F(LayerFlattenerTest, RejectsBadOptions) {
    SquashfsOptions options;
    options.compressor = "snappy";
    try {
        LayerFlattener flattener(image_, options);
        FAIL() << "unknown compressor accepted";
    } catch (const sarus::Error& error) {
        EXPECT_NE(std::string(error.what()).find("snappy"), std::string::npos) << error.what();
    }
    EXPECT_FALSE(fs::exists(image_));

    options = SquashfsOptions();
    options.blockSize = 1000;
    EXPECT_THROW(LayerFlattener(image_, options), sarus::Error);
    EXPECT_FALSE(fs::exists(image_));

    const fs::path unwritable = dir_ / "no-such-dir" / "image.sqfs";
    try {
        LayerFlattener flattener(unwritable, SquashfsOptions());
        FAIL() << "output in a missing directory accepted";
    } catch (const sarus::Error& error) {
        EXPECT_NE(std::string(error.what()).find(unwritable.string()), std::string::npos)
            << error.what();
    }
}

TEST_F(LayerFlattenerTest, CallsAfterFinishFail) {
    std::string layer = LayerBuilder().file("a", "a").build();
    LayerFlattener flattener(image_, SquashfsOptions());
    addLayerBytes(flattener, layer, "layer1");
    flattener.finish();
    EXPECT_THROW(addLayerBytes(flattener, layer, "layer2"), sarus::Error);
    EXPECT_THROW(flattener.finish(), sarus::Error);
    EXPECT_TRUE(fs::exists(image_));
}

TEST_F(LayerFlattenerTest, DestroyingWithoutFinishRemovesOutput) {
    {
        LayerFlattener flattener(image_, SquashfsOptions());
        addLayerBytes(flattener, LayerBuilder().file("big", pattern(2 << 20, 5)).build(),
                      "layer1");
        EXPECT_TRUE(fs::exists(image_));
    }
    EXPECT_FALSE(fs::exists(image_));
}

// ---- the kernel's view -----------------------------------------------------

class Mount {
public:
    Mount(const fs::path& image, const fs::path& target) : target_(target) {
        mounted_ = run("mount -t squashfs -o loop,ro " + quote(image) + " " + quote(target)).status ==
                   0;
    }
    ~Mount() {
        if (mounted_) {
            umount2(target_.c_str(), MNT_DETACH);
        }
    }
    bool mounted() const { return mounted_; }

private:
    fs::path target_;
    bool mounted_ = false;
};

TEST_F(LayerFlattenerTest, KernelMountsTheImage) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "mounting a squashfs needs root";
    }
    std::string lower = LayerBuilder()
                            .file("usr/bin/tool", "tool", 04755, 0, 0)
                            .hardlink("usr/bin/alias", "usr/bin/tool")
                            .symlink("bin", "usr/bin")
                            .device("dev/big", AE_IFCHR, 4, 300)
                            .file("home/u/big", pattern(700000, 12), 0640, 1000, 1000)
                            .file("gone", "g")
                            .build();
    LayerBuilder upperBuilder;
    upperBuilder.whiteout(".wh.gone").dir("usr/share/");
    for (int i = 0; i < 1500; ++i) {
        upperBuilder.file("many/entry-" + std::to_string(i), std::to_string(i));
    }
    std::string upper = upperBuilder.build();
    flatten({lower, upper});

    const fs::path mountpoint = dir_ / "mnt";
    fs::create_directory(mountpoint);
    Mount mount(image_, mountpoint);
    if (!mount.mounted()) {
        GTEST_SKIP() << "mount -t squashfs -o loop failed (no loop devices or squashfs module?)";
    }
    struct stat tool {}, alias {}, device {}, big {}, usr {};
    ASSERT_EQ(lstat((mountpoint / "usr/bin/tool").c_str(), &tool), 0);
    ASSERT_EQ(lstat((mountpoint / "usr/bin/alias").c_str(), &alias), 0);
    EXPECT_EQ(tool.st_ino, alias.st_ino);
    EXPECT_EQ(tool.st_nlink, 2u);
    EXPECT_EQ(tool.st_mode, S_IFREG | 04755);
    ASSERT_EQ(lstat((mountpoint / "dev/big").c_str(), &device), 0);
    EXPECT_TRUE(S_ISCHR(device.st_mode));
    EXPECT_EQ(major(device.st_rdev), 4u);
    EXPECT_EQ(minor(device.st_rdev), 300u);
    ASSERT_EQ(lstat((mountpoint / "home/u/big").c_str(), &big), 0);
    EXPECT_EQ(big.st_uid, 1000u);
    EXPECT_EQ(big.st_size, 700000);
    ASSERT_EQ(lstat((mountpoint / "usr").c_str(), &usr), 0);
    EXPECT_EQ(usr.st_nlink, 4u);  // ., .., bin, share
    EXPECT_EQ(fs::read_symlink(mountpoint / "bin"), "usr/bin");
    EXPECT_FALSE(fs::exists(mountpoint / "gone"));
    std::ifstream in(mountpoint / "home/u/big", std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content, pattern(700000, 12));
    // Following the in-image symlink through the kernel.
    std::ifstream viaLink(mountpoint / "bin/tool", std::ios::binary);
    std::string tooled((std::istreambuf_iterator<char>(viaLink)), std::istreambuf_iterator<char>());
    EXPECT_EQ(tooled, "tool");
    // Lookups in a directory with an index.
    for (int i : {0, 1, 700, 1234, 1499}) {
        std::ifstream entry(mountpoint / ("many/entry-" + std::to_string(i)));
        std::string text((std::istreambuf_iterator<char>(entry)), std::istreambuf_iterator<char>());
        EXPECT_EQ(text, std::to_string(i));
    }
    EXPECT_FALSE(fs::exists(mountpoint / "many/entry-1500"));
    EXPECT_EQ(std::distance(fs::directory_iterator(mountpoint / "many"), fs::directory_iterator()),
              1500);
}

}  // namespace

// Layers are read with libarchive's gzip and zstd decoders only: no other
// compression, and never an external program run on a layer's bytes.
TEST(NewLayerReader, TakesPlainGzipAndZstdLayersOnly) {
    auto layerWith = [](int (*filter)(archive*)) {
        std::string bytes;
        archive* writer = archive_write_new();
        archive_write_set_format_pax_restricted(writer);
        if (filter != nullptr) {
            EXPECT_EQ(filter(writer), ARCHIVE_OK);
        }
        archive_write_set_bytes_in_last_block(writer, 1);  // no padding after the compressed stream
        archive_write_open(writer, &bytes, nullptr,
                           [](archive*, void* client, const void* buffer, size_t length) -> la_ssize_t {
                               static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
                               return static_cast<la_ssize_t>(length);
                           },
                           nullptr);
        archive_entry* entry = archive_entry_new();
        archive_entry_set_pathname(entry, "f");
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_perm(entry, 0644);
        archive_entry_set_size(entry, 1);
        archive_write_header(writer, entry);
        archive_write_data(writer, "x", 1);
        archive_entry_free(entry);
        archive_write_close(writer);
        archive_write_free(writer);
        return bytes;
    };
    auto readable = [](const std::string& bytes) {
        auto reader = sarus::newLayerReader();
        archive_entry* entry = nullptr;
        return archive_read_open_memory(reader.get(), bytes.data(), bytes.size()) == ARCHIVE_OK &&
               archive_read_next_header(reader.get(), &entry) == ARCHIVE_OK;
    };
    EXPECT_TRUE(readable(layerWith(nullptr)));
    EXPECT_TRUE(readable(layerWith(archive_write_add_filter_gzip)));
    EXPECT_TRUE(readable(layerWith(archive_write_add_filter_zstd)));
    EXPECT_FALSE(readable(layerWith(archive_write_add_filter_bzip2)));
    EXPECT_FALSE(readable(layerWith(archive_write_add_filter_xz)));
    EXPECT_FALSE(readable(layerWith(archive_write_add_filter_lzip)));
}
