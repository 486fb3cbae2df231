#include "runtime/entrypoint_prefetch.hpp"
#include "common/file_utils.hpp"

#include <gtest/gtest.h>

#include <elf.h>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

class EntrypointTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "entrypoint-test"};
    fs::path root = dir.path() / "rootfs";

    void SetUp() override { fs::create_directories(root); }

    void executable(const std::string& path, const std::string& content = "#!/bin/sh\n") {
        fs::create_directories((root / path).parent_path());
        std::ofstream(root / path) << content;
        fs::permissions(root / path, fs::perms(0755));
    }

    sarus::ContainerSpec spec(std::vector<std::string> args, std::string path = "/usr/bin:/bin",
                              std::string cwd = "/") {
        sarus::ContainerSpec s;
        s.args = std::move(args);
        s.env = {"HOME=/root", "PATH=" + path};
        s.cwd = std::move(cwd);
        return s;
    }

    // A minimal 64-bit ELF file whose only program header is PT_INTERP.
    void elfWithInterpreter(const std::string& path, const std::string& interpreter) {
        Elf64_Ehdr header {};
        std::copy_n(ELFMAG, SELFMAG, header.e_ident);
        header.e_ident[EI_CLASS] = ELFCLASS64;
        header.e_phoff = sizeof header;
        header.e_phentsize = sizeof(Elf64_Phdr);
        header.e_phnum = 1;
        Elf64_Phdr interp {};
        interp.p_type = PT_INTERP;
        interp.p_offset = sizeof header + sizeof interp;
        interp.p_filesz = interpreter.size() + 1;
        fs::create_directories((root / path).parent_path());
        std::ofstream out(root / path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(&header), sizeof header);
        out.write(reinterpret_cast<const char*>(&interp), sizeof interp);
        out.write(interpreter.c_str(), static_cast<std::streamsize>(interpreter.size() + 1));
        out.close();
        fs::permissions(root / path, fs::perms(0755));
    }

    std::string interpreterOf(const std::string& path) {
        int fd = ::open((root / path).c_str(), O_RDONLY);
        auto interpreter = sarus::elfInterpreter(fd);
        ::close(fd);
        return interpreter;
    }
};

}  // namespace

TEST_F(EntrypointTest, FoundInTheContainersPathInOrder) {
    executable("bin/tool");
    executable("usr/bin/tool");
    EXPECT_EQ(sarus::entrypointProgram(root, spec({"tool", "-x"})), root.string() + "/usr/bin/tool");
    EXPECT_EQ(sarus::entrypointProgram(root, spec({"tool"}, "/bin:/usr/bin")), root.string() + "/bin/tool");
}

TEST_F(EntrypointTest, NotExecutableOrMissingIsSkipped) {
    executable("usr/bin/tool");
    fs::permissions(root / "usr/bin/tool", fs::perms(0644));
    executable("bin/tool");
    EXPECT_EQ(sarus::entrypointProgram(root, spec({"tool"})), root.string() + "/bin/tool");
    EXPECT_TRUE(sarus::entrypointProgram(root, spec({"absent"})).empty());
    EXPECT_TRUE(sarus::entrypointProgram(root, spec({})).empty());
}

TEST_F(EntrypointTest, DirectoriesAreNotPrograms) {
    fs::create_directories(root / "usr/bin/tool");
    EXPECT_TRUE(sarus::entrypointProgram(root, spec({"tool"})).empty());
}

TEST_F(EntrypointTest, PathsWithASlashAreAbsoluteOrRelativeToTheWorkingDirectory) {
    executable("opt/app/run");
    EXPECT_EQ(sarus::entrypointProgram(root, spec({"/opt/app/run"})), root.string() + "/opt/app/run");
    EXPECT_EQ(sarus::entrypointProgram(root, spec({"./run"}, "/usr/bin", "/opt/app")),
              root.string() + "/opt/app/run");
}

TEST_F(EntrypointTest, SymlinksResolveInsideTheRootNeverOnTheHost) {
    executable("bin/busybox");
    fs::create_symlink("busybox", root / "bin/true");
    fs::create_symlink("/bin/busybox", root / "bin/sh");
    // On the host /bin/bash exists; in this root the link leads nowhere.
    fs::create_symlink("/bin/bash", root / "bin/escape");
    EXPECT_EQ(sarus::entrypointProgram(root, spec({"true"}, "/bin")), root.string() + "/bin/busybox");
    EXPECT_EQ(sarus::entrypointProgram(root, spec({"sh"}, "/bin")), root.string() + "/bin/busybox");
    EXPECT_TRUE(sarus::entrypointProgram(root, spec({"escape"}, "/bin")).empty());
}

TEST_F(EntrypointTest, ElfInterpreterIsRead) {
    elfWithInterpreter("usr/bin/app", "/lib64/ld-linux-x86-64.so.2");
    EXPECT_EQ(interpreterOf("usr/bin/app"), "/lib64/ld-linux-x86-64.so.2");
    executable("usr/bin/script");
    EXPECT_EQ(interpreterOf("usr/bin/script"), "");
    std::ofstream(root / "empty").close();
    EXPECT_EQ(interpreterOf("empty"), "");
}

TEST_F(EntrypointTest, HostProgramsHaveTheirInterpreter) {
    int fd = ::open("/bin/sh", O_RDONLY);
    ASSERT_GE(fd, 0);
    auto interpreter = sarus::elfInterpreter(fd);
    ::close(fd);
    EXPECT_EQ(interpreter.rfind("/lib", 0), 0u) << interpreter;
    EXPECT_NE(interpreter.find("ld-linux"), std::string::npos) << interpreter;
}

TEST_F(EntrypointTest, FilesAreTheInterpreterThenTheProgram) {
    elfWithInterpreter("usr/bin/app", "/lib64/ld.so");
    fs::create_directories(root / "usr/lib");
    std::ofstream(root / "usr/lib/ld.so") << "loader";
    fs::create_symlink("usr/lib", root / "lib64");
    auto files = sarus::entrypointFiles(root, spec({"app"}));
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(files[0], root.string() + "/usr/lib/ld.so");
    EXPECT_EQ(files[1], root.string() + "/usr/bin/app");
}

TEST_F(EntrypointTest, AMissingInterpreterLeavesTheProgram) {
    elfWithInterpreter("usr/bin/app", "/lib64/ld.so");
    auto files = sarus::entrypointFiles(root, spec({"app"}));
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(files[0], root.string() + "/usr/bin/app");
}

TEST_F(EntrypointTest, FifoAsEntrypointIsNeverOpened) {
    fs::create_directories(root / "usr/bin");
    ASSERT_EQ(::mkfifo((root / "usr/bin/app").c_str(), 0755), 0);
    // Would block forever if the FIFO were opened for reading.
    EXPECT_TRUE(sarus::entrypointFiles(root, spec({"app"})).empty());
}
