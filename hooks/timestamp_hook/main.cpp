#include "timestamp_hook.hpp"

int main() {
    return hook::runTimestampHook();
}
