# Run at install time (install(SCRIPT)), so that roomcast.pc names the
# prefix actually installed to, also with `cmake --install --prefix DIR`.
# Paths in the .pc are absolute (hiredis#767: a relative libdir breaks).
foreach(dir INCLUDEDIR LIBDIR)
    if(IS_ABSOLUTE "${RC_${dir}}")
        set(CMAKE_INSTALL_FULL_${dir} "${RC_${dir}}")
    else()
        set(CMAKE_INSTALL_FULL_${dir} "${CMAKE_INSTALL_PREFIX}/${RC_${dir}}")
    endif()
endforeach()
foreach(name IN LISTS RC_PC_NAMES)
    configure_file("${RC_PC_DIR}/${name}.pc.in" "${RC_PC_OUT}/${name}.pc"
                   @ONLY)
    file(INSTALL "${RC_PC_OUT}/${name}.pc"
         DESTINATION "${CMAKE_INSTALL_PREFIX}/${RC_LIBDIR}/pkgconfig")
endforeach()
