/*
 * test_opts: every option struct's _init() writes every field.  Each struct is
 * filled with 0xA5 bytes first (what a caller's stack may hold), so a field
 * _init() forgets keeps that pattern and fails its check here; the values are
 * the defaults include/arpc/client.h documents.  (A channel created with the
 * Thrift protocol once read a probe_method _init() had not set.)
 */
#include <string.h>

#include <arpc/arpc.h>

#include "test.h"

static void test_channel_opts_defaults(void)
{
    arpc_channel_opts o;
    memset(&o, 0xA5, sizeof(o));
    arpc_channel_opts_init(&o);
    ASSERT_EQ(o.connections_per_endpoint, 1);
    ASSERT_EQ(o.connect_timeout_ms, 1000);
    ASSERT_EQ(o.default_timeout_ms, 1000);
    ASSERT_EQ(o.heartbeat_interval_ms, 500);
    ASSERT_EQ(o.heartbeat_timeout_ms, 1000);
    ASSERT_EQ(o.reconnect_backoff_min_ms, 50);
    ASSERT_EQ(o.reconnect_backoff_max_ms, 2000);
    ASSERT_EQ(o.eject_after_failures, 3);
    ASSERT_EQ(o.max_retries, 2);
    ASSERT_EQ(o.lb_policy, ARPC_LB_ROUND_ROBIN);
    ASSERT_EQ(o.max_unwritten_bytes, 64u * 1024 * 1024);
    ASSERT_EQ(o.protocol, ARPC_PROTOCOL_NATIVE);
    ASSERT_EQ(o.stream_window_bytes, 256u * 1024);
    ASSERT_TRUE(o.probe_method == NULL);
    ASSERT_EQ(o.max_in_flight_per_connection, 0);
    ASSERT_GT(o.max_frame_size, 0);
    ASSERT_TRUE(!o.tls.enabled);
    ASSERT_TRUE(o.tls.ca_file == NULL && o.tls.server_name == NULL);
    ASSERT_TRUE(o.tls.cert_file == NULL && o.tls.key_file == NULL);
    ASSERT_EQ(o.tls.min_version, ARPC_TLS_1_2);
    ASSERT_EQ(o.tls.max_version, 0);
    ASSERT_EQ(o.tls.handshake_timeout_ms, 5000);
}

static void test_server_tls_opts_defaults(void)
{
    arpc_server_tls_opts o;
    memset(&o, 0xA5, sizeof(o));
    arpc_server_tls_opts_init(&o);
    ASSERT_TRUE(o.cert_file == NULL && o.key_file == NULL && o.client_ca_file == NULL);
    ASSERT_TRUE(!o.client_cert_optional);
    ASSERT_EQ(o.min_version, ARPC_TLS_1_2);
    ASSERT_EQ(o.max_version, 0);
}

static void test_call_opts_defaults(void)
{
    arpc_call_opts o;
    memset(&o, 0xA5, sizeof(o));
    arpc_call_opts_init(&o);
    ASSERT_EQ(o.timeout_ms, -1);
    ASSERT_EQ(o.hash_key, 0);
    ASSERT_TRUE(!o.idempotent);
    ASSERT_TRUE(o.parent == NULL);
    ASSERT_TRUE(o.metadata == NULL);
    ASSERT_EQ(o.metadata_count, 0);
    ASSERT_TRUE(o.response_metadata == NULL);
    ASSERT_TRUE(o.arena == NULL);
    ASSERT_TRUE(o.error_message == NULL);
}

int main(void)
{
    RUN_TEST(test_channel_opts_defaults);
    RUN_TEST(test_call_opts_defaults);
    RUN_TEST(test_server_tls_opts_defaults);
    return 0;
}
