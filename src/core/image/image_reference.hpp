// Image references, normalised the way Docker's distribution library does:
// "alpine" is docker.io/library/alpine:latest. Sarus' "load" pseudo-server
// names images imported from archives ("load/library/my_debian").
#pragma once

#include <string>

namespace sarus {

struct ImageReference {
    std::string server;      // "docker.io", "load", "registry.example.com:5000"
    std::string repository;  // "library/alpine", "user/img", "ns/sub/img"
    std::string tag;         // empty when only a digest was given
    std::string digest;      // "sha256:<64 hex>" or empty

    // Throws sarus::Error naming the part of the reference that is wrong.
    static ImageReference parse(const std::string& text);
    // NAME[:TAG] given to `sarus load`; the server is always "load".
    static ImageReference parseLoadName(const std::string& text);

    // The reference given on a command line of `command` (pull, rmi, run,
    // load): a bad one is refused in Sarus's words.
    static ImageReference parseArgument(const std::string& text, const std::string& command);

    // server/repository[:tag][@digest]
    std::string normalized() const;
    // The image a repository holds for this reference, as Sarus names it: a
    // digest identifies the image by itself, the tag is then dropped.
    ImageReference identity() const;
    // What `sarus images` prints in REPOSITORY: docker.io images without the
    // server (and without "library/"), every other server spelled out.
    std::string displayRepository() const;
    // The tag, or the digest when pulled by digest only; used as file name.
    std::string storeName() const;

    bool operator==(const ImageReference&) const = default;
};

}  // namespace sarus
