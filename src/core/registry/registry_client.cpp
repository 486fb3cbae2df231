#include "registry/registry_client.hpp"

#include "common/cancellation.hpp"
#include "common/decimal.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "registry/retry_policy.hpp"
#include "common/sha256.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <thread>

namespace sarus {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string hostOf(const std::string& server) {
    if (!server.empty() && server[0] == '[') {  // [::1]:5000
        return server.substr(0, server.find(']') + 1);
    }
    return server.substr(0, server.rfind(':') == std::string::npos ? server.size() : server.rfind(':'));
}

// Sleeps in short steps so Ctrl-C is not held up by a backoff.
void sleepCancellable(std::chrono::milliseconds delay) {
    auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
        cancellation::throwIfRequested();
        std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
            std::chrono::milliseconds(50),
            std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now())));
    }
    cancellation::throwIfRequested();
}

std::optional<long> retryAfter(const http::Response& response) {
    auto value = response.header("retry-after");
    if (!isDecimalNumber(value)) {
        return std::nullopt;  // HTTP dates are rare here: the default backoff applies
    }
    // A registry's "999999999999999999999" is a long wait, not an error.
    return value.size() > 9 ? 999999999L : std::stol(value);
}

std::string registryMessage(const std::string& body) {
    try {
        auto json = nlohmann::json::parse(body);
        if (json.contains("errors") && json["errors"].is_array() && !json["errors"].empty()) {
            const auto& e = json["errors"][0];
            auto code = e.value("code", "");
            auto message = e.value("message", "");
            return code.empty() ? message : code + ": " + message;
        }
    } catch (const nlohmann::json::exception&) {
    }
    return "";
}

}  // namespace

std::string registryApiHost(const std::string& server) {
    return server == "docker.io" ? "registry-1.docker.io" : server;
}

bool isInsecureRegistry(const std::string& server, const std::vector<std::string>& insecureRegistries) {
    auto wanted = lower(server);
    auto wantedHost = lower(hostOf(server));
    for (auto entry : insecureRegistries) {
        entry = lower(entry);
        for (const char* scheme : {"http://", "https://"}) {
            if (entry.rfind(scheme, 0) == 0) {
                entry = entry.substr(std::string(scheme).size());
            }
        }
        while (!entry.empty() && entry.back() == '/') {
            entry.pop_back();
        }
        bool entryHasPort = hostOf(entry) != entry;
        if (entry == wanted || (!entryHasPort && entry == wantedHost)) {
            return true;
        }
    }
    return false;
}

RegistryClient::RegistryClient(Options options)
    : options_(std::move(options)),
      auth_(options_.server, options_.repository, options_.credentials, options_.insecure) {}

std::unique_ptr<http::Client> RegistryClient::newClient() const {
    return std::make_unique<http::Client>(http::ClientOptions{!options_.insecure});
}

std::string RegistryClient::baseUrl() const {
    return scheme_ + "://" + registryApiHost(options_.server) + "/v2/";
}

bool RegistryClient::isFromTheRegistry(const http::Response& response) const {
    auto origin = scheme_ + "://" + registryApiHost(options_.server) + "/";
    return response.effectiveUrl.rfind(origin, 0) == 0;
}

Error RegistryClient::translate(const http::TransportError& error, const std::string& url) const {
    auto host = registryApiHost(options_.server);
    if (hostOf(host) == host) {
        host += scheme_ == "https" ? ":443" : ":80";
    }
    if (error.isTls()) {
        return Error("TLS connection to registry " + host + " failed: " + error.what() +
                     ". If this registry has no certificate trusted by this system or serves plain "
                     "HTTP, an administrator can list \"" + options_.server +
                     "\" in 'insecureRegistries' in " + options_.configFile);
    }
    if (error.isConnect()) {
        return Error("cannot connect to registry " + host + ": " + error.what());
    }
    return Error("registry " + host + " (" + url + "): " + error.what());
}

http::Response RegistryClient::send(http::Client& client, const std::function<http::Request()>& build,
                                    const std::function<bool()>& madeProgress) {
    bool answeredChallenge = false;
    for (int attempt = 1;; ++attempt) {
        auto request = build();
        auto authorization = auth_.header();
        if (!authorization.empty()) {
            request.headers.push_back(authorization);
        }
        http::Response response;
        try {
            response = client.perform(request);
        } catch (const http::TransportError& e) {
            if (madeProgress && madeProgress()) {
                attempt = 1;  // a long transfer that keeps moving is not failing
            }
            if (!retry::isTransientTransportError(e.curlCode()) || attempt >= retry::maxAttempts) {
                throw translate(e, request.url);
            }
            auto delay = retry::backoff(attempt + 1);
            log::verbose(request.url + ": " + e.what() + "; retrying in " +
                         std::to_string(delay.count()) + " ms");
            sleepCancellable(delay);
            continue;
        }
        if (response.status == 401 && !isFromTheRegistry(response)) {
            // A blob's storage (a CDN, another party's bucket) may ask for
            // credentials too: the user's are the registry's alone.
            throw Error("registry " + registryApiHost(options_.server) + ": " + response.effectiveUrl +
                        ", where the registry redirected, asks for authentication; sarus gives the "
                        "registry's credentials to no other host");
        }
        if (response.status == 401 && !answeredChallenge) {
            auth_.answerChallenge(client, response.header("www-authenticate"), authorization);
            answeredChallenge = true;
            --attempt;  // not a failure of the registry
            continue;
        }
        if (retry::isTransientStatus(response.status) && attempt < retry::maxAttempts) {
            auto delay = retry::backoff(attempt + 1, retryAfter(response));
            log::verbose(request.url + ": HTTP " + std::to_string(response.status) + "; retrying in " +
                         std::to_string(delay.count()) + " ms");
            sleepCancellable(delay);
            continue;
        }
        return response;
    }
}

void RegistryClient::ping(http::Client& client) {
    auto attempt = [&](const std::string& scheme) {
        scheme_ = scheme;
        http::Request request;
        request.url = baseUrl();
        return client.perform(request);
    };
    // An insecure registry is tried over HTTPS (without verification) first,
    // then over plain HTTP after any failure, as containers/image does: a
    // refused connection on 443, a TLS error, or an answer that is not a
    // registry's (neither 200 nor 401).
    auto plainHttp = [&](const std::string& why) {
        log::verbose("registry " + options_.server + " not reachable over HTTPS (" + why +
                     "); it is an insecure registry: trying plain HTTP");
        scheme_ = "http";
        return send(client, [&] { return http::Request{"GET", baseUrl()}; });
    };
    http::Response response;
    try {
        response = attempt("https");
        if (options_.insecure && response.status != 200 && response.status != 401) {
            response = plainHttp("HTTP " + std::to_string(response.status));
        }
    } catch (const http::TransportError& e) {
        if (options_.insecure) {
            response = plainHttp(e.what());
        } else if (retry::isTransientTransportError(e.curlCode())) {
            // Transient failures get the usual retries before giving up.
            response = send(client, [&] { return http::Request{"GET", baseUrl()}; });
        } else {
            throw translate(e, baseUrl());
        }
    }
    if (response.status == 401) {
        auth_.answerChallenge(client, response.header("www-authenticate"), "");
        return;
    }
    if (response.status == 404) {
        throw Error(baseUrl() + " is not a container registry (no /v2/ API)");
    }
    if (response.status >= 300) {
        throw Error("registry " + options_.server + " answered HTTP " + std::to_string(response.status) +
                    " to " + baseUrl());
    }
}

void RegistryClient::throwManifestError(const http::Response& response, const std::string& reference) const {
    auto image = options_.server + "/" + options_.repository + (reference.rfind("sha256:", 0) == 0 ? "@" : ":") + reference;
    auto detail = registryMessage(response.body);
    auto suffix = detail.empty() ? "" : " (" + detail + ")";
    if (response.status == 404) {
        throw ManifestUnavailable("image " + image + " not found in registry " + options_.server + suffix);
    }
    if (response.status == 401 || response.status == 403) {
        throw ManifestUnavailable("registry " + options_.server + " denied access to " + image +
                                  (auth_.hasCredentials() ? " for user '" + auth_.username() + "'" : "") + suffix);
    }
    throw Error("registry " + options_.server + " answered HTTP " + std::to_string(response.status) +
                 " for the manifest of " + image + suffix);
}

std::optional<std::string> RegistryClient::headManifestDigest(http::Client& client, const std::string& reference) {
    auto response = send(client, [&] {
        http::Request request{"HEAD", baseUrl() + options_.repository + "/manifests/" + reference};
        request.headers.push_back("Accept: " + manifest::acceptHeader());
        return request;
    });
    auto digest = response.header("docker-content-digest");
    if (response.status != 200 || !manifest::isValidDigest(digest)) {
        return std::nullopt;
    }
    return digest;
}

FetchedManifest RegistryClient::getManifest(http::Client& client, const std::string& reference) {
    auto response = send(client, [&] {
        http::Request request{"GET", baseUrl() + options_.repository + "/manifests/" + reference};
        request.headers.push_back("Accept: " + manifest::acceptHeader());
        return request;
    });
    if (response.status != 200) {
        throwManifestError(response, reference);
    }
    FetchedManifest fetched{response.body, response.header("content-type"), Sha256::of(response.body)};
    auto announced = response.header("docker-content-digest");
    bool byDigest = reference.find(':') != std::string::npos;
    if (byDigest && reference.rfind("sha256:", 0) != 0) {
        throw Error("cannot verify the manifest " + reference + ": sarus checks sha256 digests only");
    }
    if (byDigest && fetched.digest != reference) {
        throw Error("registry " + options_.server + " sent a manifest for " + reference +
                    " whose digest is " + fetched.digest);
    }
    if (manifest::isValidDigest(announced) && announced != fetched.digest) {
        throw Error("registry " + options_.server + " sent a manifest whose digest " + fetched.digest +
                    " differs from the one it announced (" + announced + ")");
    }
    return fetched;
}

std::string RegistryClient::getBlob(http::Client& client, const manifest::Descriptor& descriptor) {
    constexpr std::int64_t limit = 32 << 20;
    if (descriptor.size > limit) {
        throw Error("blob " + descriptor.digest + " is too large (" + std::to_string(descriptor.size) + " bytes)");
    }
    std::string body;
    streamBlob(client, descriptor.digest, 0, [&](std::string_view data) {
        if (body.size() + data.size() > static_cast<std::size_t>(descriptor.size)) {
            throw Error("blob " + descriptor.digest + " is larger than its descriptor says (" +
                        std::to_string(descriptor.size) + " bytes)");
        }
        body.append(data);
    });
    auto actual = Sha256::of(body);
    if (actual != descriptor.digest) {
        throw Error("blob " + descriptor.digest + " from registry " + options_.server +
                    " is corrupt: its content has digest " + actual);
    }
    return body;
}

void RegistryClient::streamBlob(http::Client& client, const std::string& digest, std::uint64_t offset,
                                const std::function<void(std::string_view)>& write,
                                const std::atomic<bool>* abandon) {
    std::uint64_t position = offset;
    std::uint64_t attemptStart = offset;
    std::uint64_t toSkip = 0;
    auto build = [&] {
        attemptStart = position;
        toSkip = position;  // only if the server ignores the range (answers 200)
        http::Request request{"GET", baseUrl() + options_.repository + "/blobs/" + digest};
        request.abandon = abandon;
        if (position > 0) {
            request.headers.push_back("Range: bytes=" + std::to_string(position) + "-");
        }
        request.sink = [&](std::string_view data, long status) {
            if (status != 206 && toSkip > 0) {
                auto skip = std::min<std::uint64_t>(toSkip, data.size());
                data.remove_prefix(static_cast<std::size_t>(skip));
                toSkip -= skip;
                if (data.empty()) {
                    return;
                }
            }
            write(data);
            position += data.size();
        };
        return request;
    };
    auto response = send(client, build, [&] { return position > attemptStart; });
    if (response.status == 200 || response.status == 206) {
        return;
    }
    auto detail = registryMessage(response.body);
    if (response.status == 404) {
        throw Error("blob " + digest + " not found in registry " + options_.server + " (repository " +
                    options_.repository + ")");
    }
    throw Error("registry " + options_.server + " answered HTTP " + std::to_string(response.status) +
                " for blob " + digest + (detail.empty() ? "" : " (" + detail + ")"));
}

}  // namespace sarus
