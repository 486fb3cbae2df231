#pragma once

#include <filesystem>
#include <string>

namespace sarus {

// Resolves an absolute container path against a root directory the way the
// container will see it: symlinks (absolute or relative) are followed inside
// root, ".." stops at root, missing components are kept as they are. The
// result is a normalised absolute container path, never outside root.
std::string resolveInRoot(const std::filesystem::path& root, const std::string& containerPath);

}  // namespace sarus
