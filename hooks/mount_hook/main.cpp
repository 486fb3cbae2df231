#include "mount_hook.hpp"

int main(int argc, char** argv) {
    return hook::runMountHook(std::vector<std::string>(argv + 1, argv + argc));
}
