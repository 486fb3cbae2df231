#include "glibc_version.hpp"

#include "shared_library.hpp"

#include <cctype>
#include <fstream>
#include <iterator>
#include <regex>

namespace hook {

namespace {

std::vector<unsigned long> parseDotted(const std::string& text) {
    std::vector<unsigned long> version;
    size_t at = 0;
    while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) {
        size_t end = at;
        while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])) && end - at < 9) {
            ++end;
        }
        version.push_back(std::stoul(text.substr(at, end - at)));
        if (end >= text.size() || text[end] != '.') {
            break;
        }
        at = end + 1;
    }
    return version;
}

}  // namespace

std::vector<unsigned long> glibcVersion(const std::filesystem::path& libcFile) {
    std::ifstream in(libcFile, std::ios::binary);
    return glibcVersionOf(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()),
                          libcFile.filename().string());
}

std::vector<unsigned long> glibcVersionOf(const std::string& content, const std::string& fileName) {
    const std::string marker = "GNU C Library";
    for (auto at = content.find(marker); at != std::string::npos; at = content.find(marker, at + 1)) {
        auto end = content.find('\0', at);
        auto banner = content.substr(at, end == std::string::npos ? std::string::npos : end - at);
        auto release = banner.find("release version ");
        if (release != std::string::npos) {
            auto version = parseDotted(banner.substr(release + 16));
            if (version.size() >= 2) {
                return version;
            }
        }
    }
    static const std::regex oldStyle(R"(libc-(\d+\.\d+)\.so)");
    std::smatch match;
    if (std::regex_match(fileName, match, oldStyle)) {
        return parseDotted(match[1]);
    }
    return {};
}

std::string versionString(const std::vector<unsigned long>& version) {
    return version.empty() ? "unknown" : dottedVersion(version);
}

}  // namespace hook
