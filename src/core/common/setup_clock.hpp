// The milestones Sarus logs for `run` at --verbose: how long the command line
// took to process ("Processed CLI arguments in ... seconds") and how long the
// container took to set up ("Successfully set up container in ... seconds").
// The sandbox that sets the container up is forked from sarus and inherits
// the marks.
#pragma once

#include <string>

namespace sarus::setup_clock {

void markSetupBegin();
double secondsSinceProgramStart();
double secondsSinceSetupBegin();

// "<what> 0.012345 seconds", in Sarus's words.
std::string secondsMessage(const std::string& what, double seconds);

}  // namespace sarus::setup_clock
