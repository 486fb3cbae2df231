// A thin RAII layer over one libcurl easy handle. One HttpClient per thread:
// the handle keeps its connections alive between requests. Bodies either
// come back in memory (manifests, tokens: capped) or stream to a sink
// (blobs). Proxies come from HTTP(S)_PROXY/NO_PROXY in either case, and
// Authorization headers never appear in --debug output.
#pragma once

#include "common/error.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sarus::http {

struct Request {
    std::string method = "GET";  // GET or HEAD
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    // Called with the body of a 2xx answer, chunk by chunk, and its status
    // (206 for a range); may throw to abort the transfer (the exception
    // comes out of perform()). Without a sink, the body is returned in
    // Response::body.
    std::function<void(std::string_view, long)> sink;
    std::size_t maxBodyInMemory = 4 << 20;
    // Set by another thread to abandon the transfer (e.g. a sibling download
    // failed); perform() then throws sarus::Error.
    const std::atomic<bool>* abandon = nullptr;
};

struct Response {
    long status = 0;
    std::map<std::string, std::string> headers;  // of the final response, names in lower case
    std::string body;                            // without a sink, or the body of a non-2xx answer
    std::string effectiveUrl;                    // after redirects

    std::string header(const std::string& lowerCaseName) const;
};

// A request that failed below HTTP: no connection, TLS, reset, timeout.
class TransportError : public Error {
public:
    TransportError(const std::string& message, int curlCode) : Error(message), code_(curlCode) {}
    int curlCode() const { return code_; }
    bool isTls() const;
    bool isConnect() const;

private:
    int code_;
};

struct ClientOptions {
    bool verifyTls = true;
};

class Client {
public:
    explicit Client(ClientOptions options = {});
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Follows redirects (a registry sends blobs to object storage with 307).
    // Throws TransportError when no HTTP answer came back, sarus::Error when
    // the sink threw or the process is being cancelled.
    Response perform(const Request& request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The proxy for url from an environment lookup: http_proxy/HTTP_PROXY or
// https_proxy/HTTPS_PROXY by scheme, then all_proxy/ALL_PROXY; lower case
// first, as curl and Go do. Empty when none applies (NO_PROXY is applied by
// libcurl to this choice).
std::string proxyFor(const std::string& url,
                     const std::function<std::optional<std::string>(const std::string&)>& getenv);

// "Authorization: Bearer xyz" -> "Authorization: <redacted>" (case-insensitive).
std::string redactHeader(const std::string& header);

// Percent-encoding for query parameters.
std::string escape(const std::string& text);

}  // namespace sarus::http
