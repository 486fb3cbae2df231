#include "amdgpu_hook.hpp"

int main() {
    return hook::runAmdGpuHook();
}
