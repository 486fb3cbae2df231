// Which registry failures are worth another attempt, and how long to wait.
// Transient: the connection broke or timed out, or the server said "later"
// (429, 5xx). Never transient: a wrong digest, a refused certificate, an
// unknown host, 4xx answers: repeating them cannot change the outcome.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace sarus::retry {

// Attempts per request, the first one included.
constexpr int maxAttempts = 4;

bool isTransientStatus(long httpStatus);
// curlCode is a CURLcode.
bool isTransientTransportError(int curlCode);

// Delay before attempt number `attempt` (2 for the first retry): exponential
// from 500 ms, capped at 8 s; a server's Retry-After (in seconds) is honoured
// up to 30 s.
std::chrono::milliseconds backoff(int attempt, std::optional<long> retryAfterSeconds = std::nullopt);

}  // namespace sarus::retry
