/* mpi_pingpong: 2-rank ping-pong latency and bandwidth.
 *
 *   mpiexec -n 2 mpi_pingpong [MULTIPLIER]
 *
 * For message sizes 1 B, 4 B, 16 B ... 4 MiB, ranks 0 and 1 bounce a message
 * back and forth: a warm-up, then timed round trips (fewer for big
 * messages; MULTIPLIER, default 1, scales the counts, e.g. 0.1 for a quick
 * check). Rank 0 prints '#' header lines, then one line per size:
 *
 *   SIZE_BYTES LATENCY_US BANDWIDTH_MBPS
 *
 * latency = half a round trip in microseconds, bandwidth = SIZE / latency
 * in MB/s (10^6 bytes per second). Ranks above 1 only wait. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZE (4 << 20)
#define BASE_ITERS 1000
#define MIN_ITERS 20

/* Round trips for one message size: BASE_ITERS up to 16 KiB, then
 * proportionally fewer (same bytes moved), at least MIN_ITERS; scaled. */
static int iterations(long size, double multiplier)
{
    long n = size <= 16384 ? BASE_ITERS : BASE_ITERS * 16384L / size;
    if (n < MIN_ITERS)
        n = MIN_ITERS;
    n = (long)(n * multiplier);
    return n < 1 ? 1 : (int)n;
}

static void bounce(char *buf, long size, int count, int rank)
{
    for (int i = 0; i < count; i++) {
        if (rank == 0) {
            MPI_Send(buf, (int)size, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, (int)size, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, (int)size, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)size, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
        }
    }
}

int main(int argc, char **argv)
{
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int rank, size, len;
    double multiplier = argc > 1 ? atof(argv[1]) : 1.0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2 || multiplier <= 0) {
        if (rank == 0)
            fprintf(stderr, "mpi_pingpong: needs 2 ranks (have %d) and a positive "
                            "MULTIPLIER\n", size);
        MPI_Finalize();
        return 1;
    }
    char *buf = malloc(MAX_SIZE);
    memset(buf, 'x', MAX_SIZE);
    if (rank == 0) {
        MPI_Get_library_version(version, &len);
        version[strcspn(version, "\n")] = '\0';
        printf("# mpi_pingpong, %s, multiplier %g\n", version, multiplier);
        printf("# size_bytes latency_us bandwidth_MBps\n");
        fflush(stdout);
    }
    for (long msg = 1; msg <= MAX_SIZE; msg *= 4) {
        int iters = iterations(msg, multiplier);
        bounce(buf, msg, iters / 10 + 1, rank);          /* warm-up */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        bounce(buf, msg, iters, rank);
        double latency_us = (MPI_Wtime() - t0) * 1e6 / (2.0 * iters);
        if (rank == 0) {
            printf("%ld %.3f %.2f\n", msg, latency_us, msg / latency_us);
            fflush(stdout);
        }
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
