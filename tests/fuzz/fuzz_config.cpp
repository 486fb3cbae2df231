// sarus.json: parsed and validated against the installed schema, then read
// the way `sarus run` reads it.
#include "config/config.hpp"
#include "runtime/container_spec.hpp"
#include "fuzz_common.hpp"

#include <fstream>
#include <unistd.h>

namespace {

// Config::load reads a file: one for every input, removed when the fuzzer exits.
struct InputFile {
    std::string path = "/tmp/sarus-fuzz-config-" + std::to_string(::getpid()) + ".json";
    ~InputFile() { ::unlink(path.c_str()); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const InputFile input;
    const auto& file = input.path;
    {
        std::ofstream out(file, std::ios::trunc | std::ios::binary);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    fuzz::refusalsAllowed([&] {
        auto config = sarus::Config::load(file, SARUS_SOURCE_DIR "/etc/sarus.schema.json");
        config.mode();
        config.squashfsOptions();
        config.insecureRegistries();
        config.metadataLockTimeoutMs();
        config.metadataLockWarningMs();
        config.stringOr("runcPath", "");
        sarus::siteMounts(config.json());
        sarus::siteDevices(config.json());
        sarus::userMountRestrictions(config.json());
        sarus::buildEnvironment({"PATH=/usr/bin", "HOME=/home/u"}, {"PATH=/bin"},
                                config.json().value("environment", nlohmann::json()), {"A=1"});
    });
    return 0;
}
