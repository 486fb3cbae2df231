// The MPICH ABI rules of MPI_COMPATIBILITY_TYPE (see the MPICH ABI
// Compatibility Initiative): whether a host library may replace one of the
// container's, judged from the versions in their file names.
#pragma once

#include "shared_library.hpp"

#include <string>

namespace hook {

enum class AbiCheck { major, full, strict };

// "major", "full", "strict"; unset or anything else is major, as in Sarus.
AbiCheck abiCheckFromString(const std::string& value);
std::string toString(AbiCheck check);

struct Library {
    std::string path;  // host path, or container path
    LibraryName name;
};

// Throws sarus::Error naming both libraries and their versions when host may
// not replace container under `check`. Returns a warning ("" when none) for a
// replacement that proceeds at a risk (full: the container's minor is newer).
//   major:  majors present and equal
//   full:   majors equal, host minor present; a container without a minor
//           counts as .0; a newer container minor is a warning
//   strict: majors equal, both minors present and equal
std::string checkAbiCompatibility(AbiCheck check, const Library& host, const Library& container);

}  // namespace hook
