#include "registry/http_client.hpp"

#include "common/cancellation.hpp"
#include "common/log.hpp"
#include "version.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <mutex>

namespace sarus::http {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string trim(std::string_view s) {
    auto first = s.find_first_not_of(" \t\r\n");
    auto last = s.find_last_not_of(" \t\r\n");
    return first == std::string_view::npos ? "" : std::string(s.substr(first, last - first + 1));
}

void globalInit() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct SlistDeleter {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

// State shared with the C callbacks of one transfer. Exceptions must not
// cross libcurl: they are parked here and rethrown after curl_easy_perform.
struct Transfer {
    CURL* handle;
    const Request& request;
    Response& response;
    std::exception_ptr failure;

    long currentStatus() const {
        long status = 0;
        curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
        return status;
    }
};

size_t onBody(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t bytes = size * count;
    long status = t->currentStatus();
    try {
        if (t->request.sink && status >= 200 && status < 300) {
            t->request.sink(std::string_view(data, bytes), status);
        } else {
            // Error bodies are kept for the message; they are small.
            std::size_t cap = t->request.sink ? 64 * 1024 : t->request.maxBodyInMemory;
            if (t->response.body.size() + bytes > cap) {
                throw Error("the answer to " + t->request.url + " is larger than " +
                            std::to_string(cap) + " bytes");
            }
            t->response.body.append(data, bytes);
        }
    } catch (...) {
        t->failure = std::current_exception();
        return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    return bytes;
}

size_t onHeader(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t bytes = size * count;
    std::string_view line(data, bytes);
    if (line.rfind("HTTP/", 0) == 0) {
        // A new response (after a redirect or a 100 Continue): only the
        // final one's headers matter.
        t->response.headers.clear();
        log::debug("< " + trim(line));
        return bytes;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
        auto name = lower(trim(line.substr(0, colon)));
        auto value = trim(line.substr(colon + 1));
        log::debug("< " + redactHeader(name + ": " + value));
        // Repeated headers combine as one comma-separated list (RFC 9110),
        // which keeps every WWW-Authenticate challenge.
        auto& slot = t->response.headers[name];
        slot = slot.empty() ? value : slot + ", " + value;
    }
    return bytes;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(user);
    bool abandoned = t->request.abandon != nullptr && t->request.abandon->load();
    return cancellation::requested() || abandoned ? 1 : 0;
}

std::optional<std::string> processEnv(const std::string& name) {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr || *value == '\0') {
        return std::nullopt;
    }
    return std::string(value);
}

}  // namespace

std::string Response::header(const std::string& lowerCaseName) const {
    auto it = headers.find(lowerCaseName);
    return it != headers.end() ? it->second : "";
}

bool TransportError::isTls() const {
    switch (static_cast<CURLcode>(code_)) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return true;
    default:
        return false;
    }
}

bool TransportError::isConnect() const {
    auto code = static_cast<CURLcode>(code_);
    return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
           code == CURLE_COULDNT_RESOLVE_PROXY;
}

struct Client::Impl {
    CURL* handle = nullptr;
    ClientOptions options;
    char errorBuffer[CURL_ERROR_SIZE] = {};
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) {
    globalInit();
    impl_->handle = curl_easy_init();
    if (impl_->handle == nullptr) {
        throw Error("cannot initialise libcurl");
    }
    impl_->options = options;
}

Client::~Client() { curl_easy_cleanup(impl_->handle); }

Response Client::perform(const Request& request) {
    cancellation::throwIfRequested();
    CURL* h = impl_->handle;
    // Reset keeps the connection cache: requests to the same registry reuse
    // their TCP/TLS connections.
    curl_easy_reset(h);
    Response response;
    Transfer transfer{h, request, response, nullptr};

    Slist headers;
    log::debug("> " + request.method + " " + request.url);
    for (const auto& header : request.headers) {
        headers.reset(curl_slist_append(headers.release(), header.c_str()));
        log::debug("> " + redactHeader(header));
    }
    impl_->errorBuffer[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    if (request.method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (request.method != "GET") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, impl_->errorBuffer);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    // A verified https request is not redirected to plain http, where a
    // manifest asked for by tag or a token could be replaced on the way.
    bool keepTls = impl_->options.verifyTls && request.url.rfind("https://", 0) == 0;
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, keepTls ? "https" : "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    // A transfer that stalls for a minute is dropped and retried.
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sarus/" SARUS_ENGINE_VERSION);
    curl_easy_setopt(h, CURLOPT_PROXY, proxyFor(request.url, processEnv).c_str());
    if (!impl_->options.verifyTls) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, onBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, onProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &transfer);

    CURLcode code = curl_easy_perform(h);
    if (transfer.failure) {
        std::rethrow_exception(transfer.failure);
    }
    if (code == CURLE_ABORTED_BY_CALLBACK) {
        cancellation::throwIfRequested();
        throw Error("transfer of " + request.url + " abandoned");
    }
    if (code != CURLE_OK) {
        std::string detail = impl_->errorBuffer[0] != '\0' ? impl_->errorBuffer : curl_easy_strerror(code);
        log::verbose(request.method + " " + request.url + ": " + detail);
        throw TransportError(detail, code);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
    char* effective = nullptr;
    curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &effective);
    response.effectiveUrl = effective != nullptr ? effective : request.url;
    if (log::enabled(log::Level::verbose)) {
        curl_off_t bytes = 0, micros = 0;
        curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &bytes);
        curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &micros);
        log::verbose(request.method + " " + request.url + ": " + std::to_string(response.status) +
                     " (" + std::to_string(bytes) + " bytes in " +
                     std::to_string(static_cast<double>(micros) / 1e6).substr(0, 5) + " s" +
                     (response.effectiveUrl != request.url ? ", from " + response.effectiveUrl : "") + ")");
    }
    return response;
}

std::string proxyFor(const std::string& url,
                     const std::function<std::optional<std::string>(const std::string&)>& getenv) {
    auto scheme = lower(url.substr(0, url.find("://")));
    std::vector<std::string> names;
    if (scheme == "http" || scheme == "https") {
        names = {scheme + "_proxy", lower(scheme) == "http" ? "HTTP_PROXY" : "HTTPS_PROXY"};
    }
    names.push_back("all_proxy");
    names.push_back("ALL_PROXY");
    for (const auto& name : names) {
        if (auto value = getenv(name); value && !value->empty()) {
            return *value;
        }
    }
    return "";
}

std::string redactHeader(const std::string& header) {
    auto colon = header.find(':');
    auto name = lower(header.substr(0, colon));
    if (colon != std::string::npos && (name == "authorization" || name == "proxy-authorization")) {
        return header.substr(0, colon) + ": <redacted>";
    }
    return header;
}

std::string escape(const std::string& text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace sarus::http
