# The rc-chat example server, end to end (tests/integration/chat/, node
# --test): the HTTP contract with two nodes on a real redis-server
# (chat_http), the SSE/HTTP reliability catalogue S2-S8 (chat_reliability)
# a real headless Chromium on two nodes (chat_browser), and rc-chat with
# injected faults (chat_faults: rc-chat-faults, faults.c), one test per
# attack of the hardening issue (chat_hardening), presence (chat_presence)
# and sessions by code (chat_sessions; its frozen-link case needs socat and
# skips itself without it), history and resume (chat_history; its dropped-
# link case needs socat, its reference-node case node_ref/node_modules, and
# each skips itself without). Each test starts
# its own redis-server and rc-chat processes on free loopback ports.
# Reported as skipped (exit 77) without chat/node_modules (npm ci there) or
# without redis-server; chat_browser skips itself without chromium.
# include()d from tests/integration/CMakeLists.txt.

find_program(RC_NODE node)
if(NOT TARGET rc-chat OR NOT RC_NODE)
    message(STATUS "rc-chat or node missing: the chat tests are not run")
    return()
endif()

# rc-chat's own objects, with the calls faults.c wraps failing on demand.
add_executable(rc-chat-faults ${CMAKE_CURRENT_LIST_DIR}/chat/faults.c)
target_link_libraries(rc-chat-faults PRIVATE rc_chat_objects)
foreach(fn event_base_new event_base_priority_init evhttp_new
           evhttp_bind_listener event_new event_add event_priority_set
           rc_room_join)
    target_link_options(rc-chat-faults PRIVATE "LINKER:--wrap=${fn}")
endforeach()

foreach(name http reliability browser faults hardening presence sessions
                history)
    add_test(NAME chat_${name}
             COMMAND sh -c [=[
test -d node_modules || { echo "chat: no chat/node_modules (npm ci there)"; exit 77; }
command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || { echo "chat: no redis-server"; exit 77; }
exec "$0" --test --test-concurrency=1 "$1"]=]
                     ${RC_NODE} ${name}.test.mjs
             WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/chat)
    set_tests_properties(chat_${name} PROPERTIES
        ENVIRONMENT "RC_CHAT=$<TARGET_FILE:rc-chat>"
        SKIP_RETURN_CODE 77
        TIMEOUT 600
        LABELS integration)
endforeach()
# topo.mjs (Redis Cluster, Sentinel, TLS for the chat tests) proved by its
# own test: redis-server only (openssl for its TLS case, which skips itself
# without); it needs no node_modules and no rc-chat.
add_test(NAME chat_topo
         COMMAND sh -c [=[
command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || { echo "chat_topo: no redis-server"; exit 77; }
exec "$0" --test --test-concurrency=1 topo.test.mjs]=]
                 ${RC_NODE}
         WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/chat)
set_tests_properties(chat_topo PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT 180
    LABELS integration)
# rc-chat on a Redis Cluster (topo.mjs: 3 masters, 1 replica each):
# fan-out over every master, classic pub/sub, a busy room's slot migrated,
# CLUSTER FAILOVER and kill -9 of a master (rooms ready again within 2 s),
# a history room's resume and presence after kill -9 (chat_cluster).
# redis-server only: it needs no node_modules.
add_test(NAME chat_cluster
         COMMAND sh -c [=[
command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || { echo "chat_cluster: no redis-server"; exit 77; }
exec "$0" --test --test-concurrency=1 cluster.test.mjs]=]
                 ${RC_NODE}
         WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/chat)
set_tests_properties(chat_cluster PROPERTIES
    ENVIRONMENT "RC_CHAT=$<TARGET_FILE:rc-chat>"
    SKIP_RETURN_CODE 77
    TIMEOUT 300
    LABELS integration)
set_tests_properties(chat_faults PROPERTIES
    ENVIRONMENT "RC_CHAT=$<TARGET_FILE:rc-chat-faults>")
# Timing and memory are measured there (heartbeat spacing, RSS, CPU): alone.
# Under ASan, freed memory is held in quarantine (256 MiB), which the RSS
# bounds would count: those tests (and chat_hardening's) run without it.
set_tests_properties(chat_reliability PROPERTIES RUN_SERIAL TRUE)
if(RC_SANITIZE)
    set_tests_properties(chat_reliability chat_hardening PROPERTIES ENVIRONMENT
        "RC_CHAT=$<TARGET_FILE:rc-chat>;ASAN_OPTIONS=quarantine_size_mb=0")
    # libfaketime cannot be preloaded before the sanitizers' runtime: the
    # skewed-clock case runs in the plain build only.
    set_tests_properties(chat_presence PROPERTIES ENVIRONMENT
        "RC_CHAT=$<TARGET_FILE:rc-chat>;RC_SANITIZED=1")
endif()
