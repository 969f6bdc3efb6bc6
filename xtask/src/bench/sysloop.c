// The syscall workload of `cargo xtask bench`: getppid(2) in a tight loop, a call the
// kernel answers at once, so that what a tracer adds to every syscall shows.
//
//   sysloop CALLS                 CALLS calls
//   sysloop -t SECONDS [RATE]     calls for SECONDS, at most RATE a second when given
//
// Prints "CALLS NANOSECONDS" (calls made, time they took).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    long long calls = 0;
    long long start = now_ns();
    if (argc >= 3 && strcmp(argv[1], "-t") == 0) {
        long long limit = (long long)(atof(argv[2]) * 1e9);
        double rate = argc >= 4 ? atof(argv[3]) : 0;
        for (;;) {
            for (int i = 0; i < 64; i++)
                syscall(SYS_getppid);
            calls += 64;
            long long el = now_ns() - start;
            if (el >= limit)
                break;
            if (rate > 0) {
                // Ahead of the pace: wait (on the vDSO clock, no syscall) until it is due.
                while ((double)calls > rate * (double)(now_ns() - start) / 1e9)
                    ;
            }
        }
    } else if (argc == 2) {
        long long n = atoll(argv[1]);
        for (long long i = 0; i < n; i++)
            syscall(SYS_getppid);
        calls = n;
    } else {
        fprintf(stderr, "usage: sysloop CALLS | sysloop -t SECONDS [RATE]\n");
        return 2;
    }
    printf("%lld %lld\n", calls, now_ns() - start);
    return 0;
}
