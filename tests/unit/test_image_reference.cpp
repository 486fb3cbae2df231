#include "common/error.hpp"
#include "image/image_reference.hpp"

#include <gtest/gtest.h>

using sarus::ImageReference;

namespace {

struct Case {
    const char* input;
    const char* server;
    const char* repository;
    const char* tag;
    const char* digest;
};

const char* digestA = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// Real-world references and what docker/distribution normalises them to.
const Case cases[] = {
    {"alpine", "docker.io", "library/alpine", "latest", ""},
    {"alpine:3.18", "docker.io", "library/alpine", "3.18", ""},
    {"ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", ""},
    {"ethcscs/mpich:ub1804_cuda92_mpi314_osu", "docker.io", "ethcscs/mpich", "ub1804_cuda92_mpi314_osu", ""},
    {"docker.io/library/debian:bookworm", "docker.io", "library/debian", "bookworm", ""},
    {"index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", ""},
    {"nvcr.io/nvidia/k8s/cuda-sample:nbody", "nvcr.io", "nvidia/k8s/cuda-sample", "nbody", ""},
    {"quay.io/podman/stable", "quay.io", "podman/stable", "latest", ""},
    {"localhost/img", "localhost", "img", "latest", ""},
    {"localhost:5000/ns/img:v1", "localhost:5000", "ns/img", "v1", ""},
    {"127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", ""},
    {"registry.example.com:443/a/b/c/d:1.0-rc_2", "registry.example.com:443", "a/b/c/d", "1.0-rc_2", ""},
    {"load/library/my_debian", "load", "library/my_debian", "latest", ""},
    {"load/my_debian:v2", "load", "library/my_debian", "v2", ""},
    {"my-user/my.image__x:TAG", "docker.io", "my-user/my.image__x", "TAG", ""},
};

}  // namespace

TEST(ImageReference, NormalisesRealWorldReferences) {
    for (const auto& c : cases) {
        SCOPED_TRACE(c.input);
        auto ref = ImageReference::parse(c.input);
        EXPECT_EQ(ref.server, c.server);
        EXPECT_EQ(ref.repository, c.repository);
        EXPECT_EQ(ref.tag, c.tag);
        EXPECT_EQ(ref.digest, c.digest);
    }
}

TEST(ImageReference, DigestOnlyHasNoTag) {
    auto ref = ImageReference::parse(std::string("alpine@") + digestA);
    EXPECT_EQ(ref.repository, "library/alpine");
    EXPECT_EQ(ref.tag, "");
    EXPECT_EQ(ref.digest, digestA);
    EXPECT_EQ(ref.normalized(), std::string("docker.io/library/alpine@") + digestA);
    EXPECT_EQ(ref.storeName(), "@sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
}

TEST(ImageReference, TagAndDigestKeepsBoth) {
    auto ref = ImageReference::parse(std::string("host:5000/x/y:1.2@") + digestA);
    EXPECT_EQ(ref.server, "host:5000");
    EXPECT_EQ(ref.tag, "1.2");
    EXPECT_EQ(ref.digest, digestA);
}

TEST(ImageReference, DisplayRepositoryMatchesSarusImagesColumn) {
    EXPECT_EQ(ImageReference::parse("alpine").displayRepository(), "alpine");
    EXPECT_EQ(ImageReference::parse("ethcscs/mpich").displayRepository(), "ethcscs/mpich");
    EXPECT_EQ(ImageReference::parse("nvcr.io/nvidia/k8s/cuda-sample:nbody").displayRepository(),
              "nvcr.io/nvidia/k8s/cuda-sample");
    EXPECT_EQ(ImageReference::parse("load/library/my_debian").displayRepository(),
              "load/library/my_debian");
}

TEST(ImageReference, DisplayedNameParsesBackToTheSameImage) {
    for (const auto& c : cases) {
        auto ref = ImageReference::parse(c.input);
        auto again = ImageReference::parse(ref.displayRepository() + ":" + ref.tag);
        EXPECT_EQ(again, ref) << c.input;
    }
}

TEST(ImageReference, LoadNamesAlwaysLiveUnderTheLoadServer) {
    EXPECT_EQ(ImageReference::parseLoadName("my_debian").normalized(), "load/library/my_debian:latest");
    EXPECT_EQ(ImageReference::parseLoadName("user/img:v1").normalized(), "load/user/img:v1");
    EXPECT_EQ(ImageReference::parseLoadName("host.com/img").normalized(), "load/host.com/img:latest");
    EXPECT_EQ(ImageReference::parseLoadName("load/library/x:2").normalized(), "load/library/x:2");
    EXPECT_THROW(ImageReference::parseLoadName(std::string("x@") + digestA), sarus::Error);
}

namespace {

std::string errorOf(const std::string& reference) {
    try {
        ImageReference::parse(reference);
    } catch (const sarus::Error& e) {
        // Sarus's first line, then (shown with --verbose) what is wrong
        std::string text = e.what();
        EXPECT_EQ(text, "Invalid image reference '" + reference + "'");
        for (const auto& context : e.contexts()) {
            text += " " + context;
        }
        return text;
    }
    return "";
}

}  // namespace

TEST(ImageReference, RejectsBadReferencesNamingThePart) {
    EXPECT_NE(errorOf("").find("empty reference"), std::string::npos);
    EXPECT_NE(errorOf("library/../etc:latest").find("path component '..'"), std::string::npos);
    EXPECT_NE(errorOf("../x").find("'..'"), std::string::npos);
    EXPECT_NE(errorOf("alpine:bad/tag").find("bad registry server 'alpine:bad'"), std::string::npos);
    EXPECT_NE(errorOf("ns/Bad_/img").find("bad repository name component 'Bad_'"), std::string::npos);
    EXPECT_NE(errorOf("alpine:-tag").find("bad tag '-tag'"), std::string::npos);
    EXPECT_NE(errorOf("alpine:" + std::string(129, 'a')).find("bad tag"), std::string::npos);
    EXPECT_NE(errorOf("Alpine").find("must be lowercase"), std::string::npos);
    EXPECT_NE(errorOf("alpine@sha256:1234").find("bad digest"), std::string::npos);
    EXPECT_NE(errorOf("alpine@sha256:" + std::string(64, 'G')).find("bad digest"), std::string::npos);
    EXPECT_NE(errorOf("alpine@md5").find("bad digest"), std::string::npos);
    EXPECT_NE(errorOf("a b").find("whitespace"), std::string::npos);
    EXPECT_NE(errorOf("host:5000/").find("missing repository"), std::string::npos);
    EXPECT_NE(errorOf("ns//img").find("empty path component"), std::string::npos);
    EXPECT_NE(errorOf("-host.com:5000/img").find("bad"), std::string::npos);
    EXPECT_NE(errorOf("x/" + std::string(300, 'a')).find("longer than 255"), std::string::npos);
}
