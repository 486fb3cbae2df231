/* The signals sarus forwards to a container, as Sarus: every signal but
 * SIGCHLD and SIGPIPE (a job's `--signal=ALRM@60`, SIGXCPU of a CPU limit,
 * SIGTSTP), less those the kernel raises for a fault of sarus's own, which
 * no handler may return from. C, for the rank agent too. */
#ifndef SARUS_FORWARDED_SIGNALS_H
#define SARUS_FORWARDED_SIGNALS_H

#include <signal.h>

/* Those that end the container: the rank agent passes them to every rank. */
#define SARUS_ENDING_SIGNALS SIGTERM, SIGINT, SIGHUP, SIGQUIT

/* The rest, which the rank agent leaves to the ranks. */
#define SARUS_OTHER_FORWARDED_SIGNALS                                                                  \
    SIGABRT, SIGUSR1, SIGUSR2, SIGALRM, SIGSTKFLT, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU, \
        SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR

#endif
