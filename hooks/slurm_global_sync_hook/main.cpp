#include "slurm_global_sync.hpp"

int main() {
    return hook::runSlurmGlobalSyncHook();
}
