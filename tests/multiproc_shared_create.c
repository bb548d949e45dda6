/* SPDX-License-Identifier: MIT */
/*
 * Who creates a heap, and who may attach it:
 *   - two openers with GA_SHARED_CREATE, the first stopped (delay hook) after initializing its
 *     heap and before publishing it: exactly one reports created = 1, and the other attaches
 *     that very heap (reads what the creator wrote), never a half-made one;
 *   - a heap whose init state was damaged while a process is attached is never re-created by
 *     the next opener: GA_ECORRUPT, and the attached process's data stays;
 *   - a file owned by another user (nobody, made as root: skipped with a message otherwise) is
 *     refused with GA_EPERM unless GA_SHARED_ANY_OWNER.
 * Every child runs under alarm(), every wait on a pipe, so a regression fails instead of hanging.
 */
#include "test.h"
#include "shared_test_util.h"
#include "shared/shared_internal.h"
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB       ((size_t)1 << 20)
#define ALARM_SEC 30

static int hook_ready = -1, hook_go = -1;
static const char *hook_step;

/* Stops the opener at hook_step: tells the parent, then waits until it closes hook_go. */
static void stop_at_step(const char *step)
{
    if (!hook_step || strcmp(step, hook_step) != 0) return;
    char c = 1;
    if (write(hook_ready, &c, 1) != 1) _exit(7);
    while (read(hook_go, &c, 1) > 0)
        ;
}

static int wait_child(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST(create_race_one_creator)
{
    const char *name = shm_test_name("crrace");
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(ALARM_SEC);
        close(ready[0]);
        close(go[1]);
        hook_ready = ready[1], hook_go = go[0], hook_step = "create:before-publish";
        ga__shm_test_hook = stop_at_step;
        int created = -1;
        ga_heap_t *h = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE, &created);
        if (!h) _exit(2);
        const char *who = ga_shared_object_find(h, "who", NULL);
        int ok = created == 0 && who && strcmp(who, "second") == 0 &&
                 ga_shared_check(h, GA_CHECK_QUIET) == 0;
        ga_shared_close(h);
        _exit(ok ? 0 : 3);
    }
    close(ready[1]);
    close(go[0]);
    char c;
    CHECK(read(ready[0], &c, 1) == 1); /* the first opener has made its heap, not published it */
    int created = -1;
    ga_heap_t *h = ga_shared_open(name, 4 * MIB, GA_SHARED_CREATE, &created);
    CHECK(h != NULL);
    ASSERT_EQ(created, 1);
    char *who = h ? ga_shared_object(h, "who", 16, 0, NULL) : NULL;
    CHECK(who != NULL);
    if (who) strcpy(who, "second");
    close(go[1]); /* the first opener goes on: its publish must fail, and it attaches ours */
    ASSERT_EQ(wait_child(pid), 0);
    ga_shared_stats_t s;
    ASSERT_EQ(ga_shared_stats(h, &s), 0);
    ASSERT_EQ(s.reserved, 4 * MIB); /* our heap, not the other's 2 MiB one */
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    close(ready[0]);
    ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(name, 0), 0);
}

static int quiet(int err, const char *msg, uintptr_t ptr, void *arg)
{
    (void)err, (void)msg, (void)ptr, (void)arg;
    return 1;
}

TEST(not_ready_with_live_peer_never_wiped)
{
    const char *name = shm_test_name("nowipe");
    ga_heap_t *h = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    if (!h) return;
    char *data = ga_shared_object(h, "data", 64, 0, NULL);
    CHECK(data != NULL);
    if (!data) return;
    strcpy(data, "precious");
    uint32_t zero = 0, ready = INIT_READY;
    ASSERT_EQ(shm_test_rewrite(name, offsetof(shm_header_t, init_state), &zero, 4), 0);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(ALARM_SEC);
        ga_set_error_handler(quiet, NULL);
        int created = -1;
        ga_heap_t *o = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE, &created);
        _exit(o == NULL && ga_last_error() == GA_ECORRUPT && created == 0 ? 0 : 1);
    }
    ASSERT_EQ(wait_child(pid), 0);
    CHECK(strcmp(data, "precious") == 0); /* not zeroed, and no SIGBUS: not truncated */
    ASSERT_EQ(shm_test_rewrite(name, offsetof(shm_header_t, init_state), &ready, 4), 0);
    ASSERT_EQ(ga_shared_check(h, 0), 0);
    ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(name, 0), 0);
}

/* A stale file nobody is attached to (size 0: hand-made) is replaced by a CREATE opener. */
TEST(stale_file_replaced)
{
    const char *name = shm_test_name("stale");
    char path[200];
    snprintf(path, sizeof path, "/ga.%s", name);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK(ga_shared_open(name, 0, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_ENOENT);
    CHECK(ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EEXIST);
    int created = -1;
    ga_heap_t *h = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE, &created);
    CHECK(h != NULL);
    ASSERT_EQ(created, 1);
    if (h) {
        ASSERT_EQ(ga_shared_check(h, 0), 0);
        ga_shared_close(h);
    }
    ASSERT_EQ(ga_shared_unlink(name, 0), 0);
}

/* A creator killed before publishing leaves its private file; the next creator removes it. */
TEST(orphan_private_file_removed)
{
    int pid = 0x7ffffff0; /* above any pid_max (at most 2^22): no such process, ever */
    char path[64];
    snprintf(path, sizeof path, "/ga~%d~0123456789abcdef", pid);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    const char *name = shm_test_name("orphanpriv");
    ga_heap_t *h = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_EXCL, NULL);
    CHECK(h != NULL);
    fd = shm_open(path, O_RDONLY, 0);
    CHECK(fd < 0);
    if (fd >= 0) {
        close(fd);
        shm_unlink(path);
    }
    if (h) ga_shared_close(h);
    ga_shared_unlink(name, 0);
}

TEST(other_owner_refused)
{
    struct passwd *pw = getpwnam("nobody");
    if (geteuid() != 0 || !pw) {
        printf("skip other_owner_refused: needs root and a user 'nobody'\n");
        return;
    }
    const char *name = shm_test_name("squat");
    pid_t pid = fork();
    if (pid == 0) { /* nobody squats the name, readable and writable by all */
        alarm(ALARM_SEC);
        if (setgid(pw->pw_gid) || setuid(pw->pw_uid)) _exit(2);
        ga_heap_t *h = ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE | GA_SHARED_OTHERS, NULL);
        _exit(h ? 0 : 3);
    }
    ASSERT_EQ(wait_child(pid), 0);
    ga_set_error_handler(quiet, NULL);
    CHECK(ga_shared_open(name, 0, 0, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EPERM);
    CHECK(ga_shared_open(name, 2 * MIB, GA_SHARED_CREATE, NULL) == NULL);
    ASSERT_EQ(ga_last_error(), GA_EPERM);
    ga_set_error_handler(NULL, NULL);
    ga_heap_t *h = ga_shared_open(name, 0, GA_SHARED_ANY_OWNER, NULL);
    CHECK(h != NULL);
    if (h) ga_shared_close(h);
    ASSERT_EQ(ga_shared_unlink(name, GA_SHARED_FORCE), 0);
}

int main(int argc, char **argv)
{
    static const test_entry_t tests[] = {
        TEST_ENTRY(create_race_one_creator), TEST_ENTRY(not_ready_with_live_peer_never_wiped),
        TEST_ENTRY(stale_file_replaced),     TEST_ENTRY(orphan_private_file_removed),
        TEST_ENTRY(other_owner_refused),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
