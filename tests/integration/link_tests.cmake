# rc_link (roomcast/libevent.h) against a real redis-server: test_link.
#
# include(${CMAKE_CURRENT_LIST_DIR}/link_tests.cmake) from
# tests/integration/CMakeLists.txt AFTER harness.cmake (it needs the
# rc_redis_harness target and RC_HAVE_REDIS_HARNESS from there, and
# RC_HIREDIS_TARGET from the top level), once roomcast_libevent_static
# exists.
#
# Without redis-server (harness.cmake then defines no rc_redis_harness), or
# without the libevent glue library, the test is not built and configure
# goes on with a STATUS message.

if(NOT RC_HAVE_REDIS_HARNESS OR NOT TARGET rc_redis_harness)
    message(STATUS "redis-server not found: test_link skipped")
elseif(NOT TARGET roomcast_libevent_static)
    message(STATUS "roomcast_libevent_static not built: test_link skipped")
else()
    find_package(PkgConfig REQUIRED)
    if(NOT TARGET PkgConfig::LIBEVENT)
        pkg_check_modules(LIBEVENT REQUIRED IMPORTED_TARGET libevent)
    endif()
    if(NOT TARGET PkgConfig::CMOCKA)
        pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
    endif()

    add_executable(test_link ${CMAKE_CURRENT_LIST_DIR}/test_link.c)
    target_link_libraries(test_link PRIVATE
        roomcast_libevent_static
        roomcast_static
        rc_redis_harness
        ${RC_HIREDIS_TARGET}
        PkgConfig::LIBEVENT
        PkgConfig::CMOCKA)
    set_target_properties(test_link PROPERTIES
        C_STANDARD 99
        C_STANDARD_REQUIRED ON
        C_EXTENSIONS OFF)
    add_test(NAME test_link COMMAND test_link)
    set_tests_properties(test_link PROPERTIES
        LABELS integration
        TIMEOUT 300)
endif()
