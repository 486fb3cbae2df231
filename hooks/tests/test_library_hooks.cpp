// Pure parts of the MPI and glibc hooks: library names and versions, the
// MPICH ABI rules of each MPI_COMPATIBILITY_TYPE, the replacement plans, and
// the glibc version read from a libc file.
#include "abi_compatibility.hpp"
#include "common/error.hpp"
#include "glibc_hook.hpp"
#include "glibc_version.hpp"
#include "mpi_hook.hpp"
#include "shared_library.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace hook;

namespace {

Library lib(const std::string& path) {
    return {path, parseLibraryName(fs::path(path).filename())};
}

ContainerLibrary containerLib(const std::string& path, const std::string& soname = "") {
    auto name = parseLibraryName(fs::path(path).filename());
    return {path, soname.empty() ? name.soname() : soname, path, name};
}

std::string errorOf(AbiCheck check, const std::string& host, const std::string& container) {
    try {
        checkAbiCompatibility(check, lib(host), lib(container));
    } catch (const sarus::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(LibraryName, SplitsLinkerNameAndVersion) {
    auto name = parseLibraryName("libmpich.so.12.1.10");
    EXPECT_EQ(name.linkerName, "libmpich.so");
    EXPECT_EQ(name.version, (std::vector<unsigned long>{12, 1, 10}));
    EXPECT_EQ(name.soname(), "libmpich.so.12");
    EXPECT_EQ(name.versionString(), "12.1.10");
    EXPECT_EQ(parseLibraryName("libmpi.so.12").version, std::vector<unsigned long>{12});
    EXPECT_FALSE(parseLibraryName("libmpi.so").hasMajor());
    EXPECT_EQ(parseLibraryName("libmpi.so").versionString(), "none");
    EXPECT_EQ(parseLibraryName("libfoo.so.1.2rc3").version, std::vector<unsigned long>{1});
    EXPECT_EQ(parseLibraryName("ld-linux-x86-64.so.2").linkerName, "ld-linux-x86-64.so");
    EXPECT_EQ(parseLibraryName("libsomething.solver.so.3").linkerName, "libsomething.solver.so");
    EXPECT_EQ(parseLibraryName("libc-2.31.so").linkerName, "libc-2.31.so");
}

TEST(AbiCompatibility, UnsetOrUnknownTypeIsMajor) {
    EXPECT_EQ(abiCheckFromString(""), AbiCheck::major);
    EXPECT_EQ(abiCheckFromString("nonsense"), AbiCheck::major);
    EXPECT_EQ(abiCheckFromString("full"), AbiCheck::full);
    EXPECT_EQ(abiCheckFromString("strict"), AbiCheck::strict);
}

TEST(AbiCompatibility, MajorNeedsEqualMajorsOnly) {
    EXPECT_EQ(errorOf(AbiCheck::major, "/h/libmpi.so.12.2.2", "/c/libmpi.so.12.9.0"), "");
    EXPECT_EQ(errorOf(AbiCheck::major, "/h/libmpi.so.12.2.2", "/c/libmpi.so.12"), "");
    auto error = errorOf(AbiCheck::major, "/h/libmpi.so.12.2.2", "/c/libmpi.so.13.0.0");
    EXPECT_NE(error.find("/h/libmpi.so.12.2.2 (ABI 12.2.2)"), std::string::npos) << error;
    EXPECT_NE(error.find("/c/libmpi.so.13.0.0 (ABI 13.0.0)"), std::string::npos) << error;
    EXPECT_NE(error.find("major versions differ"), std::string::npos) << error;
    EXPECT_NE(errorOf(AbiCheck::major, "/h/libmpi.so.12", "/c/libmpi.so").find("container library has no major"),
              std::string::npos);
}

TEST(AbiCompatibility, FullWarnsWhenTheContainerMinorIsNewer) {
    EXPECT_EQ(checkAbiCompatibility(AbiCheck::full, lib("/h/libmpi.so.12.2.2"), lib("/c/libmpi.so.12.1.10")), "");
    EXPECT_EQ(checkAbiCompatibility(AbiCheck::full, lib("/h/libmpi.so.12.2.2"), lib("/c/libmpi.so.12")), "");
    auto warning = checkAbiCompatibility(AbiCheck::full, lib("/h/libmpi.so.12.2.2"), lib("/c/libmpi.so.12.9.0"));
    EXPECT_NE(warning.find("is older than"), std::string::npos) << warning;
    EXPECT_NE(warning.find("(ABI 12.9.0)"), std::string::npos) << warning;
    EXPECT_NE(errorOf(AbiCheck::full, "/h/libmpi.so.12", "/c/libmpi.so.12.1.0").find("host library has no minor"),
              std::string::npos);
    EXPECT_NE(errorOf(AbiCheck::full, "/h/libmpi.so.12.2", "/c/libmpi.so.40.1").find("major versions differ"),
              std::string::npos);
}

TEST(AbiCompatibility, StrictNeedsEqualMinors) {
    EXPECT_EQ(errorOf(AbiCheck::strict, "/h/libmpi.so.12.2.2", "/c/libmpi.so.12.2.0"), "");
    auto error = errorOf(AbiCheck::strict, "/h/libmpi.so.12.2.2", "/c/libmpi.so.12.1.10");
    EXPECT_NE(error.find("minor versions differ (MPI_COMPATIBILITY_TYPE=strict)"), std::string::npos) << error;
    EXPECT_NE(errorOf(AbiCheck::strict, "/h/libmpi.so.12.2.2", "/c/libmpi.so.12").find("container library has no minor"),
              std::string::npos);
}

TEST(MpiPlan, ReplacesCounterpartsAndAddsTheRest) {
    auto plan = planMpiInjection(AbiCheck::major,
                                 {lib("/h/libmpich.so.12.2.2"), lib("/h/libmpichfort.so.12.2.2")},
                                 {lib("/h/libucp.so.0.0.0"), lib("/h/libhwloc.so.15.6.1")},
                                 {containerLib("/usr/lib/libmpich.so.12.1.10"), containerLib("/usr/lib/libucp.so.0.0.0"),
                                  containerLib("/usr/lib/libhwloc.so.5.0.0")});
    ASSERT_EQ(plan.mounts.size(), 4u);
    EXPECT_EQ(plan.mounts[0].container.path, "/usr/lib/libmpich.so.12.1.10");
    EXPECT_FALSE(plan.mounts[0].added);
    EXPECT_EQ(plan.mounts[1].container.path, "/usr/lib/libmpichfort.so.12.2.2");
    EXPECT_TRUE(plan.mounts[1].added);
    EXPECT_EQ(plan.mounts[2].container.path, "/usr/lib/libucp.so.0.0.0");
    EXPECT_FALSE(plan.mounts[2].added);
    // another soname: the container's libhwloc.so.5 stays, the host's is added
    EXPECT_EQ(plan.mounts[3].container.path, "/usr/lib/libhwloc.so.15.6.1");
    EXPECT_TRUE(plan.mounts[3].added);
    EXPECT_TRUE(plan.warnings.empty());
}

TEST(MpiPlan, KeepsANewerContainerDependency) {
    auto plan = planMpiInjection(AbiCheck::major, {lib("/h/libmpich.so.12.2.2")}, {lib("/h/libstdc++.so.6.0.30")},
                                 {containerLib("/usr/lib/libmpich.so.12.1.10"), containerLib("/usr/lib/libstdc++.so.6.0.32")});
    ASSERT_EQ(plan.mounts.size(), 1u);
    ASSERT_EQ(plan.notes.size(), 1u);
    EXPECT_NE(plan.notes[0].find("kept the container's /usr/lib/libstdc++.so.6.0.32"), std::string::npos) << plan.notes[0];
    plan = planMpiInjection(AbiCheck::major, {lib("/h/libmpich.so.12.2.2")}, {lib("/h/libstdc++.so.6.0.30")},
                            {containerLib("/usr/lib/libmpich.so.12.1.10"), containerLib("/usr/lib/libstdc++.so.6.0.28")});
    ASSERT_EQ(plan.mounts.size(), 2u);
    EXPECT_EQ(plan.mounts[1].container.path, "/usr/lib/libstdc++.so.6.0.28");
}

TEST(MpiPlan, RefusesAContainerWithoutMpi) {
    try {
        planMpiInjection(AbiCheck::major, {lib("/h/libmpich.so.12.2.2")}, {}, {containerLib("/usr/lib/libc.so.6")});
        FAIL() << "no error";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("No MPI libraries found in the container"),
                  std::string::npos)
            << e.what();
    }
}

TEST(MpiPlan, RefusesAHostLibraryWithoutMajor) {
    try {
        planMpiInjection(AbiCheck::major, {lib("/h/libmpich.so")}, {}, {containerLib("/usr/lib/libmpich.so.12")});
        FAIL() << "no error";
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("Found host's MPI library /h/libmpich.so."), std::string::npos) << e.what();
    }
}

TEST(MpiPlan, CarriesTheFullWarning) {
    auto plan = planMpiInjection(AbiCheck::full, {lib("/h/libmpich.so.12.2.2")}, {},
                                 {containerLib("/usr/lib/libmpich.so.12.9.0")});
    ASSERT_EQ(plan.warnings.size(), 1u);
    EXPECT_EQ(plan.mounts.size(), 1u);
}

TEST(GlibcPlan, MatchesByLinkerNameAndChecksSonames) {
    // old glibc files are named libc-2.31.so: they are found by the cache's soname
    std::vector<ContainerLibrary> container{containerLib("/lib/x86_64-linux-gnu/libc-2.31.so", "libc.so.6"),
                                            containerLib("/lib/x86_64-linux-gnu/libm.so.6")};
    auto soname = [](const std::string& path) {
        return path.find("libc") != std::string::npos ? std::string("libc.so.6") : std::string("libm.so.6");
    };
    auto mounts = planGlibcReplacement({"/h/libc.so.6", "/h/libm.so.6", "/h/libnss_hesiod.so.2"}, container, soname,
                                       soname);
    ASSERT_EQ(mounts.size(), 2u);
    EXPECT_EQ(mounts[0].containerPath, "/lib/x86_64-linux-gnu/libc-2.31.so");
    EXPECT_EQ(mounts[1].hostPath, "/h/libm.so.6");
    auto otherSoname = [](const std::string&) { return std::string("libm.so.5"); };
    EXPECT_THROW(planGlibcReplacement({"/h/libm.so.6"}, container, soname, otherSoname), sarus::Error);
}

TEST(GlibcVersion, ReadsTheBannerOrTheOldFileName) {
    char pattern[] = "/tmp/sarus-glibc-test-XXXXXX";
    fs::path dir = ::mkdtemp(pattern);
    {
        std::ofstream out(dir / "libc.so.6", std::ios::binary);
        out << std::string("\0\x7f" "ELF junk\0", 10) << "GNU C Library (Test) stable release version 2.31.";
        out << std::string("\0more", 5);
    }
    std::ofstream(dir / "libc-2.17.so") << "no banner here";
    std::ofstream(dir / "musl-libc.so") << "musl libc (x86_64)";
    EXPECT_EQ(glibcVersion(dir / "libc.so.6"), (std::vector<unsigned long>{2, 31}));
    EXPECT_EQ(glibcVersion(dir / "libc-2.17.so"), (std::vector<unsigned long>{2, 17}));
    EXPECT_TRUE(glibcVersion(dir / "musl-libc.so").empty());
    fs::remove_all(dir);
    auto host = glibcVersion("/lib/x86_64-linux-gnu/libc.so.6");
    ASSERT_GE(host.size(), 2u) << "the host's glibc banner was not found";
    EXPECT_EQ(versionString(host), std::to_string(host[0]) + "." + std::to_string(host[1]));
}
