// A layer tarball (tar headers, PAX and GNU extensions, whiteouts, hard and
// symbolic links) flattened into a squashfs, twice over, as two layers.
#include "fuzz_common.hpp"
#include "image/layer_flattener.hpp"

#include <archive.h>
#include <unistd.h>

namespace {

struct Reader {
    archive* handle = archive_read_new();
    ~Reader() { archive_read_free(handle); }
};

void addLayer(sarus::LayerFlattener& flattener, const std::uint8_t* data, std::size_t size,
              const std::string& name) {
    Reader reader;
    archive_read_support_format_tar(reader.handle);
    archive_read_support_filter_none(reader.handle);
    if (archive_read_open_memory(reader.handle, data, size) != ARCHIVE_OK) {
        return;
    }
    flattener.addLayer(reader.handle, name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string output = "/tmp/sarus-fuzz-layer-" + std::to_string(::getpid()) + ".squashfs";
    sarus::SquashfsOptions options;
    options.compressor = "lz4";
    options.level = 0;
    options.workers = 1;
    fuzz::refusalsAllowed([&] {
        sarus::LayerFlattener flattener(output, options);
        addLayer(flattener, data, size, "layer 1");
        addLayer(flattener, data, size, "layer 2");
        flattener.finish();
    });
    ::unlink(output.c_str());
    return 0;
}
