#include "common/file_utils.hpp"
#include "runtime/mount_keeper.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

// A keeper directory as a keeper killed by Slurm leaves it: private, with
// its lock and an empty images directory, no socket.
fs::path deadKeeperDirectory(const fs::path& parent, const std::string& name) {
    auto directory = parent / name;
    fs::create_directories(directory / "images");
    ::chmod(directory.c_str(), 0700);
    std::ofstream(directory / "lock");
    return directory;
}

}  // namespace

TEST(RemoveDeadKeeperDirectories, RemovesTheCallersDeadKeepersAlone) {
    sarus::TempDirectory parent(fs::temp_directory_path(), "keepers-test");
    auto uid = std::to_string(::getuid());
    auto plain = deadKeeperDirectory(parent.path(), "sarus-keeper-" + uid + "@node1");
    auto step = deadKeeperDirectory(parent.path(), "sarus-keeper-" + uid + "-slurm12.0@node1");
    auto longerUid = deadKeeperDirectory(parent.path(), "sarus-keeper-" + uid + "7@node1");
    auto otherNode = deadKeeperDirectory(parent.path(), "sarus-keeper-" + uid + "@node2");
    auto open = deadKeeperDirectory(parent.path(), "sarus-keeper-" + uid + "-slurm13.0@node1");
    ::chmod(open.c_str(), 0755);  // not private: not a keeper's

    sarus::removeDeadKeeperDirectories(parent.path(), "sarus-keeper-" + uid, "@node1", {"images"});

    EXPECT_FALSE(fs::exists(plain));
    EXPECT_FALSE(fs::exists(step));
    EXPECT_TRUE(fs::exists(longerUid / "lock"));
    EXPECT_TRUE(fs::exists(otherNode / "lock"));
    EXPECT_TRUE(fs::exists(open / "lock"));
}
