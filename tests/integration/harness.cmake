# The Redis test harness (redis_harness.[ch]) and its own test.
#
# include(${CMAKE_CURRENT_LIST_DIR}/harness.cmake) from
# tests/integration/CMakeLists.txt, after the top level has set
# RC_HIREDIS_TARGET (PkgConfig::HIREDIS or hiredis::hiredis).
#
# Defines, when redis-server is found:
#   rc_redis_harness     static library; link it and #include
#                        "redis_harness.h" (its directory is PUBLIC)
#   test_redis_harness   cmocka executable + ctest test (LABELS integration)
#   rc_topo_harness      static library (topo_harness.h: Redis Cluster,
#                        Sentinel, TLS; topo_*.c), links rc_redis_harness
#   test_topo_harness    its cmocka self-test (LABELS integration)
#   RC_REDIS_SERVER      the redis-server path (cache), compiled in as the
#                        default binary; RH_REDIS_SERVER overrides at run time
#   RC_HAVE_REDIS_HARNESS  ON, so later tests can check for it
# Without redis-server nothing is defined and configure goes on (a STATUS
# message says the Redis integration tests are skipped). Without cmocka the
# library is still built, only its test is left out.

set(RC_HAVE_REDIS_HARNESS OFF)

if(NOT DEFINED RC_HIREDIS_TARGET OR NOT TARGET ${RC_HIREDIS_TARGET})
    message(FATAL_ERROR
        "harness.cmake: RC_HIREDIS_TARGET must name the hiredis target "
        "(it is '${RC_HIREDIS_TARGET}')")
endif()

find_program(RC_REDIS_SERVER redis-server
             DOC "redis-server for the Redis integration tests")

if(NOT RC_REDIS_SERVER)
    message(STATUS "redis-server not found: Redis integration tests skipped")
else()
    set(RC_HAVE_REDIS_HARNESS ON)

    add_library(rc_redis_harness STATIC
        ${CMAKE_CURRENT_LIST_DIR}/redis_harness.c
        ${CMAKE_CURRENT_LIST_DIR}/redis_harness.h)
    target_include_directories(rc_redis_harness PUBLIC
        ${CMAKE_CURRENT_LIST_DIR})
    target_link_libraries(rc_redis_harness PUBLIC ${RC_HIREDIS_TARGET})
    target_compile_definitions(rc_redis_harness PRIVATE
        RH_REDIS_SERVER_PATH="${RC_REDIS_SERVER}")
    set_target_properties(rc_redis_harness PROPERTIES
        C_STANDARD 99
        C_STANDARD_REQUIRED ON
        C_EXTENSIONS OFF)

    # Redis Cluster, Sentinel and TLS built on it (topo_harness.h):
    # rc_topo_harness, linked like rc_redis_harness (which it brings).
    find_program(RC_OPENSSL openssl DOC "openssl for the TLS test certificates")
    find_program(RC_REDIS_CLI redis-cli DOC "redis-cli for the TLS self-test")
    add_library(rc_topo_harness STATIC
        ${CMAKE_CURRENT_LIST_DIR}/topo_harness.c
        ${CMAKE_CURRENT_LIST_DIR}/topo_cluster.c
        ${CMAKE_CURRENT_LIST_DIR}/topo_sentinel.c
        ${CMAKE_CURRENT_LIST_DIR}/topo_tls.c
        ${CMAKE_CURRENT_LIST_DIR}/topo_internal.h
        ${CMAKE_CURRENT_LIST_DIR}/topo_harness.h)
    target_link_libraries(rc_topo_harness PUBLIC rc_redis_harness)
    target_compile_definitions(rc_topo_harness PRIVATE
        TH_REDIS_SERVER_PATH="${RC_REDIS_SERVER}"
        TH_SENTINEL_LAUNCHER="${CMAKE_CURRENT_LIST_DIR}/sentinel_launch.sh")
    if(RC_OPENSSL)
        target_compile_definitions(rc_topo_harness PRIVATE
            TH_OPENSSL_PATH="${RC_OPENSSL}")
    endif()
    set_target_properties(rc_topo_harness PROPERTIES
        C_STANDARD 99
        C_STANDARD_REQUIRED ON
        C_EXTENSIONS OFF)

    # PkgConfig::CMOCKA made in tests/unit is not visible here (imported
    # targets are directory-scoped): look it up again if need be.
    if(NOT TARGET PkgConfig::CMOCKA)
        find_package(PkgConfig QUIET)
        if(PKG_CONFIG_FOUND)
            pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
        endif()
    endif()

    if(TARGET PkgConfig::CMOCKA)
        add_executable(test_redis_harness
            ${CMAKE_CURRENT_LIST_DIR}/test_redis_harness.c)
        target_link_libraries(test_redis_harness PRIVATE
            rc_redis_harness PkgConfig::CMOCKA)
        set_target_properties(test_redis_harness PROPERTIES
            C_STANDARD 99
            C_STANDARD_REQUIRED ON
            C_EXTENSIONS OFF)
        add_test(NAME test_redis_harness COMMAND test_redis_harness)
        set_tests_properties(test_redis_harness PROPERTIES
            LABELS integration
            TIMEOUT 60)

        # The topologies' self-test: a 3x1 cluster, sentinels, TLS.
        # Exit 77 (skipped, with a message) without redis-server at run
        # time; its TLS tests skip themselves without openssl or redis-cli.
        add_executable(test_topo_harness
            ${CMAKE_CURRENT_LIST_DIR}/test_topo_harness.c)
        target_link_libraries(test_topo_harness PRIVATE
            rc_topo_harness PkgConfig::CMOCKA)
        if(RC_REDIS_CLI)
            target_compile_definitions(test_topo_harness PRIVATE
                TH_REDIS_CLI_PATH="${RC_REDIS_CLI}")
        endif()
        set_target_properties(test_topo_harness PROPERTIES
            C_STANDARD 99
            C_STANDARD_REQUIRED ON
            C_EXTENSIONS OFF)
        add_test(NAME test_topo_harness COMMAND test_topo_harness)
        set_tests_properties(test_topo_harness PROPERTIES
            LABELS integration
            SKIP_RETURN_CODE 77
            TIMEOUT 240)
    else()
        message(STATUS "cmocka not found: test_redis_harness not built")
    endif()
endif()
