// A process that lives until it is killed (the memory benchmark's live processes).
#include <unistd.h>

int main(void) {
    for (;;)
        pause();
}
