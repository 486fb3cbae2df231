#include "common/setup_clock.hpp"

#include <chrono>
#include <cstdio>

namespace sarus::setup_clock {

namespace {

using Clock = std::chrono::steady_clock;

// Initialised before main runs.
const Clock::time_point programStart = Clock::now();
Clock::time_point setupBegin = programStart;

double secondsSince(Clock::time_point then) {
    return std::chrono::duration<double>(Clock::now() - then).count();
}

}  // namespace

void markSetupBegin() { setupBegin = Clock::now(); }
double secondsSinceProgramStart() { return secondsSince(programStart); }
double secondsSinceSetupBegin() { return secondsSince(setupBegin); }

std::string secondsMessage(const std::string& what, double seconds) {
    char figure[32];
    std::snprintf(figure, sizeof figure, " %.6f seconds", seconds);
    return what + figure;
}

}  // namespace sarus::setup_clock
