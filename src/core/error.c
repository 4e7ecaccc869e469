/* Error texts and version queries. */
#include "internal.h"

const char *rc_strerror(int err)
{
    switch (err) {
#define RC_STRERROR_CASE_(name, value, text)                                   \
    case value:                                                                \
        return text;
        RC_ERRNO_MAP(RC_STRERROR_CASE_)
#undef RC_STRERROR_CASE_
    }
    return "unknown error";
}

const char *rc_err_name(int err)
{
    switch (err) {
#define RC_ERR_NAME_CASE_(name, value, text)                                   \
    case value:                                                                \
        return #name;
        RC_ERRNO_MAP(RC_ERR_NAME_CASE_)
#undef RC_ERR_NAME_CASE_
    }
    return "EUNKNOWN";
}

unsigned rc_version(void)
{
    return ROOMCAST_VERSION_HEX;
}

const char *rc_version_string(void)
{
    return ROOMCAST_VERSION_STRING;
}
