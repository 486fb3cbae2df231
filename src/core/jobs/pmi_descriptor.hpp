// The PMI-2 descriptor of an MPI launcher. Hydra (mpiexec) and Slurm's
// --mpi=pmi2 hand each rank a connected socket and name it in PMI_FD; the
// rank's MPI library talks to the launcher through it. The container gets it
// as descriptor 3 with PMI_FD rewritten to match; every other descriptor of
// the caller is closed before the runtime starts (SpawnOptions::passFds).
#pragma once

#include "runtime/container_spec.hpp"

#include <functional>

namespace sarus {

bool isOpenDescriptor(int fd);

// Moves a valid PMI_FD of spec.env into spec.passFds and rewrites PMI_FD to
// the number the container sees. A PMI_FD that is not an open descriptor (or
// not a number) is left alone, with a warning.
void passPmiDescriptor(ContainerSpec& spec, const std::function<bool(int)>& isOpen = isOpenDescriptor);

// The runtime's "run" options that keep spec.passFds open in the container.
std::vector<std::string> preserveFdsArguments(const ContainerSpec& spec);

}  // namespace sarus
