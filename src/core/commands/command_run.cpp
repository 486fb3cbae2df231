#include "commands.hpp"

#include "runtime/backend.hpp"
#include "jobs/rank_group.hpp"
#include "config/config.hpp"
#include "runtime/container_registry.hpp"
#include "runtime/container_spec.hpp"
#include "common/error.hpp"
#include "config/identity.hpp"
#include "image/image_store.hpp"
#include "common/log.hpp"
#include "common/setup_clock.hpp"
#include "runtime/oci_config.hpp"
#include "jobs/pmi_descriptor.hpp"
#include "jobs/pmix_support.hpp"
#include "common/process.hpp"
#include "config/security_profiles.hpp"
#include "cli/text_table.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <sys/random.h>
#include <unistd.h>

namespace sarus {

namespace {

// Sarus's words. For Docker Hub, Sarus looks for the image under its legacy
// server name too and says so; sarus reads both names as one.
Error imageNotAvailable(const ImageReference& reference, const ImageStore& store) {
    std::string message = "Image " + reference.normalized() + " is not available";
    if (reference.server == "docker.io") {
        auto legacy = reference;
        legacy.server = "index.docker.io";
        message += ". Attempting to look for equivalent image in index.docker.io server repositories\nImage " +
                   legacy.normalized() + " is not available";
    }
    Error error(message);
    error.within("looking in " + store.directory().string() + " (see 'sarus images'; pull or load it first)");
    return error;
}

// Sarus's default: `sarus-container-` and a random part, so that names do
// not repeat across nodes and reboots as process ids do.
std::string defaultContainerName() {
    std::uint64_t random = 0;
    if (::getrandom(&random, sizeof random, 0) != static_cast<ssize_t>(sizeof random)) {
        throw systemError("cannot draw a random container name", errno);
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random));
    return std::string("sarus-container-") + hex;
}

// Sarus's words at --verbose for `-e NAME`, which takes the host's value.
void reportVariablesFromTheHost(const std::vector<std::string>& cliEnv, const std::vector<std::string>& hostEnv) {
    for (const auto& entry : cliEnv) {
        if (entry.empty() || entry.find('=') != std::string::npos) {
            continue;
        }
        log::verbose("Environment variable requested from CLI '" + entry +
                     "' does not feature '=' separator. Treating string as variable name and attempting to "
                     "source value from host environment");
        auto onTheHost = [&](const std::string& hostEntry) { return hostEntry.rfind(entry + "=", 0) == 0; };
        if (std::none_of(hostEnv.begin(), hostEnv.end(), onTheHost)) {
            log::verbose("Environment variable requested from CLI '" + entry +
                         "' does not correspond to a variable present in the host environment. Skipping request.");
        }
    }
}

// Sarus's last line at --verbose, for a container that ended well.
int reportedExit(int code) {
    if (code == 0) {
        log::verbose("Successfully executed run command");
    }
    return code;
}

}  // namespace

int commandRun(const Config& config, const RunOptions& options) {
    log::verbose("Executing run command");
    if (options.ssh) {
        checkUserHasSshKeys(config);
    }
    auto reference = ImageReference::parseArgument(options.image, "run").identity();
    auto store = options.centralizedRepository ? ImageStore::centralized(config) : ImageStore::local(config);
    auto image = store.find(reference);
    if (!image) {
        throw imageNotAvailable(reference, store);
    }
    auto metadata = withContext("reading " + image->metadataFile.string(), [&] {
        return ImageMetadata::fromJson(parseJsonFile(image->metadataFile));
    });
    log::debug("configuration and image metadata read");
    auto hostEnv = currentEnvironment();
    reportVariablesFromTheHost(options.env, hostEnv);
    auto spec = buildContainerSpec(config, metadata, options, hostEnv, Identity::ofCaller());
    // Hooks log at the level chosen for sarus, unless the user asked otherwise.
    bool userChoseHookLogLevel = false;
    for (const auto& annotation : options.annotations) {
        userChoseHookLogLevel |= annotation.rfind(hookLogLevelAnnotation + "=", 0) == 0;
    }
    if (!userChoseHookLogLevel) {
        // Sarus's numbers (0 DEBUG, 1 INFO, 2 WARN), which Sarus's own hooks read too; quiet by
        // default: with mpiexec -n 128, INFO lines of every rank's hooks would drown the output
        spec.annotations[hookLogLevelAnnotation] = log::enabled(log::Level::debug)     ? "0"
                                                   : log::enabled(log::Level::verbose) ? "1"
                                                                                       : "2";
    }
    for (const auto& [key, value] : spec.annotations) {
        if (!annotationReachesRuntime(key)) {
            log::verbose("annotation " + key + " is not passed to the OCI runtime (only com.hooks.* are)");
        }
    }
    passPmiDescriptor(spec);
    applyPmixSupport(spec, config, hostEnv);
    spec.security = loadSecurityProfiles(config);
    if (spec.tty && !::isatty(STDIN_FILENO)) {
        log::warn("-t/--tty ignored: the input device is not a terminal");
        spec.tty = false;
    }
    if (spec.name.empty()) {
        spec.name = defaultContainerName();
    }
    auto backend = makeBackend(config);
    auto registry = ContainerRegistry::forCaller();
    Registration registration(registry, {spec.name, ::getpid(), config.stringOr("OCIBundleDir", ""),
                                         utcTimestampWithNanoseconds()});
    log::verbose("running " + reference.normalized() + " from " + image->imageFile.string());
    log::verbose(setup_clock::secondsMessage("Processed CLI arguments in", setup_clock::secondsSinceProgramStart()));
    setup_clock::markSetupBegin();
    if (auto key = rankGroupKey(hostEnv, ::getppid())) {
        auto reason = reasonNotToShare(spec);
        if (reason.empty()) {
            return reportedExit(runAsRankOfSharedContainer(config, spec, *image, *backend, *key));
        }
        log::verbose("a container of this rank's own (" + reason + ")");
    }
    return reportedExit(backend->run(spec, *image));
}

}  // namespace sarus
