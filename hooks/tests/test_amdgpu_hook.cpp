// amdgpu_hook's discovery and selection of GPUs, on a fake /dev/dri and
// /sys/class/drm made of plain files and links in a temporary directory.
#include "amdgpu_hook.hpp"
#include "common/error.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

class FakeDri : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/sarus-amdgpu-test-XXXXXX";
        root = ::mkdtemp(pattern);
        dri = root / "dri";
        sys = root / "sys";
        fs::create_directories(dri);
        fs::create_directories(sys);
    }
    void TearDown() override { fs::remove_all(root); }
    void node(const std::string& name) { std::ofstream(dri / name) << ""; }
    void byPath(const std::string& address, const std::string& kind, const std::string& target) {
        fs::create_directories(dri / "by-path");
        fs::create_symlink("../" + target, dri / "by-path" / ("pci-" + address + "-" + kind));
    }
    void driver(const std::string& card, const std::string& name) {
        fs::create_directories(sys / card / "device");
        fs::create_symlink("../../../bus/pci/drivers/" + name, sys / card / "device" / "driver");
    }
    std::vector<std::string> cards(const std::vector<hook::AmdGpu>& gpus) {
        std::vector<std::string> names;
        for (const auto& gpu : gpus) {
            names.push_back(fs::path(gpu.card).filename().string() + "+" + fs::path(gpu.render).filename().string());
        }
        return names;
    }
    fs::path root, dri, sys;
};

}  // namespace

TEST_F(FakeDri, PairsCardsWithRenderNodesByDrmNumberingOrderedByCardNumber) {
    for (auto name : {"card10", "card2", "renderD130", "renderD138", "card0-DP-1"}) {
        node(name);
    }
    EXPECT_EQ(cards(hook::discoverAmdGpus(dri, sys)),
              (std::vector<std::string>{"card2+renderD130", "card10+renderD138"}));
}

TEST_F(FakeDri, ByPathLinksWinOverNumbering) {
    for (auto name : {"card0", "card1", "renderD128", "renderD129"}) {
        node(name);
    }
    byPath("0000:c1:00.0", "card", "card0");
    byPath("0000:c1:00.0", "render", "renderD129");
    byPath("0000:d1:00.0", "card", "card1");
    byPath("0000:d1:00.0", "render", "renderD128");
    EXPECT_EQ(cards(hook::discoverAmdGpus(dri, sys)),
              (std::vector<std::string>{"card0+renderD129", "card1+renderD128"}));
}

TEST_F(FakeDri, CardsOfOtherDriversAndCardsWithoutRenderNodeAreLeftOut) {
    for (auto name : {"card0", "card1", "card2", "renderD128", "renderD129"}) {
        node(name);
    }
    driver("card0", "ast");     // the BMC's VGA
    driver("card1", "amdgpu");
    // card2 has no renderD130
    auto gpus = hook::discoverAmdGpus(dri, sys);
    ASSERT_EQ(gpus.size(), 1u);
    EXPECT_EQ(gpus[0].card, (dri / "card1").string());
    EXPECT_EQ(gpus[0].render, (dri / "renderD129").string());
}

TEST_F(FakeDri, NoDriDirectoryMeansNoGpus) {
    EXPECT_TRUE(hook::discoverAmdGpus(root / "missing", sys).empty());
}

TEST(SelectVisibleGpus, UnsetSelectsAllAndIndicesSelectInTheirOrder) {
    std::vector<hook::AmdGpu> gpus = {{"/c0", "/r0"}, {"/c1", "/r1"}, {"/c2", "/r2"}};
    EXPECT_EQ(hook::selectVisibleGpus(gpus, std::nullopt).size(), 3u);
    auto selected = hook::selectVisibleGpus(gpus, std::string("2, 0"));
    ASSERT_EQ(selected.size(), 2u);
    EXPECT_EQ(selected[0].card, "/c2");
    EXPECT_EQ(selected[1].card, "/c0");
    EXPECT_TRUE(hook::selectVisibleGpus(gpus, std::string("")).empty());
}

TEST(SelectVisibleGpus, IndexBeyondTheGpusIsAnErrorNamingIt) {
    std::vector<hook::AmdGpu> gpus = {{"/c0", "/r0"}};
    try {
        hook::selectVisibleGpus(gpus, std::string("0,3"));
        FAIL() << "expected an error";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("there is no GPU 3 (1 AMD GPUs"), std::string::npos) << e.what();
    }
}

TEST(SelectVisibleGpus, UuidsSelectAllGpus) {
    std::vector<hook::AmdGpu> gpus = {{"/c0", "/r0"}, {"/c1", "/r1"}};
    EXPECT_EQ(hook::selectVisibleGpus(gpus, std::string("GPU-4f3b2a")).size(), 2u);
}
