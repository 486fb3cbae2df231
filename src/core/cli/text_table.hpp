#pragma once

#include <string>
#include <vector>

namespace sarus {

// Prints rows as left-aligned columns separated by three spaces, as the
// Sarus tables (`sarus images`, `sarus ps`) look. rows[0] is the header.
void printTable(const std::vector<std::vector<std::string>>& rows);

// Local time as "YYYY-MM-DDTHH:MM:SS", the format of the CREATED columns.
std::string localTimestamp();

}  // namespace sarus
