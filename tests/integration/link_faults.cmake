# rc_link under faults, against a real redis-server: test_link_faults
# (half-open link through a frozen socat proxy, slow subscriber dropped by
# Redis, kill -9 / restart accounting).
#
# include(${CMAKE_CURRENT_LIST_DIR}/link_faults.cmake) from
# tests/integration/CMakeLists.txt AFTER harness.cmake (it needs
# rc_redis_harness and RC_HAVE_REDIS_HARNESS from there, RC_HIREDIS_TARGET
# and roomcast_libevent_static from the top level).
#
# Without redis-server, libevent (no roomcast_libevent_static) or cmocka the
# test is not built and configure goes on with a STATUS message. The
# half-open case needs socat at run time; without it that case is reported
# as skipped (cmocka skip()), the others still run.

if(NOT RC_HAVE_REDIS_HARNESS OR NOT TARGET rc_redis_harness)
    message(STATUS "redis-server not found: test_link_faults skipped")
elseif(NOT TARGET roomcast_libevent_static)
    message(STATUS "libevent not found: test_link_faults skipped")
else()
    find_package(PkgConfig REQUIRED)
    if(NOT TARGET PkgConfig::LIBEVENT)
        pkg_check_modules(LIBEVENT REQUIRED IMPORTED_TARGET libevent)
    endif()
    # Imported targets are directory-scoped: look cmocka up here if need be.
    if(NOT TARGET PkgConfig::CMOCKA)
        pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
    endif()

    if(NOT TARGET PkgConfig::CMOCKA)
        message(STATUS "cmocka not found: test_link_faults not built")
    else()
        find_program(RC_SOCAT socat
                     DOC "socat, for test_link_faults' half-open case")
        if(NOT RC_SOCAT)
            message(STATUS "socat not found: test_link_faults' half-open "
                           "case will be skipped")
        endif()

        add_executable(test_link_faults
            ${CMAKE_CURRENT_LIST_DIR}/test_link_faults.c)
        target_link_libraries(test_link_faults PRIVATE
            roomcast_libevent_static
            roomcast_static
            rc_redis_harness
            ${RC_HIREDIS_TARGET}
            PkgConfig::LIBEVENT
            PkgConfig::CMOCKA)
        set_target_properties(test_link_faults PROPERTIES
            C_STANDARD 99
            C_STANDARD_REQUIRED ON
            C_EXTENSIONS OFF)
        add_test(NAME test_link_faults COMMAND test_link_faults)
        set_tests_properties(test_link_faults PROPERTIES
            LABELS integration
            TIMEOUT 300)
    endif()
endif()
