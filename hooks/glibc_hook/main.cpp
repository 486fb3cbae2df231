#include "glibc_hook.hpp"

int main() {
    return hook::runGlibcHook();
}
