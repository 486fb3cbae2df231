// Helpers of the libFuzzer targets. A target feeds its input to a parser that
// root relies on; a sarus::Error is the parser saying no, which is fine.
// Anything else escaping (another exception, a sanitizer report, a crash) is
// a finding.
#pragma once

#include "common/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fuzz {

inline std::string text(const std::uint8_t* data, std::size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

// Splits the input at NUL bytes: several strings from one input.
inline std::vector<std::string> fields(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> parts(1);
    for (std::size_t i = 0; i < size; ++i) {
        if (data[i] == 0) {
            parts.emplace_back();
        } else {
            parts.back() += static_cast<char>(data[i]);
        }
    }
    return parts;
}

template <typename Fn>
void refusalsAllowed(Fn&& fn) {
    try {
        fn();
    } catch (const sarus::Error&) {
    }
}

}  // namespace fuzz
