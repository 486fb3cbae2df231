#include "commands.hpp"

#include "config/config.hpp"
#include "config/containers_policy.hpp"
#include "config/identity.hpp"
#include "common/cancellation.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "image/image_archive.hpp"
#include "image/image_store.hpp"
#include "image/layer_flattener.hpp"
#include "common/log.hpp"

#include <chrono>
#include <cstdio>
#include <sys/stat.h>

namespace sarus {

namespace {

void checkReadableFile(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw systemError("cannot load " + path, errno);
    }
    if (!S_ISREG(st.st_mode)) {
        throw Error("cannot load " + path + ": not a regular file");
    }
}

void checkTempDir(const std::string& dir) {
    struct stat st {};
    if (!dir.empty() && (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
        throw Error("Invalid temporary directory \"" + dir + "\"");
    }
}

}  // namespace

int commandLoad(const Config& config, const LoadOptions& options) {
    auto started = std::chrono::steady_clock::now();
    // Ctrl-C, SIGTERM (scancel) and SIGHUP end the load between entries
    // and blocks, so the partial image is removed on the way out.
    cancellation::SignalWatcher signals;
    auto reference = ImageReference::parseArgument(options.name, "load");
    // Layers stream straight into the squashfs: nothing is expanded, so the
    // temp dir is only validated for compatibility with Sarus job scripts.
    checkTempDir(options.tempDir);
    checkReadableFile(options.archive);
    checkLoadAllowed(config, options.archive, Identity::ofCaller().home);
    auto store = options.centralizedRepository ? ImageStore::centralized(config)
                                               : ImageStore::local(config);

    store.checkStorable(reference);
    ImageArchive archive(options.archive);
    std::printf("# image            : %s\n", reference.normalized().c_str());
    std::printf("# archive          : %s (%s)\n", options.archive.c_str(), archive.format().c_str());
    std::printf("# images directory : %s\n", store.imagesDirectory().string().c_str());
    std::fflush(stdout);

    // As in pull, the image gets its place in the store only once complete.
    auto output = store.newImageFile("load.squashfs");
    FlattenStats stats;
    {
        LayerFlattener flattener(output->path(), config.squashfsOptions());
        std::size_t number = 0;
        archive.forEachLayer([&](struct archive* layer, const ArchiveLayer& info) {
            ++number;
            std::printf("> layer %zu/%zu     : %s (%s)\n", number, archive.layers().size(),
                        info.member.c_str(), humanReadableSize(info.size).c_str());
            std::fflush(stdout);
            withContext("loading " + options.archive,
                        [&] { flattener.addLayer(layer, info.member); });
        });
        stats = flattener.finish();
    }
    cancellation::throwIfRequested();
    auto metadata = ImageMetadata::fromImageConfig(archive.imageConfig());
    auto image = store.commit(reference, *output, metadata, archive.configDigest(), "");

    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("# created: %s\n", image.imageFile.string().c_str());
    std::printf("# created: %s\n", image.metadataFile.string().c_str());
    log::verbose("loaded " + std::to_string(stats.entries) + " entries, " +
                 humanReadableSize(image.size) + " in " + std::to_string(seconds) + " s");
    return 0;
}

}  // namespace sarus
