#include "cli/text_table.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace sarus {

void printTable(const std::vector<std::vector<std::string>>& rows, std::size_t minimumCellWidth,
                const std::vector<std::size_t>& columnMinimums) {
    constexpr std::size_t padding = 3;
    std::vector<std::size_t> widths(rows.empty() ? 0 : rows[0].size(), minimumCellWidth);
    for (std::size_t i = 0; i < columnMinimums.size() && i < widths.size(); ++i) {
        widths[i] = std::max(widths[i], columnMinimums[i]);
    }
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
            widths[i] = std::max(widths[i], row[i].size() + padding);
        }
    }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) {
                line += std::string(widths[i] - row[i].size(), ' ');
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

std::string utcTimestampWithNanoseconds() {
    timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    std::tm tm {};
    ::gmtime_r(&now.tv_sec, &tm);
    char seconds[32];
    std::strftime(seconds, sizeof seconds, "%Y-%m-%dT%H:%M:%S", &tm);
    // Go's RFC3339Nano drops the fraction's trailing zeros, and the dot with them.
    char fraction[16];
    std::snprintf(fraction, sizeof fraction, ".%09ld", static_cast<long>(now.tv_nsec));
    std::string fractionText = fraction;
    while (fractionText.back() == '0') {
        fractionText.pop_back();
    }
    if (fractionText == ".") {
        fractionText.clear();
    }
    return std::string(seconds) + fractionText + "Z";
}

}  // namespace sarus
