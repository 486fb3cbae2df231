// Whether text is a plain decimal number: digits only, no sign, no space.
// The ids and counts this engine reads from the environment, files and
// headers must be, before std::stoul (which would take "-5" or "5x").
#pragma once

#include <string>

namespace sarus {

inline bool isDecimalNumber(const std::string& text) {
    return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace sarus
