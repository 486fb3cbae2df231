#include "common/error.hpp"
#include "registry/manifest.hpp"

#include <gtest/gtest.h>

using namespace sarus::manifest;

namespace {

const std::string digestA = "sha256:" + std::string(64, 'a');
const std::string digestB = "sha256:" + std::string(64, 'b');
const std::string digestC = "sha256:" + std::string(64, 'c');

std::string imageManifest(const std::string& mediaType, const std::string& layerType) {
    return R"({"schemaVersion":2,"mediaType":")" + mediaType + R"(",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + digestA + R"(","size":123},
        "layers":[{"mediaType":")" + layerType + R"(","digest":")" + digestB + R"(","size":4567},
                  {"mediaType":")" + layerType + R"(","digest":")" + digestC + R"(","size":0}]})";
}

std::string entry(const std::string& digest, const std::string& os, const std::string& arch,
                  const std::string& variant = "") {
    std::string platform = R"({"os":")" + os + R"(","architecture":")" + arch + R"(")" +
                           (variant.empty() ? "" : R"(,"variant":")" + variant + R"(")") + "}";
    return R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + digest +
           R"(","size":500,"platform":)" + platform + "}";
}

std::string index(const std::vector<std::string>& entries, const std::string& mediaType = media::ociIndex) {
    std::string list;
    for (const auto& e : entries) {
        list += (list.empty() ? "" : ",") + e;
    }
    return R"({"schemaVersion":2,"mediaType":")" + mediaType + R"(","manifests":[)" + list + "]}";
}

Descriptor withPlatform(const std::string& digest, const std::string& os, const std::string& arch,
                        const std::string& variant = "") {
    Descriptor d{media::ociManifest, digest, 1, Platform{os, arch, variant}};
    return d;
}

}  // namespace

TEST(Manifest, ParsesAnOciImageManifest) {
    auto m = parse(imageManifest(media::ociManifest, "application/vnd.oci.image.layer.v1.tar+gzip"),
                   media::ociManifest);
    EXPECT_EQ(m.kind, Kind::image);
    EXPECT_EQ(m.mediaType, media::ociManifest);
    EXPECT_EQ(m.config.digest, digestA);
    EXPECT_EQ(m.config.size, 123);
    ASSERT_EQ(m.layers.size(), 2u);
    EXPECT_EQ(m.layers[0].digest, digestB);
    EXPECT_EQ(m.layers[0].size, 4567);
    EXPECT_EQ(m.layers[1].size, 0);
}

TEST(Manifest, ParsesADockerSchema2ManifestSentWithCharset) {
    auto m = parse(imageManifest(media::dockerManifest, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
                   media::dockerManifest + "; charset=utf-8");
    EXPECT_EQ(m.kind, Kind::image);
    EXPECT_EQ(m.mediaType, media::dockerManifest);
}

TEST(Manifest, TakesTheTypeFromContentTypeWhenTheDocumentOmitsIt) {
    std::string body = R"({"schemaVersion":2,"manifests":[)" + entry(digestA, "linux", "amd64") + "]}";
    EXPECT_EQ(parse(body, media::ociIndex).kind, Kind::index);
    // Generic content type: the shape decides.
    EXPECT_EQ(parse(body, "application/json").kind, Kind::index);
}

TEST(Manifest, ParsesIndexesAndManifestLists) {
    auto oci = parse(index({entry(digestA, "linux", "amd64"), entry(digestB, "linux", "arm64", "v8")}),
                     media::ociIndex);
    EXPECT_EQ(oci.kind, Kind::index);
    ASSERT_EQ(oci.manifests.size(), 2u);
    ASSERT_TRUE(oci.manifests[1].platform);
    EXPECT_EQ(oci.manifests[1].platform->variant, "v8");
    auto docker = parse(index({entry(digestA, "linux", "amd64")}, media::dockerList), media::dockerList);
    EXPECT_EQ(docker.kind, Kind::index);
}

TEST(Manifest, RefusesSchema1WithAnExplanation) {
    try {
        parse(R"({"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]})", media::dockerSchema1Signed);
        FAIL();
    } catch (const sarus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("schema 1"), std::string::npos) << e.what();
    }
}

TEST(Manifest, RefusesContentTypeDisagreeingWithTheDocument) {
    EXPECT_THROW(parse(imageManifest(media::ociManifest, "x"), media::dockerManifest), sarus::Error);
}

TEST(Manifest, RefusesMalformedDocuments) {
    EXPECT_THROW(parse("<html>login</html>", "text/html"), sarus::Error);
    EXPECT_THROW(parse("[1,2]", media::ociManifest), sarus::Error);
    EXPECT_THROW(parse(R"({"schemaVersion":2,"mediaType":")" + media::ociManifest + R"(","layers":[]})",
                       media::ociManifest), sarus::Error);  // no config
    auto badDigest = imageManifest(media::ociManifest, "t");
    badDigest.replace(badDigest.find(digestB), digestB.size(), "sha256:../../etc/passwd");
    EXPECT_THROW(parse(badDigest, media::ociManifest), sarus::Error);
    auto negativeSize = imageManifest(media::ociManifest, "t");
    negativeSize.replace(negativeSize.find("4567"), 4, "-1");
    EXPECT_THROW(parse(negativeSize, media::ociManifest), sarus::Error);
    EXPECT_THROW(parse(R"({"schemaVersion":2,"mediaType":"application/vnd.example+json"})", ""),
                 sarus::Error);
}

TEST(Manifest, ValidDigestsAreSha256Lowercase) {
    EXPECT_TRUE(isValidDigest(digestA));
    EXPECT_FALSE(isValidDigest("sha256:" + std::string(64, 'A')));
    EXPECT_FALSE(isValidDigest("sha512:" + std::string(128, 'a')));
    EXPECT_FALSE(isValidDigest("sha256:abc"));
    EXPECT_FALSE(isValidDigest(""));
}

TEST(Platform, NormalizesAliasesAndDefaultVariants) {
    EXPECT_EQ((Platform{"Linux", "x86_64", ""}.normalized().toString()), "linux/amd64");
    EXPECT_EQ((Platform{"linux", "aarch64", "v8"}.normalized().toString()), "linux/arm64");
    EXPECT_EQ((Platform{"linux", "arm64", "v8"}.normalized().toString()), "linux/arm64");
    EXPECT_EQ((Platform{"linux", "amd64", "v1"}.normalized().toString()), "linux/amd64");
    EXPECT_EQ((Platform{"linux", "arm", ""}.normalized().toString()), "linux/arm/v7");
    EXPECT_EQ((Platform{"linux", "armhf", ""}.normalized().toString()), "linux/arm/v7");
    EXPECT_EQ((Platform{"linux", "i686", ""}.normalized().toString()), "linux/386");
}

TEST(Platform, HostIsLinux) {
    auto host = Platform::host();
    EXPECT_EQ(host.os, "linux");
    EXPECT_FALSE(host.architecture.empty());
}

TEST(SelectPlatform, PicksTheHostArchitecture) {
    std::vector<Descriptor> list = {withPlatform(digestA, "linux", "arm64", "v8"),
                                    withPlatform(digestB, "linux", "amd64"),
                                    withPlatform(digestC, "windows", "amd64")};
    auto chosen = selectPlatform(list, Platform{"linux", "amd64", ""});
    ASSERT_TRUE(chosen);
    EXPECT_EQ(chosen->digest, digestB);
    chosen = selectPlatform(list, Platform{"linux", "aarch64", ""});
    ASSERT_TRUE(chosen);
    EXPECT_EQ(chosen->digest, digestA);  // arm64/v8 and arm64 are the same platform
}

TEST(SelectPlatform, PrefersTheExactVariantThenTheNewestCompatibleOne) {
    std::vector<Descriptor> list = {withPlatform(digestA, "linux", "arm", "v5"),
                                    withPlatform(digestB, "linux", "arm", "v7"),
                                    withPlatform(digestC, "linux", "arm", "v6")};
    EXPECT_EQ(selectPlatform(list, Platform{"linux", "arm", "v7"})->digest, digestB);
    EXPECT_EQ(selectPlatform(list, Platform{"linux", "arm", "v6"})->digest, digestC);
    std::vector<Descriptor> older = {withPlatform(digestA, "linux", "arm", "v5"),
                                     withPlatform(digestC, "linux", "arm", "v6")};
    EXPECT_EQ(selectPlatform(older, Platform{"linux", "arm", "v7"})->digest, digestC);
    // A v8-only image cannot run on a v7 CPU.
    std::vector<Descriptor> newer = {withPlatform(digestA, "linux", "arm", "v8")};
    EXPECT_FALSE(selectPlatform(newer, Platform{"linux", "arm", "v7"}));
}

TEST(SelectPlatform, SkipsEntriesWithoutPlatformOrForAttestations) {
    Descriptor noPlatform{media::ociManifest, digestA, 1, std::nullopt};
    Descriptor attestation = withPlatform(digestB, "unknown", "unknown");
    EXPECT_FALSE(selectPlatform({noPlatform, attestation}, Platform{"linux", "amd64", ""}));
    EXPECT_FALSE(selectPlatform({}, Platform{"linux", "amd64", ""}));
}

TEST(LayerTypes, TarGzipAndZstdAreSupported) {
    EXPECT_TRUE(isSupportedLayerType("application/vnd.oci.image.layer.v1.tar"));
    EXPECT_TRUE(isSupportedLayerType("application/vnd.oci.image.layer.v1.tar+gzip"));
    EXPECT_TRUE(isSupportedLayerType("application/vnd.oci.image.layer.v1.tar+zstd"));
    EXPECT_TRUE(isSupportedLayerType("application/vnd.docker.image.rootfs.diff.tar.gzip"));
    EXPECT_FALSE(isSupportedLayerType("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"));
    EXPECT_FALSE(isSupportedLayerType("application/vnd.cncf.helm.chart.content.v1.tar+gzip"));
}
