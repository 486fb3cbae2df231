#include "runtime/hooks_output_relay.hpp"

#include "common/file_utils.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Points fd (1 or 2) at a pipe for the life of the object, to read what was
// written to it.
class CapturedStream {
public:
    explicit CapturedStream(int fd) : fd_(fd), saved_(::dup(fd)) {
        EXPECT_EQ(::pipe2(pipe_, O_NONBLOCK), 0);
        ::dup2(pipe_[1], fd_);
    }
    ~CapturedStream() {
        ::dup2(saved_, fd_);
        ::close(saved_);
        ::close(pipe_[0]);
        ::close(pipe_[1]);
    }
    std::string text() const {
        std::string out;
        char buffer[4096];
        ssize_t n;
        while ((n = ::read(pipe_[0], buffer, sizeof buffer)) > 0) {
            out.append(buffer, static_cast<std::size_t>(n));
        }
        return out;
    }

private:
    int fd_;
    int saved_;
    int pipe_[2];
};

void writeTo(const fs::path& fifo, const std::string& text, int* keepOpen = nullptr) {
    int fd = ::open(fifo.c_str(), O_WRONLY | O_APPEND);  // as crun opens them
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    if (keepOpen) {
        *keepOpen = fd;
    } else {
        ::close(fd);
    }
}

}  // namespace

TEST(HooksOutputRelay, EachStreamGoesToItsNamesakeAsItComes) {
    sarus::TempDirectory bundle{fs::temp_directory_path(), "hooks-relay-test"};
    CapturedStream out(STDOUT_FILENO), err(STDERR_FILENO);
    sarus::HooksOutputRelay relay(bundle.path());
    EXPECT_EQ(relay.stdoutPath(), bundle.path() / "hooks.stdout");
    writeTo(relay.stdoutPath(), "to stdout\n");
    writeTo(relay.stderrPath(), "to stderr\n");
    std::vector<pollfd> watched;
    relay.watch(watched);
    ASSERT_EQ(watched.size(), 2u);
    ASSERT_EQ(::poll(watched.data(), watched.size(), 1000), 2);
    relay.serve(watched);
    EXPECT_EQ(out.text(), "to stdout\n");
    EXPECT_EQ(err.text(), "to stderr\n");
    // Between hooks nobody writes: the relay's own write end keeps the FIFOs from ending.
    watched.clear();
    relay.watch(watched);
    EXPECT_EQ(::poll(watched.data(), watched.size(), 50), 0);
}

TEST(HooksOutputRelay, DrainCopiesWhatIsLeftWithoutWaitingForAWriterThatStays) {
    sarus::TempDirectory bundle{fs::temp_directory_path(), "hooks-relay-test"};
    CapturedStream out(STDOUT_FILENO);
    sarus::HooksOutputRelay relay(bundle.path());
    int daemon = -1;  // a hook's background process that keeps its stdout
    writeTo(relay.stdoutPath(), "last words\n", &daemon);
    relay.drain();
    EXPECT_EQ(out.text(), "last words\n");
    ::close(daemon);
}
