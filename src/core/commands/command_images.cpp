#include "commands.hpp"

#include "config.hpp"
#include "file_utils.hpp"
#include "image_store.hpp"

#include <algorithm>
#include <cstdio>

namespace sarus {

namespace {

std::string shortId(const std::string& digest) {
    auto colon = digest.find(':');
    auto hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
    return hex.substr(0, 12);
}

void printTable(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths(rows[0].size(), 0);
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
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

}  // namespace

int commandImages(const Config& config, const ImagesOptions& options) {
    auto store = options.centralizedRepository ? ImageStore::centralized(config)
                                               : ImageStore::local(config);
    auto images = store.list();
    std::sort(images.begin(), images.end(), [](const StoredImage& a, const StoredImage& b) {
        return a.reference.normalized() < b.reference.normalized();
    });
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> header = {"REPOSITORY", "TAG"};
    if (options.digests) {
        header.push_back("DIGEST");
    }
    header.insert(header.end(), {"IMAGE ID", "CREATED", "SIZE", "SERVER"});
    rows.push_back(header);
    for (const auto& image : images) {
        std::vector<std::string> row = {image.reference.displayRepository(),
                                        image.reference.tag.empty() ? "<none>" : image.reference.tag};
        if (options.digests) {
            row.push_back(image.digest.empty() ? "<none>" : image.digest);
        }
        row.insert(row.end(), {shortId(image.id), image.created, humanReadableSize(image.size),
                               image.reference.server});
        rows.push_back(row);
    }
    printTable(rows);
    return 0;
}

}  // namespace sarus
