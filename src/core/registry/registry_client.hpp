// The OCI Distribution / Docker Registry HTTP API V2 as a client needs it for
// pulling: ping, manifests, blobs. Owns the decisions that make errors
// actionable (404, refused credentials, unreachable host, TLS) and the
// retry loop for transient failures. Transfers go through http::Client
// objects owned by the caller, one per thread.
#pragma once

#include "common/error.hpp"

#include "registry/http_client.hpp"
#include "registry/manifest.hpp"
#include "registry/registry_auth.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sarus {

// The registry did not give the manifest (404, 401, 403): the image is not
// there, or not for this user. Sarus reports every one of these alike.
struct ManifestUnavailable : Error {
    using Error::Error;
};


// Host serving the API of a reference's server: docker.io is served by
// registry-1.docker.io.
std::string registryApiHost(const std::string& server);

// Whether a server ("host" or "host:port") is listed in insecureRegistries.
// An entry without a port covers every port of that host; "localhost" and
// "127.0.0.1" get no special treatment: they must be listed too.
bool isInsecureRegistry(const std::string& server, const std::vector<std::string>& insecureRegistries);

struct FetchedManifest {
    std::string body;
    std::string contentType;
    std::string digest;  // sha256 of body, checked against the registry's
};

class RegistryClient {
public:
    struct Options {
        std::string server;       // as in the reference: "127.0.0.1:5000", "docker.io"
        std::string repository;   // "library/alpine"
        bool insecure = false;    // listed in insecureRegistries
        std::string configFile;   // named in TLS errors
        std::optional<Credentials> credentials;
    };

    explicit RegistryClient(Options options);

    // A client for one thread, with this registry's TLS settings.
    std::unique_ptr<http::Client> newClient() const;

    // GET /v2/: picks https or (insecure registries only) http, and answers
    // the authentication challenge once so workers start with a token.
    void ping(http::Client& client);

    // Digest of a manifest from a HEAD request, if the registry says it.
    std::optional<std::string> headManifestDigest(http::Client& client, const std::string& reference);
    FetchedManifest getManifest(http::Client& client, const std::string& reference);

    // A small blob (the image configuration), verified against descriptor.
    std::string getBlob(http::Client& client, const manifest::Descriptor& descriptor);

    // Streams a blob from byte `offset` on to `write`, resuming with Range
    // requests after transient failures; `write` sees each byte once. The
    // caller verifies size and digest.
    void streamBlob(http::Client& client, const std::string& digest, std::uint64_t offset,
                    const std::function<void(std::string_view)>& write,
                    const std::atomic<bool>* abandon = nullptr);

    const std::string& server() const { return options_.server; }
    std::string baseUrl() const;

private:
    http::Response send(http::Client& client, const std::function<http::Request()>& build,
                        const std::function<bool()>& madeProgress = {});
    Error translate(const http::TransportError& error, const std::string& url) const;
    // The response came from the registry itself, not from where it redirected.
    bool isFromTheRegistry(const http::Response& response) const;
    [[noreturn]] void throwManifestError(const http::Response& response, const std::string& reference) const;

    Options options_;
    RegistryAuth auth_;
    std::string scheme_ = "https";
};

}  // namespace sarus
