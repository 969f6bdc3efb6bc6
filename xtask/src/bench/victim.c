// The target of the enforcement benchmark: its first act is a side effect (it creates
// the file it is given), so a process killed before its first instruction leaves none.
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1) {
        int fd = open(argv[1], O_CREAT | O_WRONLY, 0644);
        if (fd >= 0)
            close(fd);
    }
    return 0;
}
