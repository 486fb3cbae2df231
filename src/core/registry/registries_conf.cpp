#include "registry/registries_conf.hpp"

#include "common/error.hpp"
#include "common/file_utils.hpp"

#include <toml.hpp>

#include <algorithm>
#include <sstream>

namespace sarus {

namespace fs = std::filesystem;

namespace {

std::string firstLine(const std::string& text) {
    auto line = text.substr(0, text.find('\n'));
    return line.rfind("[error] ", 0) == 0 ? line.substr(8) : line;
}

std::vector<std::string> stringsAt(const toml::value& data, const std::string& table, const std::string& list) {
    if (!data.contains("registries") || !data.at("registries").contains(table)) {
        return {};
    }
    return toml::find_or<std::vector<std::string>>(data.at("registries").at(table), list, {});
}

void append(std::vector<std::string>& to, const std::vector<std::string>& from) {
    to.insert(to.end(), from.begin(), from.end());
}

void merge(RegistriesConf& into, const fs::path& file) {
    std::string text;
    try {
        text = readFile(file);
    } catch (const Error&) {
        return;  // no such file: nothing configured there
    }
    auto conf = parseRegistriesConf(text, file.string());
    append(into.insecure, conf.insecure);
    append(into.blocked, conf.blocked);
    into.files.push_back(file);
}

bool hostMatches(const std::string& pattern, const std::string& host) {
    if (pattern.rfind("*.", 0) == 0) {
        auto domain = pattern.substr(1);
        return host.size() > domain.size() && host.compare(host.size() - domain.size(), domain.size(), domain) == 0;
    }
    return pattern == host;
}

}  // namespace

RegistriesConf parseRegistriesConf(const std::string& text, const std::string& what) {
    RegistriesConf conf;
    try {
        std::istringstream in(text);
        auto data = toml::parse(in, what);
        append(conf.insecure, stringsAt(data, "insecure", "registries"));
        append(conf.blocked, stringsAt(data, "block", "registries"));
        if (data.contains("registry")) {
            for (const auto& registry : toml::find<toml::array>(data, "registry")) {
                auto location = toml::find_or<std::string>(registry, "location", "");
                auto prefix = toml::find_or<std::string>(registry, "prefix", location);
                if (prefix.empty()) {
                    throw Error("a [[registry]] table has neither location nor prefix");
                }
                if (toml::find_or<bool>(registry, "insecure", false)) {
                    conf.insecure.push_back(prefix);
                }
                if (toml::find_or<bool>(registry, "blocked", false)) {
                    conf.blocked.push_back(prefix);
                }
            }
        }
    } catch (const Error& e) {
        throw Error(what + ": " + e.what());
    } catch (const std::exception& e) {
        throw Error(what + ": " + firstLine(e.what()));
    }
    return conf;
}

RegistriesConf readRegistriesConf(const std::map<std::string, std::string>& environment, const fs::path& home) {
    fs::path file = "/etc/containers/registries.conf";
    auto chosen = environment.find("CONTAINERS_REGISTRIES_CONF");
    std::error_code error;
    if (chosen != environment.end() && !chosen->second.empty()) {
        file = chosen->second;
    } else if (!home.empty() && fs::exists(home / ".config/containers/registries.conf", error)) {
        file = home / ".config/containers/registries.conf";
    }
    RegistriesConf conf;
    merge(conf, file);
    auto dropIns = fs::path(file.string() + ".d");
    std::vector<fs::path> extra;
    for (fs::directory_iterator it(dropIns, error), end; !error && it != end; it.increment(error)) {
        if (it->path().extension() == ".conf") {
            extra.push_back(it->path());
        }
    }
    std::sort(extra.begin(), extra.end());
    for (const auto& path : extra) {
        merge(conf, path);
    }
    return conf;
}

std::string matchingEntry(const std::vector<std::string>& entries, const std::string& server,
                          const std::string& repository) {
    for (const auto& entry : entries) {
        auto slash = entry.find('/');
        auto host = entry.substr(0, slash);
        if (!hostMatches(host, server)) {
            continue;
        }
        if (slash == std::string::npos) {
            return entry;
        }
        auto path = entry.substr(slash + 1);
        if (repository == path || repository.rfind(path + "/", 0) == 0) {
            return entry;
        }
    }
    return "";
}

}  // namespace sarus
