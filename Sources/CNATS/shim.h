#ifndef MESSAGE_STORE_CNATS_SHIM_H
#define MESSAGE_STORE_CNATS_SHIM_H

#include <nats/nats.h>

/// The cnats version this module was compiled against (a macro, so Swift needs a function).
static inline int cnats_shim_header_version_number(void) {
    return NATS_VERSION_NUMBER;
}

/// Names the calling thread, for debuggers and `top -H`.
#if defined(__linux__)
#include <sys/prctl.h>
static inline void cnats_shim_set_thread_name(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
}
#else
#include <pthread.h>
static inline void cnats_shim_set_thread_name(const char *name) {
    pthread_setname_np(name);
}
#endif

#endif
