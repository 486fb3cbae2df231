// squashfuse_preload.so inside a real libfuse session, with fake filesystem
// operations: requests are written as the kernel writes them, on a socket
// the session reads as its /dev/fuse.
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

struct Calls {
    int getxattrs = 0;
    int opens = 0;
    int opendirs = 0;
    std::vector<uint64_t> readHandles;
    std::vector<uint64_t> releasedHandles;
    std::vector<uint64_t> readdirHandles;
    std::vector<uint64_t> releasedDirectoryHandles;
    std::vector<fuse_ino_t> forgotten;
    int openError = 0;
} calls;

void fakeOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    ++calls.opens;
    if (calls.openError != 0) {
        fuse_reply_err(req, calls.openError);
        return;
    }
    fi->fh = 1000 + ino;
    fuse_reply_open(req, fi);
}

void fakeRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    calls.releasedHandles.push_back(fi->fh);
    fuse_reply_err(req, 0);
}

void fakeRead(fuse_req_t req, fuse_ino_t, size_t, off_t, fuse_file_info* fi) {
    calls.readHandles.push_back(fi->fh);
    auto data = "fh=" + std::to_string(fi->fh);
    fuse_reply_buf(req, data.data(), data.size());
}

void fakeForget(fuse_req_t req, fuse_ino_t ino, uint64_t) {
    calls.forgotten.push_back(ino);
    fuse_reply_none(req);
}

void fakeOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    ++calls.opendirs;
    fi->fh = 2000 + ino;
    fuse_reply_open(req, fi);
}

void fakeReaddir(fuse_req_t req, fuse_ino_t, size_t, off_t, fuse_file_info* fi) {
    calls.readdirHandles.push_back(fi->fh);
    fuse_reply_buf(req, nullptr, 0);
}

void fakeReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    calls.releasedDirectoryHandles.push_back(fi->fh);
    fuse_reply_err(req, 0);
}

void fakeGetxattr(fuse_req_t req, fuse_ino_t, const char*, size_t) {
    ++calls.getxattrs;
    fuse_reply_err(req, ENODATA);
}

struct Reply {
    int error = 0;
    std::vector<char> body;
    std::string text() const { return std::string(body.begin(), body.end()); }
};

class PreloadedSession : public ::testing::Test {
protected:
    void SetUp() override {
        calls = Calls{};
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair_), 0);
        fuse_lowlevel_ops ops{};
        ops.open = fakeOpen;
        ops.release = fakeRelease;
        ops.read = fakeRead;
        ops.forget = fakeForget;
        ops.opendir = fakeOpendir;
        ops.readdir = fakeReaddir;
        ops.releasedir = fakeReleasedir;
        ops.getxattr = fakeGetxattr;
        char name[] = "test";
        char* argv[] = {name};
        fuse_args args = FUSE_ARGS_INIT(1, argv);
        session_ = fuse_session_new(&args, &ops, sizeof ops, nullptr);
        fuse_opt_free_args(&args);  // libfuse may have added to them
        ASSERT_NE(session_, nullptr);
        ASSERT_EQ(fuse_session_mount(session_, ("/dev/fd/" + std::to_string(pair_[1])).c_str()), 0);
    }

    void TearDown() override {
        if (session_) {
            fuse_session_destroy(session_);
        }
        ::close(pair_[0]);
    }

    // Writes a request, lets the session process it, returns its reply.
    Reply send(uint32_t opcode, uint64_t nodeid, const void* body, size_t size, bool answered = true) {
        fuse_in_header header{};
        header.len = static_cast<uint32_t>(sizeof header + size);
        header.opcode = opcode;
        header.unique = unique_ += 2;
        header.nodeid = nodeid;
        std::vector<char> message(sizeof header + size);
        std::memcpy(message.data(), &header, sizeof header);
        if (size > 0) {
            std::memcpy(message.data() + sizeof header, body, size);
        }
        EXPECT_EQ(::send(pair_[0], message.data(), message.size(), 0), static_cast<ssize_t>(message.size()));
        fuse_buf buffer{};
        EXPECT_GT(fuse_session_receive_buf(session_, &buffer), 0);
        fuse_session_process_buf(session_, &buffer);
        free(buffer.mem);

        Reply reply;
        std::vector<char> answer(1 << 16);
        auto n = ::recv(pair_[0], answer.data(), answer.size(), MSG_DONTWAIT);
        if (!answered) {
            EXPECT_LT(n, 0) << "a reply to a request that takes none";
            return reply;
        }
        EXPECT_GE(n, static_cast<ssize_t>(sizeof(fuse_out_header)));
        if (n < static_cast<ssize_t>(sizeof(fuse_out_header))) {
            return reply;
        }
        fuse_out_header out{};
        std::memcpy(&out, answer.data(), sizeof out);
        EXPECT_EQ(out.unique, unique_);
        reply.error = out.error;
        reply.body.assign(answer.begin() + sizeof out, answer.begin() + n);
        return reply;
    }

    fuse_init_out init(uint32_t kernelFlags) {
        fuse_init_in in{};
        in.major = 7;
        in.minor = 31;
        in.max_readahead = 128 * 1024;
        in.flags = kernelFlags;
        auto reply = send(FUSE_INIT, 0, &in, sizeof in);
        fuse_init_out out{};
        EXPECT_EQ(reply.error, 0);
        std::memcpy(&out, reply.body.data(), std::min(sizeof out, reply.body.size()));
        return out;
    }

    Reply read(uint64_t nodeid, uint64_t fh = 0) {
        fuse_read_in in{};
        in.fh = fh;
        in.size = 4096;
        return send(FUSE_READ, nodeid, &in, sizeof in);
    }

    Reply open(uint64_t nodeid, uint32_t opcode = FUSE_OPEN) {
        fuse_open_in in{};
        return send(opcode, nodeid, &in, sizeof in);
    }

    static constexpr uint32_t kernelWithNoOpen = FUSE_NO_OPEN_SUPPORT | FUSE_NO_OPENDIR_SUPPORT | FUSE_CACHE_SYMLINKS;

private:
    int pair_[2] = {-1, -1};
    fuse_session* session_ = nullptr;
    uint64_t unique_ = 0;
};

TEST_F(PreloadedSession, InitAsksTheKernelToCacheSymlinks) {
    EXPECT_TRUE(init(kernelWithNoOpen).flags & FUSE_CACHE_SYMLINKS);
}

TEST_F(PreloadedSession, OpenIsAnsweredWithEnosysAndEachInodeIsOpenedOnceForReads) {
    init(kernelWithNoOpen);
    EXPECT_EQ(open(5).error, -ENOSYS);
    EXPECT_EQ(calls.opens, 0);
    EXPECT_EQ(read(5).text(), "fh=1005");
    EXPECT_EQ(read(5).text(), "fh=1005");
    EXPECT_EQ(calls.opens, 1);
    EXPECT_EQ(read(6).text(), "fh=1006");
    EXPECT_EQ(calls.opens, 2);
    EXPECT_TRUE(calls.releasedHandles.empty());
}

TEST_F(PreloadedSession, ExtendedAttributesAreAnsweredWithEnosysSoTheKernelStopsAsking) {
    init(kernelWithNoOpen);
    struct {
        fuse_getxattr_in in{};
        char name[24] = "user.overlay.metacopy";
    } request;
    request.in.size = 256;
    EXPECT_EQ(send(FUSE_GETXATTR, 5, &request, sizeof request).error, -ENOSYS);
    fuse_getxattr_in list{};
    list.size = 256;
    EXPECT_EQ(send(FUSE_LISTXATTR, 5, &list, sizeof list).error, -ENOSYS);
    EXPECT_EQ(calls.getxattrs, 0);
}

TEST_F(PreloadedSession, ForgettingAnInodeReleasesItsHandle) {
    init(kernelWithNoOpen);
    read(5);
    fuse_forget_in forget{1};
    send(FUSE_FORGET, 5, &forget, sizeof forget, false);
    EXPECT_EQ(calls.releasedHandles, std::vector<uint64_t>{1005});
    EXPECT_EQ(calls.forgotten, std::vector<fuse_ino_t>{5});
    EXPECT_EQ(read(5).text(), "fh=1005");
    EXPECT_EQ(calls.opens, 2);
}

TEST_F(PreloadedSession, AnOpenErrorIsTheReadsAndIsNotKept) {
    init(kernelWithNoOpen);
    calls.openError = EACCES;
    EXPECT_EQ(read(5).error, -EACCES);
    EXPECT_TRUE(calls.readHandles.empty());
    calls.openError = 0;
    EXPECT_EQ(read(5).text(), "fh=1005");
    EXPECT_EQ(calls.opens, 2);
}

TEST_F(PreloadedSession, EachDirectoryReadGetsAHandleOfItsOwn) {
    init(kernelWithNoOpen);
    EXPECT_EQ(open(9, FUSE_OPENDIR).error, -ENOSYS);
    EXPECT_EQ(calls.opendirs, 0);
    fuse_read_in in{};
    in.size = 4096;
    EXPECT_EQ(send(FUSE_READDIR, 9, &in, sizeof in).error, 0);
    EXPECT_EQ(send(FUSE_READDIR, 9, &in, sizeof in).error, 0);
    EXPECT_EQ(calls.opendirs, 2);
    EXPECT_EQ(calls.readdirHandles, (std::vector<uint64_t>{2009, 2009}));
    EXPECT_EQ(calls.releasedDirectoryHandles, (std::vector<uint64_t>{2009, 2009}));
}

TEST_F(PreloadedSession, AKernelWithoutNoOpenSupportSeesTheFilesystemAsItIs) {
    auto out = init(0);
    EXPECT_FALSE(out.flags & FUSE_CACHE_SYMLINKS);
    auto opened = open(5);
    EXPECT_EQ(opened.error, 0);
    EXPECT_EQ(calls.opens, 1);
    fuse_open_out handle{};
    std::memcpy(&handle, opened.body.data(), std::min(sizeof handle, opened.body.size()));
    EXPECT_EQ(handle.fh, 1005u);
    EXPECT_EQ(read(5, 1005).text(), "fh=1005");
    EXPECT_EQ(calls.opens, 1);
}

}  // namespace
