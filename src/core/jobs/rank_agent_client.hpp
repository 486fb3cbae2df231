// The sarus side of sarus-rank-agent's protocol (src/rank_agent): one rank
// started in a container shared by its job step, with this process's
// stdin, stdout and stderr and the spec's passed descriptors.
#pragma once

#include "runtime/container_spec.hpp"
#include "common/file_descriptor.hpp"

#include <filesystem>

namespace sarus {

// Starts spec.args with spec.env in spec.cwd, forwards the signals sarus
// forwards to a container, and returns the rank's exit code. Throws
// sarus::Error when the container ends before the rank reported its end.
int runRankInAgent(const FileDescriptor& connection, const ContainerSpec& spec);

// Asks the agent to end the container once no rank runs any more; false
// when no agent listens there (the container is gone). Throws sarus::Error
// when the agent could not be asked.
bool stopRankAgent(const std::filesystem::path& socketPath);

}  // namespace sarus
