// The version of a glibc, read from its libc file without running it (an
// image's libc must not be executed by a privileged hook).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace hook {

// {2, 36} from the banner glibc embeds in libc ("... release version 2.36."),
// else from an old-style file name ("libc-2.31.so"); empty when the file is
// not a glibc (musl's libc, say).
std::vector<unsigned long> glibcVersion(const std::filesystem::path& libcFile);

// The same from a libc's content and file name (the container's libc, which
// root reads through RootDirectory: bounded, and never a file of procfs or
// sysfs that a user bound where the image's cache points).
std::vector<unsigned long> glibcVersionOf(const std::string& content, const std::string& fileName);

std::string versionString(const std::vector<unsigned long>& version);

}  // namespace hook
