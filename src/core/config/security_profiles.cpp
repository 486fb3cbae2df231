#include "config/security_profiles.hpp"

#include "common/error.hpp"

#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;

namespace sarus {

namespace {

void checkSeccompObject(const json& profile) {
    if (!profile.is_object()) {
        throw Error("not a JSON object");
    }
    if (!profile.contains("defaultAction") || !profile["defaultAction"].is_string()) {
        throw Error("no \"defaultAction\" string");
    }
    if (!profile.contains("syscalls")) {
        return;
    }
    if (!profile["syscalls"].is_array()) {
        throw Error("\"syscalls\" is not an array");
    }
    for (const auto& rule : profile["syscalls"]) {
        if (!rule.is_object() || !rule.contains("names") || !rule["names"].is_array() || !rule.contains("action") ||
            !rule["action"].is_string()) {
            throw Error("every \"syscalls\" entry needs a \"names\" array and an \"action\" string");
        }
    }
}

}  // namespace

json readSeccompProfile(const fs::path& file) {
    json profile;
    try {
        profile = parseJsonFile(file);  // its errors name the file
    } catch (const Error& e) {
        throw Error(std::string("seccompProfile: ") + e.what());
    }
    try {
        checkSeccompObject(profile);
    } catch (const Error& e) {
        throw Error("seccompProfile " + file.string() + ": " + e.what());
    }
    return profile;
}

bool apparmorProfileLoaded(const std::string& profile, const fs::path& profilesFile) {
    std::ifstream in(profilesFile);
    if (!in) {
        throw Error("apparmorProfile '" + profile + "' is configured but AppArmor is not enabled on this host (no " +
                    profilesFile.string() + ")");
    }
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(profile + " (", 0) == 0) {
            return true;
        }
    }
    return false;
}

SecurityProfiles loadSecurityProfiles(const Config& config) {
    SecurityProfiles profiles;
    auto seccomp = config.stringOr("seccompProfile", "");
    if (!seccomp.empty()) {
        profiles.seccomp = readSeccompProfile(seccomp);
    }
    profiles.apparmorProfile = config.stringOr("apparmorProfile", "");
    if (!profiles.apparmorProfile.empty() && !apparmorProfileLoaded(profiles.apparmorProfile)) {
        throw Error("apparmorProfile '" + profiles.apparmorProfile +
                    "' is not loaded on this host (load it with apparmor_parser, or change " +
                    config.file().string() + ")");
    }
    profiles.selinuxLabel = config.stringOr("selinuxLabel", "");
    profiles.selinuxMountLabel = config.stringOr("selinuxMountLabel", "");
    return profiles;
}

void applySecurityProfiles(json& ociConfig, const SecurityProfiles& profiles) {
    if (!profiles.seccomp.is_null()) {
        ociConfig["linux"]["seccomp"] = profiles.seccomp;
    }
    if (!profiles.apparmorProfile.empty()) {
        ociConfig["process"]["apparmorProfile"] = profiles.apparmorProfile;
    }
    if (!profiles.selinuxLabel.empty()) {
        ociConfig["process"]["selinuxLabel"] = profiles.selinuxLabel;
    }
    if (!profiles.selinuxMountLabel.empty()) {
        ociConfig["linux"]["mountLabel"] = profiles.selinuxMountLabel;
    }
}

}  // namespace sarus
