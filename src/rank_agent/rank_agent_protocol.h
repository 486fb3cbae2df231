/*
 * What sarus and sarus-rank-agent say to each other over the agent's Unix
 * socket (see rank_agent.c). One connection is one rank:
 *
 *   client -> agent  a start message: the header below, then `size` bytes of
 *                    NUL-terminated strings: the working directory, `argc`
 *                    arguments, `envc` NAME=VALUE entries; then `cpus` bytes
 *                    of the rank's CPU affinity mask (sched_getaffinity), then
 *                    `nodes` bytes of the node mask of its NUMA memory policy
 *                    `mempolicy` (get_mempolicy; -1: unknown, leave the
 *                    leader's): what the launcher chose for this rank and not
 *                    for the leader.
 *                    SCM_RIGHTS on the header carries the rank's descriptors:
 *                    stdin, stdout, stderr, then those it gets as 3, 4, ...
 *                    (PMI_FD).
 *   client -> agent  later, any number of 4-byte signal numbers to deliver
 *                    to the rank's process group.
 *   agent -> client  one 4-byte exit code (128 + signal if it was killed;
 *                    127/126 if it could not be started, with a message on
 *                    the rank's stderr).
 *
 * When the client's end closes before the rank ended, the agent kills the
 * rank's process group. A start message with argc == 0 asks the agent to
 * exit once no rank runs (the container's end).
 */
#ifndef SARUS_RANK_AGENT_PROTOCOL_H
#define SARUS_RANK_AGENT_PROTOCOL_H

#include <stdint.h>

#define RANK_AGENT_MAGIC 0x53524132u /* "SRA2" */
#define RANK_AGENT_MAX_FDS 16
#define RANK_AGENT_MAX_SIZE (4u << 20)
#define RANK_AGENT_MAX_CPU_BYTES 1024u /* 8192 CPUs */
#define RANK_AGENT_MAX_NODE_BYTES 512u /* 4096 NUMA nodes */

struct rank_agent_start {
    uint32_t magic;
    uint32_t argc;
    uint32_t envc;
    uint32_t size;
    uint32_t cpus;
    int32_t mempolicy;
    uint32_t nodes;
};

#endif
