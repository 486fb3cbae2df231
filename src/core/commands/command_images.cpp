#include "commands.hpp"

#include "config/config.hpp"
#include "common/file_utils.hpp"
#include "image/image_store.hpp"
#include "cli/text_table.hpp"

#include <algorithm>
#include <cstdio>

namespace sarus {

namespace {

std::string shortId(const std::string& digest) {
    if (digest.empty()) {
        return "<none>";  // images pulled by Sarus before 1.5 have no recorded ID
    }
    auto colon = digest.find(':');
    auto hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
    return hex.substr(0, 12);
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
    // Sarus pads the IMAGE ID to its 12 characters, with or without images
    std::vector<std::size_t> minimums(header.size(), 0);
    minimums[options.digests ? 3 : 2] = 12 + 3;
    printTable(rows, 13, minimums);
    return 0;
}

}  // namespace sarus
