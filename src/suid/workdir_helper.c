/* sarus-workdir DIR COMMAND [ARG...]
 *
 * Runs in the container, as the container's user: enters DIR, then executes
 * COMMAND as the runtime would (PATH of the container's environment). A suid
 * sarus puts it in front of the container's command when the working
 * directory lies on a mount that the caller can change (a bind-mounted host
 * directory): the runtime, which runs as root, then has only "/" to enter,
 * and the caller's path is resolved with the caller's own permissions.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fputs("usage: sarus-workdir DIR COMMAND [ARG...]\n", stderr);
        return 127;
    }
    if (chdir(argv[1]) != 0) {
        fprintf(stderr, "sarus: cannot enter the working directory %s: %s\n", argv[1], strerror(errno));
        return 127;
    }
    execvp(argv[2], argv + 2);
    int error = errno;
    if (error == ENOENT && strchr(argv[2], '/') == NULL) {
        fprintf(stderr, "sarus: executable file `%s` not found in $PATH: %s\n", argv[2], strerror(error));
    } else {
        fprintf(stderr, "sarus: cannot execute `%s`: %s\n", argv[2], strerror(error));
    }
    return error == ENOENT ? 127 : 126;
}
