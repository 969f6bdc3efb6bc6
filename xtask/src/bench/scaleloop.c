// The workloads of `cargo xtask bench --only scale` on syscalls other than getppid
// (sysloop's): a call in a tight loop, each on its own syscall tracepoint.
//
//   scaleloop getpgid SECONDS   getpgid(0) (its `pid` argument: 0)
//   scaleloop openat SECONDS    openat of a path that does not exist (it fails, ENOENT)
//
// Calls for SECONDS; prints "CALLS NANOSECONDS" (calls made, time they took).
#define _GNU_SOURCE
#include <fcntl.h>
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
    if (argc != 3 || (strcmp(argv[1], "getpgid") != 0 && strcmp(argv[1], "openat") != 0)) {
        fprintf(stderr, "usage: scaleloop getpgid|openat SECONDS\n");
        return 2;
    }
    int openat_call = strcmp(argv[1], "openat") == 0;
    long long limit = (long long)(atof(argv[2]) * 1e9);
    long long calls = 0;
    long long start = now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (openat_call)
                syscall(SYS_openat, AT_FDCWD, "/nonexistent-dir/file", O_RDONLY);
            else
                syscall(SYS_getpgid, 0);
        }
        calls += 64;
        if (now_ns() - start >= limit)
            break;
    }
    printf("%lld %lld\n", calls, now_ns() - start);
    return 0;
}
