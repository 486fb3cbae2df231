#include "mount_options.hpp"

#include "error.hpp"

#include <cerrno>
#include <sstream>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace sarus {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(s);
    while (std::getline(in, part, sep)) {
        parts.push_back(part);
    }
    if (!s.empty() && s.back() == sep) {
        parts.emplace_back();
    }
    return parts;
}

Error badMount(const std::string& text, const std::string& why) {
    return Error("invalid --mount '" + text + "': " + why);
}

Error badDevice(const std::string& text, const std::string& why) {
    return Error("invalid --device '" + text + "': " + why);
}

bool isAccessString(const std::string& s) {
    if (s.empty() || s.size() > 3) {
        return false;
    }
    for (char c : s) {
        if (c != 'r' && c != 'w' && c != 'm') {
            return false;
        }
    }
    // no repeated letter
    return !(s.size() > 1 && (s[0] == s[1] || (s.size() == 3 && (s[0] == s[2] || s[1] == s[2]))));
}

}  // namespace

std::string normalizeAbsolutePath(const std::string& path) {
    std::vector<std::string> parts;
    for (const auto& part : split(path, '/')) {
        if (part.empty() || part == ".") {
            continue;
        }
        if (part == "..") {
            if (!parts.empty()) {
                parts.pop_back();
            }
            continue;
        }
        parts.push_back(part);
    }
    std::string result;
    for (const auto& part : parts) {
        result += "/" + part;
    }
    return result.empty() ? "/" : result;
}

BindMount parseMount(const std::string& text) {
    BindMount mount;
    std::string type;
    bool haveType = false;
    for (const auto& item : split(text, ',')) {
        auto eq = item.find('=');
        auto key = item.substr(0, eq);
        auto value = eq == std::string::npos ? std::string() : item.substr(eq + 1);
        if (key == "type") {
            type = value;
            haveType = true;
        } else if (key == "src" || key == "source") {
            mount.source = value;
        } else if (key == "dst" || key == "destination" || key == "target") {
            mount.destination = value;
        } else if (key == "readonly" || key == "ro") {
            if (eq != std::string::npos && value != "true" && value != "1") {
                throw badMount(text, "'readonly' takes no value");
            }
            mount.readonly = true;
        } else if (key == "bind-propagation") {
            if (value != "rprivate" && value != "private" && value != "rslave" && value != "slave" &&
                value != "recursive") {
                throw badMount(text, "unsupported bind-propagation '" + value + "'");
            }
        } else {
            throw badMount(text, "unknown option '" + key + "'");
        }
    }
    if (!haveType) {
        throw badMount(text, "missing 'type' (only type=bind is supported)");
    }
    if (type != "bind") {
        throw badMount(text, "unsupported type '" + type + "' (only type=bind is supported)");
    }
    if (mount.source.empty()) {
        throw badMount(text, "missing 'source' (or 'src')");
    }
    if (mount.destination.empty()) {
        throw badMount(text, "missing 'destination' (or 'dst', 'target')");
    }
    if (mount.source[0] != '/') {
        throw badMount(text, "source '" + mount.source + "' is not an absolute path");
    }
    if (mount.destination[0] != '/') {
        throw badMount(text, "destination '" + mount.destination + "' is not an absolute path");
    }
    mount.destination = normalizeAbsolutePath(mount.destination);
    if (mount.destination == "/") {
        throw badMount(text, "cannot mount over the container's root directory");
    }
    return mount;
}

DeviceMount parseDevice(const std::string& text) {
    auto parts = split(text, ':');
    if (parts.empty() || parts.size() > 3 || parts[0].empty()) {
        throw badDevice(text, "expected HOST[:CONTAINER][:ACCESS]");
    }
    DeviceMount device;
    device.source = parts[0];
    device.destination = parts[0];
    if (parts.size() == 2) {
        if (isAccessString(parts[1])) {
            device.access = parts[1];
        } else {
            device.destination = parts[1];
        }
    } else if (parts.size() == 3) {
        device.destination = parts[1];
        if (!isAccessString(parts[2])) {
            throw badDevice(text, "access '" + parts[2] + "' must be made of the letters r, w, m");
        }
        device.access = parts[2];
    }
    if (device.source[0] != '/') {
        throw badDevice(text, "device '" + device.source + "' is not an absolute path");
    }
    if (device.destination.empty() || device.destination[0] != '/') {
        throw badDevice(text, "container path '" + device.destination + "' is not an absolute path");
    }
    device.destination = normalizeAbsolutePath(device.destination);
    return device;
}

void checkMountSourceReadable(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw systemError("mount source '" + path + "'", errno);
    }
    if (::access(path.c_str(), R_OK) != 0) {
        throw systemError("mount source '" + path + "' is not readable by you", errno);
    }
}

DeviceNode statDeviceNode(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw systemError("device '" + path + "'", errno);
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        throw Error("device '" + path + "' is not a character or block device");
    }
    return {S_ISBLK(st.st_mode) ? 'b' : 'c', major(st.st_rdev), minor(st.st_rdev), st.st_mode & 07777, st.st_uid,
            st.st_gid};
}

void checkDeviceNode(const std::string& path) { statDeviceNode(path); }

bool isSameOrBelow(const std::string& path, const std::string& directory) {
    return directory == "/" || path == directory || path.rfind(directory + "/", 0) == 0;
}

void checkUserMountDestination(const std::string& destination, const UserMountRestrictions& rules) {
    for (const auto& raw : rules.notAllowedPaths) {
        if (destination == normalizeAbsolutePath(raw)) {
            throw Error("mount destination '" + destination +
                        "' is not allowed (userMounts.notAllowedPaths in sarus.json)");
        }
    }
    for (const auto& raw : rules.notAllowedPrefixesOfPath) {
        auto prefix = normalizeAbsolutePath(raw);
        if (isSameOrBelow(destination, prefix)) {
            throw Error("mount destination '" + destination + "' is not allowed: it is under '" +
                        prefix + "' (userMounts.notAllowedPrefixesOfPath in sarus.json)");
        }
    }
}

}  // namespace sarus
