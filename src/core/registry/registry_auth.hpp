// Registry authentication as Docker does it: a request answered 401 carries
// WWW-Authenticate; a Bearer challenge sends us to a token service (with
// Basic credentials when the user logged in, anonymously otherwise), a Basic
// challenge takes the credentials directly. Credentials live only in memory
// and are wiped when dropped.
#pragma once

#include "common/error.hpp"

#include "registry/http_client.hpp"

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace sarus {

// The registry or its token service refused the user's credentials.
struct CredentialsRefused : Error {
    using Error::Error;
};


struct AuthChallenge {
    std::string scheme;                         // lower case: "bearer", "basic"
    std::map<std::string, std::string> params;  // names in lower case

    std::string param(const std::string& name) const;
};

// RFC 7235 challenges: `Bearer realm="https://auth/token",service="reg"`,
// several per header allowed. Never throws; unparsable parts are skipped.
std::vector<AuthChallenge> parseWwwAuthenticate(const std::string& header);

struct Credentials {
    std::string username;
    std::string password;

    Credentials() = default;
    Credentials(std::string user, std::string pass);
    Credentials(const Credentials&) = default;
    Credentials& operator=(const Credentials&) = default;
    ~Credentials();  // overwrites the password before it is freed
};

// "Basic <base64(user:password)>"
std::string basicAuthorization(const Credentials& credentials);

// The token of a token service's JSON answer ("token" or "access_token").
// Throws sarus::Error when there is none.
std::string tokenFromAnswer(const std::string& body);

// The Authorization header for one repository, shared by the download
// threads: when a token expires, the first thread to see the 401 renews it.
class RegistryAuth {
public:
    // insecure: the registry is listed in insecureRegistries, and may then
    // also send the credentials to a token service over plain HTTP.
    RegistryAuth(std::string server, std::string repository, std::optional<Credentials> credentials,
                 bool insecure = false);

    // "Authorization: ..." to send, or "" before any challenge.
    std::string header() const;
    bool hasCredentials() const { return credentials_.has_value(); }
    const std::string& username() const;

    // Answers a 401 that was sent with the header value `refused` ("" for
    // none). Throws sarus::Error with what the user can do about it.
    void answerChallenge(http::Client& client, const std::string& wwwAuthenticate,
                         const std::string& refused);

private:
    void fetchToken(http::Client& client, const AuthChallenge& challenge);

    std::string server_;
    std::string repository_;
    std::optional<Credentials> credentials_;
    bool insecure_ = false;
    mutable std::mutex mutex_;
    std::string header_;
};

}  // namespace sarus
