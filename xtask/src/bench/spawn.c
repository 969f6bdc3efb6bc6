// The memory benchmark's processes.
//
//   spawn live N PROGRAM    starts N processes running PROGRAM, prints "ready" once they
//                           all run, and kills and reaps them when its stdin closes
//   spawn short N PROGRAM   runs PROGRAM N times, one after the other, each to its end
//
// Prints "N NANOSECONDS" for `short`.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static pid_t start(const char *program) {
    pid_t pid = fork();
    if (pid == 0) {
        execl(program, program, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: spawn live|short N PROGRAM\n");
        return 2;
    }
    long n = atol(argv[2]);
    const char *program = argv[3];
    if (strcmp(argv[1], "short") == 0) {
        long long t0 = now_ns();
        for (long i = 0; i < n; i++) {
            pid_t pid = start(program);
            if (pid < 0) {
                perror("fork");
                return 1;
            }
            waitpid(pid, NULL, 0);
        }
        printf("%ld %lld\n", n, now_ns() - t0);
        return 0;
    }
    pid_t *pids = calloc((size_t)n, sizeof(pid_t));
    if (!pids)
        return 1;
    long started = 0;
    for (; started < n; started++) {
        pids[started] = start(program);
        if (pids[started] < 0) {
            perror("fork");
            break;
        }
    }
    printf("ready %ld\n", started);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    for (long i = 0; i < started; i++)
        kill(pids[i], SIGKILL);
    for (long i = 0; i < started; i++)
        waitpid(pids[i], NULL, 0);
    return started == n ? 0 : 1;
}
