#include "registry/retry_policy.hpp"

#include <curl/curl.h>

#include <algorithm>

namespace sarus::retry {

bool isTransientStatus(long httpStatus) {
    switch (httpStatus) {
    case 408:  // request timeout
    case 429:  // too many requests (Docker Hub rate limits)
    case 500:
    case 502:
    case 503:
    case 504:
        return true;
    default:
        return false;
    }
}

bool isTransientTransportError(int curlCode) {
    switch (static_cast<CURLcode>(curlCode)) {
    case CURLE_COULDNT_CONNECT:       // refused: the registry may be restarting
    case CURLE_OPERATION_TIMEDOUT:    // includes stalled transfers (low speed limit)
    case CURLE_SEND_ERROR:            // connection reset while sending
    case CURLE_RECV_ERROR:            // connection reset while receiving
    case CURLE_PARTIAL_FILE:          // the body ended before Content-Length
    case CURLE_GOT_NOTHING:           // the server closed without answering
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

std::chrono::milliseconds backoff(int attempt, std::optional<long> retryAfterSeconds) {
    if (retryAfterSeconds && *retryAfterSeconds >= 0) {
        return std::chrono::milliseconds(std::min<long>(*retryAfterSeconds, 30) * 1000);
    }
    int exponent = std::clamp(attempt - 2, 0, 4);
    return std::chrono::milliseconds(500L << exponent);
}

}  // namespace sarus::retry
