#include "image/reference_grammar.hpp"

namespace sarus::reference_grammar {

namespace {

bool isLowerAlphanumeric(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlphanumeric(char c) { return isLowerAlphanumeric(c) || (c >= 'A' && c <= 'Z'); }
bool isDecimalDigit(char c) { return c >= '0' && c <= '9'; }
bool isHexDigit(char c) { return isDecimalDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

template <typename Predicate>
bool all(std::string_view text, Predicate predicate) {
    for (char c : text) {
        if (!predicate(c)) {
            return false;
        }
    }
    return true;
}

// Runs of lower-case letters and digits, joined by separators that
// isSeparator accepts; no separator at either end.
template <typename SeparatorCheck>
bool isJoinedRuns(std::string_view text, SeparatorCheck isSeparator) {
    std::size_t i = 0;
    while (true) {
        std::size_t runStart = i;
        while (i < text.size() && isLowerAlphanumeric(text[i])) {
            ++i;
        }
        if (i == runStart) {
            return false;
        }
        if (i == text.size()) {
            return true;
        }
        std::size_t separatorStart = i;
        while (i < text.size() && !isLowerAlphanumeric(text[i])) {
            ++i;
        }
        if (!isSeparator(text.substr(separatorStart, i - separatorStart))) {
            return false;
        }
    }
}

bool isDomainLabel(std::string_view label) {
    return !label.empty() && isAlphanumeric(label.front()) && isAlphanumeric(label.back()) &&
           all(label, [](char c) { return isAlphanumeric(c) || c == '-'; });
}

}  // namespace

bool isPathComponent(std::string_view text) {
    return isJoinedRuns(text, [](std::string_view separator) {
        return separator == "." || separator == "_" || separator == "__" ||
               all(separator, [](char c) { return c == '-'; });
    });
}

bool isTag(std::string_view text) {
    return !text.empty() && text.size() <= 128 && (isAlphanumeric(text[0]) || text[0] == '_') &&
           all(text, [](char c) { return isAlphanumeric(c) || c == '_' || c == '.' || c == '-'; });
}

bool isDomain(std::string_view text) {
    auto colon = text.find(':');
    if (colon != std::string_view::npos) {
        auto port = text.substr(colon + 1);
        if (port.empty() || !all(port, isDecimalDigit)) {
            return false;
        }
        text = text.substr(0, colon);
    }
    while (true) {
        auto dot = text.find('.');
        if (!isDomainLabel(text.substr(0, dot))) {
            return false;
        }
        if (dot == std::string_view::npos) {
            return true;
        }
        text = text.substr(dot + 1);
    }
}

bool isDigest(std::string_view text) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        return false;
    }
    auto algorithm = text.substr(0, colon);
    auto hex = text.substr(colon + 1);
    return hex.size() >= 32 && all(hex, isHexDigit) &&
           isJoinedRuns(algorithm, [](std::string_view separator) {
               return separator.size() == 1 && std::string_view("+._-").find(separator[0]) != std::string_view::npos;
           });
}

}  // namespace sarus::reference_grammar
