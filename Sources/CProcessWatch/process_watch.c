#define _GNU_SOURCE
#include "process_watch.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

int confab_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}
