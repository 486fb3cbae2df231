// The pieces of an image reference, as the distribution/reference package
// (reference.go) defines them with regular expressions. Matched by hand:
// compiling std::regex patterns at start-up cost every sarus invocation a
// quarter of its own start.
#pragma once

#include <string_view>

namespace sarus::reference_grammar {

// [a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*
bool isPathComponent(std::string_view text);

// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
bool isTag(std::string_view text);

// (?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])
// (?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?
bool isDomain(std::string_view text);

// [a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}
bool isDigest(std::string_view text);

}  // namespace sarus::reference_grammar
