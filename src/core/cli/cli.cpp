#include "cli/cli.hpp"

#include "commands/commands.hpp"
#include "config/config.hpp"
#include "runtime/container_spec.hpp"
#include "common/error.hpp"
#include "cli/help_text.hpp"
#include "common/log.hpp"
#include "common/log_line.hpp"
#include "suid/privileges.hpp"
#include "suid/security_checks.hpp"
#include "version.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sarus {

namespace {

// "<message>\nSee 'sarus help [COMMAND]'": Sarus's words for a command line
// it cannot use, which site scripts and documentation know.
Error usageError(const std::string& message, const std::string& command) {
    return Error(message + "\nSee 'sarus help" + (command.empty() ? "" : " " + command) + "'");
}

// A root-owned SUID installation checks its configuration on every
// invocation, whoever calls it and whatever the command, as Sarus does: the
// file is what root will trust.
bool installedSuidRoot() {
    struct stat st {};
    return ::stat("/proc/self/exe", &st) == 0 && st.st_uid == 0 && (st.st_mode & S_ISUID);
}

struct ConfigurationFiles {
    std::filesystem::path config;
    std::filesystem::path schema;
};

ConfigurationFiles configurationFiles() {
    return {Config::defaultConfigFile(), Config::installPrefix() / "etc" / "sarus.schema.json"};
}

Config loadConfig() {
    auto files = configurationFiles();
    return Config::load(files.config, files.schema);
}

struct Parsers {
    RunOptions run;
    std::string entrypoint;
    PullOptions pull;
    LoadOptions load;
    RmiOptions rmi;
    ImagesOptions images;
    BundleOptions bundle;
    bool hooksMpiOnly = false;
    std::string killTarget;
    bool overwriteKeys = false;
    std::string helpTopic;
    std::map<std::string, std::unique_ptr<CLI::App>> apps;

    Parsers() {
        for (const auto& command : commandDescriptions()) {
            apps[command.name] = std::make_unique<CLI::App>(command.description, command.name);
        }
        addRunOptions(*apps["run"]);
        addPullOptions(*apps["pull"]);
        auto& loadApp = *apps["load"];
        loadApp.add_option("--temp-dir", load.tempDir, "Temporary directory where the image is unpacked");
        loadApp.add_flag("--centralized-repository", load.centralizedRepository,
                         "Use centralized repository instead of the local one");
        loadApp.add_option("FILE", load.archive)->required();
        loadApp.add_option("NAME", load.name)->required();
        auto& rmiApp = *apps["rmi"];
        rmiApp.add_flag("--centralized-repository", rmi.centralizedRepository,
                        "Use centralized repository instead of the local one");
        rmiApp.add_option("REFERENCE", rmi.reference)->required();
        auto& imagesApp = *apps["images"];
        imagesApp.add_flag("--digests", images.digests, "Show digests");
        imagesApp.add_flag("--centralized-repository", images.centralizedRepository,
                           "Use centralized repository instead of the local one");
        apps["hooks"]->add_flag("-m,--mpi", hooksMpiOnly, "Only list MPI hooks and display corresponding MPI types");
        apps["kill"]->add_option("NAME", killTarget)->required();
        apps["ssh-keygen"]->add_flag("--overwrite", overwriteKeys, "Overwrite the SSH keys if they already exist");
        apps["help"]->add_option("COMMAND", helpTopic);
        auto& bundleApp = *apps["bundle"];
        bundleApp.add_flag("--centralized-repository", bundle.centralizedRepository,
                           "Use centralized repository instead of the local one");
        bundleApp.add_option("IMAGE", bundle.image)->required();
        bundleApp.add_option("DIR", bundle.directory)->required();
    }

    void addRunOptions(CLI::App& app) {
        app.add_option("--annotation", run.annotations,
                       "Add an annotation to the container (key=value), for the OCI hooks to read")
            ->allow_extra_args(false);
        app.add_flag("--centralized-repository", run.centralizedRepository,
                     "Use centralized repository instead of the local one");
        app.add_option("--device", run.devices,
                       "Mount a device into the container: HOST[:CONTAINER][:ACCESS], ACCESS of 'rwm'")
            ->allow_extra_args(false);
        // A bare --entrypoint removes it, as the Sarus documentation shows.
        app.add_option("--entrypoint", entrypoint,
                       "Overwrite the default ENTRYPOINT of the image ('' or no value removes it)")
            ->expected(0, 1);
        app.add_option("-e,--env", run.env, "Set environment variables in the container: NAME[=VALUE]")
            ->allow_extra_args(false);
        app.add_flag("--glibc", run.glibc, "Enable replacement of the container's GNU C libraries");
        app.add_flag("--init", run.init,
                     "Run an init process inside the container that forwards signals and reaps processes");
        app.add_option("--mount", run.mounts, "Mount custom files and directories into the container")
            ->allow_extra_args(false);
        app.add_flag("-m,--mpi", run.mpi, "Enable MPI support. Implies '--glibc'");
        app.add_option("--mpi-type", run.mpiType,
                       "Enable MPI support for a specific MPI implementation. Implies '--mpi' and '--glibc'");
        app.add_option("-n,--name", run.name, "Assign a name to the container");
        app.add_option("--pid", run.pid,
                       "Set the PID namespace mode for the container. Supported values: 'host', 'private'. "
                       "Default: 'private' (Sarus 1.7: the host's PID namespace)");
        app.add_flag("--ssh", run.ssh, "Enable SSH in the container. Implies '--pid=private'");
        app.add_flag("-t,--tty", run.tty, "Allocate a pseudo-TTY in the container");
        app.add_option("-w,--workdir", run.workdir, "Set working directory inside the container");
        app.prefix_command();  // everything from the image on belongs to the container
    }

    void addPullOptions(CLI::App& app) {
        app.add_option("--temp-dir", pull.tempDir, "Temporary directory where the image is unpacked");
        app.add_flag("--login", pull.login, "Enter user credentials for private repository");
        app.add_flag("--password-stdin", pull.passwordStdin, "Read password from stdin");
        app.add_option("-u,--username", pull.username, "Username for private repository");
        app.add_flag("--centralized-repository", pull.centralizedRepository,
                     "Use centralized repository instead of the local one");
        app.add_option("REFERENCE", pull.reference)->required();
    }
};

// As Sarus groups its arguments: "-x" and "--x" are options; "-", "--" and
// "---x" are not, so they are taken for a command's name.
bool isSarusOption(const std::string& arg) {
    return (arg.size() > 1 && arg[0] == '-' && arg[1] != '-') ||
           (arg.size() > 2 && arg[0] == '-' && arg[1] == '-' && arg[2] != '-');
}

std::size_t indexOf(const std::vector<std::string>& args, const std::string& value) {
    return static_cast<std::size_t>(std::find(args.begin(), args.end(), value) - args.begin());
}

bool takesValue(const CLI::App& app, const std::string& name) {
    const auto* option = app.get_option_no_throw(name);
    return option != nullptr && option->get_type_size() != 0 && option->get_expected_max() != 0;
}

// `--entrypoint` may go without its value: CLI11 then takes no option-like
// argument for it.
bool valueIsOptional(const CLI::App& app, const std::string& name) {
    const auto* option = app.get_option_no_throw(name);
    return option != nullptr && option->get_expected_min() == 0;
}

// Sarus's parser (boost's, unix_style) takes an unambiguous prefix of a
// long option for the option (`--verb`, `--work=/x`); an exact name wins
// (`--mpi` over `--mpi-type`). Returns name itself when nothing matches.
std::string fullOptionName(const std::string& name, const std::vector<std::string>& longNames,
                           const std::string& command) {
    if (name.size() < 3 || name.compare(0, 2, "--") != 0 || name[2] == '-' ||
        std::find(longNames.begin(), longNames.end(), name) != longNames.end()) {
        return name;
    }
    std::vector<std::string> matches;
    for (const auto& full : longNames) {
        if (full.compare(0, name.size(), name) == 0) {
            matches.push_back(full);
        }
    }
    if (matches.size() > 1) {  // in boost's words
        std::sort(matches.begin(), matches.end());
        std::string listed;
        for (std::size_t i = 0; i + 1 < matches.size(); ++i) {
            listed += "'" + matches[i] + "', ";
        }
        throw usageError("option '" + name + "' is ambiguous and matches " + listed + "and '" + matches.back() + "'",
                         command);
    }
    return matches.empty() ? name : matches.front();
}

std::vector<std::string> longNamesOf(const CLI::App& app) {
    std::vector<std::string> names;
    for (const auto* option : app.get_options()) {
        for (const auto& name : option->get_lnames()) {
            names.push_back("--" + name);
        }
    }
    return names;
}

// Prefixes of long options become their names (see fullOptionName), and
// `--mpi-type=` names an empty value, as for Sarus (boost's parser), where
// CLI11 reads a missing one and takes the next argument instead (the
// image): it becomes `--mpi-type ""`. Only the options before the first
// positional argument: what follows the image is the container's command.
std::vector<std::string> normalizedOptions(const CLI::App& app, const std::string& command,
                                           const std::vector<std::string>& args) {
    auto longNames = longNamesOf(app);
    std::vector<std::string> out;
    std::size_t i = 0;
    for (; i < args.size(); ++i) {
        auto arg = args[i];
        if (arg == "--" || arg.size() < 2 || arg[0] != '-') {
            break;
        }
        auto equals = arg.find('=');
        auto name = fullOptionName(arg.substr(0, equals), longNames, command);
        arg = name + (equals == std::string::npos ? "" : arg.substr(equals));
        equals = arg.find('=');
        if (equals == arg.size() - 1 && arg.compare(0, 2, "--") == 0 && takesValue(app, name)) {
            out.push_back(name);
            out.emplace_back();
            continue;
        }
        out.push_back(arg);
        if (equals == std::string::npos && takesValue(app, name) && i + 1 < args.size() &&
            !(valueIsOptional(app, name) && args[i + 1].size() > 1 && args[i + 1][0] == '-')) {
            out.push_back(args[++i]);  // its value, whatever it looks like
        }
    }
    out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
    return out;
}

// Parses a command's arguments with CLI11 and turns what it cannot use into
// Sarus's messages. Returns false when the command's help was asked for.
bool parseCommand(CLI::App& app, const std::string& command, const std::vector<std::string>& args) {
    app.allow_extras();
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        return false;
    } catch (const CLI::ArgumentMismatch& e) {
        std::string what = e.what();
        auto option = what.substr(0, what.find(':'));
        if (what.find("At Most") != std::string::npos) {
            throw usageError("option '" + option + "' cannot be specified more than once", command);
        }
        throw usageError("the required argument for option '" + option + "' is missing", command);
    } catch (const CLI::RequiredError&) {
        throw usageError("Too few arguments for command '" + command + "'", command);
    } catch (const CLI::ParseError& e) {
        throw usageError(e.what(), command);
    }
    if (command == "run") {
        return true;  // the image and its command are the remaining arguments
    }
    auto extras = app.remaining();
    if (extras.empty()) {
        return true;
    }
    // An option before the positional arguments is not one of the command's;
    // after them, Sarus takes everything as one more argument.
    std::size_t lastPositional = 0;
    for (const auto* option : app.get_options()) {
        if (!option->nonpositional() && option->count() > 0) {
            lastPositional = std::max(lastPositional, indexOf(args, option->results().back()) + 1);
        }
    }
    const auto& first = extras.front();
    if (first.size() > 1 && first[0] == '-' && indexOf(args, first) < lastPositional) {
        throw usageError("unrecognised option '" + first + "'", command);
    }
    if (first.size() > 1 && first[0] == '-' && lastPositional == 0) {
        throw usageError("unrecognised option '" + first + "'", command);
    }
    throw usageError("Too many arguments for command '" + command + "'", command);
}

// help, version and ps take nothing at all.
void refuseArguments(const std::string& command, const std::vector<std::string>& args) {
    for (const auto& arg : args) {
        if (arg.size() > 1 && arg[0] == '-') {
            throw Error("Command '" + command + "' doesn't support options" +
                        (command == "help" ? "" : "\nSee 'sarus help " + command + "'"));
        }
    }
    if (!args.empty()) {
        throw usageError("Too many arguments for command '" + command + "'", command);
    }
}

// What Sarus refuses before it looks at the image.
void validateRunOptions(const RunOptions& options) {
    if (!options.workdir.empty() && options.workdir[0] != '/') {
        throw usageError("The working directory '" + options.workdir + "' is invalid, it needs to be an absolute path.",
                         "run");
    }
    if (options.pid != "host" && options.pid != "private") {
        throw usageError("Incorrect value provided for --pid option: '" + options.pid +
                             "'. Supported values: 'host', 'private'.",
                         "run");
    }
    if (options.ssh && options.pid == "host") {
        throw usageError("The use of '--ssh' is incompatible with '--pid=host'. "
                         "The SSH hook requires the use of a private PID namespace",
                         "run");
    }
    // The syntax of every value, by the same pure functions that use them later.
    buildEnvironment({}, {}, nlohmann::json(), options.env);
    buildAnnotations({}, options, "");
    for (const auto& mount : options.mounts) {
        parseMount(mount);
    }
    // As Sarus does, before the image is looked up; the backends check the
    // node again when they use it.
    for (const auto& device : options.devices) {
        statDeviceNode(parseDevice(device));
    }
}

#ifdef SARUS_IMPORT_IN_HELPER
// load and pull live in <prefix>/libexec/sarus/sarus-import: the libraries
// they need (libarchive, libcurl and their dependency trees) would otherwise
// cost every `sarus run` milliseconds of dynamic linking. Root is already
// dropped here; a SUID sarus passes its own, checked configuration on.
int execImportHelper(char** argv) {
    auto helper = Config::installPrefix() / "libexec" / "sarus" / "sarus-import";
    if (::getauxval(AT_SECURE) != 0) {
        suid::checkRootOwnedAndNotWritable(helper);
        ::setenv("SARUS_CONFIG_FILE", configurationFiles().config.c_str(), 1);
    }
    std::fflush(stdout);
    std::fflush(stderr);
    ::execv(helper.c_str(), argv);
    throw systemError("cannot run " + helper.string() + " (the import helper of sarus)", errno);
}
#endif

int runCommand(const std::string& name, const std::vector<std::string>& args, Parsers& parsers, char** argv) {
    auto& app = *parsers.apps.at(name);
    app.set_help_flag("--help", "Print help");  // no -h: Sarus has none
    const auto& description = *findCommand(name);
    if (name == "help" || name == "version" || name == "ps") {
        if (name == "help" && args.size() == 1 && args[0][0] != '-') {
            parsers.helpTopic = args[0];
        } else {
            refuseArguments(name, args);
        }
    } else if (!parseCommand(app, name, normalizedOptions(app, name, args))) {
        std::printf("%s", commandHelp(description, app).c_str());
        return 0;
    }
    // Only `run` in suid mode ever needs root again.
    if (name != "run") {
        suid::Privileges::dropPermanently();
    }
    if (name == "help") {
        if (parsers.helpTopic.empty()) {
            std::printf("%s", generalHelp().c_str());
            return 0;
        }
        const auto* topic = findCommand(parsers.helpTopic);
        if (topic == nullptr) {
            throw usageError("'" + parsers.helpTopic + "' is not a Sarus command", "");
        }
        std::printf("%s", commandHelp(*topic, *parsers.apps.at(topic->name)).c_str());
        return 0;
    }
    if (name == "version") {
        log::verbose("the sarus engine " SARUS_ENGINE_VERSION ", with the command line of Sarus " SARUS_VERSION);
        std::printf("%s\n", SARUS_VERSION);
        return 0;
    }
    if (name == "ps") {
        return commandPs();
    }
    if (name == "kill") {
        return commandKill(parsers.killTarget);
    }
    if (name == "hooks") {
        return commandHooks(loadConfig(), parsers.hooksMpiOnly);
    }
    if (name == "ssh-keygen") {
        auto config = loadConfig();
        suid::Privileges::dropPermanently();
        return commandSshKeygen(config, parsers.overwriteKeys);
    }
    if (name == "run") {
        auto rest = app.remaining();
        if (rest.empty()) {
            throw usageError("Too few arguments for command 'run'", "run");
        }
        if (rest[0].size() > 1 && rest[0][0] == '-') {
            throw usageError("unrecognised option '" + rest[0] + "'", "run");
        }
        auto& options = parsers.run;
        options.image = rest[0];
        options.command.assign(rest.begin() + 1, rest.end());
        if (app.count("--entrypoint") > 0) {
            options.entrypoint = parsers.entrypoint;
        }
        if (app.count("--mpi-type") > 0 && options.mpiType.empty()) {
            throw usageError("Empty value provided for --mpi-type option", "run");
        }
        if (app.count("--workdir") > 0 && options.workdir.empty()) {
            throw usageError("The working directory '' is invalid, it needs to be an absolute path.", "run");
        }
        validateRunOptions(options);
        auto config = loadConfig();
        if (config.mode() != Mode::suid) {
            suid::Privileges::dropPermanently();  // a SUID install in userns mode is unprivileged
        }
        return commandRun(config, options);
    }
    if (name == "pull" && app.count("--username") > 0 && parsers.pull.username.empty()) {
        throw Error("Invalid username: empty value provided");
    }
#ifdef SARUS_IMPORT_IN_HELPER
    if (name == "load" || name == "pull") {
        return execImportHelper(argv);
    }
#else
    (void)argv;
#endif
    auto config = loadConfig();
    if (name == "images") {
        return commandImages(config, parsers.images);
    }
    if (name == "bundle") {
        return commandBundle(config, parsers.bundle);
    }
#ifndef SARUS_IMPORT_IN_HELPER
    if (name == "load") {
        return commandLoad(config, parsers.load);
    }
    if (name == "pull") {
        return commandPull(config, parsers.pull);
    }
#endif
    if (name == "rmi") {
        return commandRmi(config, parsers.rmi);
    }
    throw Error("unhandled command '" + name + "'");
}

}  // namespace

int runCli(int argc, char** argv) {
    if (argc < 1) {
        std::fputs("sarus: started without a program name (argv[0])\n", stderr);
        return 1;
    }
    suid::Privileges::initialize();
    // An ignored SIGCHLD survives exec: under a parent that ignores it
    // (some daemons and launchers do), children would be reaped by the
    // kernel and no wait for the sandbox, crun or a helper could succeed.
    ::signal(SIGCHLD, SIG_DFL);
    // The caller's umask decides who else may read what sarus creates, but
    // never takes the owner's own access: under umask 777 a repository would
    // be created that its owner cannot use.
    ::umask(::umask(0) & 077);
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (installedSuidRoot()) {
            auto files = configurationFiles();
            suid::checkConfigurationFiles(files.config, files.schema);
        }
        // Sarus's global options come before the command and only there.
        bool verbose = false;
        bool debug = false;
        std::size_t next = 0;
        for (; next < args.size() && isSarusOption(args[next]); ++next) {
            auto option = fullOptionName(args[next], {"--debug", "--help", "--verbose", "--version"}, "");
            if (option == "--help") {
                std::printf("%s", generalHelp().c_str());
                return 0;
            }
            if (option == "--version") {
                std::printf("%s\n", SARUS_VERSION);
                return 0;
            }
            if (option == "--verbose") {
                verbose = true;
            } else if (option == "--debug") {
                debug = true;
            } else {
                throw usageError("unrecognised option '" + option + "'", "");
            }
        }
        log::setLevel(debug ? log::Level::debug : verbose ? log::Level::verbose : log::Level::info);
        if (next == args.size()) {
            std::printf("%s", generalHelp().c_str());
            return 0;
        }
        const auto& name = args[next];
        if (findCommand(name) == nullptr) {
            throw usageError("'" + name + "' is not a Sarus command", "");
        }
        Parsers parsers;
        return runCommand(name, std::vector<std::string>(args.begin() + static_cast<long>(next) + 1, args.end()),
                          parsers, argv);
    } catch (const Error& e) {
        std::fprintf(stderr, "%s\n", log::printableText(e.what()).c_str());
        if (log::enabled(log::Level::verbose)) {
            for (const auto& context : e.contexts()) {
                std::fprintf(stderr, "  while %s\n", log::printableText(context).c_str());
            }
        }
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected error: %s\n", log::printableText(e.what()).c_str());
        return 1;
    }
}

}  // namespace sarus
