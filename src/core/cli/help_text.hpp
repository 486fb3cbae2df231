// The help texts of sarus, in Sarus's layout ("Usage: ...", the description,
// then the options), so that what users and site documentation know still
// reads the same.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace sarus {

struct CommandDescription {
    std::string name;
    std::string usage;        // "sarus images [OPTIONS]"
    std::string description;  // one line
    std::string note;         // printed under the usage line, may be empty
};

// Every command, in alphabetical order.
const std::vector<CommandDescription>& commandDescriptions();
const CommandDescription* findCommand(const std::string& name);

// `sarus`, `sarus --help`, `sarus help`.
std::string generalHelp();

// `sarus help COMMAND`: usage, note, description and the options of the
// command's parser.
std::string commandHelp(const CommandDescription& command, const CLI::App& parser);

}  // namespace sarus
