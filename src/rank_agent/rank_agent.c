/*
 * sarus-rank-agent: the process of a container shared by the ranks of one
 * job step on one node (see src/core/jobs/rank_group.hpp). crun starts it as the
 * container's process, with every setting of the container (namespaces,
 * root, user, no capabilities, no_new_privs, seccomp) in place, and hands it
 * a listening Unix socket as descriptor 3. Each rank's sarus connects and
 * sends its command (rank_agent_protocol.h); the agent forks, gives the
 * child the rank's descriptors, working directory and environment and execs
 * the command, which therefore inherits exactly what crun set up. Nothing
 * is set up here: this is a fork and exec on request, not a runtime.
 *
 * Static, so that it runs in any image.
 */
#define _GNU_SOURCE
#include "common/forwarded_signals.h"
#include "rank_agent_protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define LISTEN_FD 3
#define MAX_RANKS 1024

/* The signals that end the container (passed on to every rank), and those
 * sarus forwards that are the ranks' alone. */
static const int ending_signals[] = {SARUS_ENDING_SIGNALS};
static const int rank_signals[] = {SARUS_OTHER_FORWARDED_SIGNALS};
#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* The agent serves every rank from one loop, so it never waits for one
 * client: a start message, or a signal number, that arrives in pieces is
 * kept here until it is whole. A client that stalls (stopped, or any process
 * of the user's that connects and sends half a message) holds up only its
 * own rank, not the others' starts, exit codes, signals or the container's
 * end. */
struct rank {
    int connection; /* -1 once its client hung up */
    pid_t pid;      /* 0 until started, -1 when it is to be dropped */
    struct rank_agent_start start;
    size_t start_received;
    int fds[RANK_AGENT_MAX_FDS];
    int fd_count;
    char *body; /* the strings, the CPU mask, the node mask */
    size_t body_size, body_received;
    unsigned char signal_number[sizeof(int32_t)];
    size_t signal_received;
};

static struct rank ranks[MAX_RANKS];
static size_t rank_count;
static int shutting_down;
static int ended_by_signal; /* the ending signal passed on to every rank */

static void fail(const char *what) {
    fprintf(stderr, "sarus-rank-agent: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void close_received(int *fds, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        close(fds[i]);
    }
}

/* What a rank's start message left: descriptors not yet handed on, its body. */
static void release_start(struct rank *rank) {
    close_received(rank->fds, (size_t)rank->fd_count);
    rank->fd_count = 0;
    free(rank->body);
    rank->body = NULL;
}

/* Reads what has arrived, never waits: 1 once `size` bytes are in, 0 for
 * more to come, -1 when the client hung up or failed. */
static int receive_more(int connection, void *buffer, size_t size, size_t *received) {
    while (*received < size) {
        ssize_t n = recv(connection, (char *)buffer + *received, size - *received, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        if (n <= 0) {
            return -1;
        }
        *received += (size_t)n;
    }
    return 1;
}

/* The header as it arrives, with the descriptors that come with its first
 * byte. 1 when it is whole, 0 for more to come, -1 when it is not one. */
static int receive_header(struct rank *rank) {
    union {
        struct cmsghdr align;
        char buffer[CMSG_SPACE(sizeof(int) * RANK_AGENT_MAX_FDS)];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {(char *)&rank->start + rank->start_received, sizeof rank->start - rank->start_received};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = sizeof control.buffer};
    ssize_t n;
    do {
        n = recvmsg(rank->connection, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    int too_many = 0;
    /* read only after data arrived: a failed recvmsg leaves the buffer as it was */
    for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&message) : NULL; c; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (got > RANK_AGENT_MAX_FDS) {
            got = RANK_AGENT_MAX_FDS; /* the kernel wrote no more than the buffer holds */
        }
        int received[RANK_AGENT_MAX_FDS];
        memcpy(received, CMSG_DATA(c), got * sizeof(int));
        for (size_t i = 0; i < got; ++i) {
            if (rank->fd_count < RANK_AGENT_MAX_FDS) {
                rank->fds[rank->fd_count++] = received[i];
            } else {
                close(received[i]);
                too_many = 1;
            }
        }
    }
    if (n == 0 || too_many || (message.msg_flags & MSG_CTRUNC)) {
        return -1;
    }
    rank->start_received += (size_t)n;
    if (rank->start_received < sizeof rank->start) {
        return 0;
    }
    const struct rank_agent_start *start = &rank->start;
    /* every string takes at least its NUL: argc and envc are bounded by size */
    if (start->magic != RANK_AGENT_MAGIC || start->size > RANK_AGENT_MAX_SIZE ||
        (start->argc > 0 && (uint64_t)start->argc + start->envc + 1 > start->size) ||
        start->cpus > RANK_AGENT_MAX_CPU_BYTES || start->nodes > RANK_AGENT_MAX_NODE_BYTES ||
        (start->argc > 0 && rank->fd_count < 3)) {
        return -1;
    }
    return 1;
}

/* The whole start message, in as many calls as it takes. */
static int receive_start(struct rank *rank) {
    if (rank->start_received < sizeof rank->start) {
        int header = receive_header(rank);
        if (header <= 0) {
            return header;
        }
        rank->body_size = (size_t)rank->start.size + rank->start.cpus + rank->start.nodes;
        /* zeroed beyond the node mask: set_mempolicy reads whole words */
        rank->body = calloc(rank->body_size + sizeof(unsigned long) + 1, 1);
        if (!rank->body) {
            return -1;
        }
    }
    return receive_more(rank->connection, rank->body, rank->body_size, &rank->body_received);
}

/* Splits `size` bytes of NUL-terminated strings into out[0..wanted-1]. */
static int split_strings(char *data, uint32_t size, char **out, uint32_t wanted) {
    uint32_t found = 0;
    char *p = data, *end = data + size;
    while (p < end && found < wanted) {
        char *nul = memchr(p, '\0', (size_t)(end - p));
        if (!nul) {
            return -1;
        }
        out[found++] = p;
        p = nul + 1;
    }
    return found == wanted && p == end ? 0 : -1;
}

static void reply(int connection, int32_t code) {
    if (connection < 0) {
        return;
    }
    ssize_t ignored = send(connection, &code, sizeof code, MSG_NOSIGNAL);
    (void)ignored;
}

/* mkdir -p, as the rank's user: sarus creates a missing -w directory. */
static int make_directories(char *path) {
    for (char *p = path + 1; *p; ++p) {
        if (*p == '/') {
            *p = '\0';
            int made = mkdir(path, 0755);
            *p = '/';
            if (made != 0 && errno != EEXIST) {
                return -1;
            }
        }
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* The CPUs and NUMA memory policy the launcher gave this rank (Slurm's
 * --cpu-bind and --mem-bind, numactl, Hydra's -bind-to), not the leader's,
 * which the agent has. */
static void bind_rank(int err, const struct rank_agent_start *start, const void *cpus, const void *nodes) {
    if (start->cpus > 0 && sched_setaffinity(0, start->cpus, (const cpu_set_t *)cpus) != 0) {
        dprintf(err, "sarus: cannot bind the rank to the CPUs it was given: %s\n", strerror(errno));
    }
    /* set_mempolicy reads one bit less than it is told (as numactl knows) */
    if (start->mempolicy >= 0 &&
        syscall(SYS_set_mempolicy, start->mempolicy, start->nodes > 0 ? nodes : NULL,
                start->nodes > 0 ? (unsigned long)start->nodes * 8 + 1 : 0UL) != 0) {
        dprintf(err, "sarus: cannot give the rank the memory policy it was given: %s\n", strerror(errno));
    }
}

/* In the forked child: the rank's descriptors as 0, 1, 2, 3, ..., then exec. */
static void exec_rank(int *fds, int count, char *cwd, char **argv, char **envp,
                      const struct rank_agent_start *start, const void *cpus, const void *nodes) {
    setsid(); /* its own process group: signals and the final kill reach all of it */
    bind_rank(fds[2], start, cpus, nodes);
    for (int i = 0; i < count; ++i) { /* above every target number first */
        int moved = fcntl(fds[i], F_DUPFD, count + LISTEN_FD + 1);
        if (moved < 0) {
            _exit(126);
        }
        fds[i] = moved;
    }
    for (int i = 0; i < count; ++i) {
        if (dup2(fds[i], i) < 0) {
            _exit(126);
        }
    }
    if (close_range((unsigned)count, ~0U, 0) != 0) { /* one call: a loop costs ms */
        for (int fd = count; fd < 1024; ++fd) {
            close(fd);
        }
    }
    /* The agent's handlers do nothing but note a signal: one that arrives
     * before the exec must do to the rank what it would do to the program. */
    for (size_t i = 0; i < COUNT(ending_signals); ++i) {
        signal(ending_signals[i], SIG_DFL);
    }
    for (size_t i = 0; i < COUNT(rank_signals); ++i) {
        signal(rank_signals[i], SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (chdir(cwd) != 0 && (errno != ENOENT || make_directories(cwd) != 0 || chdir(cwd) != 0)) {
        fprintf(stderr, "sarus: cannot enter the working directory %s: %s\n", cwd, strerror(errno));
        _exit(126);
    }
    extern char **environ;
    environ = envp; /* execvp searches the rank's PATH */
    execvp(argv[0], argv);
    int code = errno == ENOENT ? 127 : 126;
    fprintf(stderr, "sarus: cannot execute %s: %s\n", argv[0], strerror(errno));
    if (code == 127) { /* the line Sarus shows (runc's), as for a container of its own */
        fprintf(stderr, "level=error msg=\"exec: \\\"%s\\\": executable file not found in $PATH\"\n", argv[0]);
    }
    _exit(code);
}

/* A rank whose start message is whole: the container's end, or a command
 * to fork and exec. */
static void start_rank(struct rank *rank) {
    const struct rank_agent_start *start = &rank->start;
    if (start->argc > 0 && shutting_down) { /* ending: a rank that comes now is not started */
        reply(rank->connection, 128 + (ended_by_signal ? ended_by_signal : SIGTERM));
        rank->pid = -1;
        return;
    }
    if (start->argc == 0) { /* the container's end: no new ranks */
        shutting_down = 1;
        rank->pid = -1;
        return;
    }
    char **strings = calloc((size_t)start->argc + start->envc + 3, sizeof(char *));
    if (!strings || split_strings(rank->body, start->size, strings, 1 + start->argc + start->envc) != 0) {
        free(strings);
        rank->pid = -1;
        return;
    }
    char *cwd = strings[0];
    if (cwd[0] != '/') {
        dprintf(rank->fds[2], "sarus: the working directory '%s' is not absolute\n", cwd);
        free(strings);
        reply(rank->connection, 126);
        rank->pid = -1;
        return;
    }
    char **argv = strings + 1;
    char **envp = argv + start->argc + 1;
    memmove(envp, argv + start->argc, start->envc * sizeof(char *));
    argv[start->argc] = NULL;
    envp[start->envc] = NULL;
    const char *cpus = rank->body + start->size;
    const char *nodes = cpus + start->cpus;
    pid_t pid = fork();
    if (pid == 0) {
        close(rank->connection);
        exec_rank(rank->fds, rank->fd_count, cwd, argv, envp, start, cpus, nodes);
    }
    free(strings);
    release_start(rank);
    if (pid < 0) {
        reply(rank->connection, 126);
        rank->pid = -1;
        return;
    }
    rank->pid = pid;
}

/* Whatever arrived on a rank's connection: part or all of its start
 * message, or once it runs, signal numbers for it or the client's hang-up. */
static void serve_rank(struct rank *rank) {
    if (rank->pid == 0) {
        int received = receive_start(rank);
        if (received < 0) {
            rank->pid = -1;
        } else if (received > 0) {
            start_rank(rank);
        }
        return;
    }
    for (;;) {
        int received = receive_more(rank->connection, rank->signal_number, sizeof rank->signal_number,
                                    &rank->signal_received);
        if (received == 0) {
            return;
        }
        if (received < 0) {
            kill(-rank->pid, SIGKILL);
            close(rank->connection); /* killed; reaped later, nobody to tell */
            rank->connection = -1;
            return;
        }
        int32_t signal_number;
        memcpy(&signal_number, rank->signal_number, sizeof signal_number);
        rank->signal_received = 0;
        if (signal_number > 0 && signal_number < NSIG) {
            kill(-rank->pid, signal_number);
        }
    }
}

static void drop(size_t index) {
    release_start(&ranks[index]);
    if (ranks[index].connection >= 0) {
        close(ranks[index].connection);
    }
    ranks[index] = ranks[--rank_count];
}

static void reap(void) {
    for (;;) {
        /* looked at before it is reaped: until then its pid, and so its
         * process group's id, can be nobody else's */
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) {
            return;
        }
        pid_t pid = info.si_pid;
        size_t i = 0;
        while (i < rank_count && ranks[i].pid != pid) {
            ++i;
        }
        if (i < rank_count) {
            /* nothing of the rank's process group outlives it; a process that
             * left it (setsid) lives until the container ends (README) */
            kill(-pid, SIGKILL);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) {
            return;
        }
        if (i < rank_count) {
            reply(ranks[i].connection, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            drop(i);
        }
    }
}

static int running_ranks(void) {
    int running = 0;
    for (size_t i = 0; i < rank_count; ++i) {
        running += ranks[i].pid > 0;
    }
    return running;
}

/* The agent is PID 1 of the container's PID namespace: were it to end, the
 * kernel would SIGKILL every rank. A SIGTERM (scancel: Slurm signals every
 * process of the step, then waits KillWait before SIGKILL), SIGINT, SIGHUP
 * or SIGQUIT is passed on to every rank instead, and the agent ends once they
 * have; no new rank starts. The container's end when its leader is gone does
 * not wait for this: the sandbox is killed. */
static volatile sig_atomic_t ending_signal;

static void end_container(int signal_number) {
    ending_signal = signal_number;
}

/* The other signals sarus forwards (a job's checkpoint signals, e.g.
 * `scancel -s USR1` or `--signal=ALRM@60`) are for the ranks, which each
 * rank's sarus passes on: handled here, they neither end the container nor
 * make sarus end it in place of a PID 1 that lacks a handler
 * (runtime_signals.hpp); a handler, unlike SIG_IGN, is not inherited by the
 * ranks' programs. */
static void leave_to_the_ranks(int signal_number) {
    (void)signal_number;
}

int main(void) {
    struct sigaction ending = {0};
    ending.sa_handler = end_container;
    sigemptyset(&ending.sa_mask);
    sigset_t ends;
    sigemptyset(&ends);
    for (size_t s = 0; s < COUNT(ending_signals); ++s) {
        sigaction(ending_signals[s], &ending, NULL);
        sigaddset(&ends, ending_signals[s]);
    }
    struct sigaction unused = {0};
    unused.sa_handler = leave_to_the_ranks;
    sigemptyset(&unused.sa_mask);
    unused.sa_flags = SA_RESTART;
    for (size_t s = 0; s < COUNT(rank_signals); ++s) {
        sigaction(rank_signals[s], &unused, NULL);
    }
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    sigprocmask(SIG_BLOCK, &child, NULL);
    /* the ending signals are delivered only inside ppoll, so none is missed
     * between the check and the wait; SIGCHLD stays blocked for signalfd */
    sigset_t waiting;
    sigprocmask(SIG_BLOCK, &ends, &waiting);
    int children = signalfd(-1, &child, SFD_CLOEXEC);
    if (children < 0) {
        fail("signalfd");
    }
    if (fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC) != 0) {
        fail("the listening socket (descriptor 3)");
    }
    static struct pollfd polled[MAX_RANKS + 2];
    while (!shutting_down || running_ranks() > 0) {
        if (ending_signal) {
            ended_by_signal = ending_signal;
            ending_signal = 0;
            shutting_down = 1;
            for (size_t i = 0; i < rank_count; ++i) {
                /* before its setsid, the group is not there yet */
                if (ranks[i].pid > 0 && kill(-ranks[i].pid, ended_by_signal) != 0 && errno == ESRCH) {
                    kill(ranks[i].pid, ended_by_signal);
                }
            }
            continue;
        }
        polled[0] = (struct pollfd){children, POLLIN, 0};
        /* full: new ranks wait in the backlog instead of making poll spin */
        polled[1] = (struct pollfd){shutting_down || rank_count >= MAX_RANKS ? -1 : LISTEN_FD, POLLIN, 0};
        for (size_t i = 0; i < rank_count; ++i) {
            polled[2 + i] = (struct pollfd){ranks[i].connection, POLLIN, 0};
        }
        if (ppoll(polled, rank_count + 2, NULL, &waiting) < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("poll");
        }
        if (polled[0].revents) {
            struct signalfd_siginfo info;
            ssize_t ignored = read(children, &info, sizeof info);
            (void)ignored;
            reap();
            continue; /* indices changed */
        }
        for (size_t i = rank_count; i-- > 0;) {
            if (polled[2 + i].revents && ranks[i].connection >= 0) {
                serve_rank(&ranks[i]);
            }
            if (ranks[i].pid == -1) {
                drop(i);
            }
        }
        if (polled[1].revents && rank_count < MAX_RANKS) {
            int connection = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (connection >= 0) {
                ranks[rank_count++] = (struct rank){.connection = connection};
            }
        }
    }
    return ended_by_signal ? 128 + ended_by_signal : 0;
}
