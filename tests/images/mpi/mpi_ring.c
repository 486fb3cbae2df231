/* mpi_ring: which MPI library is this, and does point-to-point work?
 *
 * Every rank prints "rank R of N library: <first line of
 * MPI_Get_library_version>", then a token goes once around the ring
 * (rank 0 sends 1, every other rank adds 1 and passes it on) and rank 0
 * prints "ring ok: token N" when it comes back as N. Exit status 0 on
 * success, 1 when the token is wrong. Works as a singleton (N = 1). */
#include <ctype.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

/* The first line of s, without leading or trailing white space. */
static char *first_line(char *s)
{
    char *end;

    s[strcspn(s, "\n")] = '\0';
    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int main(int argc, char **argv)
{
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int rank, size, len, token, status = 0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_library_version(version, &len);
    printf("rank %d of %d library: %s\n", rank, size, first_line(version));
    fflush(stdout);

    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    if (rank == 0) {
        MPI_Request req;
        int start = 1;
        /* non-blocking send: with one rank, rank 0 sends to itself */
        MPI_Isend(&start, 1, MPI_INT, next, 0, MPI_COMM_WORLD, &req);
        MPI_Recv(&token, 1, MPI_INT, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        if (token == size) {
            printf("ring ok: token %d\n", token);
        } else {
            printf("ring BROKEN: token %d, expected %d\n", token, size);
            status = 1;
        }
        fflush(stdout);
    } else {
        MPI_Recv(&token, 1, MPI_INT, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        token++;
        MPI_Send(&token, 1, MPI_INT, next, 0, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return status;
}
