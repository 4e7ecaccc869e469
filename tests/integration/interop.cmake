# Interop with the reference: c_node (a roomcast node driven by JSON lines,
# the same protocol as node_ref/ref-node.mjs) and interop.test.mjs, which
# runs a reference node and two c_nodes on a redis-server of its own.
# include()d from tests/integration/CMakeLists.txt.
#
# The test is reported as skipped (exit 77) when node_ref/node_modules is
# missing (run `npm ci` in node_ref/) or when there is no redis-server
# (PATH, or $REDIS_SERVER).

find_package(PkgConfig)
if(PKG_CONFIG_FOUND)
    pkg_check_modules(RC_LIBEVENT IMPORTED_TARGET libevent)
endif()

if(TARGET roomcast_static AND RC_LIBEVENT_FOUND)
    add_executable(c_node ${CMAKE_CURRENT_LIST_DIR}/c_node.c)
    target_link_libraries(c_node PRIVATE roomcast_static ${RC_HIREDIS_TARGET}
                                         PkgConfig::RC_LIBEVENT)

    find_program(RC_NODE node)
    if(RC_NODE)
        add_test(NAME interop_node_ref
                 COMMAND sh -c [=[
test -d node_ref/node_modules || { echo "interop: no node_ref/node_modules (npm ci there)"; exit 77; }
command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || { echo "interop: no redis-server"; exit 77; }
exec "$0" --test interop.test.mjs]=]
                         ${RC_NODE}
                 WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
        set_tests_properties(interop_node_ref PROPERTIES
            ENVIRONMENT "RC_C_NODE=$<TARGET_FILE:c_node>"
            SKIP_RETURN_CODE 77
            TIMEOUT 180
            LABELS integration)
    endif()
elseif(NOT RC_LIBEVENT_FOUND)
    message(STATUS "libevent not found: c_node and interop_node_ref are not built")
endif()
