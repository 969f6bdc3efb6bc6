// The connect storm: a listener on 127.0.0.1:PORT (a child process that accepts and
// closes) and N TCP connects to it, each closed by the client once connected.
//
//   connect PORT N      prints "CONNECTS FAILED NANOSECONDS"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: connect PORT N\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long n = atol(argv[2]);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(l, 4096) < 0) {
        perror("listen");
        return 1;
    }
    pid_t server = fork();
    if (server == 0) {
        for (;;) {
            int c = accept(l, NULL, NULL);
            if (c >= 0)
                close(c);
        }
    }
    close(l);
    long ok = 0, failed = 0;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) {
            failed++;
            continue;
        }
        if (connect(s, (struct sockaddr *)&addr, sizeof addr) == 0)
            ok++;
        else
            failed++;
        close(s);
    }
    long long el = now_ns() - t0;
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    printf("%ld %ld %lld\n", ok, failed, el);
    return 0;
}
