// Errors carry their context as a chain of "while doing X" frames so the CLI
// can print one line by default and the whole chain with --verbose.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace sarus {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}

    // Adds an outer context frame ("loading image archive /x.tar").
    Error& within(const std::string& context) {
        contexts_.push_back(context);
        return *this;
    }
    const std::vector<std::string>& contexts() const { return contexts_; }

private:
    std::vector<std::string> contexts_;
};

// Error from a failed system call, with errno's text appended.
Error systemError(const std::string& what, int errnum);

// Runs fn and, if it throws sarus::Error, adds a context frame before rethrowing.
template <typename Fn>
auto withContext(const std::string& context, Fn&& fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (Error& e) {
        e.within(context);
        throw;
    }
}

}  // namespace sarus
