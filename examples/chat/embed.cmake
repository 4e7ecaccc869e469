# cmake -DIN=page.html -DOUT=page.c -P embed.cmake
# Writes OUT defining chat_page (IN's bytes, NUL-terminated) and
# chat_page_len, so that rc-chat serves the page from its own binary.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
"/* Generated from page.html by embed.cmake: do not edit. */\n"
"#include <stddef.h>\n"
"extern const char chat_page[];\n"
"extern const size_t chat_page_len;\n"
"const char chat_page[] = {\n${bytes}0};\n"
"const size_t chat_page_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
