// A layer blob being written by a download thread while the flattener reads
// it: the flattener follows the growing file through a libarchive read
// callback and sees end-of-file only once the whole blob is in and its digest
// verified. Data goes through the page cache, so memory stays bounded by one
// read buffer whatever the layer size.
#pragma once

#include "registry/blob_cache.hpp"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

struct archive;

namespace sarus {

class LayerStream {
public:
    // Producer side.
    void attach(int fd);                  // the stream keeps its own duplicate
    void advance(std::uint64_t available);  // bytes [0, available) are readable
    void complete();                      // everything is in and verified
    void fail(const std::string& message);

    // Consumer side: the next bytes of the blob, at least `atLeast` unless
    // the blob ends first; 0 at the end. The data stay valid until the next
    // call. Throws sarus::Error when the download failed.
    std::size_t next(const char** data, std::size_t atLeast = 1);
    // The same as a libarchive read callback (this object as client data).
    static long read(archive* reader, void* self, const void** buffer);
    // The producer's error message, if it failed.
    std::string failure() const;
    // Whether the blob's decoded content was found to hash to diffId by an
    // earlier pull (a stamp on the cached blob), and the stamp itself, for a
    // complete blob.
    bool contentVerifiedBefore(const std::string& diffId) const;
    void recordContentVerified(const std::string& diffId) const;

private:
    enum class State { waiting, streaming, done, failed };
    // Bytes available beyond offset_ once there are atLeast of them or the
    // blob is complete (0 means end of data); throws on failure.
    std::uint64_t waitForData(std::uint64_t atLeast);

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    State state_ = State::waiting;
    FileDescriptor fd_;
    std::uint64_t available_ = 0;
    std::string error_;
    // Consumer-only.
    std::uint64_t offset_ = 0;
    std::vector<char> buffer_;
};

}  // namespace sarus
