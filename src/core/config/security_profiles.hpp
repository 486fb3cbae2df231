// The admin's security profiles of sarus.json: seccompProfile (an OCI
// seccomp object in a file), apparmorProfile, selinuxLabel and
// selinuxMountLabel. Read once per run, above the mode seam.
#pragma once

#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace sarus {

struct SecurityProfiles {
    nlohmann::json seccomp;  // null when not configured
    std::string apparmorProfile;
    std::string selinuxLabel;
    std::string selinuxMountLabel;
};

// Throws a one-line error naming the file or profile when the seccomp file
// is not an OCI seccomp object, or the AppArmor profile is not loaded.
SecurityProfiles loadSecurityProfiles(const Config& config);

// The seccomp object of a file: a JSON object with a string "defaultAction"
// and, when present, an array "syscalls" of objects with "names" and "action".
nlohmann::json readSeccompProfile(const std::filesystem::path& file);

// Whether AppArmor has loaded `profile`, from the kernel's list in
// `profilesFile` ("name (enforce)" per line). Throws when AppArmor is off.
bool apparmorProfileLoaded(const std::string& profile,
                           const std::filesystem::path& profilesFile = "/sys/kernel/security/apparmor/profiles");

// Adds the profiles to a config.json made by generateOciConfig.
void applySecurityProfiles(nlohmann::json& ociConfig, const SecurityProfiles& profiles);

}  // namespace sarus
