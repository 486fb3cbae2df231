// A repository written by Sarus 1.7: its metadata.json and .meta files as
// Sarus writes them (ImageStore::createImageJSON, ImageMetadata::write:
// rapidjson's PrettyWriter, 3-space indent; "digest" always "", the
// registry's digest in "registryDigest", the image ID as bare hex, datasize
// and created as strings; digest-only images named <algorithm>-<hex>).
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "image/image_store.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;
using sarus::ImageReference;
using sarus::ImageStore;

namespace {

const std::string alpineId = "7e01a0d0a1dcd9e539f8e9bbd80106d59efbdf97293b3d38f5d7a34501526cdb";
const std::string alpineDigest = "sha256:7144f7bab3d4c2648d7e59409f15ec52a18006a128c733fcff20d3a4a54ba44a";
const std::string hpcDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
    for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
        text.replace(pos, from.size(), to);
    }
    return text;
}

// Entries in the order Sarus 1.7 writes their members. The last one is from
// Sarus 1.4 (Docker Hub was index.docker.io, no "id" nor "registryDigest").
const char* sarusIndex = R"({
   "images": [
      {
         "uniqueKey": "docker.io/library/alpine/3.18",
         "server": "docker.io",
         "namespace": "library",
         "image": "alpine",
         "tag": "3.18",
         "digest": "",
         "registryDigest": "@ALPINE_DIGEST@",
         "id": "@ALPINE_ID@",
         "imagePath": "@REPO@/images/docker.io/library/alpine/3.18.squashfs",
         "metadataPath": "@REPO@/images/docker.io/library/alpine/3.18.meta",
         "datasize": "3.21MB",
         "created": "2024-03-05T10:11:12"
      },
      {
         "uniqueKey": "quay.io/ns/sub/hpc/sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         "server": "quay.io",
         "namespace": "ns/sub",
         "image": "hpc",
         "tag": "",
         "digest": "",
         "registryDigest": "@HPC_DIGEST@",
         "id": "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999",
         "imagePath": "@REPO@/images/quay.io/ns/sub/hpc/sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.squashfs",
         "metadataPath": "@REPO@/images/quay.io/ns/sub/hpc/sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.meta",
         "datasize": "1.00KB",
         "created": "2024-03-06T08:00:00"
      },
      {
         "uniqueKey": "index.docker.io/library/ubuntu/20.04",
         "server": "index.docker.io",
         "namespace": "library",
         "image": "ubuntu",
         "tag": "20.04",
         "digest": "",
         "imagePath": "@REPO@/images/index.docker.io/library/ubuntu/20.04.squashfs",
         "metadataPath": "@REPO@/images/index.docker.io/library/ubuntu/20.04.meta",
         "datasize": "25.95MB",
         "created": "2021-11-30T17:45:01"
      }
   ]
})";

// ImageMetadata::write of Sarus 1.7: Cmd and Entrypoint always arrays
// (empty when the image has none), Env as NAME=VALUE, Labels an object.
const char* sarusMeta = R"({
   "Cmd": [
      "/bin/sh"
   ],
   "Entrypoint": [],
   "WorkingDir": "",
   "Env": [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
   ],
   "Labels": {
      "org.opencontainers.image.title": "alpine"
   }
})";

class SarusRepositoryTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "sarus17-test"};
    fs::path repo = dir.path() / ".sarus";
    ImageStore store{repo, 5000, 1000};

    void SetUp() override {
        writeIndex(sarusIndex);
        for (const auto& image : {std::string("docker.io/library/alpine/3.18"),
                                  "quay.io/ns/sub/hpc/sha256-" + hpcDigest.substr(7),
                                  std::string("index.docker.io/library/ubuntu/20.04")}) {
            writeImage(repo / "images" / image, image);
        }
    }

    void writeIndex(const std::string& text) {
        auto contents = replaceAll(text, "@REPO@", repo.string());
        contents = replaceAll(contents, "@ALPINE_DIGEST@", alpineDigest);
        contents = replaceAll(contents, "@ALPINE_ID@", alpineId);
        contents = replaceAll(contents, "@HPC_DIGEST@", hpcDigest);
        fs::create_directories(repo);
        std::ofstream(repo / "metadata.json") << contents;
    }

    static void writeImage(const fs::path& stem, const std::string& content) {
        fs::create_directories(stem.parent_path());
        std::ofstream(stem.string() + ".squashfs") << content;
        std::ofstream(stem.string() + ".meta") << sarusMeta;
    }

    nlohmann::json index() const { return nlohmann::json::parse(sarus::readFile(repo / "metadata.json")); }

    sarus::StoredImage import(const std::string& name, const std::string& digest = "") {
        auto pending = store.beginImport(ImageReference::parse(name).identity());
        std::ofstream(pending.file()) << "new image";
        return store.commit(pending, {}, "sha256:" + std::string(64, 'c'), digest);
    }
};

}  // namespace

TEST_F(SarusRepositoryTest, ImagesOfSarusAreListedWithTheirFields) {
    auto images = store.list();
    ASSERT_EQ(images.size(), 3u);

    EXPECT_EQ(images[0].reference.normalized(), "docker.io/library/alpine:3.18");
    EXPECT_EQ(images[0].digest, alpineDigest);
    EXPECT_EQ(images[0].id, "sha256:" + alpineId);
    EXPECT_EQ(images[0].created, "2024-03-05T10:11:12");
    EXPECT_EQ(images[0].imageFile, repo / "images/docker.io/library/alpine/3.18.squashfs");
    EXPECT_EQ(images[0].metadataFile, repo / "images/docker.io/library/alpine/3.18.meta");
    EXPECT_EQ(images[0].size, std::string("docker.io/library/alpine/3.18").size());  // the file's
    EXPECT_FALSE(images[0].legacyServer);

    EXPECT_EQ(images[1].reference.server, "quay.io");
    EXPECT_EQ(images[1].reference.repository, "ns/sub/hpc");
    EXPECT_EQ(images[1].reference.tag, "");
    EXPECT_EQ(images[1].reference.digest, hpcDigest);
    EXPECT_EQ(images[1].reference.displayRepository(), "quay.io/ns/sub/hpc");

    // Docker Hub under its name before Sarus 1.5.1, no ID, no registry digest.
    EXPECT_EQ(images[2].reference.normalized(), "docker.io/library/ubuntu:20.04");
    EXPECT_TRUE(images[2].legacyServer);
    EXPECT_EQ(images[2].id, "");
    EXPECT_EQ(images[2].digest, "");
}

TEST_F(SarusRepositoryTest, ReferencesFindSarusImages) {
    auto alpine = store.find(ImageReference::parse("alpine:3.18"));
    ASSERT_TRUE(alpine);
    EXPECT_EQ(alpine->imageFile, repo / "images/docker.io/library/alpine/3.18.squashfs");
    auto hpc = store.find(ImageReference::parse("quay.io/ns/sub/hpc@" + hpcDigest));
    ASSERT_TRUE(hpc);
    EXPECT_EQ(hpc->imageFile.filename(), "sha256-" + hpcDigest.substr(7) + ".squashfs");
    EXPECT_FALSE(store.find(ImageReference::parse("quay.io/ns/sub/hpc:latest")));
    // As Sarus's run: the legacy server is looked at for Docker Hub images.
    auto ubuntu = store.find(ImageReference::parse("ubuntu:20.04"));
    ASSERT_TRUE(ubuntu);
    EXPECT_TRUE(ubuntu->legacyServer);
    EXPECT_TRUE(store.find(ImageReference::parse("index.docker.io/library/ubuntu:20.04")));
}

TEST_F(SarusRepositoryTest, DockerIoIsPreferredOverTheLegacyServer) {
    auto text = replaceAll(sarusIndex, "\"tag\": \"3.18\"", "\"tag\": \"20.04\"");
    text = replaceAll(text, "\"image\": \"alpine\"", "\"image\": \"ubuntu\"");
    writeIndex(text);
    // Index order puts docker.io first here; swap them to be sure order does not decide.
    auto json = index();
    std::swap(json["images"][0], json["images"][2]);
    std::ofstream(repo / "metadata.json") << json.dump(3);
    auto ubuntu = store.find(ImageReference::parse("ubuntu:20.04"));
    ASSERT_TRUE(ubuntu);
    EXPECT_FALSE(ubuntu->legacyServer);
}

TEST_F(SarusRepositoryTest, MetaFileOfSarusIsRead) {
    auto meta = sarus::ImageMetadata::fromJson(nlohmann::json::parse(sarusMeta));
    EXPECT_EQ(meta.cmd, std::vector<std::string>{"/bin/sh"});
    ASSERT_TRUE(meta.entrypoint);  // Sarus writes [] for "none"
    EXPECT_TRUE(meta.entrypoint->empty());
    EXPECT_EQ(meta.workingDir, "");
    EXPECT_EQ(meta.env, std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"});
    EXPECT_EQ(meta.labels.at("org.opencontainers.image.title"), "alpine");
}

TEST_F(SarusRepositoryTest, RemovingASarusImageKeepsTheOtherEntriesAsTheyWere) {
    auto before = index()["images"];
    auto removed = store.remove(ImageReference::parse("alpine:3.18"));
    EXPECT_FALSE(fs::exists(removed.imageFile));
    EXPECT_FALSE(fs::exists(removed.metadataFile));
    auto after = index()["images"];
    ASSERT_EQ(after.size(), 2u);
    EXPECT_EQ(after[0], before[1]);
    EXPECT_EQ(after[1], before[2]);
    store.remove(ImageReference::parse("quay.io/ns/sub/hpc@" + hpcDigest));
    store.remove(ImageReference::parse("ubuntu:20.04"));
    EXPECT_TRUE(store.list().empty());
    EXPECT_THROW(store.remove(ImageReference::parse("ubuntu:20.04")), sarus::Error);
}

TEST_F(SarusRepositoryTest, ImportingAnImageSarusHasReplacesItsEntry) {
    auto image = import("alpine:3.18", alpineDigest);
    EXPECT_EQ(image.imageFile, repo / "images/docker.io/library/alpine/3.18.squashfs");
    auto images = store.list();
    ASSERT_EQ(images.size(), 3u);
    EXPECT_EQ(sarus::readFile(images[2].imageFile), "new image");
    EXPECT_EQ(images[2].reference.normalized(), "docker.io/library/alpine:3.18");
}

TEST_F(SarusRepositoryTest, FilesOfAReplacedSarusEntryStoredElsewhereGo) {
    auto sarusFile = repo / ("images/quay.io/ns/sub/hpc/sha256-" + hpcDigest.substr(7) + ".squashfs");
    auto image = import("quay.io/ns/sub/hpc@" + hpcDigest, hpcDigest);
    EXPECT_NE(image.imageFile, sarusFile);
    EXPECT_FALSE(fs::exists(sarusFile));
    EXPECT_FALSE(fs::exists(fs::path(sarusFile).replace_extension(".meta")));
    EXPECT_EQ(store.list().size(), 3u);
    // Docker Hub's legacy name is the same image.
    auto legacy = repo / "images/index.docker.io/library/ubuntu/20.04.squashfs";
    import("ubuntu:20.04");
    EXPECT_FALSE(fs::exists(legacy));
    auto ubuntu = store.find(ImageReference::parse("ubuntu:20.04"));
    ASSERT_TRUE(ubuntu);
    EXPECT_FALSE(ubuntu->legacyServer);
    EXPECT_EQ(store.list().size(), 3u);
}

TEST_F(SarusRepositoryTest, EntriesWrittenAreWhatSarusReads) {
    import("quay.io/ns/sub/tool:v2", "sha256:" + std::string(64, 'd'));
    import("quay.io/ns/sub/tool@sha256:" + std::string(64, 'e'), "sha256:" + std::string(64, 'e'));
    auto entries = index()["images"];
    ASSERT_EQ(entries.size(), 5u);
    // Sarus 1.7 reads every one of these members with GetString().
    for (const auto& entry : entries) {
        for (const char* key : {"uniqueKey", "server", "namespace", "image", "tag", "digest", "registryDigest", "id",
                                "imagePath", "metadataPath", "datasize", "created"}) {
            if (entry.contains("id") && entry.contains("registryDigest")) {
                EXPECT_TRUE(entry.at(key).is_string()) << key << " in " << entry.dump();
            }
        }
    }
    const auto& tagged = entries[3];
    EXPECT_EQ(tagged["uniqueKey"], "quay.io/ns/sub/tool/v2");
    EXPECT_EQ(tagged["server"], "quay.io");
    EXPECT_EQ(tagged["namespace"], "ns/sub");
    EXPECT_EQ(tagged["image"], "tool");
    EXPECT_EQ(tagged["tag"], "v2");
    EXPECT_EQ(tagged["registryDigest"], "sha256:" + std::string(64, 'd'));
    EXPECT_EQ(tagged["id"], std::string(64, 'c'));
    EXPECT_EQ(tagged["datasize"], "9B");
    EXPECT_EQ(tagged["imagePath"], (repo / "images/quay.io/ns/sub/tool/v2.squashfs").string());
    EXPECT_EQ(tagged["metadataPath"], (repo / "images/quay.io/ns/sub/tool/v2.meta").string());
    const auto& byDigest = entries[4];
    EXPECT_EQ(byDigest["uniqueKey"], "quay.io/ns/sub/tool/sha256-" + std::string(64, 'e'));
    EXPECT_EQ(byDigest["tag"], "");
    EXPECT_EQ(byDigest["registryDigest"], "sha256:" + std::string(64, 'e'));
    // Read back: the same images.
    auto tool = store.find(ImageReference::parse("quay.io/ns/sub/tool:v2"));
    ASSERT_TRUE(tool);
    EXPECT_EQ(tool->id, "sha256:" + std::string(64, 'c'));
    EXPECT_EQ(tool->digest, "sha256:" + std::string(64, 'd'));
}

TEST_F(SarusRepositoryTest, EntriesThatCannotBeReadAreSkippedAndKept) {
    auto json = index();
    nlohmann::json odd = {{"server", 5}, {"imagePath", "/x"}};
    json["images"].push_back(odd);
    json["images"].push_back("not an object");
    json["images"].push_back({{"uniqueKey", "who/knows"}});
    json["images"].push_back({{"server", "docker.io"}, {"namespace", ".."}, {"image", "x"}, {"tag", "1"},
                              {"imagePath", "/x"}, {"metadataPath", "/y"}});
    std::ofstream(repo / "metadata.json") << json.dump(3);
    EXPECT_EQ(store.list().size(), 3u);
    import("alpine:3.18");
    store.remove(ImageReference::parse("ubuntu:20.04"));
    auto entries = index()["images"];
    ASSERT_EQ(entries.size(), 6u);
    EXPECT_EQ(entries[1], odd);
    EXPECT_EQ(entries[2], "not an object");
    EXPECT_EQ(store.list().size(), 2u);
}

TEST_F(SarusRepositoryTest, IndexOfEarlierSarusVersionsOfOursIsRead) {
    nlohmann::json own = {{"images",
                           {{{"server", "load"},
                             {"repository", "library/mine"},
                             {"tag", "v1"},
                             {"digest", ""},
                             {"id", "sha256:" + std::string(64, 'f')},
                             {"created", "2025-01-02T03:04:05"},
                             {"datasize", 13},
                             {"imagefile", (repo / "images/load/library/mine/v1.squashfs").string()},
                             {"metafile", (repo / "images/load/library/mine/v1.meta").string()},
                             {"reference", "load/library/mine:v1"}}}}};
    std::ofstream(repo / "metadata.json") << own.dump(4);
    writeImage(repo / "images/load/library/mine/v1", "thirteen byte");
    auto images = store.list();
    ASSERT_EQ(images.size(), 1u);
    EXPECT_EQ(images[0].reference.normalized(), "load/library/mine:v1");
    EXPECT_EQ(images[0].id, "sha256:" + std::string(64, 'f'));
    EXPECT_EQ(images[0].size, 13u);
    import("load/library/other");
    auto entries = index()["images"];
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[0], own["images"][0]);  // kept as it was
    store.remove(ImageReference::parse("load/library/mine:v1"));
    EXPECT_EQ(store.list().size(), 1u);
}

TEST_F(SarusRepositoryTest, AnIndexWithoutImagesListIsOneClearError) {
    std::ofstream(repo / "metadata.json") << R"({"images": {}})";
    try {
        store.list();
        FAIL() << "expected an error";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("not a sarus repository index"), std::string::npos) << e.what();
    }
}
