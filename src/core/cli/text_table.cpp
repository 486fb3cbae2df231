#include "cli/text_table.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace sarus {

void printTable(const std::vector<std::vector<std::string>>& rows) {
    // Sarus's columns are at least 10 characters wide.
    std::vector<std::size_t> widths(rows.empty() ? 0 : rows[0].size(), 10);
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
            widths[i] = std::max(widths[i], row[i].size());
        }
    }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) {
                line += std::string(widths[i] - row[i].size() + 3, ' ');
            }
        }
        std::printf("%s\n", line.c_str());
    }
}

std::string localTimestamp() {
    std::time_t now = std::time(nullptr);
    std::tm tm {};
    ::localtime_r(&now, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
    return buffer;
}

}  // namespace sarus
