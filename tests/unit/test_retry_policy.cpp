#include "registry/retry_policy.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>

using namespace sarus;

TEST(RetryPolicy, ServerOverloadAndOutagesAreTransient) {
    for (long status : {408L, 429L, 500L, 502L, 503L, 504L}) {
        EXPECT_TRUE(retry::isTransientStatus(status)) << status;
    }
}

TEST(RetryPolicy, ClientErrorsAreFinal) {
    for (long status : {200L, 206L, 400L, 401L, 403L, 404L, 405L, 416L, 501L, 505L}) {
        EXPECT_FALSE(retry::isTransientStatus(status)) << status;
    }
}

TEST(RetryPolicy, ResetsRefusalsAndTimeoutsAreTransient) {
    for (int code : {CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
                     CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING, CURLE_HTTP2_STREAM}) {
        EXPECT_TRUE(retry::isTransientTransportError(code)) << curl_easy_strerror(static_cast<CURLcode>(code));
    }
}

TEST(RetryPolicy, NamesCertificatesAndLocalFailuresAreFinal) {
    for (int code : {CURLE_COULDNT_RESOLVE_HOST, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR,
                     CURLE_WRITE_ERROR, CURLE_ABORTED_BY_CALLBACK, CURLE_TOO_MANY_REDIRECTS,
                     CURLE_UNSUPPORTED_PROTOCOL}) {
        EXPECT_FALSE(retry::isTransientTransportError(code)) << curl_easy_strerror(static_cast<CURLcode>(code));
    }
}

TEST(RetryPolicy, BackoffDoublesAndIsCapped) {
    EXPECT_EQ(retry::backoff(2).count(), 500);
    EXPECT_EQ(retry::backoff(3).count(), 1000);
    EXPECT_EQ(retry::backoff(4).count(), 2000);
    EXPECT_EQ(retry::backoff(20).count(), 8000);
}

TEST(RetryPolicy, RetryAfterIsHonouredWithinLimits) {
    EXPECT_EQ(retry::backoff(2, 3).count(), 3000);
    EXPECT_EQ(retry::backoff(2, 0).count(), 0);
    EXPECT_EQ(retry::backoff(2, 3600).count(), 30000);
}

TEST(RetryPolicy, AFewAttemptsOnly) {
    EXPECT_GE(retry::maxAttempts, 2);
    EXPECT_LE(retry::maxAttempts, 6);
}
