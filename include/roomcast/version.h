/* roomcast version macros. CMake reads the three numbers below. */
#ifndef ROOMCAST_VERSION_H
#define ROOMCAST_VERSION_H

#define ROOMCAST_VERSION_MAJOR 0
#define ROOMCAST_VERSION_MINOR 1
#define ROOMCAST_VERSION_PATCH 0

#define ROOMCAST_VERSION_STRING "0.1.0"

/* 0xMMmmpp, comparable with rc_version() at run time. */
#define ROOMCAST_VERSION_HEX                                                   \
    ((ROOMCAST_VERSION_MAJOR << 16) | (ROOMCAST_VERSION_MINOR << 8) |          \
     ROOMCAST_VERSION_PATCH)

#endif /* ROOMCAST_VERSION_H */
