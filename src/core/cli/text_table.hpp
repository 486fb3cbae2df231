#pragma once

#include <string>
#include <vector>

namespace sarus {

// Prints rows as left-aligned columns, each cell followed by at least three
// spaces and padded to minimumCellWidth. rows[0] is the header. Sarus's own
// tables (`images`, `hooks`) are 13 wide; runc's `list`, which `sarus ps`
// shows in Sarus, is 12 wide (Go's tabwriter with minwidth 12, padding 3).
// columnMinimums[i], where given and not 0, is column i's own minimum (a
// field Sarus pads to a fixed width, or one sized by rows it does not print).
void printTable(const std::vector<std::vector<std::string>>& rows, std::size_t minimumCellWidth = 13,
                const std::vector<std::size_t>& columnMinimums = {});

// Local time as "YYYY-MM-DDTHH:MM:SS", the format of the images' CREATED column.
std::string localTimestamp();

// UTC time as RFC 3339 with nanoseconds, as runc's `list` shows CREATED.
std::string utcTimestampWithNanoseconds();

}  // namespace sarus
