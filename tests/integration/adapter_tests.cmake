# The adapter against a real redis-server: test_adapter_redis.
#
# include(${CMAKE_CURRENT_LIST_DIR}/adapter_tests.cmake) from
# tests/integration/CMakeLists.txt AFTER harness.cmake (it needs the
# rc_redis_harness target and RC_HAVE_REDIS_HARNESS from there, and
# RC_HIREDIS_TARGET from the top level).
#
# Without redis-server (harness.cmake then defines no rc_redis_harness) the
# test is not built and configure goes on with a STATUS message. It needs
# libevent (the test drives hiredis through its libevent adapter) and
# cmocka.

if(NOT RC_HAVE_REDIS_HARNESS OR NOT TARGET rc_redis_harness)
    message(STATUS "redis-server not found: test_adapter_redis skipped")
else()
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(LIBEVENT REQUIRED IMPORTED_TARGET libevent)
    # Imported targets are directory-scoped: the one tests/unit made is not
    # visible here, harness.cmake may have made one in this directory.
    if(NOT TARGET PkgConfig::CMOCKA)
        pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
    endif()

    add_executable(test_adapter_redis
        ${CMAKE_CURRENT_LIST_DIR}/test_adapter_redis.c)
    target_link_libraries(test_adapter_redis PRIVATE
        roomcast_static
        rc_redis_harness
        ${RC_HIREDIS_TARGET}
        PkgConfig::LIBEVENT
        PkgConfig::CMOCKA)
    set_target_properties(test_adapter_redis PROPERTIES
        C_STANDARD 99
        C_STANDARD_REQUIRED ON
        C_EXTENSIONS OFF)
    add_test(NAME test_adapter_redis COMMAND test_adapter_redis)
    set_tests_properties(test_adapter_redis PROPERTIES
        LABELS integration
        TIMEOUT 300)
endif()
