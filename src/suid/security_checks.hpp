// Files that a SUID sarus trusts must not be modifiable by anyone but root:
// the file and every ancestor directory are owned by root and not writable by
// group or others. The checks are a handful of stat calls per run: no tree
// is walked.
#pragma once

#include <filesystem>
#include <string>

namespace sarus {
class Config;
}

namespace sarus::suid {

// Throws sarus::Error naming the path and the rule it breaks.
void checkRootOwnedAndNotWritable(const std::filesystem::path& path);

// sarus.json and sarus.schema.json: always, whatever securityChecks says.
void checkConfigurationFiles(const std::filesystem::path& configFile, const std::filesystem::path& schemaFile);

// With securityChecks: runcPath, initPath, mksquashfsPath if set, OCIBundleDir,
// prefixDir/bin and its entries, hooksDir with its JSON files and the hook
// binaries they name.
void checkInstallation(const Config& config);

}  // namespace sarus::suid
