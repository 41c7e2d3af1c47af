# embed.cmake — writes a C file holding a binary file as a byte array and a
# function that returns it:
#   cmake -DIN=file -DOUT=file.c -DFUNC=name -DHEADER=inc.h -P embed.cmake
# Used for the built-in test clip (tests/data/clip.h264), so that the data
# lives once, as the data file, and the source is made at build time.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR n "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 16 bytes a line (CMake regexes have no {n} and few groups: spell it out)
set(b "0x[0-9a-f][0-9a-f],")
string(REGEX REPLACE "(${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUT}.tmp"
"/* Generated at build time by cmake/embed.cmake from ${IN}; do not edit. */
#include <stddef.h>
#include <stdint.h>

#include \"${HEADER}\"

static const uint8_t data[${n}] = {
    ${bytes}
};

const uint8_t *${FUNC}(size_t *len)
{
    *len = sizeof(data);
    return data;
}
")
file(RENAME "${OUT}.tmp" "${OUT}")
