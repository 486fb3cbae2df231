// A short, stable name for a longer text (a directory per rank group, per
// installation's keepers): 64-bit FNV-1a as 16 hex digits. Not for content
// or security (Sha256 is): at start-up, OpenSSL's initialisation alone would
// cost a millisecond or two of every `sarus run`.
#pragma once

#include <string>

namespace sarus {

std::string nameHash(const std::string& text);

}  // namespace sarus
