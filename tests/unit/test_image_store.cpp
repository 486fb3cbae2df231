#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "image/image_store.hpp"
#include "common/unnamed_file.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;
using sarus::ImageReference;
using sarus::ImageStore;

namespace {

class ImageStoreTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "store-test"};
    ImageStore store{dir.path() / ".sarus", 5000, 1000};

    sarus::StoredImage import(const std::string& name, const std::string& content = "squash") {
        auto pending = store.beginImport(ImageReference::parse(name));
        std::ofstream(pending.file()) << content;
        sarus::ImageMetadata meta;
        meta.cmd = std::vector<std::string>{"/bin/sh"};
        meta.env = {"A=1"};
        return store.commit(pending, meta, "sha256:" + std::string(64, 'a'), "");
    }
};

}  // namespace

TEST_F(ImageStoreTest, CommitPlacesFilesLikeSarus) {
    auto image = import("load/library/busybox:v1");
    EXPECT_EQ(image.imageFile, dir.path() / ".sarus/images/load/library/busybox/v1.squashfs");
    EXPECT_EQ(image.metadataFile, dir.path() / ".sarus/images/load/library/busybox/v1.meta");
    EXPECT_EQ(sarus::readFile(image.imageFile), "squash");
    EXPECT_EQ(image.size, 6u);
    auto meta = sarus::ImageMetadata::fromJson(nlohmann::json::parse(sarus::readFile(image.metadataFile)));
    EXPECT_EQ(meta.cmd, std::vector<std::string>{"/bin/sh"});
    ASSERT_EQ(store.list().size(), 1u);
    EXPECT_EQ(store.list()[0].reference.normalized(), "load/library/busybox:v1");
    // No partial file is left next to the image.
    for (const auto& entry : fs::directory_iterator(image.imageFile.parent_path())) {
        EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos);
    }
}

TEST_F(ImageStoreTest, UncommittedImportLeavesNothing) {
    fs::path partial;
    {
        auto pending = store.beginImport(ImageReference::parse("load/x"));
        partial = pending.file();
        std::ofstream(partial) << "half";
    }
    EXPECT_FALSE(fs::exists(partial));
    EXPECT_TRUE(store.list().empty());
}

TEST_F(ImageStoreTest, ReimportReplacesTheEntry) {
    import("load/library/a", "one");
    import("load/library/a", "two!");
    auto images = store.list();
    ASSERT_EQ(images.size(), 1u);
    EXPECT_EQ(sarus::readFile(images[0].imageFile), "two!");
}

TEST_F(ImageStoreTest, AnImageThatCannotBeMovedIntoPlaceLeavesTheOldOnesMetadata) {
    auto old = import("load/library/a", "one");
    auto oldMetadata = sarus::readFile(old.metadataFile);
    // A directory where the new image file goes: rename(2) fails with EISDIR.
    fs::remove(old.imageFile);
    fs::create_directories(old.imageFile / "in-the-way");
    {
        auto pending = store.beginImport(ImageReference::parse("load/library/a"));
        std::ofstream(pending.file()) << "two!";
        sarus::ImageMetadata meta;
        meta.cmd = std::vector<std::string>{"/bin/other"};
        EXPECT_THROW(store.commit(pending, meta, "sha256:" + std::string(64, 'b'), ""), sarus::Error);
    }
    EXPECT_EQ(sarus::readFile(old.metadataFile), oldMetadata);
    for (const auto& entry : fs::directory_iterator(old.metadataFile.parent_path())) {
        EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
    }
}

TEST_F(ImageStoreTest, FindByTagAndRemove) {
    import("load/library/a:1");
    import("load/library/a:2");
    EXPECT_TRUE(store.find(ImageReference::parse("load/library/a:1")));
    EXPECT_FALSE(store.find(ImageReference::parse("load/library/a:3")));
    auto removed = store.remove(ImageReference::parse("load/library/a:1"));
    EXPECT_FALSE(fs::exists(removed.imageFile));
    EXPECT_FALSE(fs::exists(removed.metadataFile));
    ASSERT_EQ(store.list().size(), 1u);
    EXPECT_EQ(store.list()[0].reference.tag, "2");
}

TEST_F(ImageStoreTest, ADigestNamesTheDigestOnlyImageNeverATaggedOne) {
    auto digest = "sha256:" + std::string(64, 'a');
    auto reference = ImageReference::parse("load/library/a:1");
    auto pending = store.beginImport(reference);
    std::ofstream(pending.file()) << "squash";
    store.commit(pending, {}, "sha256:" + std::string(64, 'b'), digest);
    EXPECT_FALSE(store.find(ImageReference::parse("load/library/a@" + digest)));
    EXPECT_FALSE(store.find(ImageReference::parse("load/library/a:1@" + digest)));
    EXPECT_THROW(store.remove(ImageReference::parse("load/library/a@" + digest)), sarus::Error);
    EXPECT_EQ(store.list().size(), 1u);
}

TEST_F(ImageStoreTest, RemovingAMissingImageFailsAndKeepsOthers) {
    import("load/library/a:1");
    try {
        store.remove(ImageReference::parse("load/library/zzz"));
        FAIL() << "expected an error";
    } catch (const sarus::Error& e) {
        EXPECT_STREQ(e.what(), "Cannot find image 'load/library/zzz:latest'");
    }
    EXPECT_EQ(store.list().size(), 1u);
}

TEST_F(ImageStoreTest, EntriesWhoseFilesVanishedAreDropped) {
    auto a = import("load/library/a");
    import("load/library/b");
    fs::remove(a.imageFile);
    auto images = store.list();
    ASSERT_EQ(images.size(), 1u);
    EXPECT_EQ(images[0].reference.repository, "library/b");
}

TEST_F(ImageStoreTest, CorruptIndexIsReportedAndNotOverwritten) {
    import("load/library/a");
    auto index = dir.path() / ".sarus/metadata.json";
    std::ofstream(index) << "{ not json";
    EXPECT_THROW(store.list(), sarus::Error);
    auto pending = store.beginImport(ImageReference::parse("load/library/b"));
    std::ofstream(pending.file()) << "b";
    EXPECT_THROW(store.commit(pending, {}, "sha256:x", ""), sarus::Error);
    EXPECT_EQ(sarus::readFile(index), "{ not json");
    EXPECT_FALSE(fs::exists(dir.path() / ".sarus/images/load/library/b/latest.squashfs"));
}

TEST_F(ImageStoreTest, ConcurrentImportsAllLandInTheIndex) {
    std::vector<std::thread> threads;
    for (int i = 0; i < 16; ++i) {
        threads.emplace_back([this, i] { import("load/library/img" + std::to_string(i)); });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(store.list().size(), 16u);
}

TEST_F(ImageStoreTest, StalePartialOfADeadProcessIsRemoved) {
    auto dirOfImage = dir.path() / ".sarus/images/load/library/a";
    fs::create_directories(dirOfImage);
    // PID 2^22+1 is above the kernel's pid_max limit, so it is never alive.
    auto stale = dirOfImage / ".latest.squashfs.partial-4194305";
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    auto staleHere = dirOfImage / (".latest.squashfs.partial-4194305-0@" + std::string(host));
    // Another node's partial file: its process is not ours to look for.
    auto otherNode = dirOfImage / ".latest.squashfs.partial-4194305-0@some-other-node";
    for (const auto& path : {stale, staleHere, otherNode}) {
        std::ofstream(path) << "x";
    }
    import("load/library/a");
    EXPECT_FALSE(fs::exists(stale));
    EXPECT_FALSE(fs::exists(staleHere));
    EXPECT_TRUE(fs::exists(otherNode));
}

TEST(PartialFileName, IsUniquePerCallAndNamesProcessAndHost) {
    auto first = sarus::partialFileName("x.squashfs");
    auto second = sarus::partialFileName("x.squashfs");
    EXPECT_NE(first, second);
    EXPECT_EQ(first.rfind(".x.squashfs.partial-" + std::to_string(::getpid()) + "-", 0), 0u) << first;
    EXPECT_NE(first.find('@'), std::string::npos);
}
