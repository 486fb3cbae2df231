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

// With securityChecks: runcPath, initPath, OCIBundleDir, seccompProfile,
// prefixDir/bin, libexec/sarus and dropbear/bin with their entries, hooksDir
// with its JSON files, and for each hook there and in the legacy OCIHooks the
// program and the LDCONFIG_PATH, READELF_PATH, DROPBEAR_DIR and
// TIMESTAMP_HOOK_LOGFILE of its environment; the sources of siteMounts and
// siteDevices. A symlink on the way is followed link by link.
void checkInstallation(const Config& config);

}  // namespace sarus::suid
