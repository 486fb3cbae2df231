#include "image/layer_reader.hpp"

#include "common/error.hpp"

#include <archive.h>

#include <cerrno>

namespace sarus {

LayerReader::LayerReader(LayerDecoder& decoder, std::size_t layer, const std::string& layerName)
    : decoder_(decoder), layer_(layer), reader_(newLayerReader()) {
    if (archive_read_open(reader_.get(), this, nullptr, read, nullptr) != ARCHIVE_OK) {
        throw Error(layerName + ": " + archive_error_string(reader_.get()));
    }
}

long LayerReader::read(archive* reader, void* self, const void** buffer) {
    try {
        return static_cast<long>(static_cast<LayerReader*>(self)->produce(buffer));
    } catch (const Error& e) {
        archive_set_error(reader, EIO, "%s", e.what());
        return -1;
    }
}

std::size_t LayerReader::produce(const void** buffer) {
    const char* data = nullptr;
    auto n = decoder_.next(layer_, &data);
    *buffer = data;
    return n;
}

}  // namespace sarus
