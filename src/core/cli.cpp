#include "cli.hpp"

#include "commands/commands.hpp"
#include "config.hpp"
#include "error.hpp"
#include "log.hpp"
#include "suid/privileges.hpp"
#include "suid/security_checks.hpp"
#include "version.hpp"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <functional>
#include <map>
#include <optional>

namespace sarus {

namespace {

struct GlobalOptions {
    bool verbose = false;
    bool debug = false;
};

struct ConfigurationFiles {
    std::filesystem::path config;
    std::filesystem::path schema;
};

// A SUID sarus trusts its configuration only when nobody but root can
// change it; that check runs before the file is even parsed.
ConfigurationFiles trustedConfigurationFiles() {
    ConfigurationFiles files{Config::defaultConfigFile(), Config::installPrefix() / "etc" / "sarus.schema.json"};
    if (::getauxval(AT_SECURE) != 0) {  // started through the SUID bit, even if root is dropped by now
        suid::checkConfigurationFiles(files.config, files.schema);
    }
    return files;
}

Config loadConfig() {
    auto files = trustedConfigurationFiles();
    return Config::load(files.config, files.schema);
}

int notAvailable(const std::string& command) {
    throw Error("'sarus " + command + "' is not available yet in this version of sarus");
}

void addRunOptions(CLI::App* run, RunOptions& o, std::string& entrypoint) {
    run->add_flag("--centralized-repository", o.centralizedRepository,
                  "Use the centralized repository instead of the local one");
    run->add_flag("-t,--tty", o.tty, "Allocate a pseudo-TTY in the container");
    run->add_option("--entrypoint", entrypoint,
                    "Overwrite the default ENTRYPOINT of the image (no value: remove it)")
        ->expected(0, 1);
    run->add_option("--mount", o.mounts, "Mount custom directories into the container")
        ->allow_extra_args(false);
    run->add_option("--device", o.devices, "Mount a device into the container: HOST[:CONTAINER][:rwm]")
        ->allow_extra_args(false);
    run->add_option("-e,--env", o.env, "Set an environment variable in the container: NAME[=VALUE]")
        ->allow_extra_args(false);
    run->add_option("-w,--workdir", o.workdir, "Working directory inside the container");
    run->add_flag("--init", o.init,
                  "Run an init process inside the container that forwards signals and reaps processes");
    run->add_flag("-m,--mpi", o.mpi, "Enable MPI support");
    run->add_option("--mpi-type", o.mpiType, "Enable MPI support with a specific MPI hook type");
    run->add_flag("--glibc", o.glibc, "Enable the replacement of the container's glibc");
    run->add_flag("--ssh", o.ssh, "Enable SSH in the container");
    run->add_option("-n,--name", o.name, "Assign a name to the container");
    run->add_option("--annotation", o.annotations, "Add an OCI annotation KEY=VALUE")
        ->allow_extra_args(false);
    run->add_option("--pid", o.pid, "PID namespace: private (default) or host")
        ->check(CLI::IsMember({"private", "host"}));
    run->prefix_command();  // everything from the image on belongs to the container
}

void addPullOptions(CLI::App* pull, PullOptions& o) {
    pull->add_flag("--login", o.login, "Enter user credentials for private repository");
    pull->add_option("-u,--username", o.username, "Username for the registry");
    pull->add_flag("--password-stdin", o.passwordStdin, "Read the registry password from stdin");
    pull->add_option("--temp-dir", o.tempDir, "Temporary directory");
    pull->add_flag("--centralized-repository", o.centralizedRepository,
                   "Use the centralized repository instead of the local one");
    pull->add_option("REFERENCE", o.reference, "Image to pull")->required();
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
        ::setenv("SARUS_CONFIG_FILE", trustedConfigurationFiles().config.c_str(), 1);
    }
    std::fflush(stdout);
    std::fflush(stderr);
    ::execv(helper.c_str(), argv);
    throw systemError("cannot run " + helper.string() + " (the import helper of sarus)", errno);
}
#endif

}  // namespace

int runCli(int argc, char** argv) {
    suid::Privileges::initialize();
    // The caller's umask decides who else may read what sarus creates, but
    // never takes the owner's own access: under umask 777 a repository would
    // be created that its owner cannot use.
    ::umask(::umask(0) & 077);
    CLI::App app{"Sarus - an OCI-compatible container engine for HPC", "sarus"};
    app.set_version_flag("--version", std::string("sarus version ") + SARUS_VERSION);
    app.require_subcommand(0, 1);
    app.get_formatter()->column_width(32);
    GlobalOptions global;
    app.add_flag("--verbose", global.verbose, "Print more information while running");
    app.add_flag("--debug", global.debug, "Print debug information (implies --verbose)");

    std::string helpTopic;
    auto* help = app.add_subcommand("help", "Print help message about a command");
    help->add_option("COMMAND", helpTopic, "Command to describe");

    app.add_subcommand("version", "Show the sarus version information");

    ImagesOptions imagesOptions;
    auto* images = app.add_subcommand("images", "List images");
    images->add_flag("--digests", imagesOptions.digests, "Show digests");
    images->add_flag("--centralized-repository", imagesOptions.centralizedRepository,
                     "Use the centralized repository instead of the local one");

    LoadOptions loadOptions;
    auto* load = app.add_subcommand("load", "Load the contents of a tarball to create a filesystem image");
    load->add_option("--temp-dir", loadOptions.tempDir,
                     "Temporary directory (accepted for compatibility: layers are never expanded)");
    load->add_flag("--centralized-repository", loadOptions.centralizedRepository,
                   "Use the centralized repository instead of the local one");
    load->add_option("FILE", loadOptions.archive, "docker-archive or OCI archive to load")->required();
    load->add_option("NAME", loadOptions.name, "Name of the image: NAME[:TAG]")->required();

    RmiOptions rmiOptions;
    auto* rmi = app.add_subcommand("rmi", "Remove an image");
    rmi->add_flag("--centralized-repository", rmiOptions.centralizedRepository,
                  "Use the centralized repository instead of the local one");
    rmi->add_option("REFERENCE", rmiOptions.reference, "Image REPOSITORY[:TAG] as shown by 'sarus images'")
        ->required();

    PullOptions pullOptions;
    addPullOptions(app.add_subcommand("pull", "Pull an image from a registry"), pullOptions);

    RunOptions runOptions;
    std::string entrypoint;
    auto* run = app.add_subcommand("run", "Run a command in a new container");
    addRunOptions(run, runOptions, entrypoint);

    bool hooksMpiOnly = false;
    auto* hooks = app.add_subcommand("hooks", "List the configured OCI hooks");
    hooks->add_flag("--mpi", hooksMpiOnly, "List only the MPI hooks");
    app.add_subcommand("ps", "List the running containers");
    std::string killTarget;
    auto* kill = app.add_subcommand("kill", "Stop a running container");
    kill->add_option("CONTAINER", killTarget, "Name of the container")->required();
    bool overwriteKeys = false;
    auto* sshKeygen = app.add_subcommand("ssh-keygen", "Generate the SSH keys in the local repository");
    sshKeygen->add_flag("--overwrite", overwriteKeys, "Overwrite existing keys");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        // --help after a command describes that command.
        auto selected = app.get_subcommands();
        std::printf("%s", selected.empty() ? app.help().c_str() : selected[0]->help().c_str());
        return 0;
    } catch (const CLI::CallForVersion& e) {
        std::printf("%s\n", e.what());
        return 0;
    } catch (const CLI::ParseError& e) {
        auto selected = app.get_subcommands();
        std::string command = selected.empty() ? "" : " " + selected[0]->get_name();
        std::fprintf(stderr, "sarus: %s (see 'sarus help%s')\n", e.what(), command.c_str());
        return 1;
    }
    log::setLevel(global.debug ? log::Level::debug : global.verbose ? log::Level::verbose : log::Level::info);

    auto selected = app.get_subcommands();
    if (selected.empty()) {
        std::printf("%s", app.help().c_str());
        return 0;
    }
    auto* command = selected[0];
    const std::string name = command->get_name();
    try {
        // Only `run` in suid mode ever needs root again.
        if (name != "run") {
            suid::Privileges::dropPermanently();
        }
        if (name == "help") {
            if (helpTopic.empty()) {
                std::printf("%s", app.help().c_str());
                return 0;
            }
            for (auto* sub : app.get_subcommands({})) {
                if (sub->get_name() == helpTopic) {
                    std::printf("%s", sub->help().c_str());
                    return 0;
                }
            }
            throw Error("unknown command '" + helpTopic + "' (see 'sarus --help')");
        }
        if (name == "version") {
            std::printf("sarus version %s\n", SARUS_VERSION);
            return 0;
        }
        if (name == "ps") {
            return commandPs();
        }
        if (name == "kill") {
            return commandKill(killTarget);
        }
        if (name == "hooks") {
            return commandHooks(loadConfig(), hooksMpiOnly);
        }
        if (name == "ssh-keygen") {
            return notAvailable(name);
        }
        if (name == "run") {
            auto rest = command->remaining();
            if (rest.empty()) {
                throw Error("run: missing image (usage: sarus run [OPTIONS] REPOSITORY[:TAG] "
                            "[COMMAND] [ARG...])");
            }
            runOptions.image = rest[0];
            runOptions.command.assign(rest.begin() + 1, rest.end());
            if (run->count("--entrypoint") > 0) {
                runOptions.entrypoint = entrypoint;
            }
            auto config = loadConfig();
            if (config.mode() != Mode::suid) {
                suid::Privileges::dropPermanently();  // a SUID install in userns mode is unprivileged
            }
            return commandRun(config, runOptions);
        }
#ifdef SARUS_IMPORT_IN_HELPER
        if (name == "load" || name == "pull") {
            return execImportHelper(argv);
        }
#endif
        auto config = loadConfig();
        if (name == "images") {
            return commandImages(config, imagesOptions);
        }
#ifndef SARUS_IMPORT_IN_HELPER
        if (name == "load") {
            return commandLoad(config, loadOptions);
        }
        if (name == "pull") {
            return commandPull(config, pullOptions);
        }
#endif
        if (name == "rmi") {
            return commandRmi(config, rmiOptions);
        }
        throw Error("unhandled command '" + name + "'");
    } catch (const Error& e) {
        std::fprintf(stderr, "sarus: %s\n", e.what());
        if (log::enabled(log::Level::verbose)) {
            for (const auto& context : e.contexts()) {
                std::fprintf(stderr, "  while %s\n", context.c_str());
            }
        }
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sarus: unexpected error: %s\n", e.what());
        return 1;
    }
}

}  // namespace sarus
