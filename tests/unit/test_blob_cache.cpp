#include "registry/blob_cache.hpp"
#include "common/file_utils.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

const std::string digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

struct BlobFile : ::testing::Test {
    // not /tmp: the cache's stamps are user extended attributes
    sarus::TempDirectory temp{"/var/tmp", "blob-cache-test"};
    const fs::path dir = temp.path();
    int fd = -1;
    void SetUp() override {
        fd = ::open((dir / "blob").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_EQ(::write(fd, "hello", 5), 5);
    }
    void TearDown() override { ::close(fd); }
};

}  // namespace

TEST_F(BlobFile, AStampedBlobIsKnownVerifiedUntilItChanges) {
    EXPECT_FALSE(sarus::BlobCache::isMarkedVerified(fd, digest));
    sarus::BlobCache::markVerified(fd, digest);
    EXPECT_TRUE(sarus::BlobCache::isMarkedVerified(fd, digest));
    EXPECT_FALSE(sarus::BlobCache::isMarkedVerified(fd, "sha256:" + std::string(64, '0')));
    struct timespec later[2] = {{0, UTIME_OMIT}, {1, 0}};
    ASSERT_EQ(::futimens(fd, later), 0);  // as any rewrite would
    EXPECT_FALSE(sarus::BlobCache::isMarkedVerified(fd, digest));
    sarus::BlobCache::markVerified(fd, digest);
    ASSERT_EQ(::pwrite(fd, "x", 1, 5), 1);  // grown
    EXPECT_FALSE(sarus::BlobCache::isMarkedVerified(fd, digest));
}
