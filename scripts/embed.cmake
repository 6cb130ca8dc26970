# cmake -DIN=FILE -DOUT=FILE.c -DNAME=SYMBOL -P scripts/embed.cmake
# Writes FILE.c defining `const unsigned char SYMBOL[]` (FILE's bytes, then a NUL) and
# `const size_t SYMBOL_len` (without the NUL): how the HTML report's page is compiled into aprof.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR len "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp" "/* Generated from ${IN} by scripts/embed.cmake: do not edit. */\n#include <stddef.h>\n\nconst unsigned char ${NAME}[] = {\n${bytes}0x00};\nconst size_t ${NAME}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
