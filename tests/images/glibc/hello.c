/* hello: prints the version of the glibc it runs with, e.g.
 * "hello from glibc 2.36". Built against bookworm's glibc 2.36, it needs
 * symbol version GLIBC_2.34 (__libc_start_main) and so cannot start with
 * an older glibc. */
#include <gnu/libc-version.h>
#include <stdio.h>

int main(void)
{
    printf("hello from glibc %s\n", gnu_get_libc_version());
    return 0;
}
