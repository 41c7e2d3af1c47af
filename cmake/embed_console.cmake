# embed_console.cmake — writes a C file holding every file under console/ (the
# web console) as a table {path, content type, ETag, bytes}, for
# src/api/console.c to serve:
#   cmake -DDIR=console [-DVENDOR=build/console-vendor] -DOUT=console_files.c -P embed_console.cmake
# The files live once, as themselves; the source is made at build time.
# console/'s npm files (package.json, its lockfile, node_modules/) are not
# served: what the page uses of them is copied to VENDOR at build time
# (cmake/console_vendor.cmake) and served under vendor/.
file(GLOB_RECURSE files RELATIVE "${DIR}" "${DIR}/*")
list(FILTER files EXCLUDE REGEX "^node_modules/|^package(-lock)?\\.json$")
set(srcs "")
foreach(f ${files})
  list(APPEND srcs "${DIR}/${f}")
endforeach()
if(VENDOR)
  file(GLOB vfiles RELATIVE "${VENDOR}" "${VENDOR}/*")
  foreach(f ${vfiles})
    list(APPEND files "vendor/${f}")
    list(APPEND srcs "${VENDOR}/${f}")
  endforeach()
endif()
set(arrays "")
set(table "")
set(i 0)
set(b "0x[0-9a-f][0-9a-f],")
foreach(f ${files})
  list(GET srcs ${i} src)
  file(READ "${src}" hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR n "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "(${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b}${b})" "\\1\n    " bytes "${bytes}")
  file(SHA1 "${src}" sum)
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
  elseif(ext STREQUAL ".txt")
    set(type "text/plain; charset=utf-8")
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
