/* `ssh` inside a container run with --ssh: Dropbear's client on the port the
 * SSH hook wrote next to it, accepting the other containers' host keys
 * (their key is the user's own, made by `sarus ssh-keygen`). Static, so it
 * runs in any image, with or without a shell or a libc. OpenSSH's -x (no X11
 * forwarding, which Open MPI's launcher passes) is dropped: Dropbear never
 * forwards X11 and does not know the option. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DROPBEAR "/opt/oci-hooks/ssh/dropbear"

int main(int argc, char** argv) {
    char port[16] = "15263";
    FILE* file = fopen(DROPBEAR "/port", "r");
    if (file != NULL) {
        if (fgets(port, sizeof port, file) != NULL) {
            port[strcspn(port, "\n")] = '\0';
        }
        fclose(file);
    }
    char* args[argc + 5];
    int n = 0;
    args[n++] = "dbclient";
    args[n++] = "-y";
    args[n++] = "-p";
    args[n++] = port;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "-x") != 0) {
            args[n++] = argv[i];
        }
    }
    args[n] = NULL;
    execv(DROPBEAR "/bin/dbclient", args);
    perror("ssh: cannot execute " DROPBEAR "/bin/dbclient");
    return 127;
}
