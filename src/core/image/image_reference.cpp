#include "image/image_reference.hpp"

#include "common/error.hpp"
#include "image/reference_grammar.hpp"

#include <vector>

namespace sarus {

namespace {

const std::string defaultServer = "docker.io";
const std::string loadServer = "load";

// Sarus's first line; what exactly is wrong follows with --verbose.
Error invalid(const std::string& text, const std::string& why) {
    Error error("Invalid image reference '" + text + "'");
    error.within("reading it: " + why);
    return error;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        auto pos = s.find(sep, start);
        parts.push_back(s.substr(start, pos - start));
        if (pos == std::string::npos) {
            return parts;
        }
        start = pos + 1;
    }
}

void checkDigest(const std::string& text, const std::string& digest) {
    if (!reference_grammar::isDigest(digest)) {
        throw invalid(text, "bad digest '" + digest + "' (expected ALGORITHM:HEX)");
    }
    if (digest.rfind("sha256:", 0) == 0) {
        auto hex = digest.substr(7);
        if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
            throw invalid(text, "bad digest '" + digest + "' (sha256 needs 64 lowercase hex digits)");
        }
    }
}

void checkRepository(const std::string& text, const std::string& repository) {
    if (repository.empty()) {
        throw invalid(text, "missing repository name");
    }
    for (const auto& component : split(repository, '/')) {
        if (component == ".." || component == ".") {
            throw invalid(text, "path component '" + component + "' is not allowed");
        }
        if (component.empty()) {
            throw invalid(text, "empty path component in '" + repository + "'");
        }
        if (!reference_grammar::isPathComponent(component)) {
            bool upper = component.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos;
            throw invalid(text, "bad repository name component '" + component + "'" +
                                    (upper ? " (must be lowercase)" : ""));
        }
    }
}

// A first component is a server if it looks like a host (has '.' or ':') or
// is "localhost", exactly as Docker decides; "load" is Sarus' own server.
bool isServer(const std::string& component) {
    return component.find_first_of(".:") != std::string::npos || component == "localhost" ||
           component == loadServer;
}

}  // namespace

ImageReference ImageReference::parse(const std::string& text) {
    if (text.empty()) {
        throw invalid(text, "empty reference");
    }
    if (text.find_first_of(" \t\n\r") != std::string::npos) {
        throw invalid(text, "contains whitespace");
    }
    ImageReference ref;
    std::string rest = text;
    if (auto at = rest.find('@'); at != std::string::npos) {
        ref.digest = rest.substr(at + 1);
        rest = rest.substr(0, at);
        checkDigest(text, ref.digest);
    }
    auto lastSlash = rest.rfind('/');
    auto colon = rest.rfind(':');
    if (colon != std::string::npos && (lastSlash == std::string::npos || colon > lastSlash)) {
        ref.tag = rest.substr(colon + 1);
        rest = rest.substr(0, colon);
        if (!reference_grammar::isTag(ref.tag)) {
            throw invalid(text, "bad tag '" + ref.tag + "'");
        }
    }
    for (const auto& component : split(rest, '/')) {
        if (component == ".." || component == ".") {
            throw invalid(text, "path component '" + component + "' is not allowed");
        }
    }
    auto firstSlash = rest.find('/');
    if (firstSlash != std::string::npos && isServer(rest.substr(0, firstSlash))) {
        ref.server = rest.substr(0, firstSlash);
        ref.repository = rest.substr(firstSlash + 1);
        if (!reference_grammar::isDomain(ref.server)) {
            throw invalid(text, "bad registry server '" + ref.server + "'");
        }
    } else {
        ref.server = defaultServer;
        ref.repository = rest;
    }
    if (ref.server == "index.docker.io" || ref.server == "registry-1.docker.io") {
        ref.server = defaultServer;
    }
    checkRepository(text, ref.repository);
    if ((ref.server == defaultServer || ref.server == loadServer) &&
        ref.repository.find('/') == std::string::npos) {
        ref.repository = "library/" + ref.repository;
    }
    if (ref.server.size() + 1 + ref.repository.size() > 255) {
        throw invalid(text, "repository name longer than 255 characters");
    }
    if (ref.tag.empty() && ref.digest.empty()) {
        ref.tag = "latest";
    }
    return ref;
}

ImageReference ImageReference::parseLoadName(const std::string& text) {
    if (text.find('@') != std::string::npos) {
        throw Error("Destination image reference must not contain a digest when loading the image from a file");
    }
    auto candidate = parse(text);
    if (candidate.server != loadServer) {
        // The name given to `load` is never a registry: "my/img" and even
        // "host.com/img" are repository paths under the load server.
        auto full = parse(loadServer + "/" + text);
        return full;
    }
    return candidate;
}

std::string ImageReference::normalized() const {
    std::string s = server + "/" + repository;
    if (!tag.empty()) {
        s += ":" + tag;
    }
    if (!digest.empty()) {
        s += "@" + digest;
    }
    return s;
}

ImageReference ImageReference::identity() const {
    auto ref = *this;
    if (!ref.digest.empty()) {
        ref.tag.clear();
    }
    return ref;
}

ImageReference ImageReference::parseArgument(const std::string& text, const std::string& command) {
    try {
        return command == "load" ? parseLoadName(text) : parse(text);
    } catch (Error& e) {
        Error error(std::string(e.what()) + "\nSee 'sarus help " + command + "'");
        for (const auto& context : e.contexts()) {
            error.within(context);
        }
        throw error;
    }
}

std::string ImageReference::displayRepository() const {
    if (server == defaultServer) {
        if (repository.rfind("library/", 0) == 0) {
            return repository.substr(8);
        }
        return repository;
    }
    return server + "/" + repository;
}

std::string ImageReference::storeName() const {
    if (!tag.empty()) {
        return tag;
    }
    std::string name = digest;
    for (auto& c : name) {
        if (c == ':') {
            c = '-';
        }
    }
    return "@" + name;
}

}  // namespace sarus
