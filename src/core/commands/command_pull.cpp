// sarus pull: registry -> squashfs in one streaming pass. Layers download in
// parallel into the blob cache while the flattener consumes them in order,
// each as it grows; the squashfs is unnamed until complete, then committed
// to the store with its manifest digest.
#include "commands.hpp"

#include "registry/blob_cache.hpp"
#include "common/cancellation.hpp"
#include "config/config.hpp"
#include "config/containers_policy.hpp"
#include "cli/credentials_prompt.hpp"
#include "common/error.hpp"
#include "common/file_utils.hpp"
#include "config/identity.hpp"
#include "image/image_store.hpp"
#include "registry/layer_downloads.hpp"
#include "image/layer_flattener.hpp"
#include "image/layer_decoder.hpp"
#include "image/layer_reader.hpp"
#include "common/log.hpp"
#include "registry/manifest.hpp"
#include "cli/pull_progress.hpp"
#include "registry/registries_conf.hpp"
#include "registry/registry_client.hpp"
#include "common/process.hpp"

#include <chrono>
#include <cstdio>
#include <sys/stat.h>

namespace sarus {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int defaultParallelism = 3;
constexpr int maxIndexDepth = 3;

struct ResolvedImage {
    std::string digest;  // of the top-level manifest (an index for multi-arch images)
    manifest::Manifest manifest;
    std::string platformDigest;  // of the image manifest chosen in an index, if any
};

std::string describeFiles(const RegistriesConf& registries) {
    std::string text;
    for (const auto& file : registries.files) {
        text += (text.empty() ? "" : ", ") + file.string();
    }
    return text;
}

void printField(const std::string& name, const std::string& value) {
    std::printf("# %-16s : %s\n", name.c_str(), value.c_str());
    std::fflush(stdout);
}

void checkTempDir(const std::string& dir) {
    struct stat st {};
    if (!dir.empty() && (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
        throw Error("Invalid temporary directory \"" + dir + "\"");
    }
}

ImageReference pullReference(const std::string& text) {
    auto reference = ImageReference::parseArgument(text, "pull");
    if (reference.server == "load") {
        throw Error("cannot pull " + reference.normalized() +
                    ": 'load/' names images imported with 'sarus load'");
    }
    if (!reference.tag.empty() && !reference.digest.empty()) {
        // The digest decides what is pulled, as in Sarus and Docker.
        log::verbose("pulling by digest: the tag '" + reference.tag + "' is ignored");
    }
    return reference;
}

std::optional<Credentials> credentialsFor(const PullOptions& options, const std::string& server) {
    if (!options.login && !options.passwordStdin && options.username.empty()) {
        return std::nullopt;
    }
    return readCredentials({options.username, options.passwordStdin}, server);
}

manifest::Manifest imageManifestOf(RegistryClient& registry, http::Client& client,
                                   manifest::Manifest top, ResolvedImage& resolved) {
    auto platform = manifest::Platform::host();
    for (int depth = 0; top.kind == manifest::Kind::index; ++depth) {
        if (depth >= maxIndexDepth) {
            throw Error("the image index nests more than " + std::to_string(maxIndexDepth) + " levels");
        }
        auto chosen = manifest::selectPlatform(top.manifests, platform);
        if (!chosen) {
            std::string available;
            for (const auto& entry : top.manifests) {
                if (entry.platform) {
                    available += (available.empty() ? "" : ", ") + entry.platform->normalized().toString();
                }
            }
            throw Error("the image has no variant for this machine (" + platform.toString() +
                        "); it is available for: " + (available.empty() ? "nothing" : available));
        }
        log::verbose("index: chose " + chosen->digest + " for " + platform.toString());
        auto fetched = registry.getManifest(client, chosen->digest);
        resolved.platformDigest = fetched.digest;
        top = manifest::parse(fetched.body, fetched.contentType);
    }
    return top;
}

ResolvedImage resolve(RegistryClient& registry, http::Client& client, const ImageReference& reference) {
    ResolvedImage resolved;
    auto target = reference.digest.empty() ? reference.tag : reference.digest;
    auto fetched = registry.getManifest(client, target);
    resolved.digest = fetched.digest;
    auto top = manifest::parse(fetched.body, fetched.contentType);
    resolved.manifest = imageManifestOf(registry, client, std::move(top), resolved);
    for (std::size_t i = 0; i < resolved.manifest.layers.size(); ++i) {
        const auto& layer = resolved.manifest.layers[i];
        if (!manifest::isSupportedLayerType(layer.mediaType)) {
            throw Error("layer " + std::to_string(i + 1) + " (" + layer.digest +
                        ") has the unsupported media type '" + layer.mediaType + "'");
        }
    }
    if (resolved.manifest.layers.empty()) {
        throw Error("the image " + reference.normalized() + " has no layers");
    }
    return resolved;
}

nlohmann::json fetchImageConfig(RegistryClient& registry, http::Client& client,
                                const manifest::Descriptor& descriptor) {
    auto body = registry.getBlob(client, descriptor);
    try {
        auto config = nlohmann::json::parse(body);
        auto host = manifest::Platform::host();
        auto os = config.value("os", "");
        auto architecture = config.value("architecture", "");
        if (!os.empty() && !architecture.empty() &&
            (manifest::Platform{os, architecture, config.value("variant", "")}.normalized().architecture !=
                 host.architecture || os != host.os)) {
            log::warn("the image is built for " + os + "/" + architecture + ", not for this machine (" +
                      host.toString() + ")");
        }
        return config;
    } catch (const nlohmann::json::exception&) {
        throw Error("the image configuration " + descriptor.digest + " is not valid JSON");
    }
}

// A layer whose blob came from the cache failed to decode or to match its
// diff id, and the blob no longer has its digest: it was damaged after it
// was checked (bit rot, a copy that kept its modification time).
struct CorruptCachedLayer : Error {
    CorruptCachedLayer(std::string digest, const std::string& what) : Error(what), digest(std::move(digest)) {}
    std::string digest;
};

// Flattens every layer as soon as its download streams in.
FlattenStats flattenLayers(LayerDownloads& downloads, const manifest::Manifest& image,
                           const std::vector<std::string>& diffIds, LayerFlattener& flattener,
                           PullProgress& progress) {
    std::vector<LayerStream*> streams;
    for (std::size_t i = 0; i < image.layers.size(); ++i) {
        streams.push_back(&downloads.stream(i));
    }
    LayerDecoder decoder(streams, diffIds);
    for (std::size_t i = 0; i < image.layers.size(); ++i) {
        const auto& layer = image.layers[i];
        progress.flattening(i);
        auto name = "layer " + std::to_string(i + 1) + " (" + layer.digest + ")";
        try {
            LayerReader reader(decoder, i, name);
            flattener.addLayer(reader.get(), name);
            decoder.finishLayer(i);
        } catch (const Error& e) {
            cancellation::throwIfRequested();
            auto cause = downloads.firstFailure();
            if (cause.empty() && downloads.cachedBlobIsDamaged(i)) {
                throw CorruptCachedLayer(layer.digest, e.what());
            }
            throw cause.empty() ? e : Error(cause);
        }
        progress.flattened(i);
    }
    cancellation::throwIfRequested();
    return flattener.finish();
}

std::vector<PullProgress::Layer> progressLayers(const manifest::Manifest& image) {
    std::vector<PullProgress::Layer> layers;
    for (const auto& layer : image.layers) {
        layers.push_back({layer.digest, static_cast<std::uint64_t>(layer.size)});
    }
    return layers;
}

unsigned parallelism(const Config& config) {
    auto value = config.json().value("pullParallelism", defaultParallelism);
    return static_cast<unsigned>(std::max(1, value));
}

bool upToDate(const std::optional<StoredImage>& existing, const std::string& digest,
              const ImageReference& typed) {
    if (!existing || existing->digest.empty() || existing->digest != digest) {
        return false;
    }
    printField("image digest", digest);
    std::printf("Image for %s is already available and up to date\n", typed.normalized().c_str());
    std::fflush(stdout);
    return true;
}

// Sarus's words for what it cannot pull, and the reason on the lines after.
Error pullFailure(const ImageReference& typed, const Error& cause) {
    std::string reason = cause.what();
    if (dynamic_cast<const ManifestUnavailable*>(&cause) != nullptr) {
        reason = "Error reading manifest from registry.\n"
                 "The image may be private or not present in the remote registry.\n"
                 "Did you perform a login with the proper credentials?\n"
                 "See 'sarus help pull' (--login option)";
    } else if (dynamic_cast<const CredentialsRefused*>(&cause) != nullptr) {
        reason = "Unable to retrieve auth token: invalid username or password provided.";
    }
    Error failure("Failed to pull image '" + typed.identity().normalized() + "'\n" + reason);
    failure.within(cause.what());
    return failure;
}

int pull(const Config& config, const PullOptions& options, const ImageReference& typed) {
    auto started = Clock::now();
    cancellation::SignalWatcher signals;
    auto reference = typed.identity();
    checkPullAllowed(config, reference, Identity::ofCaller().home);
    auto store = options.centralizedRepository ? ImageStore::centralized(config) : ImageStore::local(config);
    auto credentials = credentialsFor(options, reference.server);

    printField("image", typed.normalized());
    printField("cache directory", store.cacheDirectory().string());
    printField("images directory", store.imagesDirectory().string());

    store.checkStorable(reference);
    auto existing = store.find(reference);
    if (!reference.digest.empty() && upToDate(existing, reference.digest, typed)) {
        return 0;  // content-addressed: nothing to ask the registry
    }
    auto registries = readRegistriesConf(environmentMap(currentEnvironment()), Identity::ofCaller().home);
    auto blocking = matchingEntry(registries.blocked, reference.server, reference.repository);
    if (!blocking.empty()) {
        throw Error("registry " + reference.server + " is blocked for " + reference.repository + " ('" + blocking +
                    "' in " + describeFiles(registries) + ")");
    }
    bool insecure = isInsecureRegistry(reference.server, config.insecureRegistries()) ||
                    !matchingEntry(registries.insecure, reference.server, reference.repository).empty();
    RegistryClient registry({reference.server, reference.repository, insecure,
                             config.file().string(), std::move(credentials)});
    auto client = registry.newClient();
    withContext("contacting registry " + reference.server, [&] { registry.ping(*client); });
    if (existing && reference.digest.empty()) {
        auto current = registry.headManifestDigest(*client, reference.tag);
        if (current && upToDate(existing, *current, typed)) {
            return 0;
        }
    }
    auto resolved = resolve(registry, *client, reference);
    if (upToDate(existing, resolved.digest, typed)) {
        return 0;
    }
    printField("image digest", resolved.digest);
    if (!resolved.platformDigest.empty()) {
        printField("platform digest", resolved.platformDigest + " (" + manifest::Platform::host().toString() + ")");
    }
    auto imageConfig = fetchImageConfig(registry, *client, resolved.manifest.config);
    auto metadata = ImageMetadata::fromImageConfig(imageConfig);
    auto diffIds = layerDiffIds(imageConfig);
    if (!diffIds.empty() && diffIds.size() != resolved.manifest.layers.size()) {
        throw Error("the image configuration " + resolved.manifest.config.digest + " gives " +
                    std::to_string(diffIds.size()) + " diff ids for " +
                    std::to_string(resolved.manifest.layers.size()) + " layers");
    }

    // The image is written unnamed at the top of the images directory and
    // only linked to its place in the store once complete: a failed pull
    // leaves not even a new directory behind. (The store makes the
    // repository first, before the cache in it.)
    auto output = store.newImageFile("pull.squashfs");
    BlobCache cache(store.cacheDirectory());
    FlattenStats stats;
    std::uint64_t downloaded = 0;
    std::size_t fromCache = 0;
    // Each round drops one damaged cached blob, which the next downloads.
    for (std::size_t round = 0;; ++round) {
        try {
            LayerFlattener flattener(output->path(), config.squashfsOptions());
            PullProgress progress(progressLayers(resolved.manifest),
                                  PullProgress::stdoutIsInteractive() && !log::enabled(log::Level::verbose));
            LayerDownloads downloads(registry, cache, resolved.manifest.layers, parallelism(config), progress);
            stats = flattenLayers(downloads, resolved.manifest, diffIds, flattener, progress);
            progress.stop();
            downloaded = progress.bytesDownloaded();
            fromCache = progress.layersFromCache();
            break;
        } catch (const CorruptCachedLayer& e) {
            if (round >= resolved.manifest.layers.size()) {
                throw;
            }
            log::warn("cached blob " + cache.pathOf(e.digest).string() + " is damaged (" + e.what() +
                      "): downloading it again");
            cache.remove(e.digest);
            output = store.newImageFile("pull.squashfs");
        }
    }
    cancellation::throwIfRequested();
    auto image = store.commit(reference, *output, metadata, resolved.manifest.config.digest, resolved.digest);

    auto seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::printf("# created: %s\n", image.imageFile.string().c_str());
    std::printf("# created: %s\n", image.metadataFile.string().c_str());
    char summary[256];
    std::snprintf(summary, sizeof summary, "# pulled %zu layers (%s downloaded, %zu from cache), image %s, in %.1f s\n",
                  resolved.manifest.layers.size(), humanReadableSize(downloaded).c_str(), fromCache,
                  humanReadableSize(image.size).c_str(), seconds);
    std::fputs(summary, stdout);
    log::verbose("flattened " + std::to_string(stats.entries) + " entries");
    return 0;
}

}  // namespace

int commandPull(const Config& config, const PullOptions& options) {
    auto typed = pullReference(options.reference);
    if (options.login && options.passwordStdin) {
        throw Error("The options '--password-stdin' and '--login' cannot be used together");
    }
    checkTempDir(options.tempDir);
    try {
        return pull(config, options, typed);
    } catch (const Error& e) {
        if (cancellation::requested()) {
            throw;
        }
        throw pullFailure(typed, e);
    }
}

}  // namespace sarus
