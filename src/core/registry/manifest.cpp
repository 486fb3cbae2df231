#include "registry/manifest.hpp"

#include "common/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <sys/utsname.h>

namespace sarus::manifest {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// "application/json; charset=utf-8" -> "application/json"
std::string bareMediaType(const std::string& contentType) {
    auto end = contentType.find(';');
    auto type = contentType.substr(0, end);
    auto first = type.find_first_not_of(" \t");
    auto last = type.find_last_not_of(" \t");
    return first == std::string::npos ? "" : lower(type.substr(first, last - first + 1));
}

bool isManifestType(const std::string& type) {
    return type == media::ociManifest || type == media::dockerManifest;
}

bool isIndexType(const std::string& type) {
    return type == media::ociIndex || type == media::dockerList;
}

bool isSchema1(const std::string& type) {
    return type == media::dockerSchema1 || type == media::dockerSchema1Signed;
}

Descriptor parseDescriptor(const nlohmann::json& json, const std::string& what) {
    if (!json.is_object()) {
        throw Error(what + " is not an object");
    }
    Descriptor d;
    d.mediaType = json.value("mediaType", "");
    d.digest = json.value("digest", "");
    if (!isValidDigest(d.digest)) {
        throw Error(what + " has an unsupported or malformed digest '" + d.digest +
                    "' (expected sha256:<64 hex digits>)");
    }
    auto size = json.find("size");
    if (size == json.end() || !size->is_number_integer() || size->get<std::int64_t>() < 0) {
        throw Error(what + " has no valid size");
    }
    d.size = size->get<std::int64_t>();
    if (auto p = json.find("platform"); p != json.end() && p->is_object()) {
        Platform platform;
        platform.os = p->value("os", "");
        platform.architecture = p->value("architecture", "");
        platform.variant = p->value("variant", "");
        d.platform = platform;
    }
    return d;
}

// Declared type: the document's mediaType, else a specific Content-Type.
std::string declaredType(const nlohmann::json& document, const std::string& contentType) {
    auto header = bareMediaType(contentType);
    auto field = document.value("mediaType", "");
    bool headerSpecific = isManifestType(header) || isIndexType(header) || isSchema1(header);
    if (!field.empty() && headerSpecific && field != header) {
        throw Error("the manifest declares media type '" + field +
                    "' but the registry sent it as '" + header + "'");
    }
    if (!field.empty()) {
        return field;
    }
    if (headerSpecific) {
        return header;
    }
    // compared as JSON: a huge or fractional number must not be cast to int
    if (document.value("schemaVersion", nlohmann::json()) == 1) {
        return media::dockerSchema1;
    }
    // OCI documents may omit mediaType; their shape tells them apart.
    if (document.contains("manifests")) {
        return media::ociIndex;
    }
    if (document.contains("layers")) {
        return media::ociManifest;
    }
    throw Error("the registry sent a document of type '" + header + "' that is not an image manifest");
}

int variantNumber(const std::string& variant) {
    if (variant.size() < 2 || variant[0] != 'v' ||
        variant.find_first_not_of("0123456789", 1) != std::string::npos) {
        return -1;
    }
    return std::stoi(variant.substr(1));
}

// How well `candidate` runs on `wanted` (both normalized): 0 = not at all.
int matchScore(const Platform& candidate, const Platform& wanted) {
    if (candidate.os != wanted.os || candidate.architecture != wanted.architecture) {
        return 0;
    }
    if (candidate.variant == wanted.variant) {
        return 1000;
    }
    // 32-bit ARM is backwards compatible: a v7 CPU runs v6 and v5 code.
    if (wanted.architecture == "arm") {
        int have = variantNumber(candidate.variant.empty() ? "v5" : candidate.variant);
        int want = variantNumber(wanted.variant.empty() ? "v7" : wanted.variant);
        if (have > 0 && want > 0 && have <= want) {
            return 100 + have;
        }
    }
    return 0;
}

}  // namespace

std::string acceptHeader() {
    return media::ociIndex + ", " + media::dockerList + ", " + media::ociManifest + ", " +
           media::dockerManifest;
}

Platform Platform::host() {
    struct utsname u {};
    ::uname(&u);
    std::string machine = u.machine;
    Platform p{"linux", machine, ""};
    if (machine == "x86_64") {
        p.architecture = "amd64";
    } else if (machine == "aarch64" || machine == "arm64") {
        p.architecture = "arm64";
    } else if (machine.rfind("armv", 0) == 0) {
        p.architecture = "arm";
        p.variant = "v" + std::string(1, machine.size() > 4 ? machine[4] : '7');
    } else if (machine == "i386" || machine == "i686") {
        p.architecture = "386";
    }
    return p.normalized();
}

Platform Platform::normalized() const {
    Platform p{lower(os), lower(architecture), lower(variant)};
    if (p.architecture == "x86_64" || p.architecture == "x86-64") {
        p.architecture = "amd64";
    } else if (p.architecture == "aarch64") {
        p.architecture = "arm64";
    } else if (p.architecture == "armhf") {
        p.architecture = "arm";
        p.variant = p.variant.empty() ? "v7" : p.variant;
    } else if (p.architecture == "armel") {
        p.architecture = "arm";
        p.variant = p.variant.empty() ? "v6" : p.variant;
    } else if (p.architecture == "i386" || p.architecture == "i686") {
        p.architecture = "386";
    }
    if ((p.architecture == "arm64" && p.variant == "v8") ||
        (p.architecture == "amd64" && p.variant == "v1")) {
        p.variant.clear();
    }
    if (p.architecture == "arm" && p.variant.empty()) {
        p.variant = "v7";  // what Docker assumes for plain "arm"
    }
    return p;
}

std::string Platform::toString() const {
    return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
}

bool isValidDigest(const std::string& digest) {
    return digest.size() == 71 && digest.rfind("sha256:", 0) == 0 &&
           digest.find_first_not_of("0123456789abcdef", 7) == std::string::npos;
}

Manifest parse(const std::string& body, const std::string& contentType) {
    nlohmann::json document;
    try {
        document = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception&) {
        throw Error("the registry sent a manifest that is not valid JSON (Content-Type '" +
                    contentType + "')");
    }
    if (!document.is_object()) {
        throw Error("the registry sent a manifest that is not a JSON object");
    }
    Manifest m;
    // Any field may have any type: a wrong one is a malformed manifest.
    try {
        m.mediaType = declaredType(document, contentType);
        if (isSchema1(m.mediaType)) {
            throw Error("the image has a Docker schema 1 manifest, which is not supported "
                        "(deprecated since 2017: push the image again with a recent tool)");
        }
        if (document.value("schemaVersion", nlohmann::json()) != 2) {
            throw Error("unsupported manifest schemaVersion " +
                        document.value("schemaVersion", nlohmann::json()).dump());
        }
        if (isIndexType(m.mediaType)) {
            m.kind = Kind::index;
            const auto& list = document.at("manifests");
            if (!list.is_array()) {
                throw Error("the index's 'manifests' is not a list");
            }
            for (std::size_t i = 0; i < list.size(); ++i) {
                m.manifests.push_back(parseDescriptor(list[i], "index entry " + std::to_string(i)));
            }
            return m;
        }
        if (!isManifestType(m.mediaType)) {
            throw Error("unsupported manifest media type '" + m.mediaType + "'");
        }
        m.kind = Kind::image;
        m.config = parseDescriptor(document.at("config"), "the image configuration descriptor");
        const auto& layers = document.at("layers");
        if (!layers.is_array()) {
            throw Error("the manifest's 'layers' is not a list");
        }
        for (std::size_t i = 0; i < layers.size(); ++i) {
            m.layers.push_back(parseDescriptor(layers[i], "layer " + std::to_string(i + 1)));
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("malformed manifest: ") + e.what());
    }
    return m;
}

std::optional<Descriptor> selectPlatform(const std::vector<Descriptor>& manifests,
                                         const Platform& wanted) {
    auto want = wanted.normalized();
    std::optional<Descriptor> best;
    int bestScore = 0;
    for (const auto& entry : manifests) {
        if (!entry.platform || !(isManifestType(entry.mediaType) || isIndexType(entry.mediaType) ||
                                 entry.mediaType.empty())) {
            continue;
        }
        int score = matchScore(entry.platform->normalized(), want);
        if (score > bestScore) {
            best = entry;
            bestScore = score;
        }
    }
    return best;
}

bool isSupportedLayerType(const std::string& mediaType) {
    static const std::vector<std::string> supported = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
    };
    return std::find(supported.begin(), supported.end(), mediaType) != supported.end();
}

}  // namespace sarus::manifest
