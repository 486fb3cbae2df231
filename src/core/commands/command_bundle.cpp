// `sarus bundle IMAGE DIR`: an OCI bundle for Slurm's `srun --container=DIR`
// (oci.conf calling <prefix>/libexec/sarus/sarus-oci-runtime). The bundle
// holds no copy of the image: config.json names it in an annotation and
// rootfs/ stays empty (Slurm only checks that root.path exists); the runtime
// front end hands the container to `sarus run`, which mounts the image's
// squashfs as for any other run.
#include "commands.hpp"

#include "config/config.hpp"
#include "runtime/container_spec.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "image/image_store.hpp"

#include <cerrno>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus {

namespace fs = std::filesystem;

nlohmann::json bundleConfig(const ImageMetadata& image, const std::string& reference, bool centralizedRepository,
                            unsigned uid, unsigned gid) {
    RunOptions noOptions;  // the image's own command, working directory and Env, as `sarus run IMAGE` has them
    // Only the image's Env: sarus.json's "environment" is applied by `sarus
    // run` when the container starts (here, a prepend would be applied twice).
    auto env = buildEnvironment({}, image.env, nlohmann::json(), {});
    return {{"ociVersion", "1.0.2"},
            {"process",
             {{"terminal", false},
              {"user", {{"uid", uid}, {"gid", gid}}},  // informative: sarus always runs the caller's ids
              {"args", buildArgs(image, noOptions)},
              {"env", env},
              {"cwd", buildWorkingDirectory(image, noOptions)}}},
            {"root", {{"path", "rootfs"}, {"readonly", true}}},
            {"annotations",
             {{"com.sarus.image", reference}, {"com.sarus.repository", centralizedRepository ? "centralized" : "local"}}}};
}

namespace {

// A new directory, or an existing empty one; true when it was made here.
bool prepareDirectory(const fs::path& directory) {
    struct stat st {};
    if (::stat(directory.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            throw Error(directory.string() + " exists and is not a directory");
        }
        std::error_code ec;
        if (!fs::is_empty(directory, ec) || ec) {
            throw Error(directory.string() + " is not empty: a bundle needs a new or empty directory");
        }
        return false;
    }
    if (errno != ENOENT || ::mkdir(directory.c_str(), 0755) != 0) {
        throw systemError("cannot create " + directory.string(), errno);
    }
    return true;
}

}  // namespace

int commandBundle(const Config& config, const BundleOptions& options) {
    auto reference = ImageReference::parseArgument(options.image, "bundle").identity();
    auto store = options.centralizedRepository ? ImageStore::centralized(config) : ImageStore::local(config);
    auto image = store.find(reference);
    if (!image) {
        Error error("Image " + reference.normalized() + " is not available");
        error.within("looking in " + store.directory().string() + " (see 'sarus images'; pull or load it first)");
        throw error;
    }
    auto metadata = withContext("reading " + image->metadataFile.string(), [&] {
        return ImageMetadata::fromJson(parseJsonFile(image->metadataFile));
    });
    auto document = bundleConfig(metadata, image->reference.normalized(), options.centralizedRepository, ::getuid(),
                                 ::getgid());
    // Everything that can be refused was refused: now the directory.
    const fs::path directory = options.directory;
    bool made = prepareDirectory(directory);
    try {
        if (::mkdir((directory / "rootfs").c_str(), 0755) != 0) {
            throw systemError("cannot create " + (directory / "rootfs").string(), errno);
        }
        writeFileAtomically(directory / "config.json", document.dump(4) + "\n", 0644);
    } catch (...) {
        std::error_code ec;
        fs::remove(directory / "config.json", ec);
        fs::remove(directory / "rootfs", ec);
        if (made) {
            fs::remove(directory, ec);
        }
        throw;
    }
    return 0;
}

}  // namespace sarus
