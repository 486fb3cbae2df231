#include "cli/credentials_prompt.hpp"

#include "common/cancellation.hpp"
#include "common/error.hpp"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

namespace sarus {

namespace {

// Polls so that Ctrl-C (taken by the signal watcher) ends the wait.
std::string readLineFrom(int fd, const std::string& what) {
    std::string line;
    line.reserve(256);  // no reallocation leaving copies of a password behind
    while (true) {
        cancellation::throwIfRequested();
        pollfd p{fd, POLLIN, 0};
        int ready = ::poll(&p, 1, 100);
        if (ready < 0 && errno != EINTR) {
            throw systemError("cannot read from " + what, errno);
        }
        if (ready <= 0) {
            continue;
        }
        char c;
        ssize_t n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw systemError("cannot read from " + what, errno);
        }
        if (n == 0 || c == '\n') {
            break;
        }
        line += c;
    }
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    return line;
}

class Terminal {
public:
    Terminal() {
        fd_ = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd_ < 0) {
            throw Error("cannot ask for registry credentials: no terminal (use -u USER and --password-stdin)");
        }
    }
    ~Terminal() {
        restoreEcho();
        ::close(fd_);
    }
    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;

    void write(const std::string& text) {
        auto ignored = ::write(fd_, text.data(), text.size());
        (void)ignored;
    }
    void disableEcho() {
        if (::tcgetattr(fd_, &saved_) != 0) {
            throw systemError("cannot configure the terminal", errno);
        }
        termios quiet = saved_;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        quiet.c_lflag |= ECHONL;
        ::tcsetattr(fd_, TCSAFLUSH, &quiet);
        echoOff_ = true;
    }
    void restoreEcho() {
        if (echoOff_) {
            ::tcsetattr(fd_, TCSANOW, &saved_);
            echoOff_ = false;
        }
    }
    // Ctrl-C ends the prompt by an exception: the destructor restores echo.
    std::string readLine() { return readLineFrom(fd_, "the terminal"); }

private:
    int fd_ = -1;
    termios saved_{};
    bool echoOff_ = false;
};

}  // namespace

Credentials readCredentials(const CredentialsRequest& request, const std::string& registry) {
    Credentials credentials;
    credentials.username = request.username;
    if (request.passwordFromStdin) {
        if (credentials.username.empty()) {
            throw Error("--password-stdin needs the user name: add -u USER");
        }
        credentials.password = readLineFrom(STDIN_FILENO, "stdin");
    } else if (!::isatty(STDIN_FILENO)) {
        // No terminal: the answers come from stdin, as Sarus reads them
        // (printf 'user\npassword' | sarus pull --login ...).
        if (credentials.username.empty()) {
            std::fputs("username: ", stdout);
            std::fflush(stdout);
            credentials.username = readLineFrom(STDIN_FILENO, "stdin");
        }
        std::fputs("password: ", stdout);
        std::fflush(stdout);
        credentials.password = readLineFrom(STDIN_FILENO, "stdin");
        std::fputs("\n", stdout);
    } else {
        Terminal terminal;
        if (credentials.username.empty()) {
            terminal.write("Username for " + registry + ": ");
            credentials.username = terminal.readLine();
        }
        // Echo goes off before the prompt shows: turning it off flushes what
        // was typed, and a password typed as soon as the prompt appeared was
        // lost that way, leaving sarus waiting for it.
        terminal.disableEcho();
        terminal.write("Password for " + credentials.username + "@" + registry + ": ");
        credentials.password = terminal.readLine();
        terminal.restoreEcho();
    }
    if (credentials.username.empty()) {
        throw Error("Invalid username: empty value provided");
    }
    if (credentials.password.empty()) {
        throw Error("Failed to read password from stdin: empty value provided");
    }
    return credentials;
}

}  // namespace sarus
