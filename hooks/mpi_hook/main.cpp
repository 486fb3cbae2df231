#include "mpi_hook.hpp"

int main() {
    return hook::runMpiHook();
}
