#pragma once

namespace sarus {

// Parses the command line, runs the command, and turns every error into one
// line on stderr. Returns the process exit code.
int runCli(int argc, char** argv);

}  // namespace sarus
