# The C integration tests against a real redis-server (started by the
# harness), driving hiredis on libevent: the adapter (test_adapter_redis),
# the links (test_link) and the links under faults (test_link_faults: its
# half-open case needs socat at run time and is skipped without it), the
# node's lease (test_lease).
# include()d from tests/integration/CMakeLists.txt after harness.cmake.
# Without redis-server, libevent or cmocka they are skipped with a message.

if(NOT RC_HAVE_REDIS_HARNESS OR NOT TARGET rc_redis_harness)
    message(STATUS "redis-server not found: Redis integration tests skipped")
    return()
endif()
find_package(PkgConfig REQUIRED)
# Imported targets are directory-scoped: look them up here if need be.
if(NOT TARGET PkgConfig::LIBEVENT)
    pkg_check_modules(LIBEVENT QUIET IMPORTED_TARGET libevent)
endif()
if(NOT TARGET PkgConfig::CMOCKA)
    pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
endif()
if(NOT TARGET PkgConfig::LIBEVENT OR NOT TARGET PkgConfig::CMOCKA)
    message(STATUS "libevent or cmocka not found: Redis integration tests "
                   "skipped")
    return()
endif()

# rc_redis_test(name [libraries...]): name.c plus the shared support
# (test_support.c: the loop and the waits; test_nodes.c: worlds, nodes,
# connections, the Redis side).
function(rc_redis_test name)
    add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c
                           ${CMAKE_CURRENT_SOURCE_DIR}/test_support.c
                           ${CMAKE_CURRENT_SOURCE_DIR}/test_nodes.c)
    target_link_libraries(${name} PRIVATE ${ARGN} roomcast_static
        rc_redis_harness ${RC_HIREDIS_TARGET} PkgConfig::LIBEVENT
        PkgConfig::CMOCKA)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT 300)
endfunction()

# rc_redis_link_test(name): the same with nodes on an rc_link
# (test_nodes_link.c, roomcast_libevent).
function(rc_redis_link_test name)
    rc_redis_test(${name} roomcast_libevent_static)
    target_sources(${name} PRIVATE
                   ${CMAKE_CURRENT_SOURCE_DIR}/test_nodes_link.c)
endfunction()

rc_redis_test(test_adapter_redis)
rc_redis_test(test_port)
rc_redis_test(test_rate_redis)
if(TARGET roomcast_libevent_static)
    rc_redis_link_test(test_link)
    rc_redis_link_test(test_link_faults)
    rc_redis_link_test(test_lease)
    rc_redis_link_test(test_presence)
    rc_redis_link_test(test_admit)
    rc_redis_link_test(test_history)
    # Links on the glue's own connections: rediss:// against a TLS
    # redis-server, Sentinel (topo_harness makes the certificates and the
    # sentinels).
    if(TARGET rc_topo_harness)
        rc_redis_link_test(test_tls)
        target_link_libraries(test_tls PRIVATE rc_topo_harness)
        rc_redis_link_test(test_sentinel)
        target_link_libraries(test_sentinel PRIVATE rc_topo_harness)
        rc_redis_link_test(test_cluster)
        target_link_libraries(test_cluster PRIVATE rc_topo_harness)
    endif()
    find_program(RC_SOCAT socat)
    if(NOT RC_SOCAT)
        message(STATUS "socat not found: the half-open link test will skip")
    endif()
endif()
