# embed_console.cmake — writes a C file holding every file under console/ (the
# web console) as a table {path, content type, ETag, bytes}, for
# src/api/console.c to serve:
#   cmake -DDIR=console -DOUT=console_files.c -P embed_console.cmake
# The files live once, as themselves; the source is made at build time.
file(GLOB_RECURSE files RELATIVE "${DIR}" "${DIR}/*")
list(SORT files)
set(arrays "")
set(table "")
set(i 0)
set(b "0x[0-9a-f][0-9a-f],")
foreach(f ${files})
  file(READ "${DIR}/${f}" hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR n "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "(${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b})" "\\1\n    " bytes "${bytes}")
  file(SHA1 "${DIR}/${f}" sum)
  string(SUBSTRING "${sum}" 0 16 etag)
  get_filename_component(ext "${f}" LAST_EXT)
  string(TOLOWER "${ext}" ext)
  set(type "application/octet-stream")
  if(ext STREQUAL ".html")
    set(type "text/html; charset=utf-8")
  elseif(ext STREQUAL ".js" OR ext STREQUAL ".mjs")
    set(type "text/javascript; charset=utf-8")
  elseif(ext STREQUAL ".css")
    set(type "text/css; charset=utf-8")
  elseif(ext STREQUAL ".svg")
    set(type "image/svg+xml")
  elseif(ext STREQUAL ".png")
    set(type "image/png")
  elseif(ext STREQUAL ".json")
    set(type "application/json")
  elseif(ext STREQUAL ".ico")
    set(type "image/x-icon")
  endif()
  # an empty file still needs one byte of array (C has no empty arrays)
  if(n EQUAL 0)
    set(bytes "0x00,")
  endif()
  string(APPEND arrays "static const unsigned char f${i}[] = {\n    ${bytes}\n};\n")
  string(APPEND table "    {\"${f}\", \"${type}\", \"\\\"${etag}\\\"\", f${i}, ${n}},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE "${OUT}.tmp"
"/* Generated at build time by cmake/embed_console.cmake from ${DIR}; do not edit. */
#include <stddef.h>

#include \"api/console.h\"

${arrays}
const struct console_file console_files[] = {
${table}    {NULL, NULL, NULL, NULL, 0},
};
const size_t console_nfiles = ${i};
")
file(RENAME "${OUT}.tmp" "${OUT}")
