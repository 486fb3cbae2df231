// A hook JSON file, validated against the hook schema, then matched against
// a container's annotations and command as sarus selects hooks. The input
// is: hook JSON \0 annotation key \0 annotation value \0 command.
#include "runtime/container_spec.hpp"
#include "config/config.hpp"
#include "fuzz_common.hpp"
#include "config/hooks_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto parts = fuzz::fields(data, size);
    parts.resize(4);
    fuzz::refusalsAllowed([&] {
        nlohmann::json document;
        try {
            document = nlohmann::json::parse(parts[0]);
        } catch (const nlohmann::json::exception&) {
            return;  // loadHookFiles turns this into an Error naming the file
        }
        sarus::validateAgainstSchema(document, SARUS_SOURCE_DIR "/etc/hook.schema.json", "fuzz.json");
        sarus::ContainerSpec spec;
        spec.annotations[parts[1]] = parts[2];
        spec.args = {parts[3].empty() ? "/bin/true" : parts[3]};
        sarus::selectHooks(spec, {{"fuzz.json", document}}, nlohmann::json::object());
        sarus::mpiTypeOf({"fuzz.json", document});
    });
    return 0;
}
