#include "cli/cli.hpp"

int main(int argc, char** argv) {
    return sarus::runCli(argc, argv);
}
