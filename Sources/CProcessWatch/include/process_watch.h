#ifndef CONFAB_PROCESS_WATCH_H
#define CONFAB_PROCESS_WATCH_H

#include <sys/types.h>

/// pidfd_open(2): a descriptor that becomes readable when process `pid` exits, for any process
/// (not only our children). Returns -1 with errno set (ESRCH: no such process; ENOSYS: a kernel
/// before 5.3). Swift cannot call the variadic syscall(2) itself, hence this shim.
int confab_pidfd_open(pid_t pid);

#endif
