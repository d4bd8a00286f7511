/*
 * Small documented promises of the runtime's public API.  Proves:
 * arpc_coro_sleep_ms() returns ARPC_ENOMEM when its timer cannot be queued
 * (it documented "@return 0"); the timeout constants mean what loop.h says
 * (ARPC_WAIT_FOREVER waits, 0 only tests); arpc_log_set_level() clamps a
 * value outside the enum; ARPC_LOG sets the starting level when it names one
 * exactly and is ignored otherwise (checked in a re-executed child, since it
 * is read when the library loads).
 */
#include <spawn.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "base/alloc.h"
#include "test.h"

typedef struct sleeper {
    int rc;
    arpc_event done;
} sleeper;

static void sleep_body(void *arg)
{
    sleeper *s = arg;
    /* The loop's timer heap is empty, so this park must grow it. */
    arpc__alloc_fail_after(0);
    s->rc = arpc_coro_sleep_ms(10);
    arpc__alloc_fail_after(-1);
    arpc_event_signal(&s->done);
}

static void test_sleep_reports_enomem(void)
{
    arpc_loop *loop;
    ASSERT_OK(arpc_loop_create(NULL, &loop));
    ASSERT_OK(arpc_loop_start(loop));
    sleeper s;
    arpc_event_init(&s.done);
    ASSERT_OK(arpc_coro_spawn(loop, sleep_body, &s));
    ASSERT_OK(arpc_event_wait(&s.done, ARPC_WAIT_FOREVER));
    ASSERT_ERR(s.rc, ARPC_ENOMEM);
    arpc_loop_destroy(loop);
}

static void test_timeout_constants(void)
{
    arpc_event ev;
    arpc_event_init(&ev);
    ASSERT_ERR(arpc_event_wait(&ev, 0), ARPC_ETIMEDOUT); /* 0 only tests */
    arpc_event_signal(&ev);
    ASSERT_OK(arpc_event_wait(&ev, 0));
    arpc_event_signal(&ev);
    ASSERT_OK(arpc_event_wait(&ev, ARPC_WAIT_FOREVER));
    arpc_wg wg;
    arpc_wg_init(&wg, 1);
    ASSERT_ERR(arpc_wg_wait(&wg, 0), ARPC_ETIMEDOUT);
    arpc_wg_done(&wg);
    ASSERT_OK(arpc_wg_wait(&wg, ARPC_WAIT_FOREVER));
    ASSERT_TRUE(ARPC_WAIT_FOREVER < 0 && ARPC_TIMEOUT_DEFAULT < 0 && ARPC_NO_DEADLINE == 0);
}

static void test_log_level_is_clamped(void)
{
    arpc_log_set_level((arpc_log_level)42);
    ASSERT_EQ(arpc_log_get_level(), ARPC_LOG_OFF);
    arpc_log_set_level((arpc_log_level)-7);
    ASSERT_EQ(arpc_log_get_level(), ARPC_LOG_DEBUG);
    arpc_log_set_level(ARPC_LOG_WARN);
}

/* Runs this binary again with ARPC_LOG=`value`; returns the level it starts with. */
static int child_level(const char *value)
{
    char env_entry[64];
    snprintf(env_entry, sizeof(env_entry), "ARPC_LOG=%s", value);
    char *child_env[] = {env_entry, NULL};
    char *argv[] = {"test_api_contracts", "--print-level", NULL};
    int fds[2];
    ASSERT_OK(pipe(fds));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    pid_t pid;
    ASSERT_OK(-posix_spawn(&pid, "/proc/self/exe", &actions, NULL, argv, child_env));
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    char line[16];
    int len = test_read_line(fds[0], line, sizeof(line), 10000);
    close(fds[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_GT(len, 0);
    return atoi(line);
}

static void test_log_level_from_environment(void)
{
    ASSERT_EQ(child_level("debug"), ARPC_LOG_DEBUG);
    ASSERT_EQ(child_level("off"), ARPC_LOG_OFF);
    ASSERT_EQ(child_level("DEBUG"), ARPC_LOG_WARN); /* not a level's exact name */
    ASSERT_EQ(child_level("2"), ARPC_LOG_WARN);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-level") == 0) {
        printf("%d\n", (int)arpc_log_get_level());
        return 0;
    }
    RUN_TEST(test_sleep_reports_enomem);
    RUN_TEST(test_timeout_constants);
    RUN_TEST(test_log_level_is_clamped);
    RUN_TEST(test_log_level_from_environment);
    return 0;
}
