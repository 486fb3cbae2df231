#include "cli/help_text.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <sstream>

namespace sarus {

namespace {

constexpr std::size_t lineLength = 80;

// "  --name arg    description", descriptions wrapped under their column.
std::string optionsTable(const std::vector<std::pair<std::string, std::string>>& rows) {
    std::size_t width = 0;
    for (const auto& row : rows) {
        width = std::max(width, row.first.size() + 4);
    }
    width = std::min(width, lineLength / 2);
    std::ostringstream out;
    for (const auto& [names, description] : rows) {
        auto line = "  " + names;
        if (line.size() + 1 > width) {
            out << line << "\n";
            line.clear();
        }
        line.resize(width, ' ');
        std::size_t used = 0;
        std::istringstream words(description);
        for (std::string word; words >> word;) {
            if (used > 0 && width + used + 1 + word.size() > lineLength) {
                out << line << "\n";
                line = std::string(width, ' ');
                used = 0;
            }
            line += (used > 0 ? " " : "") + word;
            used += (used > 0 ? 1 : 0) + word.size();
        }
        out << line << "\n";
    }
    return out.str();
}

// Boost's spelling: "-t [ --tty ]", "--mount arg".
std::string optionNames(const CLI::Option& option) {
    std::string names;
    auto shorts = option.get_snames();
    auto longs = option.get_lnames();
    if (!shorts.empty() && !longs.empty()) {
        names = "-" + shorts[0] + " [ --" + longs[0] + " ]";
    } else if (!longs.empty()) {
        names = "--" + longs[0];
    } else if (!shorts.empty()) {
        names = "-" + shorts[0];
    }
    if (option.get_type_size() != 0 && option.get_expected_max() != 0) {
        names += " arg";
    }
    return names;
}

}  // namespace

const std::vector<CommandDescription>& commandDescriptions() {
    static const std::vector<CommandDescription> commands = {
        {"bundle", "sarus bundle [OPTIONS] REPOSITORY[:TAG] DIR",
         "Create an OCI bundle of an image for Slurm's srun --container",
         "Note: REPOSITORY[:TAG] has to be specified as\n      displayed by the \"sarus images\" command.\n"
         "      DIR must be new or empty; the bundle holds no copy of the image."},
        {"help", "sarus help [COMMAND]", "Print help message about a command", ""},
        {"hooks", "sarus hooks [OPTIONS]", "List configured hooks", ""},
        {"images", "sarus images [OPTIONS]", "List locally available images", ""},
        {"kill", "sarus kill [NAME]", "Kill a running container", ""},
        {"load", "sarus load [OPTIONS] FILE NAME[:TAG]", "Load the contents of a tarball to create a filesystem image",
         ""},
        {"ps", "sarus ps", "List running containers", ""},
        {"pull", "sarus pull [OPTIONS] REPOSITORY[:TAG]", "Pull an image from a registry", ""},
        {"rmi", "sarus rmi REPOSITORY[:TAG]", "Remove an image",
         "Note: REPOSITORY[:TAG] has to be specified as\n      displayed by the \"sarus images\" command."},
        {"run", "sarus run [OPTIONS] REPOSITORY[:TAG] [COMMAND] [ARG...]", "Run a command in a new container",
         "Note: REPOSITORY[:TAG] has to be specified as\n      displayed by the \"sarus images\" command."},
        {"ssh-keygen", "sarus ssh-keygen [OPTIONS]", "Generate the SSH keys in the local repository", ""},
        {"version", "sarus version", "Show the Sarus version information", ""},
    };
    return commands;
}

const CommandDescription* findCommand(const std::string& name) {
    const auto& commands = commandDescriptions();
    auto it = std::find_if(commands.begin(), commands.end(), [&](const auto& c) { return c.name == name; });
    return it == commands.end() ? nullptr : &*it;
}

std::string generalHelp() {
    std::ostringstream out;
    out << "Usage: sarus COMMAND\n\nOptions:\n"
        << optionsTable({{"--help", "Print help"},
                         {"--version", "Print version information and quit"},
                         {"--debug", "Enable debug mode (print all log messages with DEBUG level or higher)"},
                         {"--verbose", "Enable verbose mode (print all log messages with INFO level or higher)"}})
        << "\nCommands:\n";
    for (const auto& command : commandDescriptions()) {
        auto name = command.name;
        name.resize(13, ' ');
        out << "   " << name << command.description << "\n";
    }
    out << "\nRun 'sarus help COMMAND' for more information about a command\n";
    return out.str();
}

std::string commandHelp(const CommandDescription& command, const CLI::App& parser) {
    std::ostringstream out;
    out << "Usage: " << command.usage << "\n";
    if (!command.note.empty()) {
        out << "\n" << command.note << "\n";  // part of the usage in Sarus's layout
    }
    out << "\n" << command.description << "\n";
    std::vector<std::pair<std::string, std::string>> rows;
    for (const auto* option : parser.get_options()) {
        if (option->get_group().empty() || !option->nonpositional() || option->get_name() == "--help") {
            continue;
        }
        rows.emplace_back(optionNames(*option), option->get_description());
    }
    if (!rows.empty()) {
        out << "\nOptions:\n" << optionsTable(rows);
    }
    return out.str();
}

}  // namespace sarus
