#include "registry/registry_auth.hpp"

#include "common/error.hpp"
#include "common/log.hpp"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace sarus {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool isTokenChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~/", c) != nullptr;
}

class Scanner {
public:
    explicit Scanner(const std::string& text) : s_(text) {}
    bool done() const { return i_ >= s_.size(); }
    char peek() const { return done() ? '\0' : s_[i_]; }
    void skipSpace() {
        while (!done() && (s_[i_] == ' ' || s_[i_] == '\t')) {
            ++i_;
        }
    }
    void skipSeparators() {
        while (!done() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == ',')) {
            ++i_;
        }
    }
    std::string token() {
        auto start = i_;
        while (!done() && isTokenChar(s_[i_])) {
            ++i_;
        }
        return s_.substr(start, i_ - start);
    }
    // A quoted-string with backslash escapes, or a token (token68 "=" padding included).
    std::string value() {
        if (peek() != '"') {
            auto start = i_;
            while (!done() && s_[i_] != ',' && s_[i_] != ' ' && s_[i_] != '\t') {
                ++i_;
            }
            return s_.substr(start, i_ - start);
        }
        ++i_;
        std::string out;
        while (!done() && s_[i_] != '"') {
            if (s_[i_] == '\\' && i_ + 1 < s_.size()) {
                ++i_;
            }
            out += s_[i_++];
        }
        ++i_;  // closing quote
        return out;
    }
    void skipToSeparator() {
        while (!done() && s_[i_] != ',') {
            ++i_;
        }
    }
    std::size_t position() const { return i_; }
    void rewind(std::size_t to) { i_ = to; }

private:
    const std::string& s_;
    std::size_t i_ = 0;
};

std::string base64(const std::string& data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(data.data()),
                            static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

void wipe(std::string& secret) {
    // volatile: the compiler may not drop stores to memory about to be freed.
    volatile char* p = secret.data();
    for (std::size_t i = 0; i < secret.size(); ++i) {
        p[i] = '\0';
    }
}

std::string errorSummary(const std::string& body) {
    // Registries answer {"errors":[{"code":"UNAUTHORIZED","message":"..."}]}
    // and token services {"details": ...}; keep only what helps the user.
    try {
        auto json = nlohmann::json::parse(body);
        if (json.contains("errors") && json["errors"].is_array() && !json["errors"].empty()) {
            return json["errors"][0].value("message", "");
        }
        if (json.contains("details") && json["details"].is_string()) {
            return json["details"].get<std::string>();
        }
    } catch (const nlohmann::json::exception&) {
    }
    return "";
}

}  // namespace

std::string AuthChallenge::param(const std::string& name) const {
    auto it = params.find(name);
    return it != params.end() ? it->second : "";
}

std::vector<AuthChallenge> parseWwwAuthenticate(const std::string& header) {
    std::vector<AuthChallenge> challenges;
    Scanner scan(header);
    while (true) {
        scan.skipSeparators();
        if (scan.done()) {
            break;
        }
        auto start = scan.position();
        auto word = scan.token();
        if (word.empty()) {
            scan.rewind(start + 1);  // a stray character: skip it
            continue;
        }
        scan.skipSpace();
        if (scan.peek() == '=' && !challenges.empty()) {
            scan.rewind(scan.position() + 1);
            scan.skipSpace();
            challenges.back().params[lower(word)] = scan.value();
            continue;
        }
        if (scan.peek() == '=') {
            scan.skipToSeparator();  // a parameter before any scheme
            continue;
        }
        challenges.push_back({lower(word), {}});
    }
    return challenges;
}

Credentials::Credentials(std::string user, std::string pass)
    : username(std::move(user)), password(std::move(pass)) {}

Credentials::~Credentials() { wipe(password); }

std::string basicAuthorization(const Credentials& credentials) {
    std::string pair = credentials.username + ":" + credentials.password;
    auto encoded = "Basic " + base64(pair);
    wipe(pair);
    return encoded;
}

std::string tokenFromAnswer(const std::string& body) {
    try {
        auto json = nlohmann::json::parse(body);
        for (const char* key : {"token", "access_token"}) {
            if (json.contains(key) && json[key].is_string() && !json[key].get<std::string>().empty()) {
                return json[key].get<std::string>();
            }
        }
    } catch (const nlohmann::json::exception&) {
        throw Error("the token service sent an answer that is not JSON");
    }
    throw Error("the token service sent no token");
}

RegistryAuth::RegistryAuth(std::string server, std::string repository,
                           std::optional<Credentials> credentials, bool insecure)
    : server_(std::move(server)),
      repository_(std::move(repository)),
      credentials_(std::move(credentials)),
      insecure_(insecure) {}

std::string RegistryAuth::header() const {
    std::lock_guard lock(mutex_);
    return header_.empty() ? "" : "Authorization: " + header_;
}

const std::string& RegistryAuth::username() const {
    static const std::string none;
    return credentials_ ? credentials_->username : none;
}

void RegistryAuth::answerChallenge(http::Client& client, const std::string& wwwAuthenticate,
                                   const std::string& refused) {
    std::lock_guard lock(mutex_);
    std::string current = header_.empty() ? "" : "Authorization: " + header_;
    if (current != refused) {
        return;  // another thread renewed it meanwhile
    }
    auto challenges = parseWwwAuthenticate(wwwAuthenticate);
    auto find = [&](const std::string& scheme) -> const AuthChallenge* {
        for (const auto& c : challenges) {
            if (c.scheme == scheme) {
                return &c;
            }
        }
        return nullptr;
    };
    if (const auto* bearer = find("bearer"); bearer != nullptr) {
        fetchToken(client, *bearer);
        return;
    }
    if (find("basic") != nullptr) {
        if (!credentials_) {
            throw Error("registry " + server_ + " requires authentication: pull with --login");
        }
        auto basic = basicAuthorization(*credentials_);
        if (header_ == basic) {
            throw CredentialsRefused("registry " + server_ + " refused the credentials of user '" +
                                     credentials_->username + "'");
        }
        header_ = basic;
        return;
    }
    throw Error("registry " + server_ + " asks for an unsupported authentication ('" +
                (wwwAuthenticate.empty() ? std::string("401 without WWW-Authenticate") : wwwAuthenticate) +
                "')");
}

void RegistryAuth::fetchToken(http::Client& client, const AuthChallenge& challenge) {
    auto realm = challenge.param("realm");
    if (realm.rfind("https://", 0) != 0 && realm.rfind("http://", 0) != 0) {
        throw Error("registry " + server_ + " names an invalid token service '" + realm + "'");
    }
    if (credentials_ && !insecure_ && realm.rfind("http://", 0) == 0) {
        throw Error("registry " + server_ + " names a token service over plain HTTP (" + realm +
                    "): the credentials of user '" + credentials_->username +
                    "' would cross the network unencrypted; refusing (only a registry in insecureRegistries may)");
    }
    http::Request request;
    request.url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
    if (auto service = challenge.param("service"); !service.empty()) {
        request.url += "service=" + http::escape(service) + "&";
    }
    request.url += "scope=" + http::escape("repository:" + repository_ + ":pull");
    if (credentials_) {
        request.headers.push_back("Authorization: " + basicAuthorization(*credentials_));
    }
    log::verbose("requesting a token from " + realm + (credentials_ ? " for user '" + credentials_->username + "'" : " (anonymous)"));
    http::Response response;
    try {
        response = client.perform(request);
    } catch (const http::TransportError& e) {
        throw Error("cannot reach the token service " + realm + " of registry " + server_ + ": " + e.what());
    }
    if (response.status == 401 || response.status == 403) {
        if (credentials_) {
            auto detail = errorSummary(response.body);
            throw CredentialsRefused("registry " + server_ + " refused the credentials of user '" +
                                     credentials_->username + "'" + (detail.empty() ? "" : " (" + detail + ")"));
        }
        throw Error("registry " + server_ + " requires authentication: pull with --login");
    }
    if (response.status != 200) {
        throw Error("the token service " + realm + " of registry " + server_ + " answered HTTP " +
                    std::to_string(response.status));
    }
    header_ = "Bearer " + tokenFromAnswer(response.body);
}

}  // namespace sarus
