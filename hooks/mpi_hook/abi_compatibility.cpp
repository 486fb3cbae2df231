#include "abi_compatibility.hpp"

#include "common/error.hpp"

namespace hook {

namespace {

std::string describe(const std::string& whose, const Library& library) {
    return whose + " " + library.path + " (ABI " + library.name.versionString() + ")";
}

// Sarus's sentence first (site documentation quotes it), then why.
sarus::Error incompatible(AbiCheck check, const Library& host, const Library& container, const std::string& why) {
    return sarus::Error("Failed to activate MPI support. Host's MPI library " + host.path + " is not " +
                        (check == AbiCheck::strict ? "strictly " : "") + "ABI compatible with container's MPI library " +
                        container.path + ". " + describe("The host's", host) + ", " +
                        describe("the container's", container) + ": " + why +
                        " (MPI_COMPATIBILITY_TYPE=" + toString(check) + ")");
}

}  // namespace

AbiCheck abiCheckFromString(const std::string& value) {
    if (value == "full") {
        return AbiCheck::full;
    }
    if (value == "strict") {
        return AbiCheck::strict;
    }
    return AbiCheck::major;
}

std::string toString(AbiCheck check) {
    switch (check) {
    case AbiCheck::major: return "major";
    case AbiCheck::full: return "full";
    case AbiCheck::strict: return "strict";
    }
    return "?";
}

std::string checkAbiCompatibility(AbiCheck check, const Library& host, const Library& container) {
    if (!host.name.hasMajor()) {
        throw incompatible(check, host, container, "the host library has no major version in its file name");
    }
    if (!container.name.hasMajor()) {
        throw incompatible(check, host, container, "the container library has no major version in its file name");
    }
    if (host.name.major() != container.name.major()) {
        throw incompatible(check, host, container, "major versions differ");
    }
    if (check == AbiCheck::major) {
        return "";
    }
    if (!host.name.hasMinor()) {
        throw incompatible(check, host, container, "the host library has no minor version in its file name");
    }
    if (check == AbiCheck::strict) {
        if (!container.name.hasMinor()) {
            throw incompatible(check, host, container, "the container library has no minor version in its file name");
        }
        if (host.name.minor() != container.name.minor()) {
            throw incompatible(check, host, container, "minor versions differ");
        }
        return "";
    }
    auto containerMinor = container.name.hasMinor() ? container.name.minor() : 0;
    if (host.name.minor() < containerMinor) {
        return describe("host MPI library", host) + " is older than " + describe("the container's", container) +
               ": replacing it anyway (MPI_COMPATIBILITY_TYPE=full); applications that use symbols found only "
               "in the container's library will fail";
    }
    return "";
}

}  // namespace hook
