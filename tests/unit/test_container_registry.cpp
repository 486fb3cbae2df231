#include "runtime/container_registry.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <vector>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

class ContainerRegistryTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "registry-test"};
    sarus::ContainerRegistry registry{dir.path() / "sarus"};

    sarus::RunningContainer container(const std::string& name) {
        return {name, ::getpid(), "/var/sarus/OCIBundleDir", "2026-11-22T00:00:00.5Z"};
    }
};

}  // namespace

TEST_F(ContainerRegistryTest, ValidNamesAreRegisteredInAPrivateFile) {
    for (const std::string& name : std::vector<std::string>{"job1", "a", "Rank_0.step-3", std::string(128, 'x')}) {
        registry.add(container(name));
        auto file = dir.path() / "sarus" / (name + ".json");
        struct stat st {};
        ASSERT_EQ(::stat(file.c_str(), &st), 0) << name;
        EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
        registry.remove(name);
        EXPECT_FALSE(fs::exists(file)) << name;
    }
    struct stat st {};
    ASSERT_EQ(::stat((dir.path() / "sarus").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(ContainerRegistryTest, InvalidNamesAreRefusedNamingThem) {
    for (const std::string& name : std::vector<std::string>{"", "-job", ".hidden", "_x", "a/b", "../up", "sp ace", "tab\t", "ü",
                                   std::string(129, 'x')}) {
        try {
            registry.add(container(name));
            ADD_FAILURE() << "accepted '" << name << "'";
        } catch (const sarus::Error& e) {
            EXPECT_NE(std::string(e.what()).find("invalid container name '" + name + "'"), std::string::npos)
                << e.what();
        }
    }
    EXPECT_TRUE(!fs::exists(dir.path() / "sarus") || fs::is_empty(dir.path() / "sarus"));
}

TEST_F(ContainerRegistryTest, RegistrationsOfProcessesThatAreNotSarusAreStale) {
    // This test program is not named sarus: its registration counts as left over.
    registry.add(container("leftover"));
    EXPECT_TRUE(registry.list().empty());
    EXPECT_FALSE(fs::exists(dir.path() / "sarus" / "leftover.json"));
}
