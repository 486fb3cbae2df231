#include "runtime/mount_options.hpp"

#include "common/error.hpp"

#include <algorithm>
#include <cerrno>
#include <initializer_list>
#include <sstream>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
    return Error("Invalid mount request '" + text + "': " + why);
}

Error badDevice(const std::string& text, const std::string& why) {
    return Error("Invalid device request '" + text + "': " + why);
}

bool isAccessString(const std::string& s);

const char* accessRule = ". Device access must be entered as a combination of 'rwm' characters, with no repetitions";

void checkAccess(const std::string& text, const std::string& access) {
    if (access.empty()) {
        throw badDevice(text, std::string("Input string for device access is empty") + accessRule);
    }
    if (access.size() > 3) {
        throw badDevice(text, "Input string for device access '" + access + "' is longer than 3 characters" +
                                  accessRule);
    }
    if (access.find_first_not_of("rwm") != std::string::npos) {
        throw badDevice(text, "Input string for device access '" + access + "' contains an invalid character" +
                                  accessRule);
    }
    if (!isAccessString(access)) {
        throw badDevice(text, "Input string for device access '" + access + "' has repeated characters" +
                                  accessRule);
    }
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

namespace {

using MountRequest = std::vector<std::pair<std::string, std::string>>;

MountRequest keyValuePairs(const std::string& text) {
    MountRequest request;
    for (const auto& item : split(text, ',')) {
        auto eq = item.find('=');
        request.emplace_back(item.substr(0, eq), eq == std::string::npos ? std::string() : item.substr(eq + 1));
    }
    return request;
}

std::size_t countKeys(const MountRequest& request, std::initializer_list<const char*> keys) {
    return static_cast<std::size_t>(std::count_if(request.begin(), request.end(), [&](const auto& item) {
        return std::any_of(keys.begin(), keys.end(), [&](const char* key) { return item.first == key; });
    }));
}

// The value of the last of keys (present: countKeys said so).
std::string valueOf(const MountRequest& request, std::initializer_list<const char*> keys) {
    std::string value;
    for (const auto& item : request) {
        if (std::any_of(keys.begin(), keys.end(), [&](const char* key) { return item.first == key; })) {
            value = item.second;
        }
    }
    return value;
}

std::string mountPath(const std::string& text, const MountRequest& request, const char* what,
                      std::initializer_list<const char*> keys, const std::string& variants) {
    auto names = countKeys(request, keys);
    if (names > 1) {
        throw badMount(text, std::string("multiple formats used to specify mount ") + what + ". " +
                                 (keys.size() == 2 ? "Use either " : "Use one of ") + variants + ".");
    }
    if (names == 0) {
        throw badMount(text, std::string("no ") + what + " specified. Use either " + variants + ".");
    }
    auto path = valueOf(request, keys);
    if (path.empty()) {
        throw badMount(text, std::string(what) + " is empty");
    }
    if (path[0] != '/') {
        throw badMount(text, std::string(what) + " must be an absolute path");
    }
    return path;
}

}  // namespace

BindMount parseMount(const std::string& text) {
    auto request = keyValuePairs(text);
    if (countKeys(request, {"type"}) == 0) {
        throw badMount(text, "'type' must be specified");
    }
    auto type = valueOf(request, {"type"});
    if (type != "bind") {
        throw badMount(text, "'" + type + "' is not a valid mount type");
    }
    BindMount mount;
    mount.request = text;
    mount.source = mountPath(text, request, "source", {"source", "src"}, "'source' or 'src'");
    mount.destination =
        mountPath(text, request, "destination", {"destination", "dst", "target"}, "'destination', 'dst' or 'target'");
    for (const auto& [key, value] : request) {
        if (key == "readonly") {
            mount.readonly = true;  // whatever its value, as in Sarus
        } else if (key != "type" && key != "source" && key != "src" && key != "destination" && key != "dst" &&
                   key != "target") {
            throw badMount(text, "'" + key + "' is not a valid bind mount option");
        }
    }
    mount.destination = normalizeAbsolutePath(mount.destination);
    if (mount.destination == "/") {
        throw badMount(text, "cannot mount over the container's root directory");
    }
    return mount;
}

DeviceMount parseDevice(const std::string& text) {
    // Sarus's reading: HOST, HOST:ACCESS or HOST:CONTAINER (a second token
    // starting with '/'), HOST:CONTAINER:ACCESS.
    if (text.empty()) {
        throw Error("Invalid device request: no values provided");
    }
    auto parts = split(text, ':');
    if (parts.size() > 3) {
        throw badDevice(text, "too many tokens provided. The format of the option value must be at most "
                              "'<host device>:<container device>:<access>'");
    }
    DeviceMount device;
    device.request = text;
    device.source = parts[0];
    if (device.source.empty()) {
        throw badDevice(text, "detected empty host device path");
    }
    if (device.source[0] != '/') {
        throw badDevice(text, "host device path '" + device.source + "' must be absolute");
    }
    device.destination = device.source;
    if (parts.size() == 2) {
        if (!parts[1].empty() && parts[1][0] == '/') {
            device.destination = parts[1];
        } else {
            checkAccess(text, parts[1]);
            device.access = parts[1];
        }
    } else if (parts.size() == 3) {
        if (parts[1].empty()) {
            throw badDevice(text, "detected empty container device path");
        }
        if (parts[1][0] != '/') {
            throw badDevice(text, "container device path '" + parts[1] + "' must be absolute");
        }
        device.destination = parts[1];
        checkAccess(text, parts[2]);
        device.access = parts[2];
    }
    device.destination = normalizeAbsolutePath(device.destination);
    return device;
}

FileDescriptor openMountSource(const BindMount& mount) {
    const auto& path = mount.source;
    FileDescriptor source(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (source.get() < 0) {
        throw systemError("Failed to bind mount " + path + " on container's " + mount.destination +
                              ": Failed to find real path for mount source",
                          errno);
    }
    // Checked on the object just opened: a symlink swapped in after the
    // open cannot make another file pass.
    if (::faccessat(source.get(), "", R_OK, AT_EMPTY_PATH) != 0) {
        throw systemError("mount source '" + path + "' is not readable by you", errno);
    }
    return source;
}

DeviceNode deviceNodeOf(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        throw systemError("Failed to check if file \"" + path + "\" is a device file. Stat failed", errno);
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        throw Error("Source path \"" + path + "\" is not a device file");
    }
    // A node on a nodev mount (an image, a user's removable medium) opens
    // nothing on the host, whatever its mode says; recreating it for the
    // container would hand out a device the caller cannot use.
    struct statvfs fs {};
    if (::fstatvfs(fd, &fs) != 0) {
        throw systemError("Failed to check the filesystem of device file \"" + path + "\"", errno);
    }
    if (fs.f_flag & ST_NODEV) {
        throw Error("Source path \"" + path + "\" is on a filesystem mounted nodev: its device cannot be used");
    }
    return {S_ISBLK(st.st_mode) ? 'b' : 'c', major(st.st_rdev), minor(st.st_rdev), st.st_mode & 07777, st.st_uid,
            st.st_gid};
}

DeviceNode statDeviceNode(const std::string& path) {
    FileDescriptor node(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (node.get() < 0) {
        throw systemError("Failed to check if file \"" + path + "\" is a device file. Stat failed", errno);
    }
    return deviceNodeOf(node.get(), path);
}

DeviceNode statDeviceNode(const DeviceMount& device) {
    try {
        return statDeviceNode(device.source);
    } catch (const Error& e) {
        throw Error("Invalid device request '" + (device.request.empty() ? device.source : device.request) +
                    "': " + e.what());
    }
}


bool isSameOrBelow(const std::string& path, const std::string& directory) {
    return directory == "/" || path == directory || path.rfind(directory + "/", 0) == 0;
}

namespace {

// /, /dev, /proc and /sys themselves, and what is below `covered`.
void checkNotOntoRuntimeMounts(const std::string& resolved, const std::string& what,
                               std::initializer_list<const char*> covered) {
    for (const char* exact : {"/", "/dev", "/proc", "/sys"}) {
        if (resolved == exact) {
            throw Error(what + " resolves to " + resolved + " in the container, which the runtime provides");
        }
    }
    for (const char* directory : covered) {
        if (isSameOrBelow(resolved, directory)) {
            throw Error(what + " resolves to " + resolved + " in the container: the runtime mounts " +
                        directory + " over it");
        }
    }
}

}  // namespace

void checkNotRuntimeMountPoint(const std::string& resolved, const std::string& what) {
    checkNotOntoRuntimeMounts(resolved, what, {"/proc", "/sys", "/dev/pts", "/dev/mqueue"});
}

void checkNotRuntimeMountPointForHook(const std::string& resolved, const std::string& what) {
    checkNotOntoRuntimeMounts(resolved, what, {"/dev/pts"});
}

void checkUserMountDestination(const std::string& destination, const UserMountRestrictions& rules,
                               const std::string& request, const PathInRootResolver& leadsTo) {
    // Sarus checks the prefixes first; its prefix is a string's, this one a path's ("/etc2" is not below "/etc").
    for (const auto& raw : rules.notAllowedPrefixesOfPath) {
        auto prefix = normalizeAbsolutePath(raw);
        if (isSameOrBelow(destination, prefix)) {
            throw badMount(request, "destination cannot be a subdirectory of '" + prefix + "'");
        }
    }
    for (const auto& raw : rules.notAllowedPaths) {
        if (destination == normalizeAbsolutePath(raw)) {
            throw badMount(request, "'" + normalizeAbsolutePath(raw) + "' is not allowed as mount destination");
        }
    }
    if (!leadsTo) {
        return;
    }
    auto refuseWhereItLeads = [&](const std::string& refused, bool below) {
        auto target = leadsTo(refused);
        if (!target || *target == refused) {
            return;
        }
        bool there = below ? isSameOrBelow(destination, *target) : destination == *target;
        if (there || isSameOrBelow(*target, destination)) {
            throw badMount(request, "'" + refused + "' leads to " + *target + " in this image, and destination " +
                                        destination + " would mount over it there");
        }
    };
    for (const auto& raw : rules.notAllowedPrefixesOfPath) {
        refuseWhereItLeads(normalizeAbsolutePath(raw), true);
    }
    for (const auto& raw : rules.notAllowedPaths) {
        refuseWhereItLeads(normalizeAbsolutePath(raw), false);
    }
}

}  // namespace sarus
