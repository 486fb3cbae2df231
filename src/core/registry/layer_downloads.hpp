// Downloads the layers of an image in parallel (bounded number of threads,
// each with its own HTTP connection), in layer order so the first layers,
// which the flattener needs first, come first. Each blob is written to an
// unnamed file in the blob cache while it is hashed, handed to the flattener
// as it grows (LayerStream), and named in the cache only once its digest
// matched. A cached blob is verified and used without a download.
#pragma once

#include "registry/blob_cache.hpp"
#include "image/layer_stream.hpp"
#include "registry/manifest.hpp"
#include "cli/pull_progress.hpp"
#include "registry/registry_client.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sarus {

class LayerDownloads {
public:
    LayerDownloads(RegistryClient& registry, const BlobCache& cache,
                   std::vector<manifest::Descriptor> layers, unsigned parallelism,
                   PullProgress& progress);
    // Abandons what is still running and waits for the threads.
    ~LayerDownloads();
    LayerDownloads(const LayerDownloads&) = delete;
    LayerDownloads& operator=(const LayerDownloads&) = delete;

    LayerStream& stream(std::size_t layer) { return *streams_[layer]; }
    // The first download error, which also fails every stream: one bad
    // blob stops the whole pull at once.
    std::string firstFailure() const;
    // For a layer that failed to decode: its blob came from the cache on the
    // strength of its stamp, unhashed, and no longer has its digest.
    bool cachedBlobIsDamaged(std::size_t layer) const;

private:
    void work();
    void fetch(http::Client& client, std::size_t layer);
    bool useCached(std::size_t layer);
    void download(http::Client& client, std::size_t layer);
    void failAll(const std::string& message);

    RegistryClient& registry_;
    const BlobCache& cache_;
    std::vector<manifest::Descriptor> layers_;
    PullProgress& progress_;
    std::vector<std::unique_ptr<LayerStream>> streams_;
    std::unique_ptr<std::atomic<bool>[]> trustedStamp_;
    std::atomic<std::size_t> next_{0};
    std::atomic<bool> stop_{false};
    mutable std::mutex failureMutex_;
    std::string firstFailure_;
    std::vector<std::thread> threads_;
};

}  // namespace sarus
